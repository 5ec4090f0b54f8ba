"""The one neighbour kernel behind CROWDED flags and the alignment's isolated stars."""

import numpy as np
import pytest

from cte.photometry._neighbours import crowded


def _brute_force(x, y, flux, radius, ratio):
    """Every pair, by plain numpy distances (independent of the KD-tree)."""
    f = np.full(x.size, np.inf) if flux is None else np.where(np.isfinite(flux), flux, np.inf)
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    near = (d <= radius) & ~np.eye(x.size, dtype=bool)
    return (near & (f[None, :] >= ratio * f[:, None])).any(axis=1)


@pytest.mark.parametrize("with_flux", [True, False])
def test_crowded_matches_a_brute_force_pair_search(with_flux):
    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, 100, 300), rng.uniform(0, 100, 300)
    flux = rng.uniform(10, 1000, 300) if with_flux else None
    if with_flux:
        flux[::17] = np.nan  # unknown flux counts as bright
    got = crowded(x, y, flux, radius=4.0, ratio=0.5)
    np.testing.assert_array_equal(got, _brute_force(x, y, flux, 4.0, 0.5))
    assert 0 < got.sum() < got.size


def test_no_radius_or_a_single_star_has_no_neighbours():
    x, y = np.array([0.0, 1.0]), np.array([0.0, 0.0])
    assert not crowded(x, y, None, radius=0.0, ratio=0.1).any()
    assert not crowded(x[:1], y[:1], None, radius=5.0, ratio=0.1).any()
    assert crowded(x, y, None, radius=5.0, ratio=0.1).all()
