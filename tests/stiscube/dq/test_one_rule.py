"""One rule object, one count: NHOT equal across the DQ array, its file, the superdark,
the BPIXTAB, the site and the command line, for the same DQRules (issue 19)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from stiscube import PixelDB
from stiscube.cli import build_parser, main
from stiscube.datasets._synthcube import random_properties
from stiscube.dq import DQRules, dq_array, hot_pixels, write_dq_fits
from stiscube.dq.reffiles import write_reference
from stiscube.report.site import SiteOptions, site_summary

SHAPE = (48, 40)
NUMBERS = (2, 3, 4, 5)
START = np.datetime64("2021-01-01T00:00:00", "s")
DAY = np.timedelta64(86400, "s")


@pytest.fixture(scope="module")
def truth():
    out = {n: random_properties(SHAPE, seed=100 + n, hot_fraction=0.04) for n in NUMBERS}
    rng = np.random.default_rng(7)
    always, healed = np.split(rng.choice(SHAPE[0] * SHAPE[1], 50, replace=False), [30])
    for n, frames in out.items():  # hot in every period, and hot until an anneal healed
        frames["sci_mean"].values.ravel()[always] = 0.3
        if n <= 3:
            frames["sci_mean"].values.ravel()[healed] = 0.3
    return out


@pytest.fixture(scope="module")
def db(tmp_path_factory, truth):
    db = PixelDB.create(tmp_path_factory.mktemp("one") / "db", shape=SHAPE)
    for i, n in enumerate(NUMBERS):
        start = START + 28 * i * DAY
        darks = pd.DataFrame({"rootname": [f"o{n}x{k}" for k in range(5)],
                              "exptime": np.full(5, 1100.0),
                              "start": [start + DAY * (k + 1) for k in range(5)]})
        db.ingest_properties(truth[n], n, start=start, end=start + 28 * DAY, darks=darks)
    return db


def _numpy_hot(truth, rules, number):
    """Independent: the hot rule in numpy (absolute level, k of the last m periods)."""
    window = [n for n in NUMBERS if n <= number][-rules.window :]
    with np.errstate(invalid="ignore"):
        masks = [truth[n]["sci_mean"].values.astype(np.float64) > rules.hot_level for n in window]
    return np.sum(masks, axis=0) >= rules.min_count


@pytest.mark.parametrize(
    "rules",
    [
        DQRules(),
        DQRules(hot_level=0.05, unstable_level=3.0),
        DQRules(hot_level=0.1, persist_k=2, persist_m=3, partial_window="available"),
    ],
    ids=["default", "level+unstable", "persistent"],
)
def test_nhot_equal_across_products(db, truth, rules, tmp_path):
    site = {}
    if rules.persist_k is None:  # the site compares single periods (refuses persistence)
        summary = site_summary(db, site=SiteOptions(rules=rules, map_size=16))
        site = {p["anneal"]: p["n_hot"] for p in summary["periods"]}
    for number in NUMBERS:
        expected = _numpy_hot(truth, rules, number)
        n_hot = int(expected.sum())
        assert n_hot > 0 or (rules.persist_k == 2 and number == NUMBERS[0])  # k=2 of 1
        mask = hot_pixels(db, rules=rules, anneal_num=number)
        np.testing.assert_array_equal(mask.values, expected)
        dq = dq_array(db, rules=rules, anneal_num=number)
        path = write_dq_fits(dq, tmp_path / f"dq{number}.fits")
        dark = write_reference(db, tmp_path / f"d{number}.fits", "dark", rules=rules,
                               anneals=number)
        counts = {
            "hot_pixels": int(mask.sum()),
            "hot_pixels attrs": mask.attrs["n_hot"],
            "dq_array": dq.attrs["n_hot"],
            "DQ file": fits.getheader(path)["NHOT"],
            "superdark": fits.getheader(dark)["NHOT"],
        }
        if site:
            counts["site"] = site[number]
        if rules.persist_k is not None:
            bpx = write_reference(db, tmp_path / f"b{number}.fits", "bpixtab", rules=rules,
                                  anneals=number)
            counts["BPIXTAB"] = fits.getheader(bpx)["NHOT"]
        assert set(counts.values()) == {n_hot}, (number, counts)
    # each product states its rule
    assert rules.describe()[0] in " ".join(str(h) for h in fits.getheader(dark)["HISTORY"])
    assert "rule" in mask.attrs and "sci_mean >" in mask.attrs["rule"]


def test_site_refuses_persistent_rules():
    with pytest.raises(ValueError, match="rules must have no persistence .* BPIXTAB"):
        SiteOptions(rules=DQRules(persist_k=2, persist_m=3))


def test_cli_dq_and_report_share_the_rules_and_their_defaults():
    parser = build_parser()
    from stiscube.cli import _rules

    for extra in ([], ["--hot-level", "0.2", "--unstable-level", "3"], ["--hot-level", "none"]):
        dq = _rules(parser.parse_args(["dq", "db", "--out", "x.fits", *extra]))
        report = _rules(parser.parse_args(["report", "db", "--out", "site", *extra]))
        assert dq == report
    assert _rules(parser.parse_args(["dq", "db"])) == DQRules() == SiteOptions().rules
    assert _rules(parser.parse_args(["dq", "db", "--hot-level", "none"])).hot_nsigma == 5.0


def test_cli_counts_agree(db, tmp_path, capsys):
    url = db.location.url
    assert main(["report", url, "--out", str(tmp_path / "site"), "--map-size", "16"]) == 0
    page = (tmp_path / "site" / "index.html").read_text()
    assert main(["dq", url, "--out", str(tmp_path / "dq.fits"),
                 "--dark-reference", str(tmp_path / "drk.fits")]) == 0
    out = capsys.readouterr().out
    n_hot = fits.getheader(tmp_path / "dq.fits")["NHOT"]
    assert fits.getheader(tmp_path / "drk.fits")["NHOT"] == n_hot
    assert f"period {NUMBERS[-1]}: " in out and f"{n_hot} hot" in out
    assert f">{n_hot:,}<" in page  # the site headline of the newest period
    assert "sci_mean &gt; 0.1 electron / s" in page or "sci_mean > 0.1 electron / s" in page
