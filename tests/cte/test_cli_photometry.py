"""The ``cte simulate``, ``cte photometry`` and ``cte info`` commands."""

from __future__ import annotations

import pytest

from cte.cli import _selection, build_parser, main
from cte.io import ImageSelection
from cte.photometry.store import PhotometryStore


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    status = main(["simulate", "--out", str(root / "sim"), "--seed", "2", "--shape", "128",
                   "128", "--n-stars", "120", "--epochs", "1", "--targets", "ngc104",
                   "--flashes", "0", "12", "--exptimes", "348", "--bad-files"])
    assert status == 0
    return root


def test_simulate_writes_a_campaign(small, capsys):
    sim = small / "sim"
    assert (sim / "catalogs" / "ngc104.ecsv").is_file()
    assert (sim / "truth" / "campaign.json").is_file()
    assert len(list((sim / "data").rglob("*_fl?.fits"))) > 10
    status = main(["simulate", "--out", str(sim)])
    assert status == 1
    assert "overwrite" in capsys.readouterr().err


def test_photometry_with_selection(small, capsys):
    sim, store = small / "sim", small / "store"
    status = main(["photometry", str(store), "--data", str(sim / "data"), "--catalogs",
                   str(sim / "catalogs"), "--proposals", "last", "--flashes", "0",
                   "--ctecorr", "FLC", "--apertures", "3", "4"])
    out = capsys.readouterr().out
    assert status == 0
    assert "measured" in out and "skipped (excluded)" in out and "skipped (unreadable)" in out
    assert "charge injection (CHINJECT=CONT)" in out
    phot = PhotometryStore(store, mode="r")
    images = phot.images()
    # --proposals last: the newest configured program present (12692, the 180-degree set)
    assert set(images["proposal"]) == {12692}
    assert set(images["ctecorr"]) == {"FLC"}
    assert phot.keys() == ["ngc6583/F502N/flash0"] and len(images) == 4
    assert all(a == (3.0, 4.0) for a in images["apertures"])


def test_photometry_by_proposal_and_visit(small, capsys):
    sim, store = small / "sim", small / "store2"
    status = main(["photometry", str(store), "--data", str(sim / "data"), "--catalogs",
                   str(sim / "catalogs"), "--proposals", "11924", "--visits", "01",
                   "--flashes", "12", "--scheduler", "synchronous"])
    assert status == 0
    images = PhotometryStore(store, mode="r").images()
    assert set(images["proposal"]) == {11924} and set(images["visit"]) == {"01"}
    assert set(images["flash"]) == {12.0}
    assert set(images["ctecorr"]) == {"FLT", "FLC"}
    capsys.readouterr()
    assert main(["info", str(store), "--data", str(sim / "data")]) == 0
    out = capsys.readouterr().out
    assert "ngc104/F502N/flash12" in out and "4 images (2 FLC, 2 FLT)" in out
    assert "unreadable (WrongInstrumentError)" in out
    assert "skipped x1: sub-dither (POSTARG2=2.5)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--targets", "m31"], "targets must be drawn from"),
        (["--proposals", "last", "12692"], "--proposals takes 'last', 'all' or proposal IDs"),
        (["--apertures", "-2"], "apertures[0] must be > 0 (pixel), got -2.0"),
    ],
)
def test_photometry_errors_are_one_line(small, capsys, args, message):
    sim = small / "sim"
    status = main(["photometry", str(small / "never"), "--data", str(sim / "data"),
                   "--catalogs", str(sim / "catalogs"), *args])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("cte: error: ") and message in err
    assert not (small / "never").exists()


def test_missing_catalog_and_info_without_arguments(small, capsys, tmp_path):
    sim = small / "sim"
    status = main(["photometry", str(tmp_path / "s"), "--data", str(sim / "data"),
                   "--catalogs", str(tmp_path)])
    assert status == 1
    assert "ngc104.ecsv does not exist" in capsys.readouterr().err
    assert main(["info"]) == 1
    assert "info needs a STORE and/or --data" in capsys.readouterr().err


def test_selection_arguments_parse():
    args = build_parser().parse_args(["photometry", "s", "--data", "d", "--catalogs", "c",
                                      "--proposals", "14012", "12692", "--visits", "03", "4",
                                      "--ctecorr", "flc", "--flashes", "6"])
    assert args.store == "s" and args.apertures is None
    assert _selection(args) == ImageSelection(proposals=(14012, 12692), visits=("03", "04"),
                                              ctecorr=("FLC",), flashes=(6,))
    args = build_parser().parse_args(["photometry", "s", "--data", "d", "--catalogs", "c"])
    assert _selection(args) == ImageSelection()  # the dataclass's defaults, no other
