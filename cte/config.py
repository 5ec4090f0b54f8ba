"""Configuration of the CTE monitor as data: a shipped TOML file, overridable by the user.

:func:`load_config` reads the defaults shipped in ``cte/data/config.toml``, merges an
optional user TOML file over them (tables key by key; any value given, arrays
included, replaces the default), validates every value, and returns a frozen
:class:`Config`.  Errors are :class:`~cte.ConfigError` naming the key and the file
that set it, raised before anything is computed.

The sections are ``[monitor]`` (programs, filters, flash levels, exposure split, flux
bins), ``[targets.<name>]``, ``[[exclude]]`` (visits to leave out with a reason),
``[quality]``, ``[geometry]``, ``[photometry]`` and ``[alignment]``; the shipped file
documents each key with its unit.  The ``[analysis.loss]`` and ``[analysis.model]``
tables hold options of :func:`cte.measure_loss` and :func:`cte.fit_model`; their
keys and rules are declared once, in :data:`ANALYSIS_OPTIONS`, checked here when the
configuration is loaded (before any photometry runs) and by the two functions when
called, and kept in :attr:`Config.analysis`.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from cte.exceptions import ConfigError
from cte.flags import dq_bits_mask
from stores.common.validate import as_bool, as_float, as_int, as_interval, as_str, one_of

__all__ = [
    "ANALYSIS_OPTIONS",
    "AlignmentOptions",
    "Config",
    "Exclusion",
    "PhotometryOptions",
    "Target",
    "check_analysis_options",
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
@dataclass(frozen=True)
class Target:
    """A monitored cluster field.

    Attributes
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


@dataclass(frozen=True)
class Exclusion:
    """Visits of one proposal to leave out, with the reason logged when skipping them.

    ``visits`` empty means every visit of the proposal.
    """

    proposal: int
    visits: tuple[str, ...]
    reason: str

    def matches(self, proposal: int, visit: str) -> bool:
        """Whether an image of *proposal* and *visit* (two characters) is excluded."""
        if int(proposal) != self.proposal:
            return False
        return not self.visits or str(visit).lower() in self.visits


@dataclass(frozen=True)
class PhotometryOptions:
    """Aperture photometry settings (``[photometry]``; lengths in px)."""

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


@dataclass(frozen=True)
class AlignmentOptions:
    """WCS alignment settings (``[alignment]``; lengths in px, angles in deg)."""

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


