"""Side-2 temperature scaling of dark frames (issue 9.2) against the simulator's truth.

The simulator multiplies each Side-2 frame's true rate by ``1 + 0.07 (OCCDHTAV - 18)``
(its truth records the factor per frame, ``dark_scale``, and the rate at 18 C,
``dark_rate``); the pulls below use the expected error of a steady pixel computed here
from the truth, not from the code tested.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits

from stiscube import PixelDB, compute_properties
from stiscube.datasets.simulate import (
    EVENT_COSMIC_RAY,
    EVENT_FILL,
    EVENT_NAN,
    DarkPhysics,
    simulate_darks,
)
from stiscube.io.darks import TemperatureCorrection, read_frames

ALL_EVENTS = EVENT_COSMIC_RAY | EVENT_NAN | EVENT_FILL
SHAPE = (64, 64)


def _simulate(path, drift: float, mean: float):
    return simulate_darks(
        path,
        n_periods=1,
        frames_per_period=24,
        shape=SHAPE,
        seed=91,
        start="2012-03-01",  # Side-2
        # a dark rate whose 7 %/C is well above the noise of the mean
        physics=DarkPhysics(temperature=mean, temperature_drift=drift, dark_rate=0.02,
                            initial_hot_fraction=0.01),
    )


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    """OCCDHTAV 18.5 +- 2 C over the period: true rates up to 17 % above the 18 C rate."""
    return _simulate(tmp_path_factory.mktemp("drift"), drift=2.0, mean=18.5)


@pytest.fixture(scope="module")
def steady(tmp_path_factory):
    """The same detector at 18.0 C throughout (factor 1)."""
    return _simulate(tmp_path_factory.mktemp("steady"), drift=0.0, mean=18.0)


def _pulls(sim, props):
    """(sci_mean - D) / sigma for normal pixels, sigma the expected error of the mean
    rate at 18 C of a steady pixel: sqrt(sum(RN^2 + D s_i t_i)) / sum(s_i t_i)."""
    truth = sim.truth(1)
    t = truth["exptime"].values[:, None, None]
    s = truth["dark_scale"].values[:, None, None]
    kept = (truth["events"].values & ALL_EVENTS) == 0
    rate = truth["dark_rate"].values.astype(np.float64)
    rn2 = truth["readnoise"].values.astype(np.float64) ** 2
    sigma = np.sqrt(np.where(kept, rn2 + rate * s * t, 0).sum(0)) / np.where(
        kept, s * t, 0
    ).sum(0)
    normal = (truth["hot_rate"].values == 0) & (truth["flicker_amplitude"].values == 0)
    return ((props["sci_mean"].values - rate) / sigma)[normal]


def test_simulated_temperatures_are_in_the_sci_headers(drifting):
    truth = drifting.truth(1)
    written = [fits.getval(p, "OCCDHTAV", ext=("SCI", 1)) for p in drifting.files[1]]
    np.testing.assert_allclose(written, truth["occdhtav"].values)
    assert min(written) < 17.0 and max(written) > 20.0  # the drift spans 4 C
    np.testing.assert_allclose(truth["dark_scale"].values, 1 + 0.07 * (np.array(written) - 18))
    assert "OCCDHTAV" not in fits.getheader(drifting.files[1][0], 0)  # SCI only, as in HST


def test_scaling_recovers_the_rate_with_pulls_as_good_as_without_drift(drifting, steady):
    drift_pulls = _pulls(drifting, compute_properties(drifting.files[1]).compute())
    steady_pulls = _pulls(steady, compute_properties(steady.files[1]).compute())
    n = drift_pulls.size
    assert n > 3500
    for pulls in (drift_pulls, steady_pulls):
        assert 0.85 <= pulls.std() <= 1.2, pulls.std()
        assert abs(pulls.mean()) < 5 / math.sqrt(n), pulls.mean()
    assert abs(drift_pulls.std() - steady_pulls.std()) < 0.05
    assert abs(drift_pulls.mean() - steady_pulls.mean()) < 6 / math.sqrt(n)


def test_switching_the_scaling_off_shows_the_drift(drifting):
    props = compute_properties(
        drifting.files[1], temperature=TemperatureCorrection(enabled=False)
    ).compute()
    assert props.attrs["temperature_correction"] == "off"
    assert (props["dark_scale"].values == 1).all()
    pulls = _pulls(drifting, props)
    # the mean factor over the period is about 1.035 (mean OCCDHTAV 18.5 C): a bias of
    # 0.035 * 0.02 e-/s, several standard errors of the mean pull
    assert pulls.mean() > 20 / math.sqrt(pulls.size), pulls.mean()
    truth = drifting.truth(1)
    t = truth["exptime"].values
    mean_factor = float((truth["dark_scale"].values * t).sum() / t.sum())
    assert 1.02 < mean_factor < 1.05
    # hot pixels (bright, so the factor is measured precisely): uncorrected / corrected
    on = compute_properties(drifting.files[1]).compute()
    onset = truth["hot_onset_mjd"].values  # -inf: hot before the period; NaN: never
    hot = (truth["hot_rate"].values > 1) & (onset < truth["start_mjd"].values.min())
    assert hot.sum() >= 3
    # where no sample is excluded either way, off / on = sum(s_i t_i) / sum(t_i) exactly
    same = hot & (props["nan_count"].values == 0) & (on["nan_count"].values == 0)
    assert same.sum() >= 3
    ratio = props["sci_mean"].values[same] / on["sci_mean"].values[same]
    np.testing.assert_allclose(ratio, mean_factor, rtol=1e-5)
    # the drift makes bright pixels look unstable (reduced chi well above 1) when it is not
    # removed, and steady (about 1) when it is
    assert np.median(on["stability"].values[hot]) < 1.5
    assert np.median(props["stability"].values[hot]) > 2.5
    # and the corrected value is the 18-C truth
    np.testing.assert_allclose(
        on["sci_mean"].values[hot], truth["mean_rate"].values[hot], rtol=0.03
    )


def test_temperature_recorded_in_the_period_and_invalid_values_kept(drifting, tmp_path):
    """A frame without OCCDHTAV, and one at -1 (the Side-1 value), keep their values; the
    period says how many frames were scaled and why the others were not."""
    files = [tmp_path / p.name for p in drifting.files[1]]
    for src, dst in zip(drifting.files[1], files, strict=True):
        dst.write_bytes(src.read_bytes())
    with fits.open(files[3], mode="update") as hdul:
        del hdul["SCI", 1].header["OCCDHTAV"]
    with fits.open(files[5], mode="update") as hdul:
        hdul["SCI", 1].header["OCCDHTAV"] = -1.0
    assert math.isnan(read_frames(files[3])[0].occdhtav)
    assert math.isnan(read_frames(files[5])[0].occdhtav)
    db = PixelDB.create(tmp_path / "db", periods=drifting.periods, shape=SHAPE)
    props = db.ingest_darks(files, 1)
    text = db.dataset["temperature_correction"].sel(anneal=1).item()
    assert text.startswith("1/(1+0.07*(OCCDHTAV-18)) Side-2: 22 of 24 frames scaled")
    assert "2 Side-2 frames without a valid OCCDHTAV kept unscaled" in text
    frames = {f["frame"]: f for f in db.store.slice_extras(1)["frames"]}
    for path in (files[3], files[5]):
        record = frames[fits.getval(path, "ROOTNAME")]
        assert record["dark_scale"] == 1.0 and record["occdhtav"] is None
        assert not record["temperature_scaled"]
    temps = {fits.getval(p, "ROOTNAME"): fits.getval(p, "OCCDHTAV", ext=1) for p in files[:3]}
    for root, temp in temps.items():
        assert frames[root]["dark_scale"] == pytest.approx(1 + 0.07 * (temp - 18))
    assert props.attrs["temperature_correction"] == text


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"coefficient": -0.1}, ValueError, r"coefficient must be in \[0, 1\)"),
        ({"reference": float("nan")}, ValueError, "reference must be finite"),
        ({"enabled": "yes"}, TypeError, "enabled must be True or False"),
        ({"side2_start": "2001"}, TypeError, "side2_start must be a number"),
    ],
)
def test_bad_temperature_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        TemperatureCorrection(**kwargs)
