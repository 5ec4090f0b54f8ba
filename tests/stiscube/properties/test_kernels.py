"""The numpy kernels against an independent plain-numpy implementation written here."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from stiscube.properties._kernels import (
    ClipOptions,
    masked_median,
    pixel_properties,
    reject_cosmic_rays,
)
from stiscube.schema import DEFAULT_DARK_DQ_MASK

EPS32 = float(np.finfo(np.float32).eps)
OPTIONS = {
    "dq_mask": DEFAULT_DARK_DQ_MASK,
    "cr_sigma": 5.0,
    "maxiters": 10,
    "state_fraction": 0.2,
    "min_state": 4,
    "state_sigma": 4.0,
    "min_tail": 3,
}


def _arrays(stack):
    return (
        stack["sci"].values,
        stack["err"].values,
        stack["dq"].values,
        stack["exptime"].values,
        stack["gain"].values,
    )


def reference_kept(
    sci, err, dq, t, g, *, dq_mask, cr_sigma, maxiters, state_fraction, min_state, state_sigma,
    min_tail,
):
    """The documented clipping, one pixel at a time, in float64 (frames on axis 0)."""
    n, ny, nx = sci.shape
    kept_all = np.zeros(sci.shape, dtype=bool)
    z_all = np.full(sci.shape, np.nan)
    for y in range(ny):
        for x in range(nx):
            e = g * sci[:, y, x].astype(np.float64)
            big_e = g * err[:, y, x].astype(np.float64)
            with np.errstate(invalid="ignore"):
                valid = (
                    np.isfinite(e)
                    & np.isfinite(big_e)
                    & (big_e > 0)
                    & ((dq[:, y, x] & dq_mask) == 0)
                )
            v = np.where(valid, np.maximum(big_e**2 - np.maximum(e, 0), 0), 0)
            r = np.where(valid, e / t, 0)
            kept = valid.copy()
            protected = np.zeros(n, dtype=bool)
            need = max(min_state, math.ceil(state_fraction * valid.sum()))
            center = np.median(r[valid]) if valid.any() else np.nan

            def state(sel, need, e=e, v=v, r=r):
                """The samples of *sel* within state_sigma of their median rate, if at
                least *need* of them (none otherwise)."""
                level = np.median(r[sel])
                dev = np.abs(e - level * t) / np.sqrt(v + np.maximum(level * t, 0))
                members = sel & (dev <= state_sigma)
                return members if members.sum() >= need else np.zeros(n, dtype=bool)

            z = np.full(n, np.nan)
            for _ in range(maxiters):
                with np.errstate(invalid="ignore", divide="ignore"):
                    z = (e - center * t) / np.sqrt(v + np.maximum(center * t, 0))
                    cand = kept & ~protected & (z > cr_sigma)
                if cand.sum() >= need:
                    members = state(cand, need)
                    protected |= members
                    cand &= ~members
                if min_tail and cand.sum() >= min_tail:
                    # the candidates after the last kept sample that is not a candidate
                    tail = np.zeros(n, dtype=bool)
                    for i in range(n - 1, -1, -1):
                        if cand[i]:
                            tail[i] = True
                        elif kept[i]:
                            break
                    if tail.sum() >= min_tail:
                        members = state(tail, min_tail)
                        protected |= members
                        cand &= ~members
                if not cand.any():
                    break
                kept &= ~cand
                center = np.median(r[kept])
            kept_all[:, y, x] = kept
            z_all[:, y, x] = z
    return kept_all, z_all


def reference_properties(sci, err, t, g, kept):
    """The five formulas in float64 for given kept samples (frames on axis 0)."""
    t3 = t[:, None, None]
    g3 = g[:, None, None]
    e = np.where(kept, g3 * sci.astype(np.float64), 0)
    big_e = np.where(kept, g3 * err.astype(np.float64), 1)
    m = kept.sum(0)
    total_t = (kept * t3).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sci_mean = e.sum(0) / total_t
        err_mean = np.where(kept, big_e, 0).sum(0) / total_t
        chi = np.where(kept, (e / t3 - sci_mean) / (big_e / t3), 0)
        stability = np.sqrt((chi**2).sum(0) / (m - 1))
        # measured: temporal scatter about sci_mean * t minus the mean electrons (Poisson)
        scatter = np.where(kept, (e - sci_mean * t3) ** 2, 0).sum(0) / (m - 1)
        readnoise = np.sqrt(np.maximum(scatter - np.maximum(e.sum(0), 0) / m, 0))
    stability = np.where(m >= 2, stability, np.nan)
    readnoise = np.where(m >= 2, readnoise, np.nan)
    return {
        "sci_mean": sci_mean,
        "err_mean": err_mean,
        "stability": stability,
        "nan_count": sci.shape[0] - m,
        "readnoise": readnoise,
        "abs_e": (np.abs(e).sum(0) / total_t),
    }


NAMES = ("sci_mean", "err_mean", "stability", "nan_count", "readnoise")


def _compare(out, ref, n):
    got = dict(zip(NAMES, out, strict=True))
    np.testing.assert_array_equal(got["nan_count"], ref["nan_count"])
    for name in ("sci_mean", "err_mean", "stability", "readnoise"):
        np.testing.assert_array_equal(np.isnan(got[name]), np.isnan(ref[name]), err_msg=name)
    ok = np.isfinite(ref["sci_mean"])
    # float32 rounding of a sum of n terms: n * eps * sum|terms| (over the same denominator).
    bound = 4 * n * EPS32 * ref["abs_e"][ok]
    assert np.all(np.abs(got["sci_mean"][ok] - ref["sci_mean"][ok]) <= bound)
    np.testing.assert_allclose(got["err_mean"][ok], ref["err_mean"][ok], rtol=4 * n * EPS32)
    fin = np.isfinite(ref["stability"])
    np.testing.assert_allclose(got["stability"][fin], ref["stability"][fin], rtol=1e-4)
    np.testing.assert_allclose(got["readnoise"][fin], ref["readnoise"][fin], rtol=1e-4, atol=1e-4)


def test_formulas_without_clipping(stack_and_truth):
    """No clipping (huge threshold): the five formulas against float64 numpy."""
    stack, _ = stack_and_truth
    sci, err, dq, t, g = _arrays(stack)
    out = pixel_properties(sci, err, dq, t, g, axis=0, clip=ClipOptions(cr_sigma=1e30))
    valid = np.isfinite(sci) & (err > 0) & ((dq & DEFAULT_DARK_DQ_MASK) == 0)
    _compare(out, reference_properties(sci, err, t, g, valid), sci.shape[0])


def test_clipping_and_properties_match_the_reference(stack_and_truth):
    stack, _ = stack_and_truth
    sci, err, dq, t, g = _arrays(stack)
    kept_ref, z = reference_kept(sci, err, dq, t, g, **OPTIONS)
    kept = reject_cosmic_rays(sci, err, dq, t, g, axis=0, clip=ClipOptions(**OPTIONS))
    differ = kept != kept_ref
    # Decisions may only differ (float32 vs float64) for samples on the threshold itself.
    assert np.all(np.abs(z[differ] - OPTIONS["cr_sigma"]) < 1e-4), z[differ]
    assert (~kept_ref).sum() > 50  # the test data has plenty to reject
    out = pixel_properties(sci, err, dq, t, g, axis=0, clip=ClipOptions(**OPTIONS))
    _compare(out, reference_properties(sci, err, t, g, kept), sci.shape[0])


def test_axis_and_gain_do_not_matter(stack_and_truth):
    stack, _ = stack_and_truth
    sci, err, dq, t, g = _arrays(stack)
    base = pixel_properties(sci, err, dq, t, g, axis=0)
    moved = pixel_properties(
        np.moveaxis(sci, 0, -1), np.moveaxis(err, 0, -1), np.moveaxis(dq, 0, -1), t, g, axis=-1
    )
    for a, b in zip(base, moved, strict=True):
        np.testing.assert_array_equal(a, b)
    # Counts at gain 4 are a quarter of the electrons: same properties in electrons.
    gain4 = pixel_properties(sci / 4, err / 4, dq, t, g * 4, axis=0)
    for name, a, b in zip(NAMES, base, gain4, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def _pixel(levels, t, rng, rn=6.0):
    """One pixel's samples (electrons = counts at gain 1) for per-frame true rates."""
    signal = rng.poisson(levels * t) + rn * rng.standard_normal(t.size)
    err = np.sqrt(rn**2 + np.maximum(signal, 0))
    return signal.astype(np.float32), err.astype(np.float32)


