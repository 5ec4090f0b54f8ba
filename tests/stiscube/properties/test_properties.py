"""compute_properties against the simulator's truth (the acceptance statistics) and its API."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from stiscube import ClipOptions, compute_properties
from stiscube.datasets.simulate import EVENT_COSMIC_RAY, EVENT_FILL, EVENT_NAN
from stiscube.io.darks import open_darks
from stiscube.properties._kernels import pixel_properties
from stiscube.properties.compute import PROPERTIES, properties_from_stack
from stiscube.schema import DEFAULT_DARK_DQ_MASK
from stores.common.provenance import from_attrs

ALL_EVENTS = EVENT_COSMIC_RAY | EVENT_NAN | EVENT_FILL


def _categories(truth):
    """Masks of the truth's pixel kinds for one period."""
    hot = truth["hot_rate"].values > 0
    flicker = truth["flicker_amplitude"].values > 0
    onset = truth["hot_onset_mjd"].values
    start = truth.attrs["start_mjd"]
    return {
        "normal": ~hot & ~flicker,
        "flicker": flicker,
        "hot_throughout": hot & (onset < start),
        "hot_born": hot & (onset >= start),
    }


def _expected_error(truth):
    """Standard deviation of sci_mean for a steady pixel of rate D, from the truth:
    sqrt(sum_i (RN**2 + D t_i)) / sum_i t_i over the samples not hit by an event."""
    t = truth["exptime"].values[:, None, None]
    kept = (truth["events"].values & ALL_EVENTS) == 0
    rn2 = truth["readnoise"].values.astype(np.float64) ** 2
    rate = truth["dark_rate"].values.astype(np.float64)
    variance = np.where(kept, rn2 + rate * t, 0).sum(0)
    return np.sqrt(variance) / np.where(kept, t, 0).sum(0)


def test_sci_mean_pulls_of_normal_pixels(sim_props):
    pulls = []
    for props, truth in sim_props.values():
        normal = _categories(truth)["normal"]
        pull = (props["sci_mean"].values - truth["dark_rate"].values) / _expected_error(truth)
        pulls.append(pull[normal])
    pulls = np.concatenate(pulls)
    assert pulls.size > 30000
    assert 0.8 <= pulls.std() <= 1.25, pulls.std()
    assert abs(pulls.mean()) < 5 / np.sqrt(pulls.size)  # no bias beyond 5 standard errors


def test_hot_pixels_are_recovered(sim_props):
    """>= 99% of the hot pixels (true rate > 0.1 e-/s all period) are measured above 0.1."""
    recovered, born_recovered = [], []
    for props, truth in sim_props.values():
        kinds = _categories(truth)
        true_rate = truth["mean_rate"].values
        measured = props["sci_mean"].values
        hot = kinds["hot_throughout"] & (true_rate > 0.1)
        recovered.append(measured[hot] > 0.1)
        # Pixels that turned hot during the period: recoverable when their hot level is
        # seen in at least ceil(0.2 * n) frames (fewer cannot be told from cosmic rays).
        n = truth.sizes["frame"]
        frames_after = (
            truth["start_mjd"].values[:, None, None] >= truth["hot_onset_mjd"].values
        ).sum(0)
        born = kinds["hot_born"] & (true_rate > 0.1) & (frames_after >= np.ceil(0.2 * n))
        born_recovered.append(measured[born] > 0.1)
    recovered = np.concatenate(recovered)
    born_recovered = np.concatenate(born_recovered)
    assert recovered.size >= 100
    assert recovered.mean() >= 0.99, recovered.mean()
    assert born_recovered.size >= 30
    assert born_recovered.mean() >= 0.9, born_recovered.mean()


def test_readnoise_is_measured_with_its_documented_bias(sim_props):
    """The per-period median of the measured read noise against the simulator's truth,
    low by the documented chi-square median bias (sigma**2 / RN**2) / (3 (m - 1))."""
    for props, truth in sim_props.values():
        normal = _categories(truth)["normal"]
        m = truth.sizes["frame"] - props["nan_count"].values[normal]
        rn = truth["readnoise"].values[normal].astype(np.float64)
        sigma2 = rn**2 + truth["dark_rate"].values[normal] * truth["exptime"].values.mean()
        bias = np.median(-(sigma2 / rn**2) / (3 * (m - 1)))
        ratio = np.median(props["readnoise"].values[normal]) / np.median(rn)
        assert abs(ratio - (1 + bias)) < 0.01, (ratio, bias)


