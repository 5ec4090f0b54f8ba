"""The monthly loop replayed through both command lines at test size (issue 19):
examples/replay.py, each month's products against the simulator's truth."""

from __future__ import annotations

import pytest

from tests._examples import load_example
from tests.stiscube._crds import offline_certifier


@pytest.mark.slow
def test_stis_monthly_replay_matches_the_truth(tmp_path, real_dir, monkeypatch):
    pytest.importorskip("crds")
    certify = offline_certifier(tmp_path / "crds-cache", real_dir / "crds", monkeypatch)
    certified = []

    def check(row, work):  # every month: both reference files pass crds certify
        certified.append((certify(work / "crds" / "superdark_drk.fits"),
                          certify(work / "crds" / "bad_pixels_bpx.fits")))

    rows = load_example("replay").replay_stis(tmp_path / "replay", months=6, shape=(64, 64),
                                        start="2009-01-01", seed=3, on_month=check)
    assert len(rows) == 6 and certified == [(0, 0)] * 6
    for row in rows:
        assert row["true_hot"] > 50, row  # enough hot pixels for the fractions to mean much
        assert row["recall"] >= 0.9 and row["precision"] >= 0.9, row
        assert set(row["nhot"]) == {"dq", "superdark", "site"}, row
        assert len(set(row["nhot"].values())) == 1, row  # NHOT equal across products
        assert row["disk_written_bytes"] > 0
    assert rows[1]["disk_written_bytes"] < rows[0]["disk_written_bytes"]  # no full rewrite