def test_recurring_level_is_a_state_and_single_hits_are_cosmic_rays():
    rng = np.random.default_rng(4)
    n = 24
    t = np.full(n, 1100.0)
    high = np.zeros(n, dtype=bool)
    high[[1, 4, 7, 11, 15, 19, 22]] = True  # 7 of 24 frames (29%) in the upper state
    cases = {}
    levels = 0.004 + 0.3 * high
    cases["flicker"] = _pixel(levels, t, rng)
    sci, err = _pixel(levels, t, rng)
    sci[2] += 2000.0  # a cosmic ray in a low-state frame
    err[2] = np.sqrt(err[2] ** 2 + 2000.0)
    cases["flicker+cr"] = (sci, err)
    rare = np.zeros(n, dtype=bool)
    rare[[5, 17]] = True  # only 2 frames high: cannot be told from cosmic rays
    cases["rare"] = _pixel(0.004 + 0.3 * rare, t, rng)
    late = np.arange(n) >= 18  # hot from frame 18 on (6 frames, 25%)
    cases["late"] = _pixel(0.004 + 0.5 * late, t, rng)
    sci = np.stack([c[0] for c in cases.values()], axis=-1)
    err = np.stack([c[1] for c in cases.values()], axis=-1)
    dq = np.zeros(sci.shape, dtype=np.int16)
    kept = reject_cosmic_rays(sci, err, dq, t, np.ones(n), axis=0)
    assert kept[:, 0].all()
    assert np.flatnonzero(~kept[:, 1]).tolist() == [2]
    assert np.flatnonzero(~kept[:, 2]).tolist() == [5, 17]
    assert kept[:, 3].all()
    sci_mean, _, stability, nan_count, _ = pixel_properties(sci, err, dq, t, np.ones(n), axis=0)
    assert nan_count.tolist() == [0, 1, 2, 0]
    assert stability[0] > 10 and stability[3] > 10 and stability[2] < 2
    assert sci_mean[3] == pytest.approx(0.004 + 0.5 * 6 / 24, rel=0.05)