def test_stability_separates_flickering_pixels(sim_props):
    steady, flickering = [], []
    for props, truth in sim_props.values():
        kinds = _categories(truth)
        steady.append(props["stability"].values[kinds["normal"]])
        flickering.append(props["stability"].values[kinds["flicker"]])
    steady, flickering = np.concatenate(steady), np.concatenate(flickering)
    threshold = np.quantile(steady, 0.99)  # exceeded by 1% of the steady pixels
    assert flickering.size >= 250
    assert np.mean(flickering > threshold) >= 0.95
    assert 0.9 < np.median(steady) < 1.1  # a steady pixel's reduced chi is about 1


def test_nan_count_counts_cosmic_rays_and_nans(sim_props):
    under = over = samples = 0
    for props, truth in sim_props.values():
        normal = _categories(truth)["normal"]
        events = truth["events"].values
        injected = ((events & ALL_EVENTS) > 0).sum(0)
        nan_or_fill = ((events & (EVENT_NAN | EVENT_FILL)) > 0).sum(0)
        count = props["nan_count"].values
        assert np.all(count >= nan_or_fill)  # NaN and lost-data samples, every pixel
        under += int((count < injected)[normal].sum())
        over += int((count > injected)[normal].sum())
        samples += int(normal.sum()) * events.shape[0]
        assert ((events & EVENT_COSMIC_RAY) > 0)[:, normal].sum() > 5000
    assert under == 0  # no cosmic ray missed on a normal pixel
    assert over <= 1e-5 * samples  # chance 5-sigma excursions of steady samples


def test_attributes_and_coordinates(sim_props, sim_periods):
    props, _ = sim_props[1]
    assert list(props.data_vars) == list(PROPERTIES)
    units = {
        "sci_mean": "electron / s",
        "err_mean": "electron / s",
        "stability": "1",
        "nan_count": "1",
        "readnoise": "electron",
    }
    for name, unit in units.items():
        assert props[name].dims == ("row", "col")
        assert props[name].attrs["units"] == unit
        assert len(props[name].attrs["definition"]) > 40
    assert props["nan_count"].dtype == np.uint16 and props["sci_mean"].dtype == np.float32
    assert props["rootname"].values.tolist() == list(sim_periods.periods[1].darks)
    assert props.attrs["anneal_number"] == 1
    assert props.attrs["n_frames"] == 24
    prov = from_attrs(props.attrs)  # the stores.common.provenance record
    assert prov["options"] == {**dataclasses.asdict(ClipOptions()), "dq_mask": DEFAULT_DARK_DQ_MASK}
    assert sorted(prov["inputs"]) == sorted({str(f) for f in sim_periods.files[1]})
    assert prov["software"].startswith("stiscube ") and prov["created"].endswith("Z")
    assert props.attrs["simulated_input"] == 1


def test_lazy_until_computed_and_chunking_does_not_matter(sim_periods, raise_if_dask_computes):
    files = sim_periods.files[2]
    with raise_if_dask_computes():
        lazy = compute_properties(files, row_chunk=32)
        default = compute_properties(files)
    assert lazy["sci_mean"].chunks == ((32, 32, 32, 32), (128,))
    a, b = lazy.compute(), default.compute()
    for name in PROPERTIES:
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-6, err_msg=name)


def test_same_as_the_kernel_on_arrays_read_with_astropy(sim_periods):
    files = sim_periods.files[1]
    props = compute_properties(files).compute()
    sci = np.stack([fits.getdata(f, "SCI") for f in files])
    err = np.stack([fits.getdata(f, "ERR") for f in files])
    dq = np.stack([fits.getdata(f, "DQ") for f in files])
    t = np.array([fits.getval(f, "TEXPTIME") for f in files])
    g = np.array([fits.getval(f, "ATODGAIN") for f in files])
    expected = pixel_properties(sci, err, dq, t, g, axis=0)
    for name, value in zip(
        ("sci_mean", "err_mean", "stability", "nan_count", "readnoise"), expected, strict=True
    ):
        np.testing.assert_allclose(props[name].values, value, rtol=1e-5, atol=1e-7, err_msg=name)


