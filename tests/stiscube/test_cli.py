"""The stiscube command line, end to end on a small simulation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stiscube import PixelDB
from stiscube.cli import main


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    assert (
        main(
            [
                "simulate",
                "--out",
                str(root / "sim"),
                "--periods",
                "2",
                "--frames",
                "20",
                "--shape",
                "48",
                "40",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    assert main(["ingest", str(root / "db"), "--simulation", str(root / "sim")]) == 0
    return root


def test_query_outputs_agree_with_python_api(built, capsys):
    db = PixelDB(built / "db", mode="r")
    capsys.readouterr()
    assert (
        main(["query", str(built / "db"), "pixel", "3", "4", "--anneal", "2", "--format", "json"])
        == 0
    )
    records = json.loads(capsys.readouterr().out)
    expected = db.query_pixel(3, 4, anneal_num=2)
    assert records[0]["Sci_Mean"] == pytest.approx(float(expected["Sci_Mean"].item()), rel=1e-6)
    assert (
        main(
            [
                "query",
                str(built / "db"),
                "region",
                "0",
                "2",
                "5",
                "6",
                "--anneal",
                "1",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    from io import StringIO

    table = pd.read_csv(StringIO(capsys.readouterr().out))
    assert len(table) == 6
    pd.testing.assert_series_equal(
        table["Readnoise"],
        db.query_pixel_region([0, 2], [5, 6], anneal_num=1)["Readnoise"].astype(float),
        rtol=1e-6,
        check_dtype=False,
    )
    assert main(["query", str(built / "db"), "darks", "--anneal", "1"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 21  # header + 20 darks
    assert main(["history", str(built / "db"), "3", "4", "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert main(["info", str(built / "db"), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["periods"] == [1, 2] and info["shape"] == [48, 40]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["query", "{db}", "pixel", "99", "0", "--anneal", "1"],
            "pixel_row=99 is outside the frame",
        ),
        (["query", "{db}", "anneal", "--date", "1999-01-01"], "before the first period held"),
        (["query", "{db}", "anneal", "--anneal", "77"], "anneal period 77 is not in the cube"),
        (["info", "{root}/nothing"], "is not a cube store"),
        (["ingest", "{db}", "--csv", "{root}", "--anneal", "1"], "already in"),
        (["ingest", "{db}", "--csv", "{root}"], "--anneal is required"),
    ],
)
def test_bad_input_is_one_line_nonzero(built, capsys, argv, message):
    argv = [a.format(db=built / "db", root=built) for a in argv]
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("stiscube: error:") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_verbose_shows_the_traceback(built):
    from stiscube import CubeQueryError

    with pytest.raises(CubeQueryError, match="outside the frame"):
        main(["--verbose", "query", str(built / "db"), "pixel", "99", "0", "--anneal", "1"])


def test_dq_and_plots(built, tmp_path, capsys):
    from astropy.io import fits

    from stiscube.dq import DQRules, dq_array

    out = tmp_path / "dq.fits"
    argv = [
        "dq",
        str(built / "db"),
        "--anneal",
        "2",
        "--out",
        str(out),
        "--hot-level",
        "0.1",
        "--unstable-level",
        "3",
        "--table",
        str(tmp_path / "dq.ecsv"),
    ]
    assert main(argv) == 0
    assert "flagged" in capsys.readouterr().out
    expected = dq_array(
        PixelDB(built / "db", mode="r").dataset,
        rules=DQRules(hot_level=0.1, unstable_level=3.0),
        anneal_num=2,
    )
    with fits.open(out) as hdul:
        assert (hdul["DQ"].data == expected.values).all()
    assert (tmp_path / "dq.ecsv").exists()
    # the monthly rerun: every output replaced atomically, same pixels, exit 0
    first = fits.getdata(out, "DQ")
    assert main(argv) == 0
    np.testing.assert_array_equal(fits.getdata(out, "DQ"), first)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("dq")) == [
        "dq.ecsv", "dq.fits"
    ]  # no temporary left behind
    for kind in (["history", "3", "4"], ["map", "sci_mean", "--anneal", "1"], ["hot-count"]):
        png = tmp_path / f"{kind[0]}.png"
        assert main(["plot", str(built / "db"), *kind, "--out", str(png)]) == 0
        assert png.stat().st_size > 1000
    with pytest.raises(SystemExit) as info:  # a usage error: argparse names the choices
        main(["plot", str(built / "db"), "map", "nope", "--anneal", "1", "--out", str(png)])
    assert info.value.code == 2
    assert "argument PROPERTY: invalid choice: 'nope'" in capsys.readouterr().err


def test_index_command(built, tmp_path, capsys):
    import shutil

    db_path = tmp_path / "db"
    shutil.copytree(built / "db", db_path)
    assert main(["info", str(db_path)]) == 0
    assert "none or stale" in capsys.readouterr().out
    assert main(["index", str(db_path)]) == 0
    assert main(["info", str(db_path)]) == 0
    assert "history index    current" in capsys.readouterr().out
    expected = PixelDB(built / "db", mode="r").history(3, 4)
    got = PixelDB(db_path, mode="r").history(3, 4)
    assert (got["sci_mean"].values == expected["sci_mean"].values).all()


# -- issue 14, item 11: an interrupted `ingest --simulation` resumes -----------------------
def _cli(*args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "stiscube.cli", *map(str, args)],
        capture_output=True, text=True, timeout=600, check=False,
    )


def _slice_digests(db_path):
    """Committed checksums of each period (the store's own record) and its darks table."""
    db = PixelDB(db_path, mode="r")
    return {n: (db.store.slice_info(n), db.store.slice_extras(n)) for n in db.anneal_numbers}


def test_interrupted_simulation_ingest_resumes(tmp_path):
    import numpy as np
    from astropy.io import fits

    from stiscube.datasets.simulate import simulate_darks
    from stores.common.testing import tree_digest

    sim = simulate_darks(tmp_path / "sim", n_periods=3, frames_per_period=3, shape=(32, 24),
                         seed=8)
    db_path = tmp_path / "db"
    # the "interrupted" run: only the first period was committed
    db = PixelDB.create(db_path, periods=sim.periods, shape=sim.shape)
    db.ingest_darks(sim.files[1], 1)
    first = _slice_digests(db_path)
    proc = _cli("ingest", db_path, "--simulation", tmp_path / "sim")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"ingested periods [2, 3] into {db_path} ([1] already stored from the same darks)\n"
    )
    assert "period 1 is already stored from the same 3 darks; skipped" in proc.stderr
    after = _slice_digests(db_path)
    assert after[1] == first[1]  # untouched
    assert sorted(after) == [1, 2, 3]
    # a rerun with nothing new changes nothing
    before = tree_digest(db_path)
    proc = _cli("ingest", db_path, "--simulation", tmp_path / "sim")
    assert proc.returncode == 0, proc.stderr
    assert tree_digest(db_path) == before
    # a changed frame is refused without --overwrite (store unchanged) ...
    changed = sim.files[2][0]
    with fits.open(changed, mode="update") as hdul:
        hdul["SCI"].data[3, 4] += np.float32(50.0)
    proc = _cli("ingest", db_path, "--simulation", tmp_path / "sim")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        f"stiscube: error: anneal period 2 is already in {db_path} but was computed from other "
        "darks (or stored without their checksums); use --overwrite to recompute it"
    )
    assert tree_digest(db_path) == before
    # ... and with --overwrite only that period is recomputed
    proc = _cli("ingest", db_path, "--simulation", tmp_path / "sim", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"ingested periods [2] into {db_path} ([1, 3] already stored from the same darks)\n"
    )
    final = _slice_digests(db_path)
    assert final[1] == after[1] and final[3] == after[3]
    assert final[2][0]["sha256"] != after[2][0]["sha256"]