def test_edge_pixels():
    n = 6
    t = np.full(n, 1100.0)
    sci = np.full((n, 3), 5.0, dtype=np.float32)
    err = np.full((n, 3), np.sqrt(36 + 5.0), dtype=np.float32)
    sci[:, 0] = np.nan  # nothing valid
    sci[1:, 1] = np.nan  # one valid sample
    dq = np.zeros((n, 3), dtype=np.int16)
    dq[0, 2] = 256  # saturated: masked by default
    sci_mean, err_mean, stability, nan_count, readnoise = pixel_properties(
        sci, err, dq, t, np.ones(n), axis=0
    )
    assert nan_count.tolist() == [6, 5, 1]
    assert np.isnan([sci_mean[0], err_mean[0], stability[0], readnoise[0]]).all()
    assert np.isnan(stability[1]) and sci_mean[1] == pytest.approx(5 / 1100)
    assert np.isnan(readnoise[1])  # one sample: no scatter to measure
    assert readnoise[2] == 0  # constant samples: no scatter, clipped at 0 below Poisson
    unmasked = pixel_properties(sci, err, dq, t, np.ones(n), axis=0, clip=ClipOptions(dq_mask=0))
    assert unmasked[3].tolist() == [6, 5, 0]
    assert nan_count.dtype == np.int32 and sci_mean.dtype == np.float32


