"""PixelDB.ingest_darks: simulated dark frames -> properties -> the cube."""

from __future__ import annotations

import numpy as np
import pytest

from stiscube import IncompatibleDarksError, InvalidDarkError, PeriodExistsError, PixelDB
from stiscube.datasets.simulate import DarkPhysics, simulate_darks
from stiscube.io.darks import DarkSelection, TooFewDarksError
from stores.common.testing import tree_digest


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    return simulate_darks(
        out, n_periods=2, frames_per_period=20, shape=(48, 40), seed=3,
        physics=DarkPhysics(initial_hot_fraction=0.01),
    )


@pytest.mark.slow
def test_ingest_simulated_periods(tmp_path, simulation):
    db = PixelDB.create(tmp_path / "db", periods=simulation.periods, shape=simulation.shape)
    for number in sorted(simulation.files, reverse=True):  # any order
        db.ingest_darks(simulation.files[number], number)
    assert db.anneal_numbers == sorted(simulation.files)
    for number in simulation.files:
        period = simulation.periods[number]
        info = db.query_anneal(anneal_num=number)
        assert info["StartDate"].item() == period.start
        assert info["EndDate"].item() == period.end
        assert info["NumberOfDarks"].item() == len(simulation.files[number])
        darks = db.query_anneal_darks(anneal_num=number)["Darks"].tolist()
        expected = sorted(path.name.split("_")[0] for path in simulation.files[number])
        assert sorted(darks) == expected
        truth = simulation.truth(number)
        rate = db.dataset["sci_mean"].sel(anneal=number).values
        # normal pixels: the period's mean rate matches the injected dark current
        assert db.dataset["unit_system"].sel(anneal=number).item() == "rate"
        true_rate = truth["mean_rate"].values
        normal = true_rate < 0.02
        assert abs(np.median(rate[normal] - true_rate[normal])) < 3e-4
        # pixels hot in every frame (not born mid-period, not flickering)
        steady_hot = (
            (true_rate > 0.1)
            & (truth["hot_onset_mjd"].values < truth["start_mjd"].values.min())
            & (truth["flicker_amplitude"].values == 0)
        )
        assert steady_hot.any()
        np.testing.assert_allclose(rate[steady_hot], true_rate[steady_hot], rtol=0.1)
    table = db.darks
    assert set(table.columns) == {"anneal", "rootname", "exptime", "start"}
    assert len(table) == sum(len(v) for v in simulation.files.values())
    assert set(table["exptime"]) <= {1100.0, 60.0}


def test_ingest_refuses_frames_outside_the_period(tmp_path, simulation):
    db = PixelDB.create(tmp_path / "db", periods=simulation.periods, shape=simulation.shape)
    numbers = sorted(simulation.files)
    before = tree_digest(db.location.url)
    with pytest.raises(InvalidDarkError, match="outside|not in"):
        db.ingest_darks(simulation.files[numbers[1]], numbers[0])
    assert tree_digest(db.location.url) == before


def test_ingest_without_table_uses_frame_dates(tmp_path, simulation):
    db = PixelDB.create(tmp_path / "db", shape=simulation.shape)
    number = sorted(simulation.files)[0]
    files = simulation.files[number]
    db.ingest_darks(files, 7)
    got = db.query_anneal(anneal_num=7)
    assert got["StartDate"].item() <= db.darks["start"].min()
    with pytest.raises(PeriodExistsError):
        db.ingest_darks(files, 7)


# -- garbage darks: an error or a recorded warning, never a silent NaN period (issue 14.12) --
def _copies(files, tmp_path, edit=None, which=None):
    """Copies of *files*; ``edit(hdul)`` applied with astropy to those listed in *which*."""
    from astropy.io import fits

    out = []
    for k, path in enumerate(files):
        dst = tmp_path / path.name
        dst.write_bytes(path.read_bytes())
        if edit is not None and (which is None or k in which):
            with fits.open(dst, mode="update") as hdul:
                edit(hdul)
        out.append(dst)
    return out


def _all_nan_sci(hdul):
    hdul["SCI"].data[...] = np.nan


def _negative_err(hdul):
    hdul["ERR"].data[...] = -np.abs(hdul["ERR"].data) - 1


@pytest.mark.parametrize(
    ("edit", "what"), [(_all_nan_sci, "all-NaN SCI"), (_negative_err, "negative ERR")]
)
def test_garbage_frames_are_refused_with_nothing_written(tmp_path, simulation, edit, what):
    number = sorted(simulation.files)[0]
    files = _copies(simulation.files[number], tmp_path, edit)
    db = PixelDB.create(tmp_path / "db", periods=simulation.periods, shape=simulation.shape)
    before = tree_digest(db.location.url)
    with pytest.raises(TooFewDarksError, match=r"only 0 of 20 frames are usable") as info:
        db.ingest_darks(files, number)
    assert "0.0% of its pixels hold a valid sample" in str(info.value), what
    assert tree_digest(db.location.url) == before
    assert db.anneal_numbers == []