# -- issue 23: Ctrl-C gives one line and exit status 130 -----------------------------------
def _interrupt_ingest(db_path, sim_dir, at_line):
    """Run ``stiscube ingest --simulation``; Ctrl-C once a progress line holds *at_line*."""
    import signal
    import subprocess
    import sys

    # Ctrl-C at a terminal: SIGINT at its default, even where this test runs with it
    # ignored (a job started in the background by a non-interactive shell, or under
    # nohup, inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stiscube.cli", "ingest", str(db_path), "--simulation",
         str(sim_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if at_line in line:
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=300)
    if proc.returncode != 130:  # the whole stderr (an assert's repr would be cut)
        pytest.fail(f"exit {proc.returncode}, not 130; stderr:\n{''.join(seen)}{err}")
    assert out == ""
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    return [line.rstrip("\n") for line in seen] + err.splitlines()


def test_ctrl_c_during_ingest_is_one_line_and_keeps_only_whole_periods(tmp_path):
    from stiscube.datasets.simulate import simulate_darks

    sim = simulate_darks(tmp_path / "sim", n_periods=3, frames_per_period=20, shape=(256, 256),
                         seed=3)
    # into an existing database: the periods before the interrupted one stay
    db_path = tmp_path / "db"
    db = PixelDB.create(db_path, periods=sim.periods, shape=sim.shape)
    db.ingest_darks(sim.files[1], 1)
    lines = _interrupt_ingest(db_path, tmp_path / "sim", "period 2: ")
    assert lines[-1] == "stiscube: interrupted; nothing was written for period 2"
    assert any("period 1 is already stored from the same 20 darks; skipped" in t for t in lines)
    assert PixelDB(db_path, mode="r").anneal_numbers == [1]
    # a database the run created is removed whole
    new = tmp_path / "new"
    lines = _interrupt_ingest(new, tmp_path / "sim", "period 2: ")
    assert lines[-1] == (f"stiscube: interrupted; nothing was written: the database {new} "
                         "this run created was removed")
    assert not new.exists()
