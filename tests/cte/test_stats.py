"""cte._stats.clipped_stats: astropy's sigma clip along an axis, silent on NaN input.

The photometry calls it from dask's threads, where silencing warnings with
``warnings.catch_warnings`` is not thread-safe (a CI run failed on the escaped
AstropyUserWarning); so the function must not warn at all.  The test suite turns every
warning into an error, so a warning here fails these tests.
"""

from __future__ import annotations

import numpy as np
from astropy.stats import SigmaClip, sigma_clipped_stats

from cte._stats import clipped_stats
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
