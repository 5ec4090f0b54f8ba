"""The compiled kernel (numba) against its oracle, the numpy reference kernel.

The numpy kernels (:mod:`stiscube.properties._kernels`) are themselves tested against a
per-pixel float64 implementation (test_kernels.py); here the compiled kernel must take
the same clipping decisions and give the same statistics to float32 rounding, on random
and adversarial stacks, and count the valid samples per frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from stiscube.datasets.simulate import DarkPhysics, simulate_stack
from stiscube.properties._compiled import band_properties
from stiscube.properties._kernels import ClipOptions, pixel_properties, reject_cosmic_rays
from stiscube.schema import DEFAULT_DARK_DQ_MASK

NAMES = ("sci_mean", "err_mean", "stability", "nan_count", "readnoise")
EPS32 = float(np.finfo(np.float32).eps)


def _compiled(sci, err, dq, t, g, options):
    """The compiled kernel on (n, rows, cols) stacks, as compute.py hands them over."""
    return band_properties(sci, err, dq, t, g, clip=options)


def _assert_same(sci, err, dq, t, g, options=None):
    options = options or ClipOptions()
    got = _compiled(sci, err, dq, t, g, options)
    expected = pixel_properties(sci, err, dq, t, g, axis=0, clip=options)
    n = sci.shape[0]
    for name, a, b in zip(NAMES, got[:5], expected, strict=True):
        assert a.dtype == b.dtype, name
        if name == "nan_count":  # the same kept samples
            np.testing.assert_array_equal(a, b, err_msg=name)
            continue
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        # float32 sums of n terms (the reference) against float64 sums (the kernel)
        np.testing.assert_allclose(a, b, rtol=4 * n * EPS32, atol=1e-7, err_msg=name)
    # valid samples per row and frame, against the definition computed here
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(sci) & np.isfinite(err) & (err > 0)
    if dq is not None:
        valid &= (dq & options.dq_mask) == 0
    np.testing.assert_array_equal(got[5], valid.sum(axis=2).T)
    return got


def _random_stack(rng, n, shape=(6, 40), rn=5.0, rate=0.01, t=1100.0):
    signal = rng.poisson(rate * t, size=(n, *shape)) + rn * rng.standard_normal((n, *shape))
    sci = signal.astype(np.float32)
    err = np.sqrt(rn**2 + np.maximum(sci, 0)).astype(np.float32)
    dq = np.zeros(sci.shape, np.int16)
    return sci, err, dq, np.full(n, t), np.ones(n)


def test_simulated_period_with_every_kind_of_event(stack_and_truth):
    stack, _ = stack_and_truth
    arrays = [stack[v].values for v in ("sci", "err", "dq", "exptime", "gain")]
    _assert_same(*arrays)
    kept = reject_cosmic_rays(*arrays, axis=0)
    assert (~kept).sum() > 100  # plenty rejected: the comparison covers the clip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_stacks_with_cosmic_rays_states_and_bad_samples(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 70))
    sci, err, dq, t, g = _random_stack(rng, n)
    t = rng.choice([60.0, 1000.0, 1100.0, 1200.0], size=n)  # mixed exposure times
    g = rng.choice([1.0, 4.0], size=n)
    hits = rng.random(sci.shape) < 0.05
    sci[hits] += rng.exponential(300.0, hits.sum()).astype(np.float32)
    flicker = rng.random(sci.shape[1:]) < 0.2  # a recurring upper level
    up = (rng.random(sci.shape) < 0.35) & flicker
    sci[up] += np.float32(200.0)
    err = np.sqrt(25 + np.maximum(sci, 0)).astype(np.float32)
    sci[rng.random(sci.shape) < 0.02] = np.nan
    err[rng.random(sci.shape) < 0.01] = 0.0
    err[rng.random(sci.shape) < 0.01] = np.inf
    dq[rng.random(sci.shape) < 0.03] = 256
    dq[rng.random(sci.shape) < 0.03] = 16  # not in the default mask
    options = ClipOptions(cr_sigma=float(rng.uniform(3, 6)), min_state=int(rng.integers(2, 5)))
    _assert_same(sci, err, dq, t, g, options)


@pytest.mark.parametrize("seed", [5, 6])
def test_late_onsets_and_repeated_cosmic_rays(seed):
    """Levels held to the end (1-6 frames) and pixels hit by several similar cosmic rays."""
    rng = np.random.default_rng(seed)
    n = 30
    sci, err, dq, t, g = _random_stack(rng, n, shape=(8, 40))
    onset = rng.integers(n - 6, n + 1, size=sci.shape[1:])  # n: never
    late = np.arange(n)[:, None, None] >= onset
    sci += np.where(late, np.float32(400.0), np.float32(0.0))
    hits = rng.random(sci.shape) < 0.15
    sci[hits] += rng.normal(1000.0, 60.0, hits.sum()).astype(np.float32)
    err = np.sqrt(25 + np.maximum(sci, 0)).astype(np.float32)
    sci[rng.random(sci.shape) < 0.02] = np.nan
    for min_tail in (0, 2, 3, 5):
        _assert_same(sci, err, dq, t, g, ClipOptions(min_tail=min_tail))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_one_two_and_three_frames(n):
    rng = np.random.default_rng(n)
    sci, err, dq, t, g = _random_stack(rng, n)
    sci[0, 0, :5] += 5000.0  # a cosmic ray, with too few frames to tell
    _assert_same(sci, err, dq, t, g)


def test_all_flagged_all_nan_constant_and_tied_pixels():
    rng = np.random.default_rng(9)
    sci, err, dq, t, g = _random_stack(rng, 20, shape=(4, 10))
    dq[:, 0, 0] = 8192  # every sample flagged
    sci[:, 0, 1] = np.nan  # every sample NaN
    sci[:, 0, 2] = 7.0  # constant: every rate equal
    err[:, 0, 2] = np.sqrt(25 + 7.0)
    sci[:, 0, 3] = np.repeat(np.float32([3.0, 9.0]), 10)  # two tied halves
    sci[:, 0, 4] = 0.0
    sci[5, 0, 4] = 1e30  # a huge value (its square overflows float32)
    err[:, 0, 4] = 5.0
    sci[:19, 0, 5] = np.nan  # one valid sample
    sci[-1, 0, 6] = np.nan  # the rest one short
    dq[::2, 0, 7] = 1  # every other sample flagged
    got = _assert_same(sci, err, dq, t, g)
    assert got[3][0, 0] == 20 and np.isnan(got[0][0, 0]) and np.isnan(got[4][0, 0])
    assert got[3][0, 1] == 20
    assert got[3][0, 2] == 0 and got[0][0, 2] == pytest.approx(7.0 / 1100.0)
    assert got[3][0, 4] == 1  # the huge value is a cosmic ray
    assert got[3][0, 5] == 19 and np.isnan(got[2][0, 5])


def test_no_dq_and_no_mask():
    rng = np.random.default_rng(4)
    sci, err, dq, t, g = _random_stack(rng, 12)
    dq[3] = DEFAULT_DARK_DQ_MASK
    _assert_same(sci, err, None, t, g)
    _assert_same(sci, err, dq, t, g, ClipOptions(dq_mask=0))


def test_bad_shapes_and_per_frame_values():
    sci = np.ones((3, 2, 4), np.float32)
    with pytest.raises(ValueError, match=r"sci and err must be \(n, rows, cols\) arrays"):
        band_properties(sci, sci[:1], None, [1.0] * 3, [1.0] * 3, clip=ClipOptions())
    with pytest.raises(ValueError, match=r"dq must have the shape of sci"):
        band_properties(sci, sci, sci[:1], [1.0] * 3, [1.0] * 3, clip=ClipOptions())
    with pytest.raises(ValueError, match=r"exptime must be finite and > 0 for every frame"):
        band_properties(sci, sci, None, [1.0, -1.0, 1.0], [1.0] * 3, clip=ClipOptions())


def test_gain_four_period_in_electrons():
    stack, _ = simulate_stack(n_frames=8, shape=(8, 16), seed=8,
                              physics=DarkPhysics(ccdgain=4, atodgain=4.0))
    _assert_same(*(stack[v].values for v in ("sci", "err", "dq", "exptime", "gain")))
