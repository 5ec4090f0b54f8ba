"""The simulated STIS mission against the published record (figures of the real-file README).

The published figures are written out here, not imported from the simulator, and the
Side-2 switch date is the test's own: moving the library's or the simulator's constant
fails a test.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from stiscube import PixelDB
from stiscube.datasets import MissionPhysics, SimulatedMission, load_simulation, simulate_mission

#: STIS switched to Side-2 electronics on 2001-07-23 (published date).
SIDE2_SWITCH_MJD = Time("2001-07-23").mjd
#: Post-anneal pixels above 0.1 e-/s on the full 1024 x 1024 frame (published).
HOT_2001 = (15_000, 17_000)
HOT_OCT_2009 = 44_741
FULL = 1024 * 1024


def _mjd(date: str) -> float:
    return float(Time(date).mjd)


@pytest.fixture(scope="module")
def mission_2009(tmp_path_factory):
    """The mission at 256 x 256 (1/16 of the CCD), darks of the period of 15 Oct 2009."""
    return simulate_mission(
        tmp_path_factory.mktemp("mission_2009"),
        start="2009-10-15",
        end="2009-10-16",
        shape=(256, 256),
        seed=3,
    )


@pytest.fixture(scope="module")
def mission_2009_db(mission_2009, tmp_path_factory):
    (number,) = mission_2009.files
    db = PixelDB.create(
        tmp_path_factory.mktemp("db2009") / "db", periods=mission_2009.periods, shape=(256, 256)
    )
    db.ingest_darks(mission_2009.files[number], number)
    return db, number


def _row_at(table, date: str):
    mjd = _mjd(date)
    (i,) = np.flatnonzero((table["start_mjd"] <= mjd) & (mjd < table["end_mjd"]))
    return table[i]


def test_hot_pixel_counts_follow_the_published_record(mission_2009):
    """Post-anneal pixels above 0.1 e-/s, scaled to the full frame: within 20 % of about
    15 000-17 000 through 2001 (Side-1) and of 44 741 in October 2009."""
    table = mission_2009.anneals
    area = 256 * 256 / FULL
    in_2001 = table[
        (table["start_mjd"] >= _mjd("2001-01-01")) & (table["start_mjd"] < _mjd("2002-01-01"))
    ]
    assert len(in_2001) >= 12
    full = in_2001["n_hot_post_anneal"] / area
    assert np.all(full > 0.8 * HOT_2001[0]) and np.all(full < 1.2 * HOT_2001[1]), full
    oct_2009 = _row_at(table, "2009-10-15")["n_hot_post_anneal"] / area
    assert abs(oct_2009 / HOT_OCT_2009 - 1) < 0.2, oct_2009
    # and growing in between (yearly means)
    years = [_row_at(table, f"{y}-06-01")["n_hot_post_anneal"] for y in range(2001, 2010)]
    assert np.all(np.diff(years) > 0), years


def test_hot_pixel_count_measured_from_the_darks(mission_2009_db):
    """The darks themselves show it: pixels whose measured period-mean rate exceeds
    0.1 e-/s in October 2009, scaled to the full frame, within 20 % of 44 741."""
    db, number = mission_2009_db
    sci = db.dataset["sci_mean"].sel(anneal=number).values
    measured = np.count_nonzero(sci > 0.1) * FULL / sci.size
    assert abs(measured / HOT_OCT_2009 - 1) < 0.2, measured


def test_repair_fractions_by_side(mission_2009):
    """About 81 % of the new hot pixels anneal away on Side-1 and 48 % on Side-2, each
    anneal counted on the side of its date (this test's switch date)."""
    t = mission_2009.anneals
    assert np.all(t["side"] == np.where(t["start_mjd"] >= SIDE2_SWITCH_MJD, 2, 1))
    for side, published in ((1, 0.81), (2, 0.48)):
        rows = t[(t["side"] == side) & (t["n_new"] > 0)]
        n_new, healed = rows["n_new"].sum(), rows["n_new_healed"].sum()
        sigma = np.sqrt(published * (1 - published) / n_new)
        assert n_new > 3000
        assert abs(healed / n_new - published) < 4 * sigma, (side, healed / n_new, n_new)
    some = t["n_new"] > 0
    np.testing.assert_allclose(
        t["repair_fraction"][some], t["n_new_healed"][some] / t["n_new"][some]
    )
    assert np.all(np.isnan(t["repair_fraction"][~some]))


def test_dark_rate_and_read_noise_follow_the_published_record(mission_2009, mission_2009_db):
    """Median dark 0.0015 e-/s in 1997 and about 0.004 by 2001; read noise 3.8-4.0 e- early,
    about 6.25 e- by 2014 (the 2014 value from the default curve)."""
    t = mission_2009.anneals
    assert t["dark_rate"][0] == pytest.approx(0.0015, rel=0.02)
    assert _row_at(t, "2001-07-01")["dark_rate"] == pytest.approx(0.004, rel=0.05)
    assert np.all(np.diff(t["dark_rate"]) > 0)
    assert 3.8 <= t["readnoise"][0] <= 4.0
    assert np.all(np.diff(t["readnoise"]) >= 0)
    p = MissionPhysics()
    assert p.at(_mjd("2014-01-01")).readnoise == pytest.approx(6.25, abs=0.05)
    # the written darks: their median rate (temperature-corrected by the library) and the
    # per-pixel read noise of the truth are those of the period
    db, number = mission_2009_db
    row = t[t["number"] == number][0]
    median = float(np.median(db.dataset["sci_mean"].sel(anneal=number).values))
    assert median == pytest.approx(row["dark_rate"], rel=0.05)
    truth = mission_2009.truth(number)
    assert float(truth["readnoise"].median()) == pytest.approx(row["readnoise"], rel=0.01)
    with fits.open(mission_2009.files[number][0]) as hdul:
        assert hdul[0].header["READNSE"] == pytest.approx(row["readnoise"])


def test_darks_per_period_keywords_and_proposals(mission_2009, real_dir):
    """40-60 darks of 1100 s per period; PROPOSID/PROPTTL1 in the primary header, as in the
    real FLT, with the type the real file has."""
    (number,) = mission_2009.files
    files = mission_2009.files[number]
    assert 40 <= len(files) <= 60
    real = fits.getheader(real_dir / "stis" / "o4k19a010_flt.fits")
    for path in files[:3]:
        with fits.open(path) as hdul:
            h = hdul[0].header
            assert hdul["SCI", 1].header["EXPTIME"] == 1100.0
            for key in ("PROPOSID", "PROPTTL1"):
                assert key in h and key not in hdul["SCI", 1].header
                assert type(h[key]) is type(real[key])
            assert "SIMULATED" in h["PROPTTL1"]
            assert h["PROPOSID"] == 90000 + 2009 - 1990


def test_side2_temperature_scaling_on_either_side_of_the_switch(tmp_path):
    """Frames dated either side of 2001-07-23: Side-1 frames carry OCCDHTAV = -1 and keep
    their rates; Side-2 frames carry a varying OCCDHTAV, the simulator multiplies their rate
    by 1 + 0.07 (T - 18), and the library divides it out (hand-computed factors)."""
    few = dataclasses.replace(MissionPhysics(), frames_per_period=(16, 20))
    sim = simulate_mission(
        tmp_path / "sim", start="2001-07-22", end="2001-08-25", shape=(16, 16), seed=1, physics=few
    )
    db = PixelDB.create(tmp_path / "db", periods=sim.periods, shape=(16, 16))
    sides = []
    for number, files in sim.files.items():
        headers = [fits.getheader(path, ("SCI", 1)) for path in files]
        temps = np.array([h["OCCDHTAV"] for h in headers])
        side2 = np.array([h["EXPSTART"] for h in headers]) >= SIDE2_SWITCH_MJD
        sides.extend(side2)
        assert np.all(temps[~side2] == -1.0)
        assert np.all(temps[side2] != -1.0)
        expected = np.where(side2, 1 + 0.07 * (temps - 18.0), 1.0)
        np.testing.assert_allclose(sim.truth(number)["dark_scale"].values, expected, rtol=1e-12)
        db.ingest_darks(files, number)
        recorded = {f["frame"]: f for f in db.store.slice_extras(number)["frames"]}
        for path, factor, s2 in zip(files, expected, side2, strict=True):
            record = recorded[fits.getval(path, "ROOTNAME")]
            assert record["dark_scale"] == pytest.approx(factor, rel=1e-9)
            assert record["temperature_scaled"] == bool(s2)
        if side2.any():
            assert np.ptp(temps[side2]) > 0.5  # OCCDHTAV varies
    sides = np.array(sides)
    assert sides.sum() >= 10 and (~sides).sum() >= 3  # frames on both sides of the switch


def test_a_period_does_not_depend_on_the_window(tmp_path):
    few = dataclasses.replace(MissionPhysics(), frames_per_period=(3, 5))
    kwargs = {"shape": (8, 8), "physics": few}
    one = simulate_mission(tmp_path / "a", start="1998-03-01", end="1998-03-02", **kwargs)
    two = simulate_mission(tmp_path / "b", start="1998-01-01", end="1998-03-02", **kwargs)
    (number,) = one.files
    assert number in two.files and len(two.files) >= 2
    for a, b in zip(one.files[number], two.files[number], strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(fits.getdata(a, "SCI"), fits.getdata(b, "SCI"))
    common = len(one.anneals)
    np.testing.assert_array_equal(one.anneals["n_new"], two.anneals["n_new"][:common])


def test_load_simulation_gives_the_mission_back(mission_2009):
    back = load_simulation(mission_2009.out)
    assert isinstance(back, SimulatedMission)
    assert back.mission == mission_2009.mission
    assert back.files == mission_2009.files
    assert len(back.anneals) == len(mission_2009.anneals)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"heal_fraction_side2": 1.5}, ValueError, "heal_fraction_side2"),
        ({"frames_per_period": (60, 40)}, ValueError, "frames_per_period"),
        ({"readnoise": (("2001-01-01", 4.0), ("2000-01-01", 5.0))}, ValueError, "readnoise"),
        ({"darks": "x"}, TypeError, "darks"),
    ],
)
def test_bad_mission_physics_is_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        MissionPhysics(**kwargs)


