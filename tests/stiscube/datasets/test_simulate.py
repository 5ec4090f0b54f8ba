"""The dark simulator: file layout like real FLT darks, determinism, and truth consistency."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from astropy.io import fits

from stiscube.datasets import load_simulation
from stiscube.datasets.simulate import (
    EVENT_COSMIC_RAY,
    EVENT_FILL,
    EVENT_FLICKER_HIGH,
    EVENT_NAN,
    DarkPhysics,
    simulate_darks,
)
from stiscube.io.anneals import parse_exposure_mix


def _read(path):
    with fits.open(path) as hdul:
        return (
            hdul[0].header.copy(),
            [h.header.copy() for h in hdul[1:]],
            [np.array(h.data) for h in hdul[1:]],
        )


def test_flt_layout_of_a_cut_out(small_darks):
    primary, headers, (sci, err, dq) = _read(small_darks.files[1][0])
    expected = {
        "INSTRUME": "STIS",
        "DETECTOR": "CCD",
        "TARGNAME": "DARK",
        "CCDAMP": "D",
        "CCDGAIN": 1,
        "ATODGAIN": 1.0,
        "BINAXIS1": 1,
        "BINAXIS2": 1,
        "NEXTEND": 3,
        "SUBARRAY": True,
        "SIZAXIS1": 12,
        "SIZAXIS2": 16,
        "SIMULATE": True,
    }
    for key, value in expected.items():
        assert primary[key] == value, key
    assert len(primary["ROOTNAME"]) == 9
    assert primary["TEXPEND"] - primary["TEXPSTRT"] == pytest.approx(primary["TEXPTIME"] / 86400)
    assert any("SIMULATED CUT-OUT: 16 x 12" in str(c) for c in primary["COMMENT"])
    assert [(h["EXTNAME"], h["EXTVER"]) for h in headers] == [("SCI", 1), ("ERR", 1), ("DQ", 1)]
    assert [h["BITPIX"] for h in headers] == [-32, -32, 16]
    assert headers[0]["BUNIT"] == "COUNTS" and "ATODGAIN" not in headers[0]  # primary only
    assert headers[0]["EXPTIME"] == primary["TEXPTIME"]  # one imset: its time is the total
    assert headers[0]["EXPSTART"] == primary["TEXPSTRT"]
    assert headers[0]["OCCDHTAV"] == 18.0  # Side-2 date (2020), no drift by default
    assert sci.shape == err.shape == dq.shape == (16, 12)
    assert sci.dtype == np.dtype(">f4") and dq.dtype == np.dtype(">i2")


def test_full_frame_is_not_labelled_subarray(tmp_path):
    sim = simulate_darks(tmp_path, n_periods=1, frames_per_period=1, seed=1)
    primary, _, (sci, _, _) = _read(sim.files[1][0])
    assert sci.shape == (1024, 1024)
    assert primary["SUBARRAY"] is False
    assert not any("CUT-OUT" in str(c) for c in primary.get("COMMENT", []))


def test_schedule_and_table(small_darks):
    table = small_darks.periods
    assert table.simulated and table.meta["seed"] == 5
    period = table[1]
    assert period.num == 5 and len(period.darks) == 5
    exptimes, starts = [], []
    for path, rootname in zip(small_darks.files[1], period.darks, strict=True):
        primary = fits.getheader(path)
        assert primary["ROOTNAME"] == rootname
        exptimes.append(primary["TEXPTIME"])
        starts.append(primary["TEXPSTRT"])
        assert period.start_mjd <= primary["TEXPSTRT"] < primary["TEXPEND"] < period.end_mjd
    assert exptimes == [1100.0] * 5  # round(0.1 * 5) = 0 short darks
    assert starts == sorted(starts)
    assert parse_exposure_mix(period.exposure_time) == {1100.0: 5}


def test_short_darks_in_the_mix(tmp_path):
    sim = simulate_darks(
        tmp_path, n_periods=2, frames_per_period=24, shape=(8, 8), seed=4,
        physics=DarkPhysics(short_fraction=0.1),
    )
    for number in sim.files:
        exptimes = [fits.getval(p, "TEXPTIME") for p in sim.files[number]]
        assert sorted(set(exptimes)) == [60.0, 1100.0]
        assert exptimes.count(60.0) == round(0.1 * 24) == 2
        assert sim.periods[number].exposure_time == "22 x 1100 s / 2 x 60 s"


def test_default_periods_hold_long_darks_only(small_darks):
    """Like the STScI reference darks: by default every simulated dark is 1100 s."""
    exptimes = {fits.getval(p, "TEXPTIME") for p in small_darks.files[1]}
    assert exptimes == {1100.0}


def test_same_seed_same_files(tmp_path):
    a = simulate_darks(tmp_path / "a", n_periods=1, frames_per_period=3, shape=(8, 8), seed=9)
    b = simulate_darks(tmp_path / "b", n_periods=1, frames_per_period=3, shape=(8, 8), seed=9)
    c = simulate_darks(tmp_path / "c", n_periods=1, frames_per_period=3, shape=(8, 8), seed=10)
    for fa, fb, fc in zip(a.files[1], b.files[1], c.files[1], strict=True):
        da, db, dc = _read(fa)[2], _read(fb)[2], _read(fc)[2]
        for x, y in zip(da, db, strict=True):
            np.testing.assert_array_equal(x, y)
        assert not np.array_equal(da[0], dc[0], equal_nan=True)


def test_load_simulation_round_trip(small_darks):
    again = load_simulation(small_darks.out)
    assert again.files == small_darks.files
    assert again.truth_paths == small_darks.truth_paths
    assert again.physics == small_darks.physics
    assert again.shape == (16, 12) and again.seed == 5
    assert list(again.periods) == list(small_darks.periods)


def _frames(sim, number):
    data = [_read(p)[2] for p in sim.files[number]]
    sci = np.stack([d[0] for d in data]).astype(np.float64)
    err = np.stack([d[1] for d in data]).astype(np.float64)
    dq = np.stack([d[2] for d in data]).astype(np.int64)
    return sci, err, dq


def test_files_agree_with_truth(sim_periods):
    number = 1
    truth = sim_periods.truth(number)
    sci, err, dq = _frames(sim_periods, number)
    events = truth["events"].values
    gain = truth["gain"].values[:, None, None]
    # NaN samples, lost-data (fill) samples and static blemishes, as recorded.
    np.testing.assert_array_equal(np.isnan(sci), (events & EVENT_NAN) > 0)
    np.testing.assert_array_equal(np.isnan(err), (events & EVENT_NAN) > 0)
    fill = (events & EVENT_FILL) > 0
    np.testing.assert_array_equal((dq & 2) > 0, fill)
    assert np.all(sci[fill] == 0)
    blemish = np.broadcast_to(truth["blemish"].values, dq.shape)
    np.testing.assert_array_equal((dq & 1024) > 0, blemish)
    # The error model: (g ERR)^2 = RN^2 + max(g SCI, 0) exactly, up to float32 storage.
    ok = np.isfinite(sci)
    rn2 = (gain * err) ** 2 - np.maximum(gain * sci, 0)
    rn_true = np.broadcast_to(truth["readnoise"].values.astype(np.float64) ** 2, sci.shape)
    np.testing.assert_allclose(
        rn2[ok], rn_true[ok], rtol=0, atol=1e-5 * (gain * err)[ok].max() ** 2
    )
    # Cosmic rays add at least cr_electrons_min electrons: far above the noise.
    cr = (events & EVENT_COSMIC_RAY) > 0
    assert cr.sum() > 0
    assert np.all(gain[..., 0:1] * sci[cr & ok] > sim_periods.physics.cr_electrons_min - 10 * 6.5)


def test_truth_mean_rate_is_the_exposure_weighted_true_rate(sim_periods):
    truth = sim_periods.truth(2)
    t = truth["exptime"].values
    t0, t1 = truth["start_mjd"].values, truth["end_mjd"].values
    onset = truth["hot_onset_mjd"].values
    hot = truth["hot_rate"].values.astype(np.float64)
    after = np.zeros((t.size, *hot.shape))
    is_hot = hot > 0
    for i in range(t.size):  # loop over frames, independent of the simulator's code
        frac = (t1[i] - onset[is_hot]) / (t1[i] - t0[i])
        after[i][is_hot] = np.clip(frac, 0, 1)
    high = (truth["events"].values & EVENT_FLICKER_HIGH) > 0
    rate = (
        truth["dark_rate"].values
        + hot * after
        + truth["flicker_amplitude"].values.astype(np.float64) * high
    )
    expected = (rate * t[:, None, None]).sum(0) / t.sum()
    np.testing.assert_allclose(truth["mean_rate"].values, expected, rtol=2e-6)


def test_dark_signal_matches_the_true_rate(sim_periods):
    truth = sim_periods.truth(1)
    sci, _, _ = _frames(sim_periods, 1)
    t = truth["exptime"].values[:, None, None]
    events = truth["events"].values
    steady = (truth["hot_rate"].values == 0) & (truth["flicker_amplitude"].values == 0)
    clean = (events == 0) & steady
    measured = (sci * truth["gain"].values[:, None, None])[clean].sum()
    expected = (np.broadcast_to(truth["dark_rate"].values, sci.shape) * t)[clean].sum()
    variance = (
        np.broadcast_to(truth["readnoise"].values.astype(np.float64) ** 2, sci.shape)[clean].sum()
        + expected
    )
    assert abs(measured - expected) < 5 * np.sqrt(variance)


def test_hot_pixels_appear_at_the_rate_and_mostly_heal():
    """Hot-pixel creation (Poisson at hot_per_day) and healing at each anneal (binomial)."""
    physics = DarkPhysics(hot_per_day=3000.0, heal_fraction=0.8, initial_hot_fraction=0.0)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sim = simulate_darks(
            tmp, n_periods=5, frames_per_period=1, shape=(128, 128), seed=3, physics=physics
        )
        truths = [sim.truth(n) for n in sorted(sim.files)]
    area = 128 * 128 / 1024**2
    survivors = kept = 0
    previous_new = None
    for k, truth in enumerate(truths):
        start, end = truth.attrs["start_mjd"], truth.attrs["end_mjd"]
        onset = truth["hot_onset_mjd"].values
        new = (onset >= start) & (onset < end)
        expected_new = 3000.0 * area * (end - start)
        assert abs(new.sum() - expected_new) < 5 * np.sqrt(expected_new)
        if k:
            hot_now = (truth["hot_rate"].values > 0) & ~new
            was_hot = truths[k - 1]["hot_rate"].values > 0
            # pixels made hot during the previous period survive the anneal with
            # probability 1 - heal_fraction ...
            survivors += (previous_new & hot_now).sum()
            kept += previous_new.sum()
            # ... and those that had already survived an anneal stay hot for good
            permanent = was_hot & ~previous_new
            assert hot_now[permanent].all()
        previous_new = new
    assert abs(survivors - 0.2 * kept) < 5 * np.sqrt(kept * 0.2 * 0.8)
    counts = [(t["hot_rate"].values > 0).sum() for t in truths]
    permanent_counts = [
        ((t["hot_rate"].values > 0) & (t["hot_onset_mjd"].values < t.attrs["start_mjd"])).sum()
        for t in truths
    ]
    # the permanent population grows by about (1 - heal_fraction) of each period's crop
    assert all(b > a for a, b in itertools.pairwise(permanent_counts[1:]))
    assert counts[-1] > counts[1]


def test_simulate_stack_matches_its_truth(stack_and_truth):
    stack, truth = stack_and_truth
    assert stack["sci"].dims == ("frame", "row", "col")
    np.testing.assert_array_equal(
        np.isnan(stack["sci"].values), (truth["events"].values & EVENT_NAN) > 0
    )
    assert truth["n_cosmic_rays"].values.sum() == ((truth["events"].values & 1) > 0).sum()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_periods": 0}, ValueError, "n_periods must be an integer >= 1"),
        ({"frames_per_period": 0}, ValueError, r"frames_per_period must be an integer in \[1, "),
        (
            {"shape": (2048, 10)},
            ValueError,
            r"shape must be \(rows, columns\) between \(1, 1\) and \(1024, 1024\)",
        ),
        ({"shape": (8,)}, ValueError, r"shape must be \(rows, columns\)"),
        ({"period_days": -1.0}, ValueError, "period_days must be > 0"),
        ({"dark_rate": -1.0}, ValueError, "dark_rate must be > 0"),
        ({"heal_fraction": 1.5}, ValueError, r"heal_fraction must be in \[0, 1\]"),
        ({"ccdgain": 3}, ValueError, "ccdgain must be one of"),
        ({"hot_rate_range": (1.0, 0.5)}, ValueError, "hot_rate_range must be"),
        ({"hot_rate_range": (0.0, 0.5)}, ValueError, r"hot_rate_range\[0\] must be > 0, got 0.0"),
        ({"ccdgain": True}, TypeError, "ccdgain must be an integer, got True"),
        ({"period_jitter": 1.0}, ValueError, r"period_jitter must be in \[0, 1\), got 1.0"),
        ({"first_anneal": 1295, "n_periods": 2}, ValueError,
         r"first_anneal must be an integer in \[0, 1294\], got 1295"),
        ({"n_periods": 2.0}, TypeError, "n_periods must be an integer >= 1, got 2.0"),
        ({"warp_drive": 1}, TypeError, "unexpected keyword argument 'warp_drive'"),
        ({"physics": {"dark_rate": 1.0}}, TypeError, "physics must be a DarkPhysics, got dict"),
        ({"frames_per_period": 2000, "period_days": 1.0}, ValueError, "do not fit in a period"),
    ],
)
def test_bad_parameters_are_refused(tmp_path, kwargs, error, match):
    kwargs = {"shape": (8, 8), **kwargs}
    physics = {k: kwargs.pop(k) for k in list(kwargs) if k in DarkPhysics.__dataclass_fields__}
    with pytest.raises(error, match=match):
        if physics:
            kwargs["physics"] = DarkPhysics(**physics)
        simulate_darks(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_refuses_to_overwrite_without_permission(small_darks, tmp_path):
    out = tmp_path / "twice"
    simulate_darks(out, n_periods=1, frames_per_period=2, shape=(8, 8), seed=1)
    with pytest.raises(FileExistsError, match="is not empty; pass overwrite=True"):
        simulate_darks(out, n_periods=1, frames_per_period=2, shape=(8, 8), seed=1)
    again = simulate_darks(
        out, n_periods=1, frames_per_period=3, shape=(8, 8), seed=2, overwrite=True
    )
    assert len(list(out.glob("*_flt.fits"))) == 3 == len(again.files[1])


# -- simulated files against the real archive file (issue 9.5) -----------------------------------
def _locations(path) -> dict[str, tuple[str, type]]:
    """Keyword -> (where, Python type) in the primary and the first SCI header."""
    out: dict[str, tuple[str, type]] = {}
    with fits.open(path) as hdul:
        for where, header in (("SCI", hdul["SCI", 1].header), ("primary", hdul[0].header)):
            for key in header:
                if key and key not in ("COMMENT", "HISTORY"):
                    out.setdefault(key, (where, type(header[key])))
                    if where == "primary" and out[key][0] == "SCI":
                        out[key] = ("both", type(header[key]))
    return out


def test_every_keyword_the_reader_uses_sits_where_the_real_file_has_it(real_dir, small_darks):
    from stiscube.io._fitsio import EXTENSION_KEYWORDS, PRIMARY_KEYWORDS

    real = _locations(real_dir / "stis" / "o4k19a010_flt.fits")
    sim = _locations(small_darks.files[1][0])
    # the keywords the readers use (stiscube.io._fitsio), present in a real calibrated file
    used = set(PRIMARY_KEYWORDS) | set(EXTENSION_KEYWORDS)
    structural = {"XTENSION", "NAXIS", "NAXIS1", "NAXIS2", "BITPIX", "EXTNAME", "EXTVER"}
    only_simulated = {"SIMULATE"}  # says the file is synthetic
    constant_arrays = {"NPIX1", "NPIX2", "PIXVALUE", "BSCALE", "BZERO"}  # not in an FLT
    checked = 0
    for key in sorted(used - structural - constant_arrays):
        if key in only_simulated:
            assert key not in real and sim[key][0] == "primary"
            continue
        assert key in real, f"{key} is read but the real FLT does not carry it"
        assert key in sim, f"the simulator does not write {key}"
        assert sim[key] == real[key], (key, sim[key], real[key])
        checked += 1
    assert checked >= 25
    # the facts of the real-file README, explicitly
    for key in ("ATODGAIN", "READNSE", "TEXPSTRT", "TEXPTIME", "CCDGAIN", "CCDAMP", "BINAXIS1",
                "BINAXIS2", "NRPTEXP", "CRSPLIT"):
        assert sim[key][0] == real[key][0] == "primary", key
    for key in ("EXPSTART", "EXPTIME", "EXPNAME", "OCCDHTAV"):
        assert sim[key][0] == real[key][0] == "SCI", key


def test_keyword_comments_are_those_of_the_real_file(real_dir, small_darks):
    """Every keyword the simulator shares with the real FLT carries the real comment."""
    own = {"ORIGIN"}  # the simulator says there that the file is synthetic
    # written by astropy, not by the simulator
    own |= {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "XTENSION", "PCOUNT",
            "GCOUNT", "COMMENT", "HISTORY"}
    with fits.open(real_dir / "stis" / "o4k19a010_flt.fits") as real, fits.open(
        small_darks.files[1][0]
    ) as sim:
        checked = 0
        for ext in (0, ("SCI", 1), ("ERR", 1), ("DQ", 1)):
            real_h, sim_h = real[ext].header, sim[ext].header
            for key in sim_h:
                if key in real_h and key not in own:
                    assert sim_h.comments[key] == real_h.comments[key], (ext, key)
                    checked += 1
    assert checked >= 40


def test_multi_imset_files_for_early_periods(tmp_path):
    """Early periods' darks as association files of several imsets (CR-SPLIT/repeats)."""
    from stiscube.io.darks import read_frames

    sim = simulate_darks(
        tmp_path, n_periods=1, frames_per_period=6, shape=(8, 8), seed=2, start="1998-02-01",
        physics=DarkPhysics(imsets_per_file=2),
    )
    truth = sim.truth(1)
    assert len(sim.files[1]) == 3
    frames = [f for path in sim.files[1] for f in read_frames(path)]
    assert [f.frame_id for f in frames] == truth["rootname"].values.tolist()
    for path in sim.files[1]:
        with fits.open(path) as hdul:
            primary = hdul[0].header
            scis = [h.header for h in hdul[1:] if h.name == "SCI"]
            assert primary["NRPTEXP"] == len(scis) == 2 and primary["NEXTEND"] == 6
            assert primary["ROOTNAME"].endswith("0")
            assert primary["TEXPTIME"] == sum(h["EXPTIME"] for h in scis)  # the total
            assert primary["TEXPSTRT"] == scis[0]["EXPSTART"]
            assert primary["TEXPEND"] == scis[-1]["EXPEND"]
            assert scis[0]["EXPEND"] < scis[1]["EXPSTART"]  # back to back
            assert len({h["EXPNAME"] for h in scis}) == 2
            assert all(h["OCCDHTAV"] == -1.0 for h in scis)  # 1998: Side-1
    np.testing.assert_array_equal(truth["dark_scale"].values, 1.0)
    assert sim.periods[1].darks == tuple(p.name.split("_")[0] for p in sim.files[1])
