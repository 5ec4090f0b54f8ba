"""The first-use traps of issue 12, each run as a subprocess (as a user types it).

Every test runs the console program with ``python -m`` in a fresh interpreter and checks
the exit status and the exact first line of the error (log lines, which start with a
timestamp, are not part of the error).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from cte.datasets import FieldPhysics
from stores.common.testing import tree_digest

MODULES = {"stiscube": "stiscube.cli", "cte": "cte.cli"}
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def run(prog: str, *args, cwd=None) -> subprocess.CompletedProcess:
    """Run ``prog args`` in a fresh interpreter; stderr is not a terminal (no bars)."""
    return subprocess.run(
        [sys.executable, "-m", MODULES[prog], *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=600, check=False,
    )


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The first line of stderr that is not a log line."""
    lines = [line for line in proc.stderr.splitlines() if not _LOG_LINE.match(line)]
    assert lines, proc.stderr
    return lines[0]


# -- fixtures: a small STIS simulation, a small UVIS campaign ------------------------------
@pytest.fixture(scope="module")
def stis(tmp_path_factory):
    from stiscube.datasets.simulate import simulate_darks

    root = tmp_path_factory.mktemp("stis")
    sim = simulate_darks(root / "sim", n_periods=2, frames_per_period=3, shape=(48, 40), seed=5)
    return root, sim


@pytest.fixture(scope="module")
def stis_db(stis):
    root, _sim = stis
    proc = run("stiscube", "ingest", root / "db", "--simulation", root / "sim")
    assert proc.returncode == 0, proc.stderr
    return root / "db"


