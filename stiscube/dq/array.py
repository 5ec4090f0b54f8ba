"""DQ arrays from the pixel property cube: :func:`dq_array`, :func:`hot_pixels`.

A :class:`~stiscube.dq.rules.DQRules` says which pixels are flagged and with which STIS
DQ bit (:mod:`stiscube.dq.flags`); :func:`dq_array` applies it to one anneal period of
the cube (the :class:`xarray.Dataset` of :attr:`stiscube.PixelDB.dataset`, dims
``(anneal, row, col)``) and returns a ``uint16`` :class:`xarray.DataArray` on
``(row, col)``; :mod:`stiscube.dq.files` saves it.  The numpy kernels live in
:mod:`stiscube.dq._kernels`.

The rules, for the chosen period *P* (all comparisons strict and in float64, NaN never
flagged):

hot (bit ``hot_bit``, default 16 = ``hot_pixel``)
    ``level``:  ``sci_mean > hot_level``, with *hot_level* in electron / s;

    ``nsigma``: ``sci_mean > median_c + hot_nsigma * std_c``, where ``median_c`` and
    ``std_c`` (population std, ddof = 0) are the sigma-clipped median and standard
    deviation of the whole ``sci_mean`` frame of the period: astropy's sigma clip
    (clipping at ``clip_sigma`` about the median, at most ``clip_maxiters`` iterations;
    NaN excluded) as the STIS reference pipeline does (refstis: 3-sigma clipping, 5-sigma
    hot threshold), by :func:`stores.common.stats.clipped_stats`.  This rule is relative
    to the frame, so it holds in either unit system;

    the two are combined with ``hot_combine`` = ``"or"`` (either) or ``"and"`` (both)
    when both are given.  By default ``hot_level = 0.1`` electron / s alone: the rule
    by which the STIS reference superdarks set DQ 16 (refstis: "pixels hotter than 0.1
    electron/sec ... are assigned a DQ value of 16"), and the level of the STIS
    hot-pixel counts.  With ``hot_level=None`` and ``hot_nsigma="auto"`` the relative
    rule with N = 5 is used (refstis's threshold for new hot pixels of a weekly dark).
unstable (bit ``unstable_bit``, default 4 = ``bad_detector_pixel``)
    ``stability > unstable_level`` (``stability`` is dimensionless, about 1 for a
    steady pixel; see :mod:`stiscube.schema`).  STIS has no dedicated "unstable" bit;
    4 is the default because an unstable (flickering, telegraphic) dark rate is a
    property of the detector pixel that no dark reference file can correct, and STIS's
    default ``SDQFLAGS`` excludes bit 4 from calibrated products.  The two rules must
    use different bits; the flagged-pixel table names the rule behind each bit in its
    ``categories`` column (an unstable pixel is "unstable", never "hot"), and the file
    counts hot, unstable, both and any-flag pixels separately.
persistence (optional, ``persist_k`` of ``persist_m``)
    each rule's bit is set when the rule held in at least *k* of the last *m* periods
    held in the cube up to and including *P* (periods in the cube's order, i.e. sorted
    by number; gaps in the numbering are not filled).  Without it, *k* = *m* = 1.

So for each bit ``b`` with per-period rule mask ``R_t`` over the window ``W`` of
periods: ``DQ |= b * (sum_{t in W} R_t >= k)``.

Units are never mixed: a rule with an absolute level in electron / s (``hot_level``)
refuses windows holding periods of the ``"counts"`` unit system (the seed's CSV files)
with :class:`~stiscube.exceptions.UnitMismatchError`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import numpy as np
import xarray as xr

from stiscube._provenance import iso
from stiscube.cube._cubecheck import check_cube
from stiscube.cube._queries import resolve_period
from stiscube.cube.pixeldb import PixelDB
from stiscube.dq._kernels import clipped_threshold, hot_mask, persistent
from stiscube.dq.flags import cf_flag_attrs
from stiscube.dq.rules import DQRules
from stiscube.exceptions import UnitMismatchError
from stiscube.schema import UNIT_SYSTEMS
from stores.common import provenance
from stores.common.validate import as_float, instance_of

__all__ = ["dq_array", "hot_pixel_counts", "hot_pixels"]

logger = logging.getLogger(__name__)

_RATE_UNITS = UNIT_SYSTEMS["rate"]["sci_mean"]


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


def _read_window(
    ds: xr.Dataset, db: PixelDB | None, window: list[int], needed: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """(period, row, col) values of the *needed* properties over *window*, as stored.

    From the store's eager reader when a :class:`~stiscube.PixelDB` is given, else by
    computing only those variables and periods of the (possibly lazy) Dataset.  The
    dtype is kept (float32 in the cube): the rules compare in float64 (exact).
    """
    if db is not None:
        arrays = db.store.read_arrays(list(window), variables=list(needed))
        return {name: np.asarray(arrays[name]) for name in needed}
    part = ds[list(needed)].sel(anneal=window).transpose("anneal", "row", "col").compute()
    return {name: np.asarray(part[name].values) for name in needed}


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
    ds: xr.Dataset | PixelDB,
    *,
    rules: DQRules | None = None,
    anneal_num: int | None = None,
    date: Any = None,
) -> xr.DataArray:
    """The DQ reference array of one anneal period (chosen by number or by date).

    Parameters
    ----------
    ds : xarray.Dataset or PixelDB
        The cube (e.g. :attr:`stiscube.PixelDB.dataset`): properties on
        ``(anneal, row, col)`` with the coordinates ``anneal_start``, ``anneal_end`` and
        ``unit_system``.  May be lazy; only the needed properties of the periods of the
        rules' window are read.  Given the :class:`~stiscube.PixelDB` itself, the frames
        are read with its store's eager reader (``db.store.read_arrays``), which is
        faster than computing the lazy Dataset (about 2x for whole frames).
    rules : DQRules, optional
        The rules (default ``DQRules()``: hot above 0.1 electron / s, as the DQ of the
        STIS reference superdarks).
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
        ``n_both`` (hot and unstable), ``n_flagged`` (``n_hot + n_unstable - n_both``),
        and the :mod:`stores.common.provenance` record (``software``, ``software_versions``,
        ``created``).

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
    instance_of(rules, "rules", DQRules, what="a DQRules")
    db = ds if isinstance(ds, PixelDB) else None
    if db is not None:
        ds = db.dataset
    needed = (("sci_mean",) if rules.has_hot_rule else ()) + (
        ("stability",) if rules.has_unstable_rule else ()
    )
    check_cube(ds, needed)
    number = resolve_period(ds, date=date, anneal_num=anneal_num)
    window = _window(ds, number, rules)
    position = {int(n): i for i, n in enumerate(ds["anneal"].values)}
    systems = np.asarray(ds["unit_system"].values)[[position[n] for n in window]].astype(str)
    if rules.uses_rate_units and np.any(systems != "rate"):
        bad = {int(n): str(s) for n, s in zip(window, systems, strict=True) if s != "rate"}
        msg = (
            f"hot_level={rules.hot_level:g} is in {_RATE_UNITS}, but periods {bad} are not "
            "in the 'rate' unit system (the seed CSV's counts per frame); use only "
            "hot_nsigma (relative to the frame) for them, or choose rate periods"
        )
        raise UnitMismatchError(msg)
    values = _read_window(ds, db, window, needed)
    dq = np.zeros((ds.sizes["row"], ds.sizes["col"]), dtype=np.uint16)
    hot = unstable = np.zeros(dq.shape, dtype=bool)
    stats = np.full((3, len(window)), np.nan)  # clipped median, std, threshold
    if rules.has_hot_rule:
        hot, stats = _hot_flags(values["sci_mean"], rules, window)
        dq |= np.where(hot, np.uint16(rules.hot_bit), np.uint16(0))
    if rules.has_unstable_rule:
        with np.errstate(invalid="ignore"):
            above = values["stability"] > np.float64(rules.unstable_level)  # in float64
        unstable = persistent(above, rules.min_count, axis=0)
        dq |= np.where(unstable, np.uint16(rules.unstable_bit), np.uint16(0))
    n_hot, n_unstable = int(np.count_nonzero(hot)), int(np.count_nonzero(unstable))
    n_both = int(np.count_nonzero(hot & unstable))
    here = position[number]
    attrs = {
        "long_name": "STIS CCD data quality from pixel properties",
        **cf_flag_attrs(),
        "anneal": number,
        "anneal_start": iso(ds["anneal_start"].values[here]),
        "anneal_end": iso(ds["anneal_end"].values[here]),
        "unit_system": str(systems[-1]),
        "window_anneals": np.asarray(window, dtype=np.int64),
        "rules": json.dumps(rules.to_dict()),
        "hot_sigma_thresholds": stats[2].copy(),
        "hot_clip_median": float(stats[0, -1]),
        "hot_clip_std": float(stats[1, -1]),
        "hot_sigma_threshold": float(stats[2, -1]),
        "n_hot": n_hot,
        "n_unstable": n_unstable,
        "n_both": n_both,
        "n_flagged": int(np.count_nonzero(dq)),
        **provenance.to_attrs(provenance.provenance()),  # software, software_versions, created
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


def hot_pixels(
    ds: xr.Dataset | PixelDB,
    *,
    rules: DQRules | None = None,
    anneal_num: int | None = None,
    date: Any = None,
) -> xr.DataArray:
    """The hot pixels of one anneal period under *rules*: the one definition every product uses.

    A pixel is hot when :func:`dq_array` with the same *rules* sets its ``hot_bit``
    (the hot rule with its persistence window; the unstable rule plays no part).  The
    DQ array, the reference files' ``NHOT``, the monitoring site's hot-pixel counts and
    the anneal statistics all count these pixels, so they agree for the same rules.

    Parameters
    ----------
    ds : xarray.Dataset or PixelDB
        The cube, as for :func:`dq_array`.
    rules : DQRules, optional
        The rules (default ``DQRules()``); they must have a hot rule.
    anneal_num, date
        The period, as for :func:`dq_array`.

    Returns
    -------
    xarray.DataArray
        ``bool`` on ``(row, col)``, named ``"hot"``; attributes ``anneal``,
        ``window_anneals``, ``n_hot``, ``rules`` (JSON of :meth:`DQRules.to_dict`) and
        ``rule`` (the hot rule in words, :meth:`DQRules.describe`).

    Raises
    ------
    ValueError
        The rules have no hot rule.  Otherwise as :func:`dq_array`.
    """
    rules = DQRules() if rules is None else instance_of(rules, "rules", DQRules, what="a DQRules")
    if not rules.has_hot_rule:
        msg = "the rules have no hot rule (give hot_level or hot_nsigma): no hot pixels to find"
        raise ValueError(msg)
    hot_only = dataclasses.replace(rules, unstable_level=None)
    dq = dq_array(ds, rules=hot_only, anneal_num=anneal_num, date=date)
    keep = ("anneal", "window_anneals", "n_hot")
    return xr.DataArray(
        (dq.values & np.uint16(rules.hot_bit)) != 0,
        dims=dq.dims,
        coords=dq.coords,
        name="hot",
        attrs={
            **{k: dq.attrs[k] for k in keep},
            "rules": json.dumps(rules.to_dict()),
            "rule": "; ".join(hot_only.describe()),
        },
    )


def hot_pixel_counts(ds: xr.Dataset, level: float, *, prop: str = "sci_mean") -> xr.DataArray:
    """Number of pixels with ``prop > level`` in each period (dims: anneal).

    *level* is in the rate units of *prop* (electron / s for ``sci_mean``); periods of
    the ``"counts"`` unit system are refused.  NaN pixels are not counted.  Computed
    (with dask when *ds* is lazy); the per-period coordinates are kept.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (e.g. :attr:`stiscube.PixelDB.dataset`).
    level : float
        The level, in the rate units of *prop*.
    prop : str
        The property compared with *level*.

    Returns
    -------
    xarray.DataArray
        ``n_hot`` (int64) on ``anneal``.

    Raises
    ------
    UnitMismatchError
        Some periods are in the ``"counts"`` unit system.
    """
    level = as_float(level, "level")
    check_cube(ds, (prop,))
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
