"""Anneal effectiveness: the counts against plain numpy, and the simulated mission's repair
fractions recovered from its darks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from stiscube import PixelDB
from stiscube.datasets import MissionPhysics, random_properties, simulate_mission
from stiscube.dq import DQRules
from stiscube.dq.effectiveness import (
    anneal_effectiveness,
    effectiveness_by_side,
    write_anneal_effectiveness,
)
from stiscube.report.site import SiteOptions, write_site

#: STIS switched to Side-2 electronics on 2001-07-23 (the test's own date)
SIDE2_SWITCH = np.datetime64("2001-07-23")


@pytest.fixture(scope="module")
def mission(tmp_path_factory):
    """About 11 anneals on each side of the Side-2 switch, 128 x 128, 20 darks per period;
    ten times the published crop of new hot pixels per area, so that each side has about
    1 500 new hot pixels (the fractions are then measured to about 1 point)."""
    published = MissionPhysics()
    physics = dataclasses.replace(
        published,
        frames_per_period=(20, 22),
        hot_per_day=tuple((date, 10 * rate) for date, rate in published.hot_per_day),
    )
    sim = simulate_mission(
        tmp_path_factory.mktemp("mission"), start="2000-09-01", end="2002-07-01",
        shape=(128, 128), seed=11, physics=physics,
    )
    db = PixelDB.create(tmp_path_factory.mktemp("db") / "db", periods=sim.periods,
                        shape=(128, 128))
    for number, files in sim.files.items():
        db.ingest_darks(files, number)
    return sim, db


def test_repair_fractions_of_the_simulated_mission_are_recovered(mission):
    """Side-1 and Side-2 repair fractions, pooled over the anneals, within 3 points of the
    simulator's (the new hot pixels it made and healed at those anneals); the old hot pixels
    still hot within 1 point."""
    sim, db = mission
    table = anneal_effectiveness(db)
    truth = sim.anneals
    truth = truth[np.isin(truth["number"], table["anneal"])]
    np.testing.assert_array_equal(truth["number"], table["anneal"])
    np.testing.assert_array_equal(truth["side"], table["side"])
    by_side = effectiveness_by_side(table)
    assert list(by_side["side"]) == [1, 2]
    for row in by_side:
        mine = truth[truth["side"] == row["side"]]
        assert row["n_anneals"] >= 9 and row["n_new"] > 800
        repaired = mine["n_new_healed"].sum() / mine["n_new"].sum()
        assert abs(row["repair_fraction"] - repaired) < 0.03, (row["side"], row, repaired)
        assert abs(row["repair_fraction"] - repaired) < 3 * row["repair_fraction_err"]
        still = 1 - mine["n_old_healed"].sum() / mine["n_old"].sum()
        assert abs(row["old_still_hot_fraction"] - still) < 0.01
    # and the simulator's own fractions are the published 81 % and 48 %
    published = {1: 0.81, 2: 0.48}
    for row in by_side:
        assert abs(row["repair_fraction"] - published[row["side"]]) < 0.05


def test_site_shows_the_trends_by_side_and_writes_the_table(mission, tmp_path):
    _, db = mission
    path = write_site(db, tmp_path / "site", site=SiteOptions(map_size=32))
    html = path.read_text()
    for text in ("Anneal effectiveness", "New hot pixels repaired by each anneal",
                 "Old hot pixels still hot after each anneal", "Side-1, 1-sigma binomial error",
                 "Side-2, 1-sigma binomial error", "Side-1: median, 1-sigma error",
                 "Side-2: median, 1-sigma error",
                 "Anneal repair of new hot pixels"):
        assert text in html, text
    written = Table.read(tmp_path / "site" / "anneal_effectiveness.ecsv", format="ascii.ecsv")
    table = anneal_effectiveness(db)
    for name in table.colnames:
        np.testing.assert_array_equal(written[name], table[name])
    assert written.meta["quiet_level"] == pytest.approx(0.01)


# -- the counts against numpy, on property frames ----------------------------------------------
SHAPE = (40, 30)


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    """Six periods of random properties, periods 1-3 before and 4-6 after the switch; no 4."""
    db = PixelDB.create(tmp_path_factory.mktemp("small") / "db", shape=SHAPE)
    frames = {}
    starts = SIDE2_SWITCH + np.array([-90, -60, -30, 0, 30, 60, 90]) * np.timedelta64(1, "D")
    for n in (1, 2, 3, 5, 6, 7):
        ds = random_properties(SHAPE, seed=n, hot_fraction=0.1)
        ds["sci_mean"].values[0, :5] = np.nan
        frames[n] = ds
        start = np.datetime64(starts[n - 1], "s")
        db.ingest_properties(ds, n, start=start, end=start + np.timedelta64(30, "D"),
                             darks=pd.DataFrame({"rootname": ["o1"], "exptime": [1100.0],
                                                 "start": [start]}))
    return db, frames


def test_counts_against_numpy(small_db, tmp_path):
    db, frames = small_db
    rules = DQRules(hot_level=0.05)
    table = anneal_effectiveness(db, rules=rules, unstable_level=1.2, quiet_level=0.0045)
    assert list(table["anneal"]) == [3, 7]  # the anneals with periods k-2, k-1, k held
    assert list(table["side"]) == [1, 2]
    for row in table:
        k = row["anneal"]
        sci = {j: frames[j]["sci_mean"].values.astype(float) for j in (k - 2, k - 1, k)}
        hot = {j: np.nan_to_num(v, nan=-1) > 0.05 for j, v in sci.items()}
        unstable = frames[k - 1]["stability"].values.astype(float) > 1.2
        new = hot[k - 1] & unstable & (np.nan_to_num(sci[k - 2], nan=1) <= 0.0045)
        old = hot[k - 2] & hot[k - 1]
        assert row["n_new"] == new.sum() > 0
        assert row["n_repaired"] == (new & ~hot[k]).sum()
        assert row["n_old"] == old.sum() > 0
        assert row["n_old_still_hot"] == (old & hot[k]).sum()
        p = row["n_repaired"] / row["n_new"]
        assert row["repair_fraction"] == pytest.approx(p)
        assert row["repair_fraction_err"] == pytest.approx(np.sqrt(p * (1 - p) / row["n_new"]))
    path = write_anneal_effectiveness(table, tmp_path / "e.ecsv")
    back = Table.read(path, format="ascii.ecsv")
    assert back.meta["rules"]["hot_level"] == 0.05 and back["n_new"].description


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rules": DQRules(hot_level=None, hot_nsigma=None, unstable_level=3)}, "hot rule"),
        ({"rules": DQRules(hot_level=None, hot_nsigma=5)}, "quiet_level"),
        ({"rules": "0.1"}, "rules must be a DQRules"),
        ({"unstable_level": 0}, "unstable_level must be > 0"),
    ],
)
def test_bad_arguments_are_refused(small_db, kwargs, match):
    db, _ = small_db
    with pytest.raises((ValueError, TypeError), match=match):
        anneal_effectiveness(db, **kwargs)


def test_persistence_is_not_applied_and_said_so(small_db):
    db, _ = small_db
    plain = anneal_effectiveness(db, rules=DQRules(hot_level=0.05))
    windowed = anneal_effectiveness(db, rules=DQRules(hot_level=0.05, persist_k=2, persist_m=3))
    np.testing.assert_array_equal(plain["n_new"], windowed["n_new"])
    assert plain.meta["persistence"] == "none"
    assert windowed.meta["persistence"].startswith("not applied")
