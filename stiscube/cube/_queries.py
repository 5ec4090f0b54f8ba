"""Queries on the pixel property cube, as plain functions of an :class:`xarray.Dataset`.

The Dataset is the cube as returned by :attr:`stiscube.PixelDB.dataset`: one variable
per property with dims ``(anneal, row, col)`` and the per-period coordinates
``anneal_start``, ``anneal_end`` and ``unit_system``.  These functions back both the
seed-compatible :class:`~stiscube.PixelDB` methods and the ``ds.pixels`` accessor; they
stay lazy where the input is lazy, except where a small answer must be computed to be
returned (a period number, a pixel mask).

Periods are found by date with the rule ``anneal_start <= date < anneal_end``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from stiscube.exceptions import CubeQueryError, UnitMismatchError
from stores.common.dates import datetime64_to_mjd, describe_mjd, to_mjd
from stores.common.validate import as_int

__all__ = [
    "consecutive_exceedances",
    "exceeded_in_consecutive_periods",
    "period_at",
    "pixel_history",
    "region",
    "region_slices",
    "require_single_unit_system",
    "resolve_period",
    "select_period",
    "turned_hot_after",
]


def _periods_text(ds: xr.Dataset) -> str:
    numbers = ds["anneal"].values.tolist()
    if len(numbers) > 8:
        return f"{numbers[:4]} ... {numbers[-4:]} ({len(numbers)} periods)"
    return str(numbers)


def period_at(ds: xr.Dataset, date: Any) -> int:
    """Number of the period holding *date* (``anneal_start <= date < anneal_end``).

    Raises
    ------
    CubeQueryError
        The date is before the first period, after the last, or in a gap between the
        periods the cube holds.
    """
    if ds.sizes.get("anneal", 0) == 0:
        msg = "the cube holds no anneal periods yet"
        raise CubeQueryError(msg)
    mjd = to_mjd(date)
    if np.ndim(mjd) != 0:
        msg = f"date must be a single date, got {date!r}"
        raise ValueError(msg)
    start = np.asarray(datetime64_to_mjd(ds["anneal_start"].values))
    end = np.asarray(datetime64_to_mjd(ds["anneal_end"].values))
    hits = np.flatnonzero((start <= mjd) & (mjd < end))
    if hits.size == 0:
        when = describe_mjd(float(mjd))
        if mjd < start.min():
            where = f"before the first period held ({describe_mjd(float(start.min()))})"
        elif mjd >= end.max():
            where = f"after the last period held (ends {describe_mjd(float(end.max()))})"
        else:
            where = "in a gap between the periods held"
        msg = f"date {when} is {where}; periods held: {_periods_text(ds)}"
        raise CubeQueryError(msg)
    return int(ds["anneal"].values[hits[0]])


def resolve_period(ds: xr.Dataset, *, date: Any = None, anneal_num: int | None = None) -> int:
    """The period number given either *anneal_num* or *date* (exactly one of them)."""
    if (date is None) == (anneal_num is None):
        msg = "give exactly one of date or anneal_num to choose the anneal period"
        raise ValueError(msg)
    if anneal_num is not None:
        anneal_num = as_int(anneal_num, "anneal_num")
        if anneal_num not in set(ds["anneal"].values.tolist()):
            msg = (
                f"anneal period {anneal_num} is not in the cube; periods held: {_periods_text(ds)}"
            )
            raise CubeQueryError(msg)
        return anneal_num
    return period_at(ds, date)


def select_period(ds: xr.Dataset, *, date: Any = None, anneal_num: int | None = None):
    """The cube at one period (chosen by number or by date), without the anneal dim."""
    return ds.sel(anneal=resolve_period(ds, date=date, anneal_num=anneal_num))


def _check_index(ds: xr.Dataset, dim: str, value: Any, name: str) -> int:
    value = as_int(value, name)
    size = ds.sizes[dim]
    if not 0 <= value < size:
        msg = f"{name}={value} is outside the frame (valid {dim}s are 0..{size - 1})"
        raise CubeQueryError(msg)
    return value


def _check_range(ds: xr.Dataset, dim: str, bounds: Sequence[int], name: str) -> slice:
    if len(bounds) != 2:
        msg = f"{name} must be [first, last] (inclusive), got {bounds!r}"
        raise ValueError(msg)
    first, last = (_check_index(ds, dim, b, name) for b in bounds)
    if first > last:
        msg = f"{name} must be [first, last] with first <= last, got {list(bounds)}"
        raise ValueError(msg)
    return slice(first, last + 1)


def pixel_history(ds: xr.Dataset, row: int, col: int) -> xr.Dataset:
    """All properties of pixel (*row*, *col*) across every period held (dims: anneal)."""
    r = _check_index(ds, "row", row, "row")
    c = _check_index(ds, "col", col, "col")
    return ds.isel(row=r, col=c)


def region_slices(
    ds: xr.Dataset,
    rows: Sequence[int],
    cols: Sequence[int],
    *,
    names: tuple[str, str] = ("rows", "cols"),
) -> tuple[slice, slice]:
    """Validated row and column slices of an inclusive region (see :func:`region`)."""
    return _check_range(ds, "row", rows, names[0]), _check_range(ds, "col", cols, names[1])


def region(
    ds: xr.Dataset,
    rows: Sequence[int],
    cols: Sequence[int],
    *,
    names: tuple[str, str] = ("rows", "cols"),
) -> xr.Dataset:
    """The pixels with rows ``rows[0]..rows[1]`` and cols ``cols[0]..cols[1]`` (inclusive).

    *names* are the parameter names used in error messages.
    """
    row_slice, col_slice = region_slices(ds, rows, cols, names=names)
    return ds.isel(row=row_slice, col=col_slice)


def require_single_unit_system(ds: xr.Dataset) -> str:
    """The unit system shared by all periods of *ds* (raises if they differ)."""
    systems = sorted(set(np.atleast_1d(ds["unit_system"].values).tolist()))
    if len(systems) > 1:
        by_system = {
            s: ds["anneal"].values[np.atleast_1d(ds["unit_system"].values) == s].tolist()
            for s in systems
        }
        msg = (
            f"periods are stored in different unit systems {by_system}; select periods of "
            "one system first, e.g. ds.where(ds.unit_system == 'rate', drop=True)"
        )
        raise UnitMismatchError(msg)
    return systems[0] if systems else "rate"


def consecutive_exceedances(
    values: xr.DataArray, level: float, *, dim: str = "anneal"
) -> xr.DataArray:
    """Longest run of consecutive periods in which ``values > level``, per pixel.

    Consecutive means adjacent along *dim* in the cube's order (period numbers sorted);
    NaN never exceeds.  The run length ``r_t = (r_{t-1} + 1) * above_t`` is accumulated
    along *dim* (a loop over periods, each step vectorised over all pixels).
    """
    above = (values > level).transpose(dim, ...)
    data = np.asarray(above.values)
    run = np.zeros(data.shape[1:], dtype=np.int32)
    best = np.zeros_like(run)
    for step in data:
        run = (run + 1) * step
        np.maximum(best, run, out=best)
    return xr.DataArray(
        best,
        dims=above.dims[1:],
        coords={k: above.coords[k] for k in above.dims[1:] if k in above.coords},
    )


def exceeded_in_consecutive_periods(
    ds: xr.Dataset, level: float, k: int, *, prop: str = "sci_mean"
) -> xr.DataArray:
    """Mask of pixels whose *prop* exceeded *level* in at least *k* consecutive periods."""
    k = as_int(k, "k", min=1)
    require_single_unit_system(ds)
    return consecutive_exceedances(ds[prop], level) >= k


def turned_hot_after(ds: xr.Dataset, date: Any, level: float, *, prop: str = "sci_mean"):
    """Mask of pixels never above *level* in periods starting before *date*, and above it
    in at least one period starting on or after *date*."""
    require_single_unit_system(ds)
    mjd = to_mjd(date)
    starts = np.asarray(datetime64_to_mjd(ds["anneal_start"].values))
    before = starts < mjd
    if before.all():
        msg = f"no period held starts on or after {describe_mjd(float(mjd))}"
        raise CubeQueryError(msg)
    hot = ds[prop] > level
    was = hot.isel(anneal=np.flatnonzero(before)).any("anneal")
    now = hot.isel(anneal=np.flatnonzero(~before)).any("anneal")
    return now & ~was
