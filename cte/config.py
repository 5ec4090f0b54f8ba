"""Configuration of the CTE monitor as data: a shipped TOML file, overridable by the user.

:func:`load_config` reads the defaults shipped in ``cte/data/config.toml``, merges an
optional user TOML file over them (tables key by key; any value given, arrays
included, replaces the default) and maps it onto a frozen :class:`Config`.  Errors are
:class:`~cte.ConfigError` naming the key and the file that set it, raised before
anything is computed.

The sections are ``[monitor]`` (programs, filters, flash levels, exposure split, flux
bins), ``[targets.<name>]``, ``[[exclude]]`` (visits to leave out with a reason),
``[quality]``, ``[geometry]``, and one table per options dataclass, each validated by
its own ``__post_init__`` (no second validator): ``[photometry]``
(:class:`PhotometryOptions`), ``[alignment]`` (:class:`AlignmentOptions`),
``[analysis.loss]`` (:class:`LossOptions`, of :func:`cte.measure_loss`) and
``[analysis.fit]`` (:class:`FitOptions`, of :func:`cte.fit_model`).  The shipped file
documents each key with its unit.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from cte.exceptions import ConfigError
from cte.flags import dq_bits_mask
from stores.common.validate import (
    as_bool,
    as_float,
    as_int,
    as_interval,
    as_sequence_of,
    as_str,
    check_fields,
    one_of,
    subset_of,
)

__all__ = [
    "PIVOT_TRANSFERS",
    "AlignmentOptions",
    "Config",
    "Exclusion",
    "FitOptions",
    "LossOptions",
    "PhotometryOptions",
    "Target",
    "default_config_path",
    "flux_range",
    "load_config",
]

logger = logging.getLogger(__name__)

_DEFAULT = "config.toml"


def default_config_path() -> Path:
    """Path of the configuration file shipped with the package."""
    return Path(str(resources.files("cte") / "data" / _DEFAULT))


# -- the configuration objects ------------------------------------------------------------
_POSITIVE = partial(as_float, min=0, strict_min=True)
_NONNEG = partial(as_float, min=0)
_COUNT = partial(as_int, min=1, allow_integral_float=True)


def _visit(value, name: str) -> str:
    visit = as_str(value, name)
    if len(visit) != 2 or not visit.isalnum():
        msg = f"{name} must be two letters or digits, got {visit!r}"
        raise ValueError(msg)
    return visit.lower()


@dataclass(frozen=True)
class Target:
    """A monitored cluster field.

    Parameters
    ----------
    name : str
        Name in the store, catalogs and command line (lowercase, e.g. ``"ngc104"``).
    targnames : tuple of str
        TARGNAME header values that map to this target.
    description : str
        Free text.
    same_chip : bool
        True for the 180-degree (same-chip) set, whose pairs are on one chip.
    """

    name: str
    targnames: tuple[str, ...]
    description: str = ""
    same_chip: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_]+", str(self.name)):
            msg = f"name must be lowercase letters, digits and '_', got {self.name!r}"
            raise ValueError(msg)
        check_fields(self, {"targnames": partial(as_sequence_of, item=as_str),
                            "description": partial(as_str, non_empty=False),
                            "same_chip": as_bool})


@dataclass(frozen=True)
class Exclusion:
    """Visits of one proposal to leave out, with the reason logged when skipping them.

    ``visits`` empty means every visit of the proposal.

    Parameters
    ----------
    proposal : int
        Proposal ID.
    reason : str
        Why they are left out.
    visits : tuple of str
        Two-character visits (empty: every visit).
    """

    proposal: int
    reason: str
    visits: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_fields(self, {"proposal": _COUNT,
                            "visits": partial(as_sequence_of, item=_visit, min_len=0),
                            "reason": partial(as_str, non_empty=False)})
        if not self.reason.strip():
            msg = "reason must say why the visits are excluded"
            raise ValueError(msg)

    def matches(self, proposal: int, visit: str) -> bool:
        """Whether an image of *proposal* and *visit* (two characters) is excluded.

        Parameters
        ----------
        proposal : int
            Proposal ID.
        visit : str
            Two-character visit.
        """
        if int(proposal) != self.proposal:
            return False
        return not self.visits or str(visit).lower() in self.visits


def _dq_bits(value, name: str) -> int:
    """A DQ bit mask: an int, or the sequence of bit values the TOML file lists."""
    if isinstance(value, int):
        return value
    bits = as_sequence_of(value, name, _COUNT, min_len=0)
    try:
        return dq_bits_mask(bits)
    except ValueError as exc:
        raise ValueError(f"{name} {exc}") from exc


def _pam_files(value, name: str) -> dict[int, str]:
    if not isinstance(value, Mapping) or {str(k) for k in value} != {"1", "2"}:
        msg = (f'{name} must be a table with keys "1" and "2" (chip -> file name), '
               f"got {value!r}")
        raise ValueError(msg)
    return {int(c): as_str(v, f"{name}.{c}") for c, v in value.items()}


@dataclass(frozen=True)
class PhotometryOptions:
    """Aperture photometry settings (``[photometry]`` of the shipped file, which gives
    every default; method in :mod:`cte.photometry._measure`).

    Parameters
    ----------
    apertures : tuple of float
        Aperture radii, pixel.
    annulus : tuple of float
        Inner and outer radius of the background annulus, pixel (inner >= the largest
        aperture).
    background_sigma : float
        Clipping threshold of the annulus background, in sigma.
    background_maxiters : int
        Clipping rounds of the annulus background.
    min_annulus_pixels : int
        Fewer good annulus pixels leave the star without photometry.
    recentre_min_snr : float
        Stars below this signal-to-noise ratio keep their catalog position.
    centroid_method : str
        windowed (Gaussian-windowed centroid) or com (centre of mass).
    centroid_box : int
        Centroid box side, pixel (odd, >= 3).
    centroid_window_sigma : float
        Window sigma of the windowed centroid, pixel.
    max_centroid_shift : float
        Largest accepted recentring shift, pixel.
    dq_mask : int
        DQ bits masked in flux_masked (the file lists the bit values).
    cosmic_ray_dq : int
        DQ bits of cosmic rays (the COSMIC_RAY star flag).
    saturation_dq : int
        DQ bits of saturation (the SATURATED star flag).
    interpolation_radius : int
        Masked pixels are replaced by a weighted mean of good pixels within this radius,
        pixel.
    crowding_radius : float
        A catalog neighbour within this radius (pixel) ...
    crowding_flux_ratio : float
        ... with at least this times the star's flux sets the CROWDED flag.
    pam_files : mapping of int to str
        Pixel-area-map file name per chip (1, 2).
    """

    apertures: tuple[float, ...]
    annulus: tuple[float, float]
    background_sigma: float
    background_maxiters: int
    min_annulus_pixels: int
    recentre_min_snr: float
    centroid_method: str
    centroid_box: int
    centroid_window_sigma: float
    max_centroid_shift: float
    dq_mask: int
    cosmic_ray_dq: int
    saturation_dq: int
    interpolation_radius: int
    crowding_radius: float
    crowding_flux_ratio: float
    pam_files: Mapping[int, str]

    def __post_init__(self) -> None:
        check_fields(self, {
            "apertures": lambda v, n: tuple(sorted(set(as_sequence_of(
                v, n, partial(as_float, min=0, strict_min=True, units="pixel"))))),
            "annulus": partial(as_interval, min=0, units="pixel"),
            "background_sigma": _POSITIVE,
            "background_maxiters": _COUNT,
            "min_annulus_pixels": _COUNT,
            "recentre_min_snr": _NONNEG,
            "centroid_method": partial(one_of, choices=("windowed", "com")),
            "centroid_box": partial(as_int, min=3, allow_integral_float=True),
            "centroid_window_sigma": _POSITIVE,
            "max_centroid_shift": _POSITIVE,
            "dq_mask": _dq_bits,
            "cosmic_ray_dq": _dq_bits,
            "saturation_dq": _dq_bits,
            "interpolation_radius": _COUNT,
            "crowding_radius": _NONNEG,
            "crowding_flux_ratio": _NONNEG,
            "pam_files": _pam_files,
        })
        if self.annulus[0] < max(self.apertures):
            msg = (f"annulus inner radius {self.annulus[0]} pixel must be >= the largest "
                   f"aperture {max(self.apertures)} pixel")
            raise ValueError(msg)
        if self.centroid_box % 2 == 0:
            msg = f"centroid_box must be an odd integer >= 3, got {self.centroid_box}"
            raise ValueError(msg)


@dataclass(frozen=True)
class AlignmentOptions:
    """WCS alignment settings (``[alignment]`` of the shipped file, which gives every
    default; method in :mod:`cte.photometry.align`).

    Parameters
    ----------
    fwhm : float
        FWHM of the stars, pixel (detection and matching).
    detection_nsigma : float
        Detection threshold above the background, in units of its robust sigma.
    n_brightest : int
        How many of the brightest detections and catalog stars are matched.
    max_offset : float
        Largest pointing error searched for, pixel.
    match_radius : float
        Final match radius, pixel.
    min_matches : int
        Fewer matched stars fail the alignment (>= 3 to fit shift and rotation).
    clip_sigma : float
        Matched pairs further than this many sigma from the fit are rejected.
    max_rotation : float
        A larger fitted rotation (deg) fails the alignment.
    isolation_radius : float
        The fit uses stars with no catalog neighbour within this radius (pixel) ...
    isolation_flux_ratio : float
        ... with at least this fraction of the star's flux, when enough are isolated.
    """

    fwhm: float
    detection_nsigma: float
    n_brightest: int
    max_offset: float
    match_radius: float
    min_matches: int
    clip_sigma: float
    max_rotation: float
    isolation_radius: float
    isolation_flux_ratio: float

    def __post_init__(self) -> None:
        check_fields(self, {
            "fwhm": _POSITIVE, "detection_nsigma": _POSITIVE, "n_brightest": _COUNT,
            "max_offset": _POSITIVE, "match_radius": _POSITIVE,
            "min_matches": partial(as_int, min=3, allow_integral_float=True),
            "clip_sigma": _POSITIVE, "max_rotation": _POSITIVE,
            "isolation_radius": _NONNEG, "isolation_flux_ratio": _NONNEG,
        })


#: transfers at which both images of a pair have the same number of transfers
PIVOT_TRANSFERS = 2051 / 2


def flux_range(value, name: str) -> tuple[float, float]:
    """*value* as a flux range ``(low, high)`` in e- with ``0 < low < high``.

    The rule of a flux bin and of a simulated field's star fluxes.

    Parameters
    ----------
    value : sequence of two float
        The range.
    name : str
        The parameter's name, for the message.

    Returns
    -------
    tuple of float

    Raises
    ------
    ValueError
        Not two finite numbers with ``0 < low < high`` (the message names *name*).
    """
    low, high = as_interval(value, name, min=0, units="e-")
    as_float(low, f"{name} low", min=0, strict_min=True, units="e-")
    return low, high


def _flux_bins(value, name: str):
    return None if value is None else as_sequence_of(value, name, flux_range)


@dataclass(frozen=True)
class LossOptions:
    """How :func:`cte.measure_loss` measures the loss (method in :mod:`cte.analysis.loss`).

    Parameters
    ----------
    flux_bins : tuple of (float, float), optional
        Flux bins (lo, hi) in e-, ``lo <= flux < hi``; may overlap.  Default: the
        configuration's ``[monitor] flux_bins``.
    flux_var : str
        Photometry to use: flux (unmasked) or flux_masked (DQ and cosmic-ray pixels
        masked).
    bin_by : str
        A star enters a bin when its mean flux over the two images lies in it (mean,
        unbiased) or when both its fluxes do (both, the seed's rule, biased low).
    min_snr : float, optional
        Leave out stars whose mean-flux signal-to-noise ratio is below this (the cut
        depends on the sum of the fluxes only, so it does not bias the slope).
    reject_flags : int, optional
        Star flags (cte.flags) that leave a star out in either image.  None:
        any flag but CROWDED, and with flux_masked the cosmic-ray and bad-pixel bits are
        accepted too; -1 rejects every flag.
    sigma : float, optional
        Clipping threshold of the ratio-vs-transfers line fit, in units of the residual
        rms; None: no clipping.
    maxiters : int
        Maximum number of clipping rounds.
    min_stars : int
        Cells with fewer kept stars get NaN loss.
    pivot : str
        Pairs that also get the fit forced through ratio 1 at pivot_transfers: 180, all
        or none.
    pivot_transfers : float
        Transfers (chip-2 y for nominal pairs) of the forced crossing.
    layout : str
        Pairing layout of :func:`cte.analysis.pairs.pair_images`: auto, nominal or 180.
    """

    flux_bins: tuple[tuple[float, float], ...] | None = None
    flux_var: str = "flux"
    bin_by: str = "mean"
    min_snr: float | None = None
    reject_flags: int | None = None
    sigma: float | None = 4.0
    maxiters: int = 10
    min_stars: int = 10
    pivot: str = "180"
    pivot_transfers: float = PIVOT_TRANSFERS
    layout: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self, {
            "flux_bins": _flux_bins,
            "flux_var": partial(one_of, choices=("flux", "flux_masked")),
            "bin_by": partial(one_of, choices=("mean", "both")),
            "min_snr": partial(as_float, min=0, strict_min=True, allow_none=True),
            "reject_flags": partial(as_int, allow_none=True, allow_integral_float=True),
            "sigma": partial(as_float, min=0, strict_min=True, allow_none=True),
            "maxiters": partial(as_int, min=0, allow_integral_float=True),
            "min_stars": partial(as_int, min=3, allow_integral_float=True),
            "pivot": partial(one_of, choices=("180", "all", "none")),
            "pivot_transfers": partial(as_float, min=0, max=2051, strict_min=True,
                                       strict_max=True),
            "layout": partial(one_of, choices=("auto", "nominal", "180")),
        })


def _terms(value, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    terms = allowed if value is None else subset_of(value, name, allowed)
    if "1" not in terms:
        msg = f"{name} must include '1' (the constant term), got {list(terms)}"
        raise ValueError(msg)
    return terms


@dataclass(frozen=True)
class FitOptions:
    """How :func:`cte.fit_model` fits the loss model (method in :mod:`cte.analysis.model`).

    Parameters
    ----------
    terms : tuple of str, optional
        Terms of cte.analysis.lossmodel.BASIS_TERMS to fit at most (those the data cannot
        determine are dropped); must include 1, the constant term.  Default: all.
    loss_var : str
        The loss variable to fit, e.g. loss or loss_fixed.
    err_var : str
        Its 1-sigma error, e.g. loss_err or loss_fixed_err.
    extra_err_var : str, optional
        A variable added in quadrature to the error, e.g. loss_fixed_effect.
    bins_fitted : str
        independent fits the cells of non-overlapping flux bins, chosen narrowest first
        (every star enters once); all fits every bin (the wide bins re-use the stars of
        the narrow ones, so the coefficient errors are understated).
    min_time_span : float
        Years the epochs must span for the time terms to be fitted.
    min_background_span : float
        Span of b = log10(1 + B) (dex) needed for the background terms.
    scale_errors : bool
        Multiply the covariance by the reduced chi-square when it exceeds 1.
    """

    terms: tuple[str, ...] | None = None
    loss_var: str = "loss"
    err_var: str = "loss_err"
    extra_err_var: str | None = None
    bins_fitted: str = "independent"
    min_time_span: float = 0.5
    min_background_span: float = 0.2
    scale_errors: bool = True

    def __post_init__(self) -> None:
        from cte.analysis.lossmodel import BASIS_TERMS  # cte.analysis imports this module

        check_fields(self, {
            "terms": partial(_terms, allowed=BASIS_TERMS),
            "loss_var": as_str,
            "err_var": as_str,
            "extra_err_var": lambda v, n: None if v is None else as_str(v, n),
            "bins_fitted": partial(one_of, choices=("independent", "all")),
            "min_time_span": partial(as_float, min=0, units="yr"),
            "min_background_span": partial(as_float, min=0, units="dex"),
            "scale_errors": as_bool,
        })


@dataclass(frozen=True)
class Config:
    """The validated configuration (see the module docstring and the shipped file).

    Parameters
    ----------
    programs : tuple of int
        Proposal IDs, oldest first.
    filters : tuple of str
    flash_levels : tuple of int
        Post-flash levels in e-/px.
    short_exposure_max : float
        Exposures with EXPTIME (s) at most this are "short".
    flux_bins : tuple of (float, float)
        Flux bins (lower, upper) in e-.
    targets : mapping of str to Target
    exclusions : tuple of Exclusion
    exclude_charge_injection, exclude_binned : bool
    flash_status_ok : tuple of str
        FLASHSTA values of usable images.
    chip_dither_postarg2, postarg2_tolerance : float
        Chip-role classification from POSTARG2, arcsec.
    photometry : PhotometryOptions
    alignment : AlignmentOptions
    loss : LossOptions
        ``[analysis.loss]``: the options of :func:`cte.measure_loss` in a run.
    fit : FitOptions
        ``[analysis.fit]``: the options of :func:`cte.fit_model` in a run.
    sources : tuple of str
        Files merged, defaults first.
    """

    programs: tuple[int, ...]
    filters: tuple[str, ...]
    flash_levels: tuple[int, ...]
    short_exposure_max: float
    flux_bins: tuple[tuple[float, float], ...]
    targets: Mapping[str, Target]
    exclusions: tuple[Exclusion, ...]
    exclude_charge_injection: bool
    flash_status_ok: tuple[str, ...]
    exclude_binned: bool
    chip_dither_postarg2: float
    postarg2_tolerance: float
    photometry: PhotometryOptions
    alignment: AlignmentOptions
    loss: LossOptions = field(default_factory=LossOptions)
    fit: FitOptions = field(default_factory=FitOptions)
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        def unique(item):
            return partial(as_sequence_of, item=item, unique=True)

        check_fields(self, {
            "programs": unique(_COUNT), "filters": unique(as_str),
            "flash_levels": unique(partial(as_int, min=0, allow_integral_float=True)),
            "short_exposure_max": _POSITIVE,
            "flux_bins": partial(as_sequence_of, item=flux_range),
            "exclude_charge_injection": as_bool, "exclude_binned": as_bool,
            "flash_status_ok": lambda v, n: tuple(s.strip().upper() for s in as_sequence_of(
                v, n, partial(as_str, non_empty=False))),
            "chip_dither_postarg2": as_float, "postarg2_tolerance": _POSITIVE,
        })
        if not self.targets:
            msg = "targets must define at least one target"
            raise ValueError(msg)
        if abs(self.chip_dither_postarg2) <= 2 * self.postarg2_tolerance:
            msg = (f"chip_dither_postarg2 must differ from 0 by more than twice "
                   f"postarg2_tolerance ({self.postarg2_tolerance}), got "
                   f"{self.chip_dither_postarg2}")
            raise ValueError(msg)

    def target_for(self, targname: str) -> str | None:
        """Config target name for a TARGNAME header value, or None if not monitored.

        Parameters
        ----------
        targname : str
            A TARGNAME header value.
        """
        wanted = _norm_targname(targname)
        for target in self.targets.values():
            names = {_norm_targname(t) for t in target.targnames} | {_norm_targname(target.name)}
            if wanted in names:
                return target.name
        return None

    def exclusion_for(self, proposal: int, visit: str) -> Exclusion | None:
        """The first exclusion matching *proposal* and *visit*, or None.

        Parameters
        ----------
        proposal : int
            Proposal ID.
        visit : str
            Two-character visit.
        """
        for exclusion in self.exclusions:
            if exclusion.matches(proposal, visit):
                return exclusion
        return None

    def exptime_class(self, exptime: float) -> str:
        """``"short"`` when ``exptime <= short_exposure_max`` (s), else ``"long"``.

        Parameters
        ----------
        exptime : float
            Exposure time, s.
        """
        return "short" if float(exptime) <= self.short_exposure_max else "long"


def _norm_targname(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


# -- loading and merging -----------------------------------------------------------------
def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        msg = f"configuration file {path} does not exist"
        raise ConfigError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"configuration file {path} is not valid TOML: {exc}"
        raise ConfigError(msg) from exc


def _merge(base: dict, override: Mapping, origin: dict, source: str, prefix: str = "") -> None:
    """Merge *override* into *base* in place; record which file set each key in *origin*."""
    for key, value in override.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            _merge(base[key], value, origin, source, prefix=f"{name}.")
        else:
            base[key] = copy.deepcopy(value)
            origin[name] = source
            # nested keys set by a replaced table now come from this source too
            for known in [k for k in origin if k.startswith(f"{name}.")]:
                origin[known] = source


def _origins_of(data: Mapping, source: str, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        out[name] = source
        if isinstance(value, Mapping):
            out.update(_origins_of(value, source, prefix=f"{name}."))
    return out


def load_config(
    path: str | os.PathLike | None = None, *, overrides: Mapping[str, Any] | None = None
) -> Config:
    """Load the shipped defaults, merge a user file and *overrides*, and validate.

    Parameters
    ----------
    path : path-like, optional
        A user TOML file whose tables are merged over the defaults.
    overrides : mapping, optional
        Nested mapping merged last, e.g. ``{"photometry": {"apertures": [4.0]}}``.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        A file is missing or not TOML, a key is unknown, or a value is invalid; the
        message names the key and the file that set it.

    Examples
    --------
    >>> config = load_config()
    >>> config.photometry.apertures
    (3.0, 5.0, 10.0)
    """
    default = default_config_path()
    data = _read_toml(default)
    origin = _origins_of(data, str(default))
    sources = [str(default)]
    if path is not None:
        user_path = Path(path).expanduser()
        user = _read_toml(user_path)
        _merge(data, user, origin, str(user_path))
        sources.append(str(user_path))
        logger.info("configuration: %s merged over %s", user_path, default)
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            msg = f"overrides must be a mapping, got {type(overrides).__name__}"
            raise ConfigError(msg)
        _merge(data, overrides, origin, "overrides")
        sources.append("overrides")
    return _Validator(data, origin).config(tuple(sources))


# -- validation --------------------------------------------------------------------------
#: the sections whose keys are fields of Config itself
_FLAT_SECTIONS: dict[str, set[str]] = {
    "monitor": {"programs", "filters", "flash_levels", "short_exposure_max", "flux_bins"},
    "quality": {"exclude_charge_injection", "flash_status_ok", "exclude_binned"},
    "geometry": {"chip_dither_postarg2", "postarg2_tolerance"},
}
_FIELD_SECTION = {name: section for section, names in _FLAT_SECTIONS.items() for name in names}


class _Validator:
    """Turns the merged TOML mapping into a :class:`Config`, naming bad keys."""

    def __init__(self, data: dict, origin: dict[str, str]) -> None:
        self.data = data
        self.origin = origin

    def fail(self, key: str, problem: str) -> ConfigError:
        # the file that set the key, or the nearest enclosing table or array it set
        source, name = "configuration", key
        while name:
            if name in self.origin:
                source = self.origin[name]
                break
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", name)
            name = "" if parent == name else parent
        return ConfigError(f"{source}: {key}: {problem}")

    def keys(self, key: str, value: Mapping, known: set[str], *, required: set[str],
             where: str = "") -> None:
        """The first unknown key of *value*, then the first missing *required* one."""
        unknown = sorted(set(value) - known)
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", f"unknown key; known keys{where}: "
                            f"{sorted(known)}")
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(f"{key}.{missing[0]}", "missing required key")

    def config(self, sources: tuple[str, ...]) -> Config:
        known = {
            "monitor",
            "targets",
            "exclude",
            "quality",
            "geometry",
            "photometry",
            "alignment",
            "analysis",
        }
        unknown = sorted(set(self.data) - known)
        if unknown:
            raise self.fail(unknown[0], f"unknown section; known sections: {sorted(known)}")
        analysis = self.data.get("analysis", {})
        if not isinstance(analysis, Mapping):
            raise self.fail("analysis", f"must be a table, got {analysis!r}")
        unknown = sorted(set(analysis) - {"loss", "fit"})
        if unknown:
            raise self.fail(f"analysis.{unknown[0]}", f"unknown table [analysis.{unknown[0]}]; "
                            "known tables: ['fit', 'loss']")
        flat = {}
        for section, names in _FLAT_SECTIONS.items():
            flat.update(self.table(section, names))
        targets = self.table("targets", None)
        exclusions = self.data.get("exclude", [])
        if not isinstance(exclusions, list):
            raise self.fail("exclude", "must be an array of tables ([[exclude]])")
        with self.naming("", _FIELD_SECTION):
            return Config(
                **flat,
                targets={name: self.entry(f"targets.{name}", Target, spec, name=name)
                         for name, spec in targets.items()},
                exclusions=tuple(self.entry(f"exclude[{i}]", Exclusion, spec)
                                 for i, spec in enumerate(exclusions)),
                photometry=self.options("photometry", PhotometryOptions),
                alignment=self.options("alignment", AlignmentOptions),
                loss=self.options("analysis.loss", LossOptions),
                fit=self.options("analysis.fit", FitOptions),
                sources=sources,
            )

    def table(self, section: str, names: set[str] | None) -> dict:
        """The table *section*, with only the keys *names* (all required; any if None)."""
        table: object = self.data
        for part in section.split("."):
            table = table.get(part, {}) if isinstance(table, Mapping) else table
        if not isinstance(table, Mapping):
            raise self.fail(section, f"must be a table, got {table!r}")
        if names is not None:
            self.keys(section, table, names, required=names, where=f" of [{section}]")
        return dict(table)

    def entry(self, key: str, cls: type, spec, **fixed):
        """An element of ``[targets]`` or ``[[exclude]]`` as the dataclass *cls*."""
        if not isinstance(spec, Mapping):
            raise self.fail(key, "must be a table")
        known = {f.name for f in fields(cls)} - set(fixed)
        required = {f.name for f in fields(cls) if f.default is MISSING} - set(fixed)
        self.keys(key, spec, known, required=required)
        with self.naming(key, None):
            return cls(**spec, **fixed)

    @contextmanager
    def naming(self, key: str, sections: Mapping[str, str] | None):
        """TypeError or ValueError raised inside as the :class:`ConfigError` of the field
        the message starts with (``key.field``, or ``sections[field].field``)."""
        try:
            yield
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            name, _, problem = str(exc).partition(" ")
            field = re.sub(r"\[.*$", "", name)
            where = key if sections is None else sections.get(field)
            if where is None:
                raise self.fail(key or field, str(exc)) from exc
            raise self.fail(f"{where}.{name}".lstrip("."), problem) from exc

    def options(self, section: str, cls: type):
        """The table *section* as the options dataclass *cls*, which validates it (its
        TypeError or ValueError raised as the :class:`ConfigError` of the field)."""
        table = self.table(section, None)
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls)
                    if f.default is MISSING and f.default_factory is MISSING}
        self.keys(section, table, known, required=required, where=f" of [{section}]")
        with self.naming(section, None):
            return cls(**table)