# -- 1. region --help ---------------------------------------------------------------------
def test_query_region_help_prints_usage_not_a_traceback(tmp_path):
    proc = run("stiscube", "query", tmp_path / "db", "region", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("usage: stiscube query STORE region")
    assert "ROW0 ROW1 COL0 COL1" in proc.stdout and "Traceback" not in proc.stderr


def test_query_region_still_answers(stis_db):
    from stiscube import PixelDB

    proc = run("stiscube", "query", stis_db, "region", 0, 1, 5, 6, "--anneal", 2,
               "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    sci = PixelDB(stis_db, mode="r").dataset["sci_mean"].sel(anneal=2).values
    assert [(r["RowNum"], r["ColumnNum"]) for r in rows] == [(0, 5), (0, 6), (1, 5), (1, 6)]
    np.testing.assert_allclose([r["Sci_Mean"] for r in rows], sci[0:2, 5:7].ravel(), rtol=1e-6)


# -- 2. cte run --help tells the real --proposals default --------------------------------------
def test_cte_run_help_states_the_proposals_default_it_uses():
    proc = run("cte", "run", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "all (the whole campaign; images already stored are reused)" in text
    assert "proposal IDs (default: all)" in text
    proc = run("cte", "photometry", "--help")
    assert "proposal IDs (default: all)" in " ".join(proc.stdout.split())


# -- 4. the README's --darks --anneal form on the project's own frames ----------------------
def test_ingest_own_simulated_frames_without_a_period_table(stis, tmp_path):
    _root, sim = stis
    files = sim.files[1]
    proc = run("stiscube", "ingest", tmp_path / "new.db", "--darks", *files, "--anneal", 7)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"ingested period 7 into {tmp_path / 'new.db'}\n"
    # the period runs from the frames' first start to their last end (headers, astropy)
    starts, ends = [], []
    for path in files:
        header = fits.getheader(path)
        starts.append(header["TEXPSTRT"])
        ends.append(header["TEXPEND"])
    proc = run("stiscube", "query", tmp_path / "new.db", "anneal", "--anneal", 7,
               "--format", "json")
    row = json.loads(proc.stdout)[0]
    start = Time(row["StartDate"].rstrip("Z"), scale="utc").mjd
    end = Time(row["EndDate"].rstrip("Z"), scale="utc").mjd
    assert start <= min(starts) < start + 1.2e-11  # at most a microsecond before the frame
    assert end <= max(ends) < end + 1.2e-11
    assert row["NumberOfDarks"] == len(files)


# -- 5. --start/--end on a new database: shape from the frames, nothing left on failure ----
def test_new_db_takes_the_frames_shape_and_is_removed_on_failure(stis, tmp_path):
    _root, sim = stis
    files = sim.files[1]
    first = min(fits.getheader(f)["TEXPSTRT"] for f in files)
    day = Time(first, format="mjd").datetime.date()
    proc = run("stiscube", "ingest", tmp_path / "a.db", "--darks", *files, "--anneal", 3,
               "--start", "2019-01-01", "--end", "2019-02-01")
    assert proc.returncode == 1
    assert error_line(proc).startswith(f"stiscube: error: {files[0]}: exposure starts {day}")
    assert error_line(proc).endswith(
        "outside the anneal period it is assigned to [2019-01-01 00:00:00 (MJD 58484.00000), "
        "2019-02-01 00:00:00 (MJD 58515.00000))"
    )
    assert not (tmp_path / "a.db").exists()  # the database this command created is gone
    # in an existing directory, only what the command made there is removed
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    proc = run("stiscube", "ingest", tmp_path / "mine", "--darks", *files, "--anneal", 3,
               "--start", "2019-01-01", "--end", "2019-02-01")
    assert proc.returncode == 1
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    proc = run("stiscube", "ingest", tmp_path / "b.db", "--darks", *files, "--anneal", 3,
               "--start", "2019-01-01", "--end", "2031-01-01")
    assert proc.returncode == 0, proc.stderr
    proc = run("stiscube", "info", tmp_path / "b.db", "--format", "json")
    assert json.loads(proc.stdout)["shape"] == list(fits.getdata(files[0], "SCI").shape)


# -- 6. errors advise the command line's flags, not Python keywords --------------------------
def test_errors_advise_cli_flags(stis, stis_db, tmp_path):
    root, _sim = stis
    before = tree_digest(stis_db)
    # other darks for a stored period (the same darks again are a no-op, exit 0)
    proc = run("stiscube", "ingest", stis_db, "--darks", *stis[1].files[2], "--anneal", 1)
    assert proc.returncode == 1
    assert error_line(proc) == (
        f"stiscube: error: anneal period 1 is already in {stis_db}; use --overwrite to replace it"
    )
    proc = run("stiscube", "info", tmp_path / "nothing")
    assert proc.returncode == 1
    assert error_line(proc) == (
        f"stiscube: error: {tmp_path / 'nothing' / 'cube'} is not a cube store: it does not "
        "exist; create one with `stiscube ingest STORE ...`"
    )
    proc = run("stiscube", "simulate", "--out", root / "sim")
    assert proc.returncode == 1
    assert error_line(proc) == (
        f"stiscube: error: out {root / 'sim'} is not empty; use --overwrite to replace a "
        "previous simulation"
    )
    proc = run("cte", "info", tmp_path / "nostore")
    assert proc.returncode == 1
    assert "write one with `cte photometry STORE ...`" in error_line(proc)
    assert "mode='a'" not in proc.stderr
    assert tree_digest(stis_db) == before
    for p in (proc.stderr, run("stiscube", "info", tmp_path / "nothing").stderr):
        assert "pass " not in p and "=True" not in p and "CubeStore.create" not in p


# -- 8. readable output: info dates, cte info --format json -----------------------------------
def test_stiscube_info_dates_are_iso_without_nanoseconds(stis, stis_db):
    _root, sim = stis
    proc = run("stiscube", "info", stis_db)
    assert proc.returncode == 0, proc.stderr
    dates = [line for line in proc.stdout.splitlines() if line.strip().startswith("dates")]
    first = sim.periods[1].start.astype("datetime64[s]")
    last = sim.periods[2].end.astype("datetime64[s]")
    assert dates == [f"  dates            {first} to {last}"]
    assert ".000000000" not in proc.stdout


# -- 9/14. anneal numbers beyond int64: refused before anything is created or written ---------
def test_anneal_number_beyond_int64_is_refused(stis_db, tmp_path):
    before = tree_digest(stis_db)
    argv = ["--csv", tmp_path, "--anneal", 2**63, "--start", "2031-01-01", "--end", "2031-02-01"]
    for db in (tmp_path / "o.db", stis_db):
        proc = run("stiscube", "ingest", db, *argv)
        assert proc.returncode == 1
        assert error_line(proc) == (
            "stiscube: error: --anneal must be an integer in [0, 9223372036854775807], "
            "got 9223372036854775808"
        )
    assert not (tmp_path / "o.db").exists()
    assert tree_digest(stis_db) == before
    assert run("stiscube", "info", stis_db).returncode == 0  # still usable


# -- show-versions ------------------------------------------------------------------------------
@pytest.mark.parametrize("prog", ["stiscube", "cte"])
def test_show_versions_command(prog):
    import importlib.metadata

    proc = run(prog, "show-versions")
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    assert lines["stiscube"] == importlib.metadata.version("stiscube")
    assert lines["numpy"] == importlib.metadata.version("numpy")
    assert lines["python"].startswith(".".join(map(str, sys.version_info[:3])))


# -- the CTE monitor: apertures per run, selections that match nothing, JSON info -------------
@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    from cte.datasets.simulate import simulate_campaign

    root = tmp_path_factory.mktemp("uvis")
    return simulate_campaign(
        root / "sim", seed=4, shape=(2051, 96), targets=("ngc104",), n_epochs=2, flashes=(0, 12),
        exptimes=(348.0,), include_excluded=False, include_180=False,
        physics=FieldPhysics(n_stars=400)
    )


def _cte_args(campaign, store, out):
    return [store, "--data", campaign.data_dir, "--catalogs", campaign.catalogs_dir, "--out", out]


@pytest.mark.slow
def test_apertures_of_one_run_never_poison_the_store(campaign, tmp_path):
    import xarray as xr

    store = tmp_path / "store"
    # 3. one key measured at 4 px only, then a run over every key with the default radii
    proc = run("cte", "run", *_cte_args(campaign, store, tmp_path / "o1"), "--proposals", "all",
               "--flashes", 12, "--apertures", 4)
    assert proc.returncode == 0, proc.stderr
    proc = run("cte", "run", *_cte_args(campaign, store, tmp_path / "o2"), "--proposals", "all")
    assert proc.returncode == 0, proc.stderr
    loss = xr.load_dataset(tmp_path / "o2" / "loss.nc", engine="h5netcdf")
    assert loss["aperture"].values.tolist() == [3.0, 5.0, 10.0]  # the configuration's radii
    assert sorted(set(loss["flash"].values.tolist())) == [0.0, 12.0]
    # 8. warnings and errors have no Python dict reprs
    assert "{'" not in proc.stderr
    # cte report chooses its radii too
    proc = run("cte", "report", store, "--out", tmp_path / "o3", "--apertures", 3)
    assert proc.returncode == 0, proc.stderr
    loss = xr.load_dataset(tmp_path / "o3" / "loss.nc", engine="h5netcdf")
    assert loss["aperture"].values.tolist() == [3.0]
    proc = run("cte", "report", store, "--out", tmp_path / "o4")
    assert proc.returncode == 0, proc.stderr  # default: the radii every key holds
    loss = xr.load_dataset(tmp_path / "o4" / "loss.nc", engine="h5netcdf")
    assert loss["aperture"].values.tolist() == [3.0, 5.0, 10.0]
    # cte info --format json: one document, matching the images simulated
    proc = run("cte", "info", store, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    keys = {k["key"]: k for k in doc["store"]["keys"]}
    assert sorted(keys) == ["ngc104/F502N/flash0", "ngc104/F502N/flash12"]
    n_files = len(list(Path(campaign.data_dir).rglob("*_fl?.fits")))
    assert sum(k["images"] for k in keys.values()) == doc["store"]["images"] == n_files
    assert keys["ngc104/F502N/flash12"]["apertures"] == [3.0, 4.0, 5.0, 10.0]
    assert keys["ngc104/F502N/flash0"]["apertures"] == [3.0, 5.0, 10.0]


def test_selections_matching_nothing_list_what_the_data_hold(campaign, tmp_path):
    proposals = sorted({int(p) for p in campaign.images["proposal"]})
    held = {}
    for p, v in zip(campaign.images["proposal"], campaign.images["visit"], strict=True):
        held.setdefault(int(p), set()).add(str(v))
    listing = ", ".join(f"{p} (visits {' '.join(sorted(held[p]))})" for p in proposals)
    proc = run("cte", "run", *_cte_args(campaign, tmp_path / "s", tmp_path / "o"),
               "--proposals", 99999)
    assert proc.returncode == 1
    assert error_line(proc) == (
        f"cte: error: no image matches the selection (proposals=99999); the data hold "
        f"proposals {listing}"
    )
    proc = run("cte", "photometry", tmp_path / "s", "--data", campaign.data_dir, "--catalogs",
               campaign.catalogs_dir, "--proposals", proposals[0], "--visits", 5)
    assert proc.returncode == 1
    assert error_line(proc) == (
        f"cte: error: no image matches the selection (proposals={proposals[0]}, visits=05); "
        f"the data hold proposals {listing}"
    )


# -- 10. cte.correct takes dates as stiscube does ----------------------------------------------
def test_correct_accepts_time_datetime_string_and_mjd():
    import datetime as dt

    from cte.analysis.correction import correct
    from cte.analysis.lossmodel import BASIS_TERMS
    from cte.analysis.model import FittedLoss
    from cte.datasets import DEFAULT_TRUTH

    fit = FittedLoss(
        config={"target": "ngc104", "filter": "F502N", "exptime_class": "long",
                "ctecorr": "FLT", "aperture": 3.0},
        terms=BASIS_TERMS, coefficients=DEFAULT_TRUTH["FLT"].vector,
        covariance=np.zeros((7, 7)), chi2_red=1.0, dof=100, n_cells=107, n_stars=10_000,
        covariance_scale=1.0, flux_range=(100.0, 50_000.0), mjd_range=(55000.0, 58000.0),
        background_range=(0.0, 150.0),
    )
    flux, transfers, bkg = np.array([900.0, 5000.0]), np.array([300.0, 1800.0]), 20.0
    isot = ["2014-05-06T07:08:09.500", "2016-01-02T00:00:00"]
    mjd = Time(isot, format="isot", scale="utc").mjd  # astropy's own MJD
    expected = correct(flux, transfers, mjd, bkg, model=fit).flux
    forms = [
        Time(isot, format="isot", scale="utc"),
        [dt.datetime(2014, 5, 6, 7, 8, 9, 500000), dt.datetime(2016, 1, 2)],
        np.array(isot, dtype="datetime64[ms]"),
        [s.replace("T", " ") for s in isot],
    ]
    for form in forms:
        got = correct(flux, transfers, form, bkg, model=fit).flux
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    one = correct(flux[0], transfers[0], Time(isot[0], scale="utc"), bkg, model=fit).flux
    np.testing.assert_allclose(one, expected[0], rtol=1e-12)


# -- issue 14.5 / issue 10: repair and prune are explicit commands -------------------------
def _manifests(db: Path) -> list[Path]:
    return sorted((db / "cube" / "manifests").glob("*.json"))


def test_repair_reports_before_it_repairs_and_unblocks_ingest(stis, tmp_path):
    """A torn newest manifest blocks writes; `stiscube repair` reports, `--yes` repairs."""
    import shutil

    from stores.common.testing import tree_digest

    root, sim = stis
    db = tmp_path / "db"
    first = sorted(sim.files)[0]
    proc = run("stiscube", "ingest", db, "--simulation", root / "sim")
    assert proc.returncode == 0, proc.stderr
    newest = _manifests(db)[-1]
    newest.write_bytes(newest.read_bytes()[:-7])  # torn by a crash of the disk, say
    before = tree_digest(db)

    proc = run("stiscube", "ingest", db, "--darks", *sim.files[first], "--anneal", 99)
    assert proc.returncode == 1
    assert error_line(proc).startswith(
        f"stiscube: error: cube store {db / 'cube'} refuses writes until it is repaired"
    )
    assert tree_digest(db) == before

    proc = run("stiscube", "repair", db)  # a dry run: reports, changes nothing
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "would repair (dry run):"
    assert "move damaged manifest" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "run again with --yes to carry this out"
    assert tree_digest(db) == before

    proc = run("stiscube", "repair", db, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "repaired:"
    proc = run("stiscube", "repair", db)
    assert proc.stdout.strip() == "nothing to repair"
    shutil.rmtree(db)


def test_prune_is_explicit_and_keeps_the_newest_versions(stis_db, tmp_path):
    import shutil

    from stores.common.testing import tree_digest

    db = tmp_path / "db"
    shutil.copytree(stis_db, db)
    n = len(_manifests(db))
    assert n >= 3  # create + one append per period: old versions are kept by default
    before = tree_digest(db)
    proc = run("stiscube", "prune", db, "--keep-last", 1)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("would remove (dry run) versions ")
    assert tree_digest(db) == before
    proc = run("stiscube", "prune", db, "--keep-last", 1, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("removed versions ")
    assert len(_manifests(db)) == 1
    info = json.loads(run("stiscube", "info", db, "--format", "json").stdout)
    assert [v["version"] for v in info["versions"]] == [n - 1]
    proc = run("stiscube", "prune", db, "--keep-last", 0)
    assert proc.returncode == 1
    assert error_line(proc) == (
        "stiscube: error: keep_last must be >= 1 (the current version is always kept), got 0"
    )


def test_run_cli_turns_ctrl_c_into_one_line_and_130(capsys):
    """Issue 23: the notes a subcommand adds to KeyboardInterrupt, as one line; exit 130."""
    import argparse

    from stores.common.cli import EXIT_INTERRUPTED, run_cli

    def interrupted(args):
        exc = KeyboardInterrupt()
        exc.add_note("nothing was written for period 7")
        raise exc

    def bare(args):
        raise KeyboardInterrupt

    parser = argparse.ArgumentParser(prog="prog")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("noted").set_defaults(func=interrupted)
    sub.add_parser("bare").set_defaults(func=bare)
    assert EXIT_INTERRUPTED == 130
    assert run_cli(parser, ["noted"], (ValueError,)) == 130
    assert capsys.readouterr().err == "prog: interrupted; nothing was written for period 7\n"
    assert run_cli(parser, ["bare"], (ValueError,)) == 130
    assert capsys.readouterr().err == "prog: interrupted; the unfinished step wrote nothing\n"
    with pytest.raises(KeyboardInterrupt):  # --verbose: the traceback
        run_cli(parser, ["-v", "bare"], (ValueError,))


# -- issue 23: weak messages name the thing and the fix ----------------------------------------
def test_a_database_path_that_is_a_file_is_named_as_such(stis, tmp_path):
    root, _sim = stis
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    expected = (f"stiscube: error: {target} is a file, not a pixel database (a folder holding "
                "cube/ and periods.ecsv); give the database's folder")
    for args in (("info", target), ("ingest", target, "--simulation", root / "sim")):
        proc = run("stiscube", *args)
        assert proc.returncode == 1
        assert error_line(proc) == expected
    assert target.read_text() == "mine"


def test_a_mistyped_property_is_named_with_the_choices(stis_db, tmp_path):
    proc = run("stiscube", "plot", stis_db, "map", "sci_meen", "--anneal", "1",
               "--out", tmp_path / "m.png")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "stiscube plot STORE map: error: argument PROPERTY: invalid choice: 'sci_meen' (choose "
        "from 'stability', 'sci_mean', 'err_mean', 'nan_count', 'readnoise')")
    assert not (tmp_path / "m.png").exists()


def test_info_dates_of_frame_dated_periods_are_whole_seconds(stis, tmp_path):
    """Periods dated by their frames end at fractional seconds: printed to the second."""
    _root, sim = stis
    db = tmp_path / "db"
    files = [str(f) for f in sim.files[1]]
    assert run("stiscube", "ingest", db, "--darks", *files, "--anneal", "1").returncode == 0
    from stiscube import PixelDB

    info = PixelDB(db, mode="r").info()
    end = np.datetime64(info["last_end"], "ns")
    assert end != end.astype("datetime64[s]")  # the case of the issue: a fraction of a second
    proc = run("stiscube", "info", db)
    dates = [line for line in proc.stdout.splitlines() if line.strip().startswith("dates")]
    first = np.datetime64(info["first_start"], "s")
    assert dates == [f"  dates            {first} to {end.astype('datetime64[s]')}"]


def test_a_missing_loss_file_is_named_with_the_fix(tmp_path):
    for command in ("fit", "plot"):
        proc = run("cte", command, "--loss", tmp_path / "loss.nc", "--out", tmp_path / "o")
        assert proc.returncode == 1, proc.stderr
        assert error_line(proc) == (
            f"cte: error: --loss {tmp_path / 'loss.nc'}: no such file; give the loss.nc that "
            "`cte run --out DIR` writes in DIR")
    assert not (tmp_path / "o").exists()


def test_upgrade_reports_then_converts_a_format1_store(tmp_path):
    """Issue 20: `stiscube upgrade DB` on a cube written by the format-1 code."""
    import shutil

    db = tmp_path / "db"
    shutil.copytree(Path(__file__).parent / "data" / "cube_format1", db / "cube")
    (db / "cube" / ".lock").touch()
    before = tree_digest(db)
    proc = run("stiscube", "upgrade", db)
    assert proc.returncode == 0, proc.stderr
    assert "problem: format 1" in proc.stdout and "--yes" in proc.stdout.splitlines()[-1]
    assert tree_digest(db) == before
    proc = run("stiscube", "upgrade", db, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "repaired:"
    assert json.loads((db / "cube" / "cubestore.json").read_text())["version"] == 2
    assert run("stiscube", "upgrade", db).stdout.strip() == "nothing to repair"