def test_dq_mask_decides_what_is_excluded(sim_periods, sim_props):
    files = sim_periods.files[1]
    default, truth = sim_props[1]
    n = truth.sizes["frame"]
    blemish = truth["blemish"].values
    assert blemish.sum() > 0
    clip = ClipOptions(dq_mask=DEFAULT_DARK_DQ_MASK | 1024)
    with_blemish = compute_properties(files, clip=clip).compute()
    assert np.all(with_blemish["nan_count"].values[blemish] == n)
    assert np.all(np.isnan(with_blemish["sci_mean"].values[blemish]))
    no_mask = compute_properties(files, clip=ClipOptions(dq_mask=0)).compute()
    n_fill = ((truth["events"].values & EVENT_FILL) > 0).sum(0)
    normal = _categories(truth)["normal"] & (n_fill > 0)
    assert normal.sum() > 0
    diff = default["nan_count"].values - no_mask["nan_count"].values
    np.testing.assert_array_equal(diff[normal], n_fill[normal])


def test_properties_from_an_in_memory_stack(stack_and_truth):
    stack, truth = stack_and_truth
    props = properties_from_stack(stack)
    assert isinstance(props["sci_mean"].data, np.ndarray)
    chunked = properties_from_stack(stack.chunk({"frame": 1}))  # rechunked along frame
    assert chunked["sci_mean"].chunks is not None
    xr.testing.assert_allclose(props[list(PROPERTIES)], chunked[list(PROPERTIES)].compute())
    ratio = np.nanmedian(props["readnoise"].values) / np.median(truth["readnoise"].values)
    assert 0.95 < ratio < 1.0  # measured, low by the median bias (about 2% for 24 frames)


def test_open_darks_stack_gives_the_same_result(sim_periods):
    files = sim_periods.files[2]
    by_frame = properties_from_stack(open_darks(files))  # one frame per chunk
    direct = compute_properties(files)
    for name in PROPERTIES:
        np.testing.assert_allclose(by_frame[name].values, direct[name].values, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"row_chunk": 0}, ValueError, "row_chunk must be an integer >= 1 or None, got 0"),
        ({"clip": {"cr_sigma": 4}}, TypeError, "clip must be a ClipOptions, got dict"),
        ({"client": "tcp://nowhere"}, TypeError, "client must be a dask.distributed.Client"),
        ({"period": "200"}, TypeError, "period must be a stiscube.io.anneals.AnnealPeriod"),
    ],
)
def test_bad_options(small_darks, kwargs, error, match):
    with pytest.raises(error, match=match):
        compute_properties(small_darks.files[1], **kwargs)


def test_period_and_bounds_are_exclusive(small_darks):
    period = small_darks.periods[1]
    with pytest.raises(ValueError, match="either period or start/end, not both"):
        compute_properties(small_darks.files[1], period=period, start=period.start_mjd)


def test_stack_without_the_needed_variables(stack_and_truth):
    stack, _ = stack_and_truth
    with pytest.raises(ValueError, match=r"stack lacks \['err'\]"):
        properties_from_stack(stack.drop_vars("err"))


def test_gain_four_darks():
    """CCDGAIN=4 frames (counts = electrons / 4): properties still in electrons."""
    from stiscube.datasets.simulate import DarkPhysics, simulate_stack

    stack, truth = simulate_stack(n_frames=20, shape=(48, 48), seed=8,
                                  physics=DarkPhysics(ccdgain=4, atodgain=4.0))
    # Counts, not electrons: typical |SCI| ~ 1.5 counts (6 e- read noise / 4), not ~5.
    assert float(np.nanmedian(np.abs(stack["sci"].values))) < 2.0
    props = properties_from_stack(stack)
    ratio = np.nanmedian(props["readnoise"].values) / np.median(truth["readnoise"].values)
    assert 0.95 < ratio < 1.0  # in electrons, not counts (a quarter)
    normal = _categories(truth)["normal"]
    pull = (props["sci_mean"].values - truth["dark_rate"].values) / _expected_error(truth)
    assert 0.8 <= pull[normal].std() <= 1.25