@dataclass(frozen=True)
class Config:
    """The validated configuration (see the module docstring and the shipped file).

    Attributes
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
    analysis : mapping
        The ``[analysis]`` table: ``{"loss": {...}, "model": {...}}``, options of
        :func:`cte.measure_loss` and :func:`cte.fit_model`, validated.
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
    analysis: Mapping[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def target_for(self, targname: str) -> str | None:
        """Config target name for a TARGNAME header value, or None if not monitored."""
        wanted = _norm_targname(targname)
        for target in self.targets.values():
            names = {_norm_targname(t) for t in target.targnames} | {_norm_targname(target.name)}
            if wanted in names:
                return target.name
        return None

    def exclusion_for(self, proposal: int, visit: str) -> Exclusion | None:
        """The first exclusion matching *proposal* and *visit*, or None."""
        for exclusion in self.exclusions:
            if exclusion.matches(proposal, visit):
                return exclusion
        return None

    def exptime_class(self, exptime: float) -> str:
        """``"short"`` when ``exptime <= short_exposure_max`` (s), else ``"long"``."""
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
#: The options of :func:`cte.measure_loss` (``loss``) and :func:`cte.fit_model` (``model``)
#: that an ``[analysis.*]`` table may set, each with its rule (a :mod:`stores.common.validate`
#: validator taking ``(value, name)``).  The one declaration of these rules: the
#: configuration checks the file's values with them when it is loaded, and the two
#: functions check their arguments with them (:func:`check_analysis_options`).
ANALYSIS_OPTIONS: dict[str, dict[str, Callable]] = {
    "loss": {
        "sigma": partial(as_float, min=0, strict_min=True, allow_none=True),
        "maxiters": partial(as_int, min=0, allow_integral_float=True),
        "min_stars": partial(as_int, min=3, allow_integral_float=True),
        "bin_by": partial(one_of, choices=("mean", "both")),
        "min_snr": partial(as_float, min=0, strict_min=True, allow_none=True),
        "pivot": partial(one_of, choices=("180", "all", "none")),
        "pivot_transfers": partial(as_float, min=0, max=2051, strict_min=True,
                                   strict_max=True),
    },
    "model": {
        "flux_bins": partial(one_of, choices=("independent", "all")),
        "min_time_span": partial(as_float, min=0, units="yr"),
        "min_background_span": partial(as_float, min=0, units="dex"),
        "scale_errors": as_bool,
    },
}


def flux_range(value, name: str) -> tuple[float, float]:
    """*value* as a flux range ``(low, high)`` in e- with ``0 < low < high``.

    The rule of a flux bin (``[monitor] flux_bins``, ``measure_loss(flux_bins=...)``)
    and of a simulated field's star fluxes (:class:`cte.datasets.simulate.FieldPhysics`).

    Raises
    ------
    ValueError
        Not two finite numbers with ``0 < low < high`` (the message names *name*).
    """
    low, high = as_interval(value, name, min=0, units="e-")
    as_float(low, f"{name} low", min=0, strict_min=True, units="e-")
    return low, high


def check_analysis_options(table: str, **values) -> dict[str, Any]:
    """*values* checked by the rules of :data:`ANALYSIS_OPTIONS` [*table*], normalised.

    Raises
    ------
    TypeError, ValueError
        From the first value refused (the message names the option).

    Examples
    --------
    >>> check_analysis_options("loss", maxiters=10.0, pivot="all")
    {'maxiters': 10, 'pivot': 'all'}
    """
    rules = ANALYSIS_OPTIONS[table]
    return {name: rules[name](value, name) for name, value in values.items()}


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

    def table(self, name: str, known: set[str] | None) -> dict:
        """A section: a table with only the *known* keys, all of them required."""
        value = self.data.get(name)
        if not isinstance(value, Mapping):
            raise self.fail(name, f"must be a table, got {type(value).__name__}")
        if known is not None:
            self.keys(name, value, known, required=known, where=f" of [{name}]")
        return dict(value)

    def entry(self, key: str, spec, known: set[str], required: set[str]) -> Mapping:
        """An element of a section (``targets.<name>``, ``exclude[i]``): a table with only
        *known* keys and every *required* one."""
        if not isinstance(spec, Mapping):
            raise self.fail(key, "must be a table")
        self.keys(key, spec, known, required=required)
        return spec

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

    # scalar checks: the shared validators, their message given to the key and its file
    def check(self, key: str, validator: Callable, value, **rule):
        """``validator(value, key, **rule)`` (a :mod:`stores.common.validate` function), its
        TypeError or ValueError raised as the :class:`ConfigError` of *key*."""
        try:
            return validator(value, key, **rule)
        except (TypeError, ValueError) as exc:
            raise self.fail(key, str(exc).removeprefix(f"{key} ")) from exc

    def number(self, key: str, value, *, positive=False, nonneg=False, integer=False):
        """A finite number (> 0 if *positive*, >= 0 if *nonneg*), an ``int`` if *integer*
        (an integral float is accepted)."""
        lower = 0 if positive or nonneg else None
        if integer:
            return self.check(key, as_int, value, allow_integral_float=True,
                              min=None if lower is None else lower + int(positive))
        return self.check(key, as_float, value, min=lower, strict_min=positive)

    def boolean(self, key: str, value) -> bool:
        return self.check(key, as_bool, value)

    def string(self, key: str, value) -> str:
        return self.check(key, as_str, value, non_empty=False)

    def array(self, key: str, value, item: Callable, *, nonempty=True) -> tuple:
        if not isinstance(value, list):
            raise self.fail(key, f"must be an array, got {value!r}")
        if nonempty and not value:
            raise self.fail(key, "must not be empty")
        return tuple(item(f"{key}[{i}]", v) for i, v in enumerate(value))

    def unique(self, key: str, values: tuple) -> tuple:
        if len(set(values)) != len(values):
            raise self.fail(key, f"has duplicate entries: {list(values)}")
        return values

    # sections
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
        monitor = self.monitor()
        quality = self.quality()
        geometry = self.geometry()
        analysis = self.analysis()
        return Config(
            **monitor,
            targets=self.targets(),
            exclusions=self.exclusions(monitor["programs"]),
            **quality,
            **geometry,
            photometry=self.photometry(),
            alignment=self.alignment(),
            analysis=copy.deepcopy(dict(analysis)),
            sources=sources,
        )

    def monitor(self) -> dict:
        keys = {"programs", "filters", "flash_levels", "short_exposure_max", "flux_bins"}
        t = self.table("monitor", keys)
        programs = self.array(
            "monitor.programs", t["programs"], lambda k, v: self.number(k, v, positive=True,
                                                                        integer=True)
        )
        self.unique("monitor.programs", programs)
        filters = self.array("monitor.filters", t["filters"], self.string)
        self.unique("monitor.filters", filters)
        flashes = self.array(
            "monitor.flash_levels",
            t["flash_levels"],
            lambda k, v: self.number(k, v, nonneg=True, integer=True),
        )
        self.unique("monitor.flash_levels", flashes)
        split = self.number("monitor.short_exposure_max", t["short_exposure_max"], positive=True)

        bins = self.array("monitor.flux_bins", t["flux_bins"],
                          lambda k, v: self.check(k, flux_range, v))
        return {
            "programs": programs,
            "filters": filters,
            "flash_levels": flashes,
            "short_exposure_max": split,
            "flux_bins": bins,
        }

    def targets(self) -> dict[str, Target]:
        t = self.table("targets", None)
        if not t:
            raise self.fail("targets", "must define at least one target")
        out = {}
        for name, spec in t.items():
            key = f"targets.{name}"
            if not name or name != name.lower() or not name.replace("_", "").isalnum():
                raise self.fail(key, "target names must be lowercase letters, digits and '_'")
            self.entry(key, spec, {"targnames", "description", "same_chip"}, {"targnames"})
            targnames = self.array(f"{key}.targnames", spec["targnames"], self.string)
            out[name] = Target(
                name=name,
                targnames=targnames,
                description=self.string(f"{key}.description", spec.get("description", "")),
                same_chip=self.boolean(f"{key}.same_chip", spec.get("same_chip", False)),
            )
        return out

    def exclusions(self, programs: tuple[int, ...]) -> tuple[Exclusion, ...]:
        raw = self.data.get("exclude", [])
        if not isinstance(raw, list):
            raise self.fail("exclude", "must be an array of tables ([[exclude]])")
        out = []
        for i, spec in enumerate(raw):
            key = f"exclude[{i}]"
            self.entry(key, spec, {"proposal", "visits", "reason"}, {"proposal", "reason"})
            proposal = self.number(f"{key}.proposal", spec["proposal"], positive=True,
                                   integer=True)

            def visit(k, v):
                v = self.string(k, v)
                if len(v) != 2 or not v.isalnum():
                    raise self.fail(k, f"visits are two letters or digits, got {v!r}")
                return v.lower()

            visits = self.array(f"{key}.visits", spec.get("visits", []), visit, nonempty=False)
            reason = self.string(f"{key}.reason", spec["reason"])
            if not reason.strip():
                raise self.fail(f"{key}.reason", "must say why the visits are excluded")
            out.append(Exclusion(proposal=proposal, visits=visits, reason=reason))
        return tuple(out)

    def analysis(self) -> dict:
        """``[analysis.loss]`` and ``[analysis.model]``: option names, types and ranges."""
        raw = self.data.get("analysis", {})
        if not isinstance(raw, Mapping):
            raise self.fail("analysis", f"must be a table, got {raw!r}")
        unknown = sorted(set(raw) - set(ANALYSIS_OPTIONS))
        if unknown:
            raise self.fail(f"analysis.{unknown[0]}", f"unknown table [analysis.{unknown[0]}]; "
                            f"known tables: {sorted(ANALYSIS_OPTIONS)}")
        out = {}
        for table, options in ANALYSIS_OPTIONS.items():
            values = raw.get(table, {})
            name = f"analysis.{table}"
            if not isinstance(values, Mapping):
                raise self.fail(name, f"must be a table, got {values!r}")
            unknown = sorted(set(values) - set(options))
            if unknown:
                raise self.fail(f"{name}.{unknown[0]}", f"unknown options {unknown} in [{name}]; "
                                f"known options: {sorted(options)}")
            out[table] = {key: self.check(f"{name}.{key}", rule, values[key])
                          for key, rule in options.items() if key in values}
        return copy.deepcopy(out)

    def choice(self, key: str, value, allowed: tuple[str, ...]) -> str:
        return self.check(key, one_of, self.string(key, value), choices=allowed)

    def quality(self) -> dict:
        keys = {"exclude_charge_injection", "flash_status_ok", "exclude_binned"}
        t = self.table("quality", keys)
        return {
            "exclude_charge_injection": self.boolean(
                "quality.exclude_charge_injection", t["exclude_charge_injection"]
            ),
            "flash_status_ok": tuple(
                s.strip().upper()
                for s in self.array(
                    "quality.flash_status_ok", t["flash_status_ok"], self.string
                )
            ),
            "exclude_binned": self.boolean("quality.exclude_binned", t["exclude_binned"]),
        }

    def geometry(self) -> dict:
        t = self.table("geometry", {"chip_dither_postarg2", "postarg2_tolerance"})
        dither = self.number("geometry.chip_dither_postarg2", t["chip_dither_postarg2"])
        tol = self.number("geometry.postarg2_tolerance", t["postarg2_tolerance"], positive=True)
        if abs(dither) <= 2 * tol:
            raise self.fail(
                "geometry.chip_dither_postarg2",
                f"must differ from 0 by more than twice postarg2_tolerance ({tol}), got {dither}",
            )
        return {"chip_dither_postarg2": dither, "postarg2_tolerance": tol}

    def photometry(self) -> PhotometryOptions:
        keys = {f.name for f in PhotometryOptions.__dataclass_fields__.values()}
        t = self.table("photometry", keys)
        k = "photometry."
        pos = lambda key, v: self.number(key, v, positive=True)  # noqa: E731
        apertures = self.unique(k + "apertures", self.array(k + "apertures", t["apertures"], pos))
        annulus = self.array(k + "annulus", t["annulus"], pos)
        if len(annulus) != 2 or not annulus[0] < annulus[1]:
            raise self.fail(k + "annulus", f"must be [inner, outer] px with inner < outer, "
                            f"got {list(annulus)}")
        if annulus[0] < max(apertures):
            raise self.fail(
                k + "annulus",
                f"inner radius {annulus[0]} px must be >= the largest aperture "
                f"{max(apertures)} px",
            )
        box = self.number(k + "centroid_box", t["centroid_box"], positive=True, integer=True)
        if box % 2 == 0 or box < 3:
            raise self.fail(k + "centroid_box", f"must be an odd integer >= 3, got {box}")

        method = self.choice(k + "centroid_method", t["centroid_method"], ("windowed", "com"))

        def bits(key):
            values = self.array(key, t[key.split(".")[1]],
                                lambda kk, v: self.number(kk, v, positive=True, integer=True),
                                nonempty=False)
            try:
                return dq_bits_mask(values)
            except ValueError as exc:
                raise self.fail(key, str(exc)) from exc

        pam = t["pam_files"]
        if not isinstance(pam, Mapping) or set(pam) != {"1", "2"}:
            raise self.fail(k + "pam_files", 'must be a table with keys "1" and "2" '
                            f"(chip -> file name), got {pam!r}")
        pam_files = {int(c): self.string(f"{k}pam_files.{c}", v) for c, v in pam.items()}
        ratio = self.number(k + "crowding_flux_ratio", t["crowding_flux_ratio"], nonneg=True)
        return PhotometryOptions(
            apertures=tuple(sorted(apertures)),
            annulus=(annulus[0], annulus[1]),
            background_sigma=pos(k + "background_sigma", t["background_sigma"]),
            background_maxiters=self.number(k + "background_maxiters",
                                            t["background_maxiters"], positive=True,
                                            integer=True),
            min_annulus_pixels=self.number(k + "min_annulus_pixels", t["min_annulus_pixels"],
                                           positive=True, integer=True),
            recentre_min_snr=self.number(k + "recentre_min_snr", t["recentre_min_snr"],
                                         nonneg=True),
            centroid_method=method,
            centroid_box=box,
            centroid_window_sigma=pos(k + "centroid_window_sigma", t["centroid_window_sigma"]),
            max_centroid_shift=pos(k + "max_centroid_shift", t["max_centroid_shift"]),
            dq_mask=bits(k + "dq_mask"),
            cosmic_ray_dq=bits(k + "cosmic_ray_dq"),
            saturation_dq=bits(k + "saturation_dq"),
            interpolation_radius=self.number(k + "interpolation_radius",
                                             t["interpolation_radius"], positive=True,
                                             integer=True),
            crowding_radius=self.number(k + "crowding_radius", t["crowding_radius"],
                                        nonneg=True),
            crowding_flux_ratio=ratio,
            pam_files=pam_files,
        )

    def alignment(self) -> AlignmentOptions:
        keys = {f.name for f in AlignmentOptions.__dataclass_fields__.values()}
        t = self.table("alignment", keys)
        k = "alignment."

        def pos(name):
            return self.number(k + name, t[name], positive=True)

        def count(name):
            return self.number(k + name, t[name], positive=True, integer=True)

        min_matches = count("min_matches")
        if min_matches < 3:
            raise self.fail(k + "min_matches", f"must be >= 3 to fit shift and rotation, "
                            f"got {min_matches}")
        return AlignmentOptions(
            fwhm=pos("fwhm"),
            detection_nsigma=pos("detection_nsigma"),
            n_brightest=count("n_brightest"),
            max_offset=pos("max_offset"),
            match_radius=pos("match_radius"),
            min_matches=min_matches,
            clip_sigma=pos("clip_sigma"),
            max_rotation=pos("max_rotation"),
            isolation_radius=self.number(k + "isolation_radius", t["isolation_radius"],
                                         nonneg=True),
            isolation_flux_ratio=self.number(k + "isolation_flux_ratio",
                                             t["isolation_flux_ratio"], nonneg=True),
        )
