"""The ds.pixels accessor and the threshold queries, against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import stiscube  # noqa: F401  (registers ds.pixels)
from stiscube import CubeQueryError, UnitMismatchError
from stiscube.datasets._synthcube import random_properties
from stiscube.schema import PROPERTIES

SHAPE = (24, 20)
NUMBERS = [10, 11, 12, 13, 14, 15]


def _cube(unit_systems=None) -> xr.Dataset:
    frames = [random_properties(SHAPE, seed=n, hot_fraction=0.2) for n in NUMBERS]
    ds = xr.concat(frames, dim="anneal")
    starts = np.datetime64("2020-01-01", "ns") + np.arange(len(NUMBERS)) * np.timedelta64(30, "D")
    return ds.assign_coords(
        anneal=NUMBERS,
        anneal_start=("anneal", starts),
        anneal_end=("anneal", starts + np.timedelta64(30, "D")),
        unit_system=("anneal", unit_systems or ["rate"] * len(NUMBERS)),
    )


def _longest_run_numpy(above: np.ndarray) -> np.ndarray:
    """Independent reference: scan each pixel's sequence (small arrays only)."""
    out = np.zeros(above.shape[1:], dtype=int)
    for idx in np.ndindex(*above.shape[1:]):
        best = run = 0
        for flag in above[(slice(None), *idx)]:
            run = run + 1 if flag else 0
            best = max(best, run)
        out[idx] = best
    return out


def test_history_region_period():
    ds = _cube()
    hist = ds.pixels.history(3, 4)
    assert hist.sizes == {"anneal": len(NUMBERS)}
    np.testing.assert_array_equal(hist["sci_mean"].values, ds["sci_mean"].values[:, 3, 4])
    reg = ds.pixels.region([2, 5], [0, 3])
    assert reg.sizes["row"] == 4 and reg.sizes["col"] == 4
    one = ds.pixels.period(date="2020-02-15")
    assert int(one["anneal"]) == 11
    assert ds.pixels.period_at("2020-01-31") == 11  # 2020-01-31 is the second period's start
    xr.testing.assert_identical(ds.pixels.period(anneal_num=13), ds.sel(anneal=13))
    with pytest.raises(CubeQueryError, match="in a gap|before the first"):
        ds.pixels.period(date="2019-01-01")


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_hot_in_k_consecutive_periods_matches_numpy(k):
    ds = _cube()
    level = 0.05
    above = ds["sci_mean"].values > level
    expected = _longest_run_numpy(above) >= k
    got = ds.pixels.hot(level, k=k)
    assert got.dims == ("row", "col")
    np.testing.assert_array_equal(got.values, expected)


def test_turned_hot_after_matches_numpy():
    ds = _cube()
    level = 0.05
    above = ds["sci_mean"].values > level
    expected = above[3:].any(0) & ~above[:3].any(0)
    got = ds.pixels.turned_hot_after("2020-03-31", level)
    np.testing.assert_array_equal(got.values, expected)
    with pytest.raises(CubeQueryError, match="no period held starts on or after"):
        ds.pixels.turned_hot_after("2030-01-01", level)


def test_mixed_unit_systems_refused():
    ds = _cube(["counts", *["rate"] * 5])
    with pytest.raises(UnitMismatchError, match=r"different unit systems .*'counts': \[10\]"):
        ds.pixels.hot(0.1)
    rate_only = ds.where(ds.unit_system == "rate", drop=True)
    assert rate_only.pixels.unit_system() == "rate"
    assert rate_only.pixels.hot(0.05).shape == SHAPE


def test_accessor_on_lazy_cube_stays_lazy():
    ds = _cube().chunk({"row": 8})
    hist = ds.pixels.history(1, 1)
    assert all(hasattr(hist[p].data, "dask") for p in PROPERTIES)