def test_a_single_frame_is_refused_before_reading(tmp_path, simulation):
    number = sorted(simulation.files)[0]
    db = PixelDB.create(tmp_path / "db", periods=simulation.periods, shape=simulation.shape)
    before = tree_digest(db.location.url)
    with pytest.raises(TooFewDarksError, match=r"at least 3 usable frames \(min_frames\), got 1"):
        db.ingest_darks(simulation.files[number][:1], number)
    with pytest.raises(TooFewDarksError, match=r"at least 5 usable frames"):
        db.ingest_darks(simulation.files[number][:4], number,
                        selection=DarkSelection(min_frames=5))
    assert tree_digest(db.location.url) == before


def test_a_few_garbage_frames_are_recorded_as_warnings(tmp_path, simulation, caplog):
    number = sorted(simulation.files)[0]
    files = _copies(simulation.files[number], tmp_path, _all_nan_sci, which={2, 7})
    db = PixelDB.create(tmp_path / "db", periods=simulation.periods, shape=simulation.shape)
    with caplog.at_level("WARNING", logger="stiscube.cube.pixeldb"):
        props = db.ingest_darks(files, number)
    warnings = db.store.slice_extras(number)["warnings"]
    assert len(warnings) == 2
    assert all("0.0% of its pixels hold a valid sample" in w for w in warnings)
    assert "not usable" in caplog.text
    # the two NaN frames are excluded samples of every pixel
    assert (props["nan_count"].values >= 2).all()
    assert np.isfinite(props["sci_mean"].values).all()


# -- the command line: --periods TABLE refusal and the selection options (issue 9.3, 9.7) ------
def test_cli_refuses_an_anneal_number_the_table_lacks(tmp_path, simulation, capsys):
    from stiscube.cli import main

    number = sorted(simulation.files)[0]
    table = simulation.out / "anneal_periods.ecsv"
    darks = [str(p) for p in simulation.files[number]]
    capsys.readouterr()
    code = main(["ingest", str(tmp_path / "db"), "--darks", *darks, "--anneal", "99",
                 "--periods", str(table)])
    err = capsys.readouterr().err
    assert code == 1
    assert "holds no period 99 (periods 1..2)" in err and "anneal_periods.ecsv" in err
    assert not (tmp_path / "db").exists()  # nothing created
    # a number the table holds: its dates are used (not the frames')
    assert main(["ingest", str(tmp_path / "db"), "--darks", *darks, "--anneal", str(number),
                 "--periods", str(table)]) == 0
    got = PixelDB(tmp_path / "db", mode="r").query_anneal(anneal_num=number)
    assert got["StartDate"].item() == simulation.periods[number].start
    assert got["EndDate"].item() == simulation.periods[number].end


def test_cli_gain_selection_and_mixed_error(tmp_path, simulation, capsys):
    """Half the darks relabelled CCDGAIN=4 (astropy): the default names both groups and
    creates nothing; --ccdgain 4 ingests only those frames and reports the others skipped."""
    from astropy.io import fits

    from stiscube.cli import main

    number = sorted(simulation.files)[0]

    def gain4(hdul):
        hdul[0].header["CCDGAIN"] = 4
        hdul[0].header["ATODGAIN"] = 4.0

    files = _copies(simulation.files[number], tmp_path, gain4, which=set(range(0, 20, 2)))
    capsys.readouterr()
    db = tmp_path / "db"
    assert main(["ingest", str(db), "--darks", *map(str, files), "--anneal", "3"]) == 1
    err = capsys.readouterr().err
    assert "CCDGAIN=1 CCDAMP=D bin 1x1 long (1000-1200 s): 10 frames" in err
    assert "CCDGAIN=4 CCDAMP=D bin 1x1 long (1000-1200 s): 10 frames" in err
    assert not db.exists()
    assert main(["ingest", str(db), "--darks", *map(str, files), "--anneal", "3",
                 "--ccdgain", "4", "--no-temperature-correction"]) == 0
    pixels = PixelDB(db, mode="r")
    used = sorted(pixels.query_anneal_darks(anneal_num=3)["Darks"])
    assert used == sorted(fits.getval(files[k], "ROOTNAME") for k in range(0, 20, 2))
    assert len(pixels.store.slice_extras(3)["skipped"]) == 10
    one = pixels.dataset.sel(anneal=3)
    assert one["ccdgain"].item() == 4.0
    assert one["temperature_correction"].item() == "off"
    assert one["exptime_class"].item() == "long (1000-1200 s)"


def test_frames_of_another_shape_are_refused_before_computing(tmp_path, simulation,
                                                               monkeypatch):
    """Issue 23: the shape is checked from the headers, not after the period is computed."""
    import stiscube.properties.compute as compute

    def never(*args, **kwargs):
        raise AssertionError("properties computed before the shape was checked")

    monkeypatch.setattr(compute, "compute_properties", never)
    number = sorted(simulation.files)[0]
    db = PixelDB.create(tmp_path / "db", periods=simulation.periods, shape=(40, 48))
    before = tree_digest(db.location.url)
    with pytest.raises(IncompatibleDarksError,
                       match=r"frames of 48 x 40 pixels do not fit the 40 x 48 cube of .*db; "
                             r"ingest them into a database of their shape"):
        db.ingest_darks(simulation.files[number], number)
    assert tree_digest(db.location.url) == before
