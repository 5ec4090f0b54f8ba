"""DQ reference arrays from the pixel property cube, and their FITS and ECSV files.

A :class:`DQRules` says which pixels are flagged and with which STIS DQ bit
(:mod:`stiscube.dqflags`); :func:`dq_array` applies it to one anneal period of the cube
(the :class:`xarray.Dataset` of :attr:`stiscube.PixelDB.dataset`, dims
``(anneal, row, col)``) and returns a ``uint16`` :class:`xarray.DataArray` on
``(row, col)``; :func:`write_dq_fits` and :func:`write_flagged_table` save it.

The rules, for the chosen period *P* (all comparisons strict and in float64, NaN never
flagged):

hot (bit ``hot_bit``, default 16 = ``hot_pixel``)
    ``level``:  ``sci_mean > hot_level``, with *hot_level* in electron / s;

    ``nsigma``: ``sci_mean > median_c + hot_nsigma * std_c``, where ``median_c`` and
    ``std_c`` (population std, ddof = 0) are the sigma-clipped median and standard
    deviation of the whole ``sci_mean`` frame of the period, computed with
    :func:`astropy.stats.sigma_clipped_stats` (clipping at ``clip_sigma`` about the
    median, at most ``clip_maxiters`` iterations; NaN excluded) as the STIS reference
    pipeline does (refstis: 3-sigma clipping, 5-sigma hot threshold).  This rule is
    relative to the frame, so it holds in either unit system;

    the two are combined with ``hot_combine`` = ``"or"`` (either) or ``"and"`` (both)
    when both are given.  By default (``hot_nsigma="auto"``) the relative rule with
    N = 5 is used unless an absolute ``hot_level`` is given.
unstable (bit ``unstable_bit``, default 4 = ``bad_detector_pixel``)
    ``stability > unstable_level`` (``stability`` is dimensionless, about 1 for a
    steady pixel; see :mod:`stiscube.layout`).  STIS has no dedicated "unstable" bit;
    4 is the default because an unstable (flickering, telegraphic) dark rate is a
    property of the detector pixel that no dark reference file can correct, and STIS's
    default ``SDQFLAGS`` excludes bit 4 from calibrated products.
persistence (optional, ``persist_k`` of ``persist_m``)
    each rule's bit is set when the rule held in at least *k* of the last *m* periods
    held in the cube up to and including *P* (periods in the cube's order, i.e. sorted
    by number; gaps in the numbering are not filled).  Without it, *k* = *m* = 1.

So for each bit ``b`` with per-period rule mask ``R_t`` over the window ``W`` of
periods: ``DQ |= b * (sum_{t in W} R_t >= k)``.

Units are never mixed: a rule with an absolute level in electron / s (``hot_level``)
refuses windows holding periods of the ``"counts"`` unit system (the seed's CSV files)
with :class:`~stiscube._exceptions.UnitMismatchError`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from stiscube._exceptions import UnitMismatchError
from stiscube.dqflags import (
    BAD_DETECTOR_PIXEL,
    HOT_PIXEL,
    STIS_DQ,
    cf_flag_attrs,
    decode_dq_names,
    dq_flag,
)
from stiscube.layout import PROPERTIES, UNIT_SYSTEMS
from stiscube.queries import resolve_period

__all__ = [
    "DQRules",
    "clipped_threshold",
    "dq_array",
    "flagged_pixels_table",
    "hot_mask",
    "hot_pixel_counts",
    "persistent",
    "write_dq_fits",
    "write_flagged_table",
]

logger = logging.getLogger(__name__)

_RATE_UNITS = UNIT_SYSTEMS["rate"]["sci_mean"]
_PERIOD_COORDS = ("anneal_start", "anneal_end", "unit_system")
_COMBINES = ("or", "and")
_PARTIAL = ("error", "available")
_AUTO = "auto"
#: the STIS reference pipeline's hot threshold (refstis: clipped median + 5 sigma)
_DEFAULT_NSIGMA = 5.0


# -- rules -----------------------------------------------------------------------------------
def _optional_finite(name: str, value: Any, *, positive: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        msg = f"{name} must be a number or None, got {value!r}"
        raise TypeError(msg)
    value = float(value)
    if not np.isfinite(value):
        msg = f"{name} must be finite, got {value!r}"
        raise ValueError(msg)
    if positive and value <= 0:
        msg = f"{name} must be > 0, got {value!r}"
        raise ValueError(msg)
    return value


def _optional_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{name} must be a positive integer or None, got {value!r}"
        raise TypeError(msg)
    if value < 1:
        msg = f"{name} must be >= 1, got {value!r}"
        raise ValueError(msg)
    return int(value)


def _bit(name: str, value: Any) -> int:
    try:
        return dq_flag(value).bit
    except (TypeError, ValueError) as exc:
        msg = f"{name}: {exc}"
        raise type(exc)(msg) from exc


@dataclass(frozen=True, kw_only=True)
class DQRules:
    """Rules that turn pixel properties into DQ flags (validated at construction).

    Parameters
    ----------
    hot_level : float or None
        Absolute hot level on ``sci_mean``, in electron / s: hot if ``sci_mean >
        hot_level``.  Requires periods in the ``"rate"`` unit system.
    hot_nsigma : float, None or "auto"
        Relative hot level: hot if ``sci_mean > median_c + hot_nsigma * std_c`` of the
        period's sigma-clipped frame.  ``"auto"`` (default) means 5 (as the STIS
        reference pipeline) when *hot_level* is not given, and None (no relative rule)
        when it is; give a number to use both.
    hot_combine : {"or", "and"}
        How the two hot rules combine when both are given.  ``"and"`` needs both.
    clip_sigma : float
        Clipping limit of the sigma-clipped statistics, in standard deviations (3).
    clip_maxiters : int or None
        Maximum clipping iterations (40 as refstis; None = until convergence).
    unstable_level : float or None
        Unstable if ``stability > unstable_level`` (dimensionless).  None: no rule.
    persist_k, persist_m : int or None
        Set a rule's bit only when the rule held in at least *persist_k* of the last
        *persist_m* periods (including the chosen one).  Both or neither.
    partial_window : {"error", "available"}
        When fewer than *persist_m* periods are held up to the chosen one: raise
        (``"error"``), or use the periods available (still requiring *persist_k*).
    hot_bit, unstable_bit : int or str
        The DQ bit each rule sets (a value or name of :data:`stiscube.dqflags.STIS_DQ`);
        defaults 16 (``hot_pixel``) and 4 (``bad_detector_pixel``).

    Raises
    ------
    ValueError, TypeError
        A parameter is out of range or of the wrong type (the message names it), or no
        rule is given at all.

    Examples
    --------
    >>> DQRules(hot_level=0.1, hot_nsigma=5, hot_combine="and", unstable_level=3.0)
    ... # doctest: +ELLIPSIS
    DQRules(hot_level=0.1, hot_nsigma=5.0, hot_combine='and', ...)
    """

    hot_level: float | None = None
    hot_nsigma: float | str | None = _AUTO
    hot_combine: str = "or"
    clip_sigma: float = 3.0
    clip_maxiters: int | None = 40
    unstable_level: float | None = None
    persist_k: int | None = None
    persist_m: int | None = None
    partial_window: str = "error"
    hot_bit: int = HOT_PIXEL
    unstable_bit: int = BAD_DETECTOR_PIXEL

    def __post_init__(self) -> None:
        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        set_("hot_level", _optional_finite("hot_level", self.hot_level))
        if isinstance(self.hot_nsigma, str) and self.hot_nsigma == _AUTO:
            set_("hot_nsigma", _DEFAULT_NSIGMA if self.hot_level is None else None)
        set_("hot_nsigma", _optional_finite("hot_nsigma", self.hot_nsigma, positive=True))
        if self.hot_combine not in _COMBINES:
            msg = f"hot_combine must be one of {list(_COMBINES)}, got {self.hot_combine!r}"
            raise ValueError(msg)
        if self.hot_combine == "and" and (self.hot_level is None or self.hot_nsigma is None):
            msg = (
                "hot_combine='and' needs both hot_level and hot_nsigma, got "
                f"hot_level={self.hot_level!r}, hot_nsigma={self.hot_nsigma!r}"
            )
            raise ValueError(msg)
        clip = _optional_finite("clip_sigma", self.clip_sigma, positive=True)
        if clip is None:
            msg = "clip_sigma must be a number > 0, got None"
            raise ValueError(msg)
        set_("clip_sigma", clip)
        set_("clip_maxiters", _optional_count("clip_maxiters", self.clip_maxiters))
        set_("unstable_level", _optional_finite("unstable_level", self.unstable_level))
        k = _optional_count("persist_k", self.persist_k)
        m = _optional_count("persist_m", self.persist_m)
        if (k is None) != (m is None):
            msg = f"persist_k and persist_m go together, got persist_k={k!r}, persist_m={m!r}"
            raise ValueError(msg)
        if k is not None and k > m:
            msg = f"persist_k must be <= persist_m, got persist_k={k}, persist_m={m}"
            raise ValueError(msg)
        set_("persist_k", k)
        set_("persist_m", m)
        if self.partial_window not in _PARTIAL:
            msg = f"partial_window must be one of {list(_PARTIAL)}, got {self.partial_window!r}"
            raise ValueError(msg)
        set_("hot_bit", _bit("hot_bit", self.hot_bit))
        set_("unstable_bit", _bit("unstable_bit", self.unstable_bit))
        if not (self.has_hot_rule or self.has_unstable_rule):
            msg = "the rules flag nothing: give hot_level, hot_nsigma or unstable_level"
            raise ValueError(msg)

    # -- derived ---------------------------------------------------------------------------
    @property
    def has_hot_rule(self) -> bool:
        """Whether any hot rule is given."""
        return self.hot_level is not None or self.hot_nsigma is not None

    @property
    def has_unstable_rule(self) -> bool:
        """Whether the unstable rule is given."""
        return self.unstable_level is not None

    @property
    def uses_rate_units(self) -> bool:
        """Whether a rule has an absolute level in electron / s (needs rate periods)."""
        return self.hot_level is not None

    @property
    def window(self) -> int:
        """Number of periods *m* the rules look at (1 without persistence)."""
        return 1 if self.persist_m is None else self.persist_m

    @property
    def min_count(self) -> int:
        """Number of periods *k* in which a rule must hold (1 without persistence)."""
        return 1 if self.persist_k is None else self.persist_k

    def to_dict(self) -> dict[str, Any]:
        """The rules as a plain dict (JSON-serialisable; inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DQRules:
        """Rules from a dict such as :meth:`to_dict` made (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        extra = sorted(set(values) - known)
        if extra:
            msg = f"unknown DQ rule parameters {extra}; known ones are {sorted(known)}"
            raise ValueError(msg)
        return cls(**values)

    def describe(self) -> list[str]:
        """The rules in words, one line each (used in file headers)."""
        lines = []
        hot = []
        if self.hot_level is not None:
            hot.append(f"sci_mean > {self.hot_level:g} {_RATE_UNITS}")
        if self.hot_nsigma is not None:
            iters = "until convergence" if self.clip_maxiters is None else self.clip_maxiters
            hot.append(
                f"sci_mean > clipped median + {self.hot_nsigma:g} x clipped std "
                f"({self.clip_sigma:g}-sigma clip, max iterations {iters})"
            )
        if hot:
            lines.append(f"hot (DQ {self.hot_bit}): " + f" {self.hot_combine} ".join(hot))
        if self.unstable_level is not None:
            lines.append(f"unstable (DQ {self.unstable_bit}): stability > {self.unstable_level:g}")
        if self.persist_k is not None:
            lines.append(
                f"each rule must hold in >= {self.persist_k} of the last {self.persist_m} "
                f"periods (partial window: {self.partial_window})"
            )
        return lines


# -- numpy kernels ---------------------------------------------------------------------------
def clipped_threshold(
    frames: np.ndarray,
    nsigma: float,
    *,
    clip_sigma: float = 3.0,
    maxiters: int | None = 40,
    axis: int | tuple[int, ...] = (-2, -1),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped median, std and the hot threshold ``median + nsigma * std``.

    Statistics of :func:`astropy.stats.sigma_clipped_stats` over *axis* (float64,
    NaN/inf excluded, ``cenfunc="median"``, ``stdfunc="std"``, ddof = 0).  Where all
    values along *axis* are non-finite, the outputs are NaN.

    Returns
    -------
    median, std, threshold : numpy.ndarray
        Arrays of the shape of *frames* without *axis*.
    """
    from astropy.stats import sigma_clipped_stats

    data = np.asarray(frames, dtype=np.float64)
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    axes = tuple(int(a) % data.ndim for a in axes)
    invalid = ~np.isfinite(data)
    empty = invalid.all(axis=axes)
    out_shape = empty.shape
    if empty.all():
        nan = np.full(out_shape, np.nan)
        return nan, nan.copy(), nan.copy()
    _, median, std = sigma_clipped_stats(
        data,
        mask=invalid if invalid.any() else None,
        sigma=clip_sigma,
        maxiters=maxiters,
        cenfunc="median",
        stdfunc="std",
        axis=axes,
    )
    median = np.where(empty, np.nan, np.ma.filled(np.ma.asarray(median, dtype=float), np.nan))
    std = np.where(empty, np.nan, np.ma.filled(np.ma.asarray(std, dtype=float), np.nan))
    median = np.asarray(median, dtype=np.float64).reshape(out_shape)
    std = np.asarray(std, dtype=np.float64).reshape(out_shape)
    return median, std, median + nsigma * std


def hot_mask(
    sci: np.ndarray,
    *,
    level: float | None = None,
    threshold: np.ndarray | float | None = None,
    combine: str = "or",
    axis: tuple[int, int] = (-2, -1),
) -> np.ndarray:
    """Hot-pixel mask of dark-rate frames (see the module docstring for the rules).

    Parameters
    ----------
    sci : numpy.ndarray
        ``sci_mean`` frames; *axis* are the frame (row, col) axes.
    level : float, optional
        Absolute level: ``sci > level``.
    threshold : numpy.ndarray or float, optional
        Per-frame relative threshold (shape of *sci* without *axis*), e.g. from
        :func:`clipped_threshold`: ``sci > threshold``.
    combine : {"or", "and"}
        How the two tests combine when both are given.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as *sci*; all False when neither test is given.
    """
    sci = np.asarray(sci)
    parts = []
    if level is not None:
        parts.append(sci > level)
    if threshold is not None:
        axes = tuple(int(a) % sci.ndim for a in axis)
        parts.append(sci > np.expand_dims(np.asarray(threshold), axes))
    if not parts:
        return np.zeros(sci.shape, dtype=bool)
    if len(parts) == 1:
        return parts[0]
    return (parts[0] | parts[1]) if combine == "or" else (parts[0] & parts[1])


def persistent(masks: np.ndarray, k: int, *, axis: int = 0) -> np.ndarray:
    """True where *masks* holds in at least *k* entries along *axis*: ``sum(masks) >= k``."""
    return np.count_nonzero(masks, axis=axis) >= k


# -- the DQ array ----------------------------------------------------------------------------
def _check_cube(ds: Any, needed: tuple[str, ...]) -> None:
    if not isinstance(ds, xr.Dataset):
        msg = f"ds must be an xarray.Dataset (the cube, e.g. PixelDB.dataset), got {type(ds)}"
        raise TypeError(msg)
    missing_dims = [d for d in ("anneal", "row", "col") if d not in ds.dims]
    if missing_dims:
        msg = (
            f"ds must have dims (anneal, row, col); missing {missing_dims} "
            f"(dims are {tuple(ds.dims)}); pass the whole cube, not one period"
        )
        raise ValueError(msg)
    missing = [v for v in needed if v not in ds.data_vars]
    if missing:
        msg = f"ds lacks the properties {missing} the rules need; variables: {list(ds.data_vars)}"
        raise ValueError(msg)
    missing_coords = [c for c in _PERIOD_COORDS if c not in ds.coords]
    if missing_coords:
        msg = f"ds lacks the per-period coordinates {missing_coords}"
        raise ValueError(msg)


def _window(ds: xr.Dataset, number: int, rules: DQRules) -> list[int]:
    order = np.sort(ds["anneal"].values).tolist()
    pos = order.index(number)
    window = order[max(0, pos - rules.window + 1) : pos + 1]
    if len(window) < rules.window and rules.partial_window == "error":
        msg = (
            f"persistence needs the last persist_m={rules.window} periods up to period "
            f"{number}, but the cube holds only {len(window)} ({window}); use a smaller "
            "persist_m, a later period, or partial_window='available'"
        )
        raise ValueError(msg)
    return window


def _iso(value: Any) -> str:
    return str(np.datetime64(value, "us")).replace("T", " ")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _versions() -> dict[str, str]:
    import astropy
    import matplotlib

    from stores._version import __version__

    return {
        "stiscube": __version__,
        "numpy": np.__version__,
        "xarray": xr.__version__,
        "astropy": astropy.__version__,
        "matplotlib": matplotlib.__version__,
    }


def _as_float64(values: xr.DataArray) -> np.ndarray:
    """(anneal, row, col) values as float64, so that levels compare in double precision."""
    return np.asarray(values.transpose("anneal", "row", "col").values, dtype=np.float64)


def _hot_flags(sci: np.ndarray, rules: DQRules, window: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Persistent hot mask (row, col) and the clipped (median, std, threshold) per period."""
    stats = np.full((3, len(window)), np.nan)
    if rules.hot_nsigma is not None:
        empty = ~np.isfinite(sci).any(axis=(1, 2))
        if empty.any():
            msg = (
                f"sci_mean of periods {np.asarray(window)[empty].tolist()} is all NaN: "
                "no clipped statistics for hot_nsigma"
            )
            raise ValueError(msg)
        stats[:] = clipped_threshold(
            sci,
            rules.hot_nsigma,
            clip_sigma=rules.clip_sigma,
            maxiters=rules.clip_maxiters,
            axis=(1, 2),
        )
    masks = hot_mask(
        sci,
        level=rules.hot_level,
        threshold=stats[2] if rules.hot_nsigma is not None else None,
        combine=rules.hot_combine,
        axis=(1, 2),
    )
    return persistent(masks, rules.min_count, axis=0), stats


def dq_array(
    ds: xr.Dataset,
    rules: DQRules | None = None,
    *,
    anneal_num: int | None = None,
    date: Any = None,
) -> xr.DataArray:
    """The DQ reference array of one anneal period (chosen by number or by date).

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (e.g. :attr:`stiscube.PixelDB.dataset`): properties on
        ``(anneal, row, col)`` with the coordinates ``anneal_start``, ``anneal_end`` and
        ``unit_system``.  May be lazy; only the periods of the rules' window are read.
    rules : DQRules, optional
        The rules (default ``DQRules()``: hot above the clipped median + 5 sigma, as
        the STIS reference pipeline).
    anneal_num : int, optional
        The period number.
    date : date-like, optional
        A date in the period (``anneal_start <= date < anneal_end``); give exactly one
        of *anneal_num* and *date*.

    Returns
    -------
    xarray.DataArray
        ``uint16`` on ``(row, col)``, named ``"dq"``, the bitwise OR of the bits of the
        rules that hold.  Attributes: CF ``flag_masks``/``flag_meanings`` (whole STIS
        registry), ``anneal``, ``anneal_start``/``anneal_end`` (ISO, UTC),
        ``unit_system``, ``window_anneals`` (periods the rules looked at),
        ``rules`` (JSON of :meth:`DQRules.to_dict`), ``hot_sigma_thresholds`` (the
        clipped threshold of each window period, in the units of ``sci_mean``; NaN
        without ``hot_nsigma``), ``hot_clip_median``/``hot_clip_std``/
        ``hot_sigma_threshold`` of the chosen period, ``n_hot``, ``n_unstable``,
        ``n_flagged``, ``date`` (of creation) and ``software``.

    Raises
    ------
    UnitMismatchError
        A rule is in electron / s (``hot_level``) and a period of the window is in the
        ``"counts"`` unit system.
    CubeQueryError
        The period or date is not in the cube.
    ValueError, TypeError
        Bad *ds* (missing dims, properties or coordinates), bad period choice, too few
        periods for the persistence window, or a window period whose ``sci_mean`` is
        all NaN (no clipped statistics).
    """
    rules = DQRules() if rules is None else rules
    if not isinstance(rules, DQRules):
        msg = f"rules must be a DQRules, got {type(rules).__name__}"
        raise TypeError(msg)
    needed = (("sci_mean",) if rules.has_hot_rule else ()) + (
        ("stability",) if rules.has_unstable_rule else ()
    )
    _check_cube(ds, needed)
    number = resolve_period(ds, date=date, anneal_num=anneal_num)
    window = _window(ds, number, rules)
    part = ds.sel(anneal=window)
    systems = np.atleast_1d(part["unit_system"].values).astype(str)
    if rules.uses_rate_units and np.any(systems != "rate"):
        bad = {int(n): str(s) for n, s in zip(window, systems, strict=True) if s != "rate"}
        msg = (
            f"hot_level={rules.hot_level:g} is in {_RATE_UNITS}, but periods {bad} are not "
            "in the 'rate' unit system (the seed CSV's counts per frame); use only "
            "hot_nsigma (relative to the frame) for them, or choose rate periods"
        )
        raise UnitMismatchError(msg)
    values = part[list(needed)].compute()
    dq = np.zeros((ds.sizes["row"], ds.sizes["col"]), dtype=np.uint16)
    hot = unstable = np.zeros(dq.shape, dtype=bool)
    stats = np.full((3, len(window)), np.nan)  # clipped median, std, threshold
    if rules.has_hot_rule:
        sci = _as_float64(values["sci_mean"])
        hot, stats = _hot_flags(sci, rules, window)
        dq |= np.where(hot, np.uint16(rules.hot_bit), np.uint16(0))
    if rules.has_unstable_rule:
        stab = _as_float64(values["stability"])
        unstable = persistent(stab > rules.unstable_level, rules.min_count, axis=0)
        dq |= np.where(unstable, np.uint16(rules.unstable_bit), np.uint16(0))
    n_hot, n_unstable = int(np.count_nonzero(hot)), int(np.count_nonzero(unstable))
    one = ds.sel(anneal=number)
    attrs = {
        "long_name": "STIS CCD data quality from pixel properties",
        **cf_flag_attrs(),
        "anneal": number,
        "anneal_start": _iso(one["anneal_start"].values),
        "anneal_end": _iso(one["anneal_end"].values),
        "unit_system": str(one["unit_system"].values),
        "window_anneals": np.asarray(window, dtype=np.int64),
        "rules": json.dumps(rules.to_dict()),
        "hot_sigma_thresholds": stats[2].copy(),
        "hot_clip_median": float(stats[0, -1]),
        "hot_clip_std": float(stats[1, -1]),
        "hot_sigma_threshold": float(stats[2, -1]),
        "n_hot": n_hot,
        "n_unstable": n_unstable,
        "n_flagged": int(np.count_nonzero(dq)),
        "date": _now(),
        "software": f"stiscube {_versions()['stiscube']}",
    }
    logger.info(
        "DQ of period %d: %d hot, %d unstable, %d flagged pixels",
        number,
        n_hot,
        n_unstable,
        attrs["n_flagged"],
    )
    return xr.DataArray(
        dq,
        dims=("row", "col"),
        coords={"row": ds["row"].values, "col": ds["col"].values},
        name="dq",
        attrs=attrs,
    )


def hot_pixel_counts(ds: xr.Dataset, level: float, *, prop: str = "sci_mean") -> xr.DataArray:
    """Number of pixels with ``prop > level`` in each period (dims: anneal).

    *level* is in the rate units of *prop* (electron / s for ``sci_mean``); periods of
    the ``"counts"`` unit system are refused.  NaN pixels are not counted.  Computed
    (with dask when *ds* is lazy); the per-period coordinates are kept.

    Raises
    ------
    UnitMismatchError
        Some periods are in the ``"counts"`` unit system.
    """
    level = _optional_finite("level", level)
    if level is None:
        msg = "level must be a number, got None"
        raise ValueError(msg)
    _check_cube(ds, (prop,))
    systems = np.atleast_1d(ds["unit_system"].values).astype(str)
    if np.any(systems != "rate"):
        bad = ds["anneal"].values[systems != "rate"].tolist()
        units = UNIT_SYSTEMS["rate"].get(prop, "rate units")
        msg = (
            f"level={level:g} is in {units}, but periods {bad} are in the 'counts' unit "
            "system; select rate periods, e.g. ds.where(ds.unit_system == 'rate', drop=True)"
        )
        raise UnitMismatchError(msg)
    counts = (ds[prop].astype(np.float64) > level).sum(("row", "col")).astype(np.int64).compute()
    counts.name = "n_hot"
    counts.attrs = {
        "long_name": f"pixels with {prop} > {level:g} {UNIT_SYSTEMS['rate'].get(prop, '')}",
        "units": "1",
        "level": level,
    }
    return counts


# -- files -----------------------------------------------------------------------------------
_REQUIRED_ATTRS = ("anneal", "anneal_start", "anneal_end", "unit_system", "rules")


def _check_dq(dq: Any) -> DQRules:
    if not isinstance(dq, xr.DataArray):
        msg = f"dq must be the xarray.DataArray made by dq_array, got {type(dq).__name__}"
        raise TypeError(msg)
    if dq.dims != ("row", "col"):
        msg = f"dq must have dims ('row', 'col'), got {dq.dims}"
        raise ValueError(msg)
    if dq.dtype != np.uint16:
        msg = f"dq must be uint16, got {dq.dtype}"
        raise ValueError(msg)
    missing = [a for a in _REQUIRED_ATTRS if a not in dq.attrs]
    if missing:
        msg = f"dq lacks the attributes {missing}; make it with stiscube.dq.dq_array"
        raise ValueError(msg)
    return DQRules.from_dict(json.loads(dq.attrs["rules"]))


def _target(path: str | os.PathLike, overwrite: bool) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        msg = f"{path}: directory {path.parent} does not exist"
        raise FileNotFoundError(msg)
    if path.is_dir():
        msg = f"{path}: is a directory"
        raise IsADirectoryError(msg)
    if path.exists() and not overwrite:
        msg = f"{path}: file exists; pass overwrite=True to replace it"
        raise FileExistsError(msg)
    return path


def _atomic_write(path: Path, write) -> None:
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _set_card(header, key: str, value: Any, comment: str) -> None:
    """Set a header card, shortening *comment* to fit the 80-character card."""
    from astropy.io import fits

    if isinstance(value, str) and len(value) > 60:  # long string: CONTINUE cards, no comment
        header[key] = value
        return
    room = 80 - len(fits.Card(key, value).image.rstrip()) - 3
    header[key] = (value, comment[: max(room, 0)])


def write_dq_fits(dq: xr.DataArray, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a DQ array from :func:`dq_array` as a FITS file (atomically).

    Layout: an empty primary HDU whose header records the period and the rules, and one
    ``DQ`` image extension (``uint16``; stored as FITS ``BITPIX = 16`` with
    ``BZERO = 32768``, read back as ``uint16`` by astropy) whose header lists the bit
    meanings.  Rows of the array are FITS ``NAXIS2`` (row 0 first), columns ``NAXIS1``.

    Primary header keywords: ``TELESCOP``, ``INSTRUME``, ``DETECTOR``, ``FILETYPE``
    (``'DQ REFERENCE'``), ``ANNEALNM`` (period number), ``ANNSTART``/``ANNEND``
    (ISO dates, UTC), ``UNITSYS``, ``WINDOW`` (periods the rules looked at), the rules
    (``HOTLEVEL`` [electron / s], ``HOTNSIG``, ``HOTCOMB``, ``CLIPSIG``, ``CLIPITER``,
    ``UNSTLEVL``, ``PERSISTK``, ``PERSISTM``, ``PARTWIN``, ``HOTBIT``, ``UNSTBIT``;
    a rule not given is absent), the clipped statistics of the period (``HOTMED``,
    ``HOTSTD``, ``HOTTHR``, in the units of ``sci_mean``), the counts ``NHOT``,
    ``NUNSTAB``, ``NFLAGGED``, the rules as JSON (``RULES``), ``DATE`` and ``SOFTWARE``,
    and the rules in words as ``COMMENT`` cards.  ``DQ`` header: ``DQBITnn`` (nn = bit
    position 00-14) = flag name, with the bit value and description as card comment.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError, ValueError
        *dq* is not a DQ array made by :func:`dq_array`.
    FileExistsError
        The file exists and *overwrite* is False.
    FileNotFoundError
        The directory does not exist.
    """
    from astropy.io import fits

    rules = _check_dq(dq)
    path = _target(path, overwrite)
    attrs = dq.attrs
    primary = fits.PrimaryHDU()
    hdr = primary.header
    _set_card(hdr, "TELESCOP", "HST", "telescope")
    _set_card(hdr, "INSTRUME", "STIS", "instrument")
    _set_card(hdr, "DETECTOR", "CCD", "detector")
    _set_card(hdr, "FILETYPE", "DQ REFERENCE", "DQ flags from the pixel property cube")
    _set_card(hdr, "ANNEALNM", int(attrs["anneal"]), "anneal period number")
    _set_card(hdr, "ANNSTART", str(attrs["anneal_start"]), "period start (UTC)")
    _set_card(hdr, "ANNEND", str(attrs["anneal_end"]), "period end (UTC, exclusive)")
    _set_card(hdr, "UNITSYS", str(attrs["unit_system"]), "unit system of the period's properties")
    window = np.asarray(attrs.get("window_anneals", [attrs["anneal"]])).tolist()
    _set_card(hdr, "WINDOW", ",".join(str(n) for n in window), "periods the rules looked at")
    cards = {
        "HOTLEVEL": (rules.hot_level, f"hot: sci_mean > this [{_RATE_UNITS}]"),
        "HOTNSIG": (rules.hot_nsigma, "hot: sci_mean > clipped median + this x std"),
        "HOTCOMB": (
            rules.hot_combine
            if rules.hot_level is not None and rules.hot_nsigma is not None
            else None,
            "how the two hot rules combine",
        ),
        "CLIPSIG": (
            rules.clip_sigma if rules.hot_nsigma is not None else None,
            "sigma clipping limit [std]",
        ),
        "CLIPITER": (
            rules.clip_maxiters if rules.hot_nsigma is not None else None,
            "max clipping iterations",
        ),
        "UNSTLEVL": (rules.unstable_level, "unstable: stability > this [1]"),
        "PERSISTK": (rules.persist_k, "rule must hold in >= PERSISTK periods"),
        "PERSISTM": (rules.persist_m, "... of the last PERSISTM periods"),
        "PARTWIN": (
            rules.partial_window if rules.persist_k is not None else None,
            "handling of a short persistence window",
        ),
        "HOTBIT": (rules.hot_bit if rules.has_hot_rule else None, "DQ bit set by the hot rule"),
        "UNSTBIT": (
            rules.unstable_bit if rules.has_unstable_rule else None,
            "DQ bit set by the unstable rule",
        ),
    }
    for key, (value, comment) in cards.items():
        if value is not None:
            _set_card(hdr, key, value, comment)
    if rules.hot_nsigma is not None:
        unit = UNIT_SYSTEMS[str(attrs["unit_system"])]["sci_mean"]
        _set_card(
            hdr, "HOTMED", float(attrs["hot_clip_median"]), f"clipped median of sci_mean [{unit}]"
        )
        _set_card(hdr, "HOTSTD", float(attrs["hot_clip_std"]), f"clipped std of sci_mean [{unit}]")
        _set_card(
            hdr, "HOTTHR", float(attrs["hot_sigma_threshold"]), f"sigma hot threshold [{unit}]"
        )
    _set_card(hdr, "NHOT", int(attrs.get("n_hot", 0)), "pixels flagged hot")
    _set_card(hdr, "NUNSTAB", int(attrs.get("n_unstable", 0)), "pixels flagged unstable")
    _set_card(hdr, "NFLAGGED", int(np.count_nonzero(dq.values)), "pixels with any flag")
    _set_card(hdr, "DATE", _now(), "file creation date (UTC)")
    _set_card(hdr, "DQDATE", str(attrs.get("date", "")), "DQ array creation date (UTC)")
    _set_card(
        hdr, "SOFTWARE", str(attrs.get("software", "stiscube")), "software that made this file"
    )
    _set_card(hdr, "RULES", json.dumps(rules.to_dict()), "DQ rules as JSON")
    for line in rules.describe():
        hdr.add_comment(line)
    ext = fits.ImageHDU(data=np.ascontiguousarray(dq.values, dtype=np.uint16), name="DQ")
    ext.header["ANNEALNM"] = (int(attrs["anneal"]), "anneal period number")
    for position, flag in enumerate(STIS_DQ):
        _set_card(ext.header, f"DQBIT{position:02d}", flag.name, f"DQ value {flag.bit}")
    for flag in STIS_DQ:
        ext.header.add_comment(f"DQ {flag.bit} = {flag.name}: {flag.description}")
    hdul = fits.HDUList([primary, ext])
    _atomic_write(path, lambda tmp: hdul.writeto(tmp, overwrite=True))
    logger.info("wrote DQ array of period %s to %s", attrs["anneal"], path)
    return path


def flagged_pixels_table(dq: xr.DataArray, ds: xr.Dataset):
    """Table of the flagged pixels of a DQ array, with their properties.

    Parameters
    ----------
    dq : xarray.DataArray
        A DQ array from :func:`dq_array`.
    ds : xarray.Dataset
        The cube it was made from (the period ``dq.attrs["anneal"]`` is read).

    Returns
    -------
    astropy.table.Table
        One row per pixel with ``dq > 0``, ordered by row then column: ``row``, ``col``,
        ``dq`` (uint16), ``flags`` (decoded names, comma-separated), then the five
        properties of the period with their units (those of its unit system).  ``meta``:
        ``anneal``, ``anneal_start``, ``anneal_end``, ``unit_system``,
        ``window_anneals``, ``rules`` (dict), ``rules_text``, ``date`` (table creation,
        UTC), ``dq_date`` (DQ creation) and ``versions``.

    Raises
    ------
    TypeError, ValueError
        *dq* is not from :func:`dq_array`, or does not match *ds* (shape, dates).
    CubeQueryError
        The period of *dq* is not in *ds*.
    """
    from astropy.table import Table

    rules = _check_dq(dq)
    _check_cube(ds, PROPERTIES)
    number = resolve_period(ds, anneal_num=int(dq.attrs["anneal"]))
    if dq.shape != (ds.sizes["row"], ds.sizes["col"]):
        frame = (ds.sizes["row"], ds.sizes["col"])
        msg = f"dq has shape {dq.shape} but the cube's frames have shape {frame}"
        raise ValueError(msg)
    one = ds.sel(anneal=number)
    dates = (_iso(one["anneal_start"].values), _iso(one["anneal_end"].values))
    if dates != (dq.attrs["anneal_start"], dq.attrs["anneal_end"]):
        msg = (
            f"dq of period {number} is dated {dq.attrs['anneal_start']} to "
            f"{dq.attrs['anneal_end']}, but the cube's period {number} is {dates[0]} to "
            f"{dates[1]}: it was made from another cube"
        )
        raise ValueError(msg)
    flags = np.asarray(dq.values)
    rows, cols = np.nonzero(flags)
    system = str(one["unit_system"].values)
    frame = one[list(PROPERTIES)].compute()
    table = Table()
    table["row"] = rows.astype(np.int64)
    table["col"] = cols.astype(np.int64)
    table["dq"] = flags[rows, cols].astype(np.uint16)
    table["flags"] = decode_dq_names(flags[rows, cols]).astype(str)
    for name in PROPERTIES:
        values = np.asarray(frame[name].transpose("row", "col").values)[rows, cols]
        unit = UNIT_SYSTEMS[system][name]
        table[name] = values
        table[name].unit = None if unit == "1" else unit
        table[name].description = frame[name].attrs.get("long_name", name)
    table["row"].description = "detector row (0-based)"
    table["col"].description = "detector column (0-based)"
    table["dq"].description = "DQ value (bitwise OR of STIS DQ bits)"
    table["flags"].description = "names of the DQ bits set"
    table.meta.update(
        {
            "anneal": int(number),
            "anneal_start": dates[0],
            "anneal_end": dates[1],
            "unit_system": system,
            "window_anneals": np.asarray(dq.attrs.get("window_anneals", [number])).tolist(),
            "rules": rules.to_dict(),
            "rules_text": rules.describe(),
            "date": _now(),
            "dq_date": str(dq.attrs.get("date", "")),
            "versions": _versions(),
        }
    )
    return table


def write_flagged_table(
    dq: xr.DataArray, ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write :func:`flagged_pixels_table` of *dq* as an ECSV file (atomically).

    Returns the path written; raises as :func:`flagged_pixels_table`, and
    ``FileExistsError`` when the file exists and *overwrite* is False.
    """
    path = _target(path, overwrite)
    table = flagged_pixels_table(dq, ds)
    _atomic_write(path, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True))
    logger.info(
        "wrote %d flagged pixels of period %s to %s", len(table), table.meta["anneal"], path
    )
    return path
