"""The monthly loop of both monitors replayed through their command lines at test size
(issue 19): examples/replay.py, each month's products against the simulator's truth, and
the same month's commands run twice in a row changing nothing."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tests._examples import load_example
from tests.stiscube._crds import offline_certifier

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_monthly_commands() -> list[str]:
    """The commands of the README's "Monthly update" section, one string each."""
    section = README.read_text().split("### Monthly update", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [" ".join(shlex.split(line)) for block in blocks
            for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_replay_runs_the_readme_commands():
    """The replay's one table of commands is the README's "Monthly update", word for word."""
    replay = load_example("replay")
    readme = {"darks": "darks/N/*_flt.fits", "period": "N"}
    expected = [" ".join(replay.command(step, Path("."), **readme)).replace("./", "")
                for step in replay.COMMANDS]
    assert _readme_monthly_commands() == [c.replace("./", "") for c in expected]


@pytest.mark.slow
def test_stis_monthly_replay_matches_the_truth(tmp_path, real_dir, monkeypatch):
    """36 months of 64 x 64 darks from 2000-10 (Side-1, then Side-2 from 2001-07)."""
    pytest.importorskip("crds")
    monkeypatch.setenv("CRDS_EXPLICIT_GARBAGE_COLLECTION", "false")  # 1 s per file, else
    certify = offline_certifier(tmp_path / "crds-cache", real_dir / "crds", monkeypatch)
    replay = load_example("replay")
    certified = []

    def check(row, work):  # every month: both reference files pass crds certify
        certified.append((certify(work / replay.PATHS["superdark"]),
                          certify(work / replay.PATHS["bpixtab"])))

    work = tmp_path / "replay"
    size = replay.SIZES["test"]
    rows = replay.replay_stis(work, size, seed=3, on_month=check)
    assert len(rows) == size.months == 36 and certified == [(0, 0)] * 36
    assert {row["side"] for row in rows[:6]} == {1} and {row["side"] for row in rows[-6:]} == {2}
    for row in rows:
        assert row["true_hot"] > 30, row  # enough hot pixels for the fractions to mean much
        assert row["recall"] >= 0.9 and row["precision"] >= 0.9, row
        assert set(row["nhot"]) == {"dq", "superdark", "superdark_dq", "site"}, row
        assert len(set(row["nhot"].values())) == 1, row  # NHOT equal across products
        # the BPIXTAB: the pixels hot in >= 3 of the last 6 months' DQ arrays
        np.testing.assert_array_equal(row["bpixtab_hot"], row["bpixtab_expected"])
        assert row["written_bytes"] > 0
    assert rows[20]["bpixtab_hot"].sum() > 0
    # the same month's commands again: each exits 0, no file changes, and they say so
    before = replay.snapshot(work, replay.STIS_OUTPUTS)
    again: dict = {}
    replay.run_month(work, ["ingest", "dq", "report"], again, period=rows[-1]["period"],
                     darks=rows[-1]["darks"])
    assert replay.snapshot(work, replay.STIS_OUTPUTS) == before
    assert "nothing to do" in again["said"]["ingest"]
    assert "unchanged" in again["said"]["dq"] and "unchanged" in again["said"]["report"]


@pytest.mark.slow
def test_cte_monthly_replay_matches_the_truth(tmp_path):
    """3 epochs added one at a time, each followed by the README's `cte run`."""
    from cte.datasets.simulate import load_campaign
    from cte.photometry.store import PhotometryStore
    from tests.cte.test_run import _injected_per_cell

    replay = load_example("replay")

    def check(row, work):  # from 2 epochs on: the loss within errors of the truth
        loss = xr.load_dataset(work / replay.PATHS["cte_out"] / "loss.nc", engine="h5netcdf")
        if row["epochs_in_loss"] < 2:
            return
        photometry = PhotometryStore(work / replay.PATHS["photometry"], mode="r").read_all()
        injected = _injected_per_cell(loss, photometry, load_campaign(work / "campaign"))
        small = loss["aperture"].values <= 5.0  # as test_run: 10 px holds neighbours
        measured, err = loss["loss"].values[..., small], loss["loss_err"].values[..., small]
        use = np.isfinite(measured) & np.isfinite(injected[..., small]) & (err > 0)
        pull = (measured[use] - injected[..., small][use]) / err[use]
        checked.append((row["epochs_in_loss"], int(use.sum()), float(np.mean(np.abs(pull) <= 2))))

    checked = []
    rows, _ = replay.replay_cte(tmp_path / "replay", epochs=3, seed=5, on_epoch=check)
    assert [r["epochs_in_loss"] for r in rows] == [1, 2, 3]
    assert [c[0] for c in checked] == [2, 3]
    for epochs, cells, within in checked:
        assert cells >= 10 * epochs and within >= 0.8, checked
    # the same month again: exits 0, no file changes, and it says so
    work = tmp_path / "replay"
    before = replay.snapshot(work, replay.CTE_OUTPUTS)
    again: dict = {}
    replay.run_month(work, ["cte run"], again)
    assert replay.snapshot(work, replay.CTE_OUTPUTS) == before
    assert "unchanged, left untouched" in again["said"]["cte run"]


@pytest.mark.slow
def test_the_mission_length_stis_site_is_small_and_draws_fast(tmp_path):
    """330 anneal periods (the mission, 1997-2026) of 64 x 64 properties: the site is
    <= 20 MB and every plot is drawn within 5 s of loading in headless Chromium."""
    from stiscube import PixelDB
    from stiscube.cli import main
    from stiscube.datasets import random_properties
    from tests.browser import open_page, require_chromium

    require_chromium()
    db = PixelDB.create(tmp_path / "pixels.db", shape=(64, 64))
    start = np.datetime64("1997-04-01")
    for period in range(1, 331):
        db.ingest_properties(random_properties((64, 64), seed=period), period,
                             start=start + np.timedelta64(30 * (period - 1), "D"),
                             end=start + np.timedelta64(30 * period, "D"))
    assert main(["--quiet", "report", str(tmp_path / "pixels.db"),
                 "--out", str(tmp_path / "site")]) == 0
    page = tmp_path / "site" / "index.html"
    assert page.stat().st_size <= 20e6  # measured: 5.8 MB (4 MB of it BokehJS)
    report = open_page(page, screenshot="stis-site-330-periods.png", timeout=5.0)
    report.assert_ok()  # every figure drawn within the 5 s, offline, no error
    assert report.expected_figures == 3  # trends, anneal effectiveness, pixel browser
    assert "330 anneal periods" in page.read_text()