def test_masked_median_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 50, 9)).astype(np.float32)
    mask = rng.random(x.shape) < 0.7
    mask[0, :, 0] = False  # no selected sample along the axis for (0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on the all-NaN slice
        expected = np.nanmedian(np.where(mask, x, np.nan), axis=1)
    got = masked_median(x, mask, axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert np.isnan(got[0, 0])


@pytest.mark.parametrize(
    ("option", "value", "error", "match"),
    [
        ("cr_sigma", 0, ValueError, "cr_sigma must be > 0, got 0"),
        ("cr_sigma", float("nan"), ValueError, "cr_sigma must be finite, got nan"),
        ("maxiters", 0, ValueError, "maxiters must be an integer >= 1, got 0"),
        ("maxiters", 2.5, TypeError, "maxiters must be an integer >= 1, got 2.5"),
        ("dq_mask", -1, ValueError, r"dq_mask must be an integer in \[0, 32767\], got -1"),
        ("dq_mask", 1.0, TypeError, r"dq_mask must be an integer in \[0, 32767\], got 1.0"),
        ("state_fraction", 0, ValueError, r"state_fraction must be in \(0, 1\]"),
        ("min_state", 1, ValueError, "min_state must be an integer >= 2"),
        ("state_sigma", -3, ValueError, "state_sigma must be > 0"),
    ],
)
def test_bad_options_name_the_parameter(option, value, error, match):
    sci = np.ones((3, 2), dtype=np.float32)
    with pytest.raises(error, match=match):
        pixel_properties(sci, sci, None, [1.0] * 3, [1.0] * 3, axis=0,
                         clip=ClipOptions(**{option: value}))


def test_bad_per_frame_values():
    sci = np.ones((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"exptime must be finite and > 0 for every frame"):
        pixel_properties(sci, sci, None, [1.0, 0.0, 1.0], [1.0] * 3, axis=0)
    with pytest.raises(ValueError, match=r"gain must hold one value per frame \(3\)"):
        pixel_properties(sci, sci, None, [1.0] * 3, [1.0] * 2, axis=0)
    with pytest.raises(ValueError, match="sci and err must have the same shape"):
        pixel_properties(sci, sci[:2], None, [1.0] * 3, [1.0] * 3, axis=0)


@pytest.mark.parametrize(("z", "rejected"), [(4.8, False), (5.2, True), (5.8, True), (4.99, False)])
def test_cosmic_ray_cut_sits_at_cr_sigma(z, rejected):
    """Issue 15: one sample at z = 4.8 is kept and one at 5.2 rejected with cr_sigma = 5
    (a cut moved to 5.5 sigma, e.g. (cr_sigma + 0.5)**2, keeps the 5.2 sample).

    Hand-built pixel: 19 samples of 0 e- and one of ``z * RN`` e- (RN = 10 e-, gain 1,
    t = 1000 s); ERR**2 = RN**2 + max(signal, 0) as calstis writes it, so the median rate
    is 0 and the noise of every sample at that centre is exactly RN: z_i = e_i / RN.
    """
    n, rn = 20, 10.0
    sci = np.zeros((1, 1, n), dtype=np.float32)
    sci[0, 0, 7] = z * rn
    err = np.sqrt(rn**2 + np.maximum(sci, 0)).astype(np.float32)
    dq = np.zeros(sci.shape, dtype=np.int16)
    t = np.full(n, 1000.0)
    g = np.ones(n)
    kept = reject_cosmic_rays(sci, err, dq, t, g, clip=ClipOptions(**OPTIONS))
    assert kept[0, 0, 7] == (not rejected)
    assert kept[0, 0].sum() == n - rejected
    out = pixel_properties(sci, err, dq, t, g, clip=ClipOptions(**OPTIONS))
    out = dict(zip(NAMES, out, strict=True))
    assert out["nan_count"][0, 0] == int(rejected)
    # the mean rate: with the sample (z * RN / 20000 s) or without it (0)
    expected = 0.0 if rejected else z * rn / (n * 1000.0)
    assert out["sci_mean"][0, 0] == pytest.approx(expected, abs=1e-9)
    # and against the independent per-pixel reference implementation above
    ref_kept, ref_z = reference_kept(
        np.moveaxis(sci, -1, 0), np.moveaxis(err, -1, 0), np.moveaxis(dq, -1, 0), t, g, **OPTIONS
    )
    assert ref_kept[7, 0, 0] == (not rejected)
    assert ref_z[7, 0, 0] == pytest.approx(z, rel=1e-5)
