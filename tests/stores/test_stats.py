"""stores.common.stats.clipped_stats: astropy's sigma clip, silent on NaN input.

Along an axis (cte's annulus backgrounds) and over whole frames (stiscube's DQ rules).
The photometry calls it from dask's threads, where silencing warnings with
``warnings.catch_warnings`` is not thread-safe (a CI run failed on the escaped
AstropyUserWarning); so the function must not warn at all.  The test suite turns every
warning into an error, so a warning here fails these tests.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import SigmaClip, sigma_clipped_stats
from hypothesis import given, settings
from hypothesis import strategies as st

from stores.common.stats import clipped_stats
from tests._threads import errors_in_threads


def _sample() -> np.ndarray:
    rng = np.random.default_rng(1)
    v = rng.normal(10.0, 1.0, (60, 120))
    v[:, :20] = np.nan  # off-image pixels
    v[5] = np.nan  # a star with no background pixel
    v[7, :119] = np.nan  # a star with one
    v[3, 50] = 1e6  # a cosmic ray
    return v


def test_matches_astropy_on_the_finite_values_and_never_warns():
    v = _sample()
    median, std, count = clipped_stats(v, sigma=3.0, maxiters=5, axis=1)
    for row in (0, 3, 7, 59):
        x = v[row][np.isfinite(v[row])]
        _, m, s = sigma_clipped_stats(x, sigma=3.0, maxiters=5, cenfunc="median", stdfunc="std")
        assert np.isclose(median[row], m) and np.isclose(std[row], s)
    assert count[3] == 99  # the cosmic ray is clipped
    assert count[7] == 1 and std[7] == 0.0
    assert count[5] == 0 and np.isnan(median[5]) and np.isnan(std[5])


def test_silent_from_threads():
    v = _sample()
    expected = clipped_stats(v, axis=1)

    def run(_thread: int) -> None:
        for _ in range(20):
            got = clipped_stats(v, axis=1)
            np.testing.assert_array_equal(got[2], expected[2])

    assert errors_in_threads(run, 4) == []


def test_every_slice_matches_astropy_including_unconverged_clips():
    """Heavy tails, ties, infinities and few values per slice, at 1, 2 and 5 iterations:
    every slice is astropy's sigma clip along an axis of its finite values (which keeps
    every value within the last bounds, so that an early clip the last bounds take back is
    kept again; astropy's clip of a flat array, without ``axis``, does not take it back
    and differs on a few of these slices)."""
    rng = np.random.default_rng(7)
    v = rng.standard_t(2, (300, 40)) * 5 + 100
    v[rng.random(v.shape) < 0.2] = np.nan
    v[rng.random(v.shape) < 0.02] = np.inf
    v[:20] = np.round(v[:20])  # ties
    v[20:25, 3:] = np.nan  # three values or fewer
    for sigma, maxiters in ((3.0, 1), (2.0, 2), (3.0, 5), (1.5, 5)):
        median, std, count = clipped_stats(v, sigma=sigma, maxiters=maxiters, axis=1)
        for row in range(v.shape[0]):
            x = v[row][np.isfinite(v[row])][None, :]
            clipped = SigmaClip(sigma=sigma, maxiters=maxiters, cenfunc="median",
                                stdfunc="std")(x, axis=1, masked=False)
            _, m, s = sigma_clipped_stats(x, sigma=sigma, maxiters=maxiters, axis=1,
                                          cenfunc="median", stdfunc="std")
            assert count[row] == np.isfinite(clipped).sum()
            np.testing.assert_allclose([median[row], std[row]], [m[0], s[0]], rtol=1e-12,
                                       atol=0)


# -- whole arrays (axis=None), as the DQ rules clip a period's frame -----------------------
def astropy_clip(values, sigma, maxiters):
    """Median and std of astropy's masked sigma clip of the finite values (float64)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    kept = SigmaClip(sigma=sigma, maxiters=maxiters, cenfunc="median", stdfunc="std")(
        x, masked=True, copy=True)
    return float(np.ma.median(kept)), float(kept.std())


def _samples():
    rng = np.random.default_rng(42)
    core = rng.normal(0.004, 0.001, 60_000)
    hot = rng.random(core.size) < 0.02
    core[hot] = 10 ** rng.uniform(-1.3, 0.7, hot.sum())
    core[rng.integers(0, core.size, 40)] = np.nan
    core[rng.integers(0, core.size, 5)] = np.inf
    return {
        "dark rates with hot tail, NaN, inf": core.reshape(300, 200),
        "read noise (narrow, far from 0)": rng.normal(6.0, 0.2, 50_000),
        "cauchy": rng.standard_cauchy(40_000),
        "lognormal": rng.lognormal(0.0, 2.0, 40_000),
        "integers (ties)": rng.integers(0, 6, 40_000).astype(float),
        "negative exponential": -rng.exponential(1.0, 30_000),
        "float32 counts": rng.normal(4.4, 1.1, 30_000).astype(np.float32),
        "two values": np.array([1.0, 3.0]),
        "one value": np.array([7.5]),
        "constant": np.full(100, -2.5),
    }


@pytest.mark.parametrize("name", list(_samples()))
@pytest.mark.parametrize(("sigma", "maxiters"), [(3.0, 40), (2.5, 3), (3.0, None), (2.0, 1)])
def test_whole_array_matches_astropy(name, sigma, maxiters):
    values = _samples()[name]
    median, std, count = clipped_stats(values, sigma=sigma, maxiters=maxiters)
    assert median.shape == std.shape == count.shape == ()
    np.testing.assert_allclose([median, std], astropy_clip(values, sigma, maxiters), rtol=1e-9,
                               atol=0)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.floats(-1e6, 1e6, allow_nan=False, width=32),
            st.sampled_from([0.0, -0.0, 1.0, 1.5, 2.0, np.nan, np.inf]),
        ),
        min_size=1,
        max_size=120,
    ),
    sigma=st.sampled_from([1.0, 1.5, 2.5, 3.0]),
    maxiters=st.sampled_from([1, 2, 5, None]),
)
def test_whole_array_property_vs_astropy(values, sigma, maxiters):
    median, std, count = clipped_stats(np.asarray(values), sigma=sigma, maxiters=maxiters)
    if not np.isfinite(values).any():
        assert np.isnan([median, std]).all() and count == 0
        return
    np.testing.assert_allclose([median, std], astropy_clip(values, sigma, maxiters), rtol=1e-9,
                               atol=1e-12)


def test_several_axes_and_empty_input():
    v = _sample().reshape(6, 10, 120)
    median, std, count = clipped_stats(v, axis=(1, 2))
    for i in range(6):
        want = clipped_stats(v[i])  # each slice alone, as one array
        np.testing.assert_array_equal([median[i], std[i], count[i]], want)
    moved = clipped_stats(np.moveaxis(v, 0, -1), axis=(0, 1))
    np.testing.assert_array_equal(moved[0], median)
    empty = clipped_stats(np.zeros(0))
    assert np.isnan(empty[0]) and np.isnan(empty[1]) and empty[2] == 0
    assert clipped_stats(np.zeros((0, 4)), axis=1)[0].shape == (0,)
    with pytest.raises(np.exceptions.AxisError):
        clipped_stats(v, axis=3)
