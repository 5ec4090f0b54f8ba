"""The measured read noise: per pixel (the ``readnoise`` property) against the simulator's
truth, and per amplifier (:func:`amplifier_readnoise`) against the truth and a real FLT."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from stiscube.datasets.simulate import DarkPhysics, simulate_stack
from stiscube.properties.compute import properties_from_stack
from stiscube.properties.readnoise import amplifier_readnoise, pair_readnoise_squared

FRAMES = 40  # the monitor takes 40-60 long darks per period
SHAPE = (64, 64)


def _period(readnoise, seed, start):
    stack, truth = simulate_stack(
        n_frames=FRAMES, shape=SHAPE, seed=seed, start=start,
        physics=DarkPhysics(readnoise=readnoise),
    )
    return stack, truth, properties_from_stack(stack)


@pytest.fixture(scope="module")
def periods():
    """Three periods, the read noise stepping up by 10 % in the third."""
    truths = (6.0, 6.0, 6.6)
    starts = ("2020-01-01", "2020-02-01", "2020-03-01")
    return [_period(rn, 30 + k, s) for k, (rn, s) in enumerate(zip(truths, starts, strict=True))]


def test_per_period_median_follows_the_truth_and_shows_a_step(periods):
    medians = np.array([np.nanmedian(p["readnoise"].values) for _, _, p in periods])
    truth = np.array([np.median(t["readnoise"].values) for _, t, _ in periods])
    # within 2 % of the truth (the documented median bias is -1 % at 40 frames)
    np.testing.assert_array_less(np.abs(medians / truth - 1), 0.02)
    # the step: the period-to-period change exceeds 5 % only in the period it happens
    change = medians[1:] / medians[:-1] - 1
    assert abs(change[0]) < 0.01
    assert change[1] == pytest.approx(0.10, abs=0.02)


def test_per_pixel_scatter_is_the_documented_error(periods):
    """Relative error of a steady pixel's value: (sigma**2 / RN**2) / sqrt(2 (m - 1))."""
    stack, truth, props = periods[0]
    steady = (truth["hot_rate"].values == 0) & (truth["flicker_amplitude"].values == 0)
    m = FRAMES - props["nan_count"].values[steady]
    rn = truth["readnoise"].values[steady]
    sigma2 = rn**2 + truth["dark_rate"].values[steady] * stack["exptime"].values.mean()
    expected = np.median((sigma2 / rn**2) / np.sqrt(2 * (m - 1)))
    ratio = props["readnoise"].values[steady] / rn
    robust_sd = 1.4826 * np.median(np.abs(ratio - np.median(ratio)))
    assert robust_sd == pytest.approx(expected, rel=0.15)


def test_per_pixel_values_against_plain_numpy(stack_and_truth):
    """The property against its formula computed here with numpy from the kept samples."""
    from stiscube.properties._kernels import reject_cosmic_rays

    stack, _ = stack_and_truth
    arrays = [stack[v].values for v in ("sci", "err", "dq", "exptime", "gain")]
    kept = reject_cosmic_rays(*arrays, axis=0)
    e = np.where(kept, arrays[0] * arrays[4][:, None, None], np.nan).astype(np.float64)
    t = np.where(kept, arrays[3][:, None, None], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.nansum(e, 0) / np.nansum(t, 0)
        m = kept.sum(0)
        scatter = np.nansum((e - rate * t) ** 2, 0) / (m - 1)
        expected = np.sqrt(np.clip(scatter - np.maximum(np.nansum(e, 0), 0) / m, 0, None))
    expected[m < 2] = np.nan
    got = properties_from_stack(stack)["readnoise"].values
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_amplifier_readnoise_on_simulated_darks(periods):
    for stack, truth, _ in periods:
        got = amplifier_readnoise(stack)
        assert got == pytest.approx(np.median(truth["readnoise"].values), rel=0.02)


def test_amplifier_readnoise_of_the_real_two_imset_flt(real_dir):
    """o4k19a010: two 150-s sky frames, READNSE 3.99 e-.  Measured 3.78 e- (-5.3 %); the
    module docstring explains why two sky frames pin it to about 5 %, not better."""
    with fits.open(real_dir / "stis" / "o4k19a010_flt.fits") as hdul:
        readnse = hdul[0].header["READNSE"]
        gain = hdul[0].header["ATODGAIN"]
        sci = np.stack([hdul["SCI", k].data for k in (1, 2)])
        dq = np.stack([hdul["DQ", k].data for k in (1, 2)])
        exptime = [hdul["SCI", k].header["EXPTIME"] for k in (1, 2)]
    stack = xr.Dataset(
        {"sci": (("frame", "row", "col"), sci), "dq": (("frame", "row", "col"), dq)},
        coords={"exptime": ("frame", exptime), "gain": ("frame", [gain, gain])},
    )
    got = amplifier_readnoise(stack)
    assert readnse == 3.99
    assert got == pytest.approx(3.78, abs=0.01)
    assert abs(got / readnse - 1) < 0.06
    # the per-pixel property cannot show it from two frames: most pixels give 0
    e = sci.astype(np.float64) * gain
    per_pixel = (e[1] - e[0]) ** 2 / 2 - np.maximum(e.mean(0), 0)
    assert np.median(per_pixel) < 0


def test_amplifier_readnoise_refuses_bad_input(stack_and_truth):
    stack, _ = stack_and_truth
    with pytest.raises(ValueError, match="needs at least two frames, got 1"):
        amplifier_readnoise(stack.isel(frame=[0]))
    mixed = stack.assign_coords(ccdamp=("frame", ["A"] + ["D"] * (stack.sizes["frame"] - 1)))
    with pytest.raises(ValueError, match="several amplifiers"):
        amplifier_readnoise(mixed)
    times = stack.assign_coords(exptime=("frame", np.arange(1.0, stack.sizes["frame"] + 1) * 100))
    with pytest.raises(ValueError, match="no pair of consecutive frames"):
        amplifier_readnoise(times)
    with pytest.raises(ValueError, match="the two frames must have one shape"):
        pair_readnoise_squared(np.ones(3), np.ones(4), None, None, 1.0, 1.0, dq_mask=0)


def test_simulated_mission_periods_follow_the_truth(tmp_path):
    """The simulated mission (40-60 darks per period, read noise growing over the mission):
    each period's median within 2 % of its truth (measured -0.3 to -1.3 % in 2012)."""
    from stiscube.datasets.mission import simulate_mission
    from stiscube.properties.compute import compute_properties

    sim = simulate_mission(tmp_path, start="2012-01-01", end="2012-02-15", shape=(64, 64), seed=3)
    assert len(sim.files) >= 2
    for number, files in sim.files.items():
        assert len(files) >= 40
        measured = np.nanmedian(compute_properties(files)["readnoise"].values)
        truth = np.median(sim.truth(number)["readnoise"].values)
        assert abs(measured / truth - 1) < 0.02, (number, measured, truth)
