"""Header records, skip reasons, bad files, selection and lazy pixel arrays."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits

from cte import InvalidImageError, WrongInstrumentError
from cte.io.images import (
    ImageSelection,
    find_images,
    read_chip,
    read_header,
    read_headers,
    scan_images,
    select_images,
)


@pytest.fixture(scope="module")
def scan(campaign, config):
    return scan_images(campaign.data_dir, config=config)


def test_one_row_per_image_and_chip(scan, campaign):
    rec = scan.records
    good = campaign.images
    assert set(rec["image"]) == set(good["image"])
    assert (rec.groupby("image").size() == 2).all()
    assert set(zip(rec["chip"], rec["extver"], strict=True)) == {(2, 1), (1, 2)}
    # exactly one row per image holds the field, on the chip the simulator used (none
    # for the sub-dither, whose POSTARG2 names no chip)
    field = rec[rec["holds_field"]].set_index("image")
    subdither = good.image[good.expected_skip.str.startswith("sub-dither")]
    assert len(subdither) == 1
    assert set(field.index) == set(good.image) - set(subdither)
    assert (rec.set_index("image").loc[subdither, "field_chip"] == 0).all()
    truth = good.set_index("image")
    sub = truth.index[truth.expected_skip == ""]
    assert (field.loc[sub, "chip"] == truth.loc[sub, "chip"]).all()
    row = field.loc[truth.index[0]]
    assert row["ctecorr"] == truth.iloc[0]["ctecorr"]
    assert row["visit"] == truth.iloc[0]["visit"]
    assert row["mjd"] == pytest.approx(truth.iloc[0]["mjd"])
    assert row["exptime_class"] == ("long" if truth.iloc[0]["exptime"] > 60 else "short")
    assert row["target"] == "ngc104" and row["targname"] == "NGC-104"
    assert row["ltv2"] == -truth.iloc[0]["origin_y"]


def test_excluded_images_carry_their_reasons(scan, campaign, caplog):
    skipped = scan.skipped.set_index("image")
    expected = campaign.images.set_index("image").expected_skip
    expected = expected[expected != ""]
    assert set(skipped.index) == set(expected.index)
    for image, reason in expected.items():
        assert reason in skipped.loc[image, "reason"]
    assert not scan.records.set_index("image").loc[list(expected.index), "usable"].any()
    with caplog.at_level(logging.INFO, logger="cte.io.images"):
        scan_images(campaign.data_dir)
    for image, reason in expected.items():
        assert any(image in r.message and reason in r.message for r in caplog.records)


def test_bad_files_give_specific_errors_and_do_not_stop_the_scan(scan, campaign):
    bad = scan.unreadable.set_index("path")
    assert {str(campaign.root / p) for p in campaign.bad_files} == set(bad.index)
    for rel, kind in campaign.bad_files.items():
        path = str(campaign.root / rel)
        assert bad.loc[path, "error"] == kind
        assert bad.loc[path, "reason"].startswith(path)
    with pytest.raises(WrongInstrumentError, match="INSTRUME=ACS"):
        read_header(campaign.root / "data/bad/ibadinstq_flt.fits")
    with pytest.raises(InvalidImageError, match="truncated"):
        read_header(campaign.root / "data/bad/ibadtrunq_flt.fits")
    with pytest.raises(InvalidImageError, match="not a readable FITS file"):
        read_header(campaign.root / "data/bad/ibadcorrq_flt.fits")
    records = read_headers(campaign.data_dir)
    assert set(records.attrs["unreadable"]) == set(bad.index)


def _copy_with(src, dst, *, primary=None, drop=None):
    with fits.open(src) as hdul:
        for key, value in (primary or {}).items():
            if value is None:
                del hdul[0].header[key]
            else:
                hdul[0].header[key] = value
        hdus = [h for h in hdul if (h.name, h.ver) != drop]
        fits.HDUList(hdus).writeto(dst)
    return dst


def test_missing_keyword_or_extension(campaign, tmp_path):
    src = campaign.root / campaign.images.path.iloc[0]
    no_key = _copy_with(src, tmp_path / "inokeyq_flt.fits", primary={"EXPSTART": None})
    with pytest.raises(InvalidImageError, match=r"lacks required keyword\(s\) \['EXPSTART'\]"):
        read_header(no_key)
    no_dq = _copy_with(src, tmp_path / "inodqxq_flt.fits", drop=("DQ", 2))
    with pytest.raises(InvalidImageError, match="SCI,2 has no matching DQ,2"):
        read_header(no_dq)
    odd_name = _copy_with(src, tmp_path / "iodd.fits", primary={"FILENAME": "x.fits"})
    with pytest.raises(InvalidImageError, match="cannot tell FLT from FLC"):
        read_header(odd_name)


def test_unknown_target_and_filter_are_skipped(campaign, tmp_path, config):
    src = campaign.root / campaign.images.path.iloc[0]
    other = _copy_with(src, tmp_path / "iothertq_flt.fits", primary={"TARGNAME": "M31"})
    rows = read_header(other, config=config)
    assert not rows[0]["usable"] and "target 'M31' not in the configuration" in rows[0]["reason"]
    filt = _copy_with(src, tmp_path / "ifiltxxq_flt.fits", primary={"FILTER": "F814W"})
    assert "filter F814W not in the configuration" in read_header(filt)[0]["reason"]
    flash = _copy_with(src, tmp_path / "iflashxq_flt.fits", primary={"FLASHLVL": 7})
    assert "flash level 7 e-/px" in read_header(flash)[0]["reason"]


def test_find_images(campaign, tmp_path):
    files = find_images(campaign.data_dir)
    assert len(files) == len(campaign.files)
    assert find_images([files[0], files[1]]) == sorted(files[:2])
    with pytest.raises(FileNotFoundError, match="no such file"):
        find_images(tmp_path / "nothing")


def test_select_images(scan, config):
    rec = scan.records
    everything = select_images(rec, config=config)
    assert everything["usable"].all() and everything["holds_field"].all()
    assert everything["image"].is_unique
    n_usable = rec[rec.usable].image.nunique()
    assert len(everything) == n_usable
    flc = select_images(rec, selection=ImageSelection(ctecorr=["flc"], flashes=[12]), config=config)
    assert set(flc["ctecorr"]) == {"FLC"} and set(flc["flash"]) == {12.0}
    same = select_images(rec, selection=ImageSelection(targets=["ngc6583"]), config=config)
    assert set(same["visit"]) == {"10", "11"}
    v10 = select_images(
        rec, selection=ImageSelection(proposals=12692, visits=["10"]), config=config
    )
    assert set(v10["visit"]) == {"10"} and len(v10) == len(same) // 2
    last = select_images(rec, selection=ImageSelection(proposals="last"), config=config)
    present = [p for p in config.programs if p in set(everything["proposal"])]
    assert set(last["proposal"]) == {present[-1]}
    assert list(everything["mjd"]) == sorted(everything["mjd"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"targets": ["m31"]}, "targets must be drawn from"),
        ({"filters": ["F999W"]}, "filters must be drawn from"),
        ({"flashes": [7]}, "flashes must be drawn from"),
        ({"ctecorr": ["RAW"]}, "ctecorr must be drawn from"),
        ({"proposals": ["abc"]}, "proposals has an invalid entry"),
        ({"visits": []}, "visits must not be empty"),
    ],
)
def test_selection_errors_name_the_parameter(scan, config, kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_images(scan.records, selection=ImageSelection(**kwargs), config=config)


def test_read_chip(scan, config):
    chosen = select_images(
        scan.records, selection=ImageSelection(flashes=[0], ctecorr=["FLT"]), config=config
    )
    row = chosen.iloc[0]
    chip = read_chip(row["path"], int(row["chip"]))
    with fits.open(row["path"]) as hdul:
        np.testing.assert_array_equal(chip.sci, hdul["SCI", int(row["extver"])].data)
        np.testing.assert_array_equal(chip.dq, hdul["DQ", int(row["extver"])].data)
    assert chip.ltv == (row["ltv1"], row["ltv2"])
    with pytest.raises(InvalidImageError, match="no SCI extension for chip 3"):
        read_chip(row["path"], 3)


def test_image_selection_is_normalised_once_and_frozen():
    """cte.io.ImageSelection: conversions written out by hand here."""
    import dataclasses

    sel = ImageSelection(proposals=[11924, "12348"], visits=[5, "a1"], filters="f502n",
                         ctecorr=["flc"], flashes=(12.0,))
    assert sel.proposals == (11924, 12348)
    assert sel.visits == ("05", "a1")
    assert sel.filters == ("F502N",) and sel.ctecorr == ("FLC",) and sel.flashes == (12,)
    assert ImageSelection(proposals="LAST").proposals == "last"
    with pytest.raises(dataclasses.FrozenInstanceError):
        sel.visits = None
    with pytest.raises(ValueError, match="visits must not be empty"):
        ImageSelection(visits=[])
