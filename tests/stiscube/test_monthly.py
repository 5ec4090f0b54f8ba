"""The monthly STIS loop from the shell: the same commands every month, reruns are no-ops
that say so, periods tile time without gaps (issue 19)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
from astropy.io import fits

from stiscube import PixelDB
from stiscube.cli import main
from stiscube.datasets.simulate import simulate_darks
from stores.common.testing import tree_digest


def test_monthly_commands_rerun_and_no_gaps(tmp_path, capsys):
    sim = simulate_darks(tmp_path / "sim", n_periods=3, frames_per_period=3, shape=(32, 24),
                         seed=5)
    db = str(tmp_path / "db")
    for number in sorted(sim.files):  # one month at a time, without a period table
        files = [str(f) for f in sim.files[number]]
        ingest = ["ingest", db, "--darks", *files, "--anneal", str(number)]
        assert main(ingest) == 0
        before = tree_digest(tmp_path / "db")
        assert main(ingest) == 0  # the rerun: nothing to do, and said so
        assert tree_digest(tmp_path / "db") == before
        out = capsys.readouterr().out
        assert f"period {number} is already in {db} from the same 3 darks" in out
        assert "nothing to do" in out
        monthly = ["dq", db, "--out", str(tmp_path / "dq.fits"),
                   "--dark-reference", str(tmp_path / "drk.fits")]
        for _ in range(2):  # the same command every month, twice: exit 0 both times
            assert main(monthly) == 0
        hdr = fits.getheader(tmp_path / "drk.fits")
        assert hdr["PERIODS"] == str(number) and hdr["APPLIES"] == number
        assert fits.getheader(tmp_path / "dq.fits")["APPLIES"] == number
    ds = PixelDB(db, mode="r").dataset
    starts, ends = ds["anneal_start"].values, ds["anneal_end"].values
    np.testing.assert_array_equal(starts[1:], ends[:-1])  # no gap between periods
    darks = PixelDB(db, mode="r").darks
    first_dark = np.datetime64(darks.loc[darks["anneal"] == 2, "start"].min(), "ns")
    assert starts[1] < first_dark  # the gap the frames alone would leave is now period 2's
    gap = starts[1] + (first_dark - starts[1]) // 2
    capsys.readouterr()
    assert main(["query", db, "anneal", "--date", str(gap)[:19]]) == 0
    assert capsys.readouterr().out.split("\n")[1].split()[0] == "2"


README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_monthly_stis():
    """The STIS commands of the README's "Monthly update" section, as written."""
    section = README.read_text().split("### Monthly update", 1)[1].split("\n### ", 1)[0]
    block = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0]
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line]


def test_readme_monthly_commands_run_twice(tmp_path, monkeypatch, capsys):
    commands = _readme_monthly_stis()
    assert [c[:2] for c in commands] == [["stiscube", "ingest"], ["stiscube", "dq"],
                                         ["stiscube", "report"]]
    sim = simulate_darks(tmp_path / "sim", n_periods=3, frames_per_period=3, shape=(32, 24),
                         seed=6)
    monkeypatch.chdir(tmp_path)
    sim.periods.write(tmp_path / "anneal_periods.ecsv")  # the team's period table
    for name in ("dq", "crds"):
        (tmp_path / name).mkdir()
    for number in sorted(sim.files):  # each month, the README's commands, twice
        files = [str(f) for f in sim.files[number]]
        for _ in range(2):
            for command in commands:
                argv = []
                for word in command[1:]:
                    if word == "darks/N/*_flt.fits":
                        argv += files
                    else:
                        argv.append(str(number) if word == "N" else word)
                assert main(argv) == 0, (argv, capsys.readouterr().err)
        hdr = fits.getheader(tmp_path / "crds" / "superdark_drk.fits")
        assert hdr["APPLIES"] == number
        assert fits.getheader(tmp_path / "dq" / "dq_newest.fits")["NHOT"] == hdr["NHOT"]
    assert "nothing to do" in capsys.readouterr().out


def test_dq_writes_all_its_products_or_none(tmp_path, capsys):
    simulate_darks(tmp_path / "sim", n_periods=1, frames_per_period=3, shape=(32, 24), seed=7)
    db = str(tmp_path / "db")
    assert main(["ingest", db, "--simulation", str(tmp_path / "sim")]) == 0
    out = tmp_path / "out"
    out.mkdir()
    argv = ["dq", db, "--out", str(out / "dq.fits"), "--table", str(out / "dq.ecsv"),
            "--dark-reference", str(out / "drk.fits")]
    assert main(argv) == 0
    before = tree_digest(out)
    # the superdark fails (a gain restriction the darks contradict) after the DQ array and
    # table were made: nothing is replaced, no staged file is left
    assert main([*argv, "--ccdgain", "4"]) == 1
    assert "CCDGAIN=4 was given but the cube's period" in capsys.readouterr().err
    assert tree_digest(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["dq.ecsv", "dq.fits", "drk.fits"]