def test_a_window_outside_the_mission_is_refused(tmp_path):
    with pytest.raises(ValueError, match="holds no period"):
        simulate_mission(tmp_path / "x", start="1990-01-01", end="1991-01-01", shape=(8, 8))
    assert not (tmp_path / "x").exists()


def test_mission_physics_replace_keeps_the_published_defaults():
    p = dataclasses.replace(MissionPhysics(), heal_fraction_side2=0.5)
    assert p.at(SIDE2_SWITCH_MJD + 1).heal_fraction == 0.5
    assert p.at(SIDE2_SWITCH_MJD - 1).heal_fraction == 0.81


def test_cli_simulate_mission(tmp_path, capsys):
    from stiscube.cli import main

    out = tmp_path / "m"
    argv = ["simulate", "--out", str(out), "--mission", "--start", "2003-01-01",
            "--end", "2003-01-02"]
    assert main([*argv, "--shape", "8", "8", "--seed", "2"]) == 0
    back = load_simulation(out)
    assert isinstance(back, SimulatedMission) and len(back.files) == 1
    assert "simulated periods" in capsys.readouterr().out
    assert main(["simulate", "--out", str(tmp_path / "d"), "--end", "2003-01-02"]) == 1
    assert "--end needs --mission" in capsys.readouterr().err
