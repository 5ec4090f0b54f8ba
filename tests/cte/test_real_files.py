"""The readers on real archive files (tests/data/real) and variants derived from them.

The WFC3/UVIS FLCs hold full headers but 10x10 pixel arrays, so these tests check
header records and layout, not photometry.  Every expected value is read from the
file with astropy directly; variants (monitor target, binned, malformed keywords) are
made here by copying a real file and changing one thing.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from cte import InvalidImageError, WrongInstrumentError
from cte.datasets import FieldPhysics
from cte.datasets.simulate import simulate_campaign
from cte.io.images import read_chip, read_header, scan_images

UVIS = ("ib4606c5q_flc.fits", "ib4606c6q_flc.fits")


@pytest.fixture
def uvis(real_dir):
    return [real_dir / "wfc3" / name for name in UVIS]


def _variant(source, dest, *, primary=None, sci=None, ext=None, drop=()):
    """Copy *source* to *dest* changing primary / SCI / all SCI-ERR-DQ keywords."""
    with fits.open(source) as hdul:
        for key, value in (primary or {}).items():
            hdul[0].header[key] = value
        for hdu in hdul[1:]:
            if hdu.name == "SCI":
                for key, value in (sci or {}).items():
                    hdu.header[key] = value
            if hdu.name in ("SCI", "ERR", "DQ"):
                for key, value in (ext or {}).items():
                    hdu.header[key] = value
                for key in drop:
                    hdu.header.remove(key, ignore_missing=True)
        hdul.writeto(dest)
    return dest


#: makes a real FLC an image the shipped configuration monitors (NGC 104, F502N)
MONITORED = {"TARGNAME": "NGC-104", "FILTER": "F502N", "PROPOSID": 12379}


def test_uvis_flcs_give_one_row_per_chip_with_their_header_values(uvis, config):
    for path in uvis:
        rows = read_header(path, config=config)
        primary = fits.getheader(path, 0)
        assert [(r["extver"], r["chip"]) for r in rows] == [(1, 2), (2, 1)]  # SCI,1 = chip 2
        for r in rows:
            sci = fits.getheader(path, "SCI", r["extver"])
            assert r["chip"] == sci["CCDCHIP"]
            assert (r["binaxis1"], r["binaxis2"]) == (sci["BINAXIS1"], sci["BINAXIS2"]) == (1, 1)
            assert r["filter"] == primary["FILTER"].strip() == "F555W"
            assert r["flash"] == primary["FLASHLVL"] == 0
            assert r["flashsta"] == primary["FLASHSTA"].strip() == "NOT PERFORMED"
            assert r["flashcur"] == primary["FLASHCUR"].strip() == "ZERO"
            assert (r["postarg1"], r["postarg2"]) == (primary["POSTARG1"], primary["POSTARG2"])
            assert r["mjd"] == primary["EXPSTART"] and r["exptime"] == primary["EXPTIME"]
            assert r["orientat"] == pytest.approx(sci["ORIENTAT"])
            assert (r["naxis1"], r["naxis2"]) == (10, 10)
            assert r["bunit"] == "ELECTRONS" and r["ctecorr"] == "FLC"
            # TARGNAME "ANY" is not a monitor target
            assert not r["usable"] and "target 'ANY'" in r["reason"]


def test_hdrlet_wcscorr_and_distortion_extensions_are_tolerated(uvis):
    for path in uvis:
        with fits.open(path) as hdul:
            names = {h.name for h in hdul}
        assert {"HDRLET", "WCSCORR", "WCSDVARR", "D2IMARR"} <= names
        for chip in (1, 2):
            image = read_chip(path, chip)
            assert image.sci.shape == image.err.shape == image.dq.shape == (10, 10)
            sci = fits.getheader(path, "SCI", 1 if chip == 2 else 2)
            # the distortion WCS: SIP polynomials and both lookup-table corrections
            assert image.wcs.sip is not None and image.wcs.sip.a_order == sci["A_ORDER"]
            assert image.wcs.det2im1 is not None and image.wcs.cpdis1 is not None
            ref = image.wcs.all_pix2world([[sci["CRPIX1"] - 1, sci["CRPIX2"] - 1]], 0)[0]
            # at the reference pixel SIP vanishes; the lookup tables move < 0.1 px = 4 mas
            assert abs(ref[1] - sci["CRVAL2"]) * 3600 < 0.01
            assert image.ltv == (sci["LTV1"], sci["LTV2"])


def test_ir_and_acs_files_get_the_wrong_instrument_error(real_dir):
    with pytest.raises(WrongInstrumentError, match=r"INSTRUME=WFC3, DETECTOR=IR"):
        read_header(real_dir / "other" / "ib4606cpq_flt_wfc3ir.fits")
    with pytest.raises(WrongInstrumentError, match=r"INSTRUME=ACS, DETECTOR=WFC"):
        read_header(real_dir / "other" / "j94f05bgq_flt_acswfc.fits")


def test_a_monitored_variant_is_usable_on_its_field_chip(uvis, tmp_path, config):
    path = _variant(uvis[1], tmp_path / "ib4606c6q_flc.fits", primary=MONITORED)
    rows = read_header(path, config=config)
    assert [r["usable"] for r in rows] == [True, True]
    assert [r["holds_field"] for r in rows] == [True, False]  # POSTARG2 = 0: chip 2
    assert rows[0]["target"] == "ngc104" and rows[0]["visit"] == "06"


def test_binned_extension_headers_make_the_image_unusable(uvis, tmp_path, config):
    """WFC3 writes BINAXIS1/2 in the SCI headers; the primary says nothing."""
    path = _variant(uvis[0], tmp_path / "ib4606c5q_flc.fits", primary=MONITORED,
                    sci={"BINAXIS1": 2, "BINAXIS2": 2})
    assert "BINAXIS1" not in fits.getheader(path, 0)
    rows = read_header(path, config=config)
    for r in rows:
        assert (r["binaxis1"], r["binaxis2"]) == (2, 2)
        assert not r["usable"]
        assert r["reason"] == "binned (BINAXIS1=2, BINAXIS2=2)"
    # the SCI header wins over a primary that says unbinned
    both = _variant(path, tmp_path / "ib4606c7q_flc.fits", primary={"BINAXIS1": 1,
                                                                     "BINAXIS2": 1})
    assert all(r["reason"].startswith("binned") for r in read_header(both, config=config))
    # binning along one axis only is binned too
    one = _variant(uvis[0], tmp_path / "ib4606c8q_flc.fits", primary=MONITORED,
                   sci={"BINAXIS2": 2})
    assert {r["reason"] for r in read_header(one, config=config)} == {
        "binned (BINAXIS1=1, BINAXIS2=2)"}
    # a scan reports it among the skipped images, with the reason
    scan = scan_images([path], config=config)
    assert scan.skipped["reason"].tolist() == ["binned (BINAXIS1=2, BINAXIS2=2)"]


def test_per_chip_keywords_fall_back_to_the_primary(uvis, tmp_path, config):
    path = _variant(uvis[0], tmp_path / "ib4606c5q_flc.fits",
                    primary={**MONITORED, "BINAXIS1": 2, "BINAXIS2": 2},
                    drop=("BINAXIS1", "BINAXIS2"))
    rows = read_header(path, config=config)
    assert [(r["binaxis1"], r["binaxis2"]) for r in rows] == [(2, 2), (2, 2)]
    assert not any(r["usable"] for r in rows)


@pytest.mark.parametrize(("where", "key", "value", "match"), [
    ("sci", "BINAXIS1", "two", r"SCI,1 header keyword BINAXIS1='two' is not valid"),
    ("sci", "CCDCHIP", 1.5, r"SCI,1 header keyword CCDCHIP=1.5 is not valid"),
    ("primary", "PROPOSID", "abc", r"primary header keyword PROPOSID='abc'"),
    ("primary", "POSTARG2", "north", r"primary header keyword POSTARG2='north'"),
    ("sci", "EXTVER", "one", r"extension 1 \(SCI\) header keyword EXTVER='one'"),
])
def test_malformed_keywords_name_the_file_and_keyword(uvis, tmp_path, where, key, value,
                                                      match):
    path = tmp_path / "ib4606c5q_flc.fits"
    _variant(uvis[0], path, **{where: {key: value}})
    with pytest.raises(InvalidImageError, match=match) as info:
        read_header(path)
    assert str(path) in str(info.value)


# -- simulated files look like the archive's ------------------------------------------------
#: every WFC3 keyword the readers use, and those the issue asks the simulator to write
KEYWORDS = (
    "INSTRUME", "DETECTOR", "TELESCOP", "FILENAME", "FILETYPE", "ROOTNAME", "PROPOSID",
    "LINENUM", "TARGNAME", "RA_TARG", "DEC_TARG", "OBSTYPE", "APERTURE", "FILTER", "EXPTIME",
    "EXPSTART", "EXPEND", "DATE-OBS", "TIME-OBS", "POSTARG1", "POSTARG2", "PA_V3", "NRPTEXP",
    "CRSPLIT", "SUBARRAY", "PCTECORR", "FLASHDUR", "FLASHCUR", "FLASHLVL", "FLASHSTA",
    "SHUTRPOS", "CHINJECT", "CCDAMP", "CCDGAIN", "ATODGNA", "ATODGNB", "ATODGNC", "ATODGND",
    "READNSEA", "READNSEB", "READNSEC", "READNSED",
    "EXTNAME", "EXTVER", "INHERIT", "EXPNAME", "BUNIT", "CCDCHIP", "BINAXIS1", "BINAXIS2",
    "LTV1", "LTV2", "LTM1_1", "LTM2_2", "ORIENTAT", "SATURATE", "WCSNAME", "RADESYS",
    "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1",
    "CD2_2",
)


def _layout(path) -> dict[str, set[tuple[str, str]]]:
    """keyword -> {(HDU kind, Python type of its value)} over the primary and SCI/ERR/DQ."""
    out: dict[str, set[tuple[str, str]]] = {}
    with fits.open(path) as hdul:
        for i, hdu in enumerate(hdul):
            kind = "PRIMARY" if i == 0 else hdu.name
            if kind not in ("PRIMARY", "SCI", "ERR", "DQ"):
                continue
            for key in KEYWORDS:
                if key in hdu.header:
                    out.setdefault(key, set()).add((kind, type(hdu.header[key]).__name__))
    return out


@pytest.fixture(scope="module")
def small_campaign(tmp_path_factory):
    return simulate_campaign(
        tmp_path_factory.mktemp("look") / "sim", seed=3, shape=(32, 32), targets=("ngc104",),
        n_epochs=1, flashes=(0, 12), exptimes=(348.0,), include_excluded=True, include_180=False,
        physics=FieldPhysics(n_stars=5)
    )


def test_simulated_keywords_sit_where_the_archive_puts_them(uvis, small_campaign):
    real = [_layout(p) for p in uvis]
    assert real[0] == real[1]
    expected = real[0]
    assert "SATURATE" not in expected and ("SCI", "int") in expected["BINAXIS1"]
    for row in small_campaign.images.itertuples():
        got = _layout(small_campaign.root / row.path)
        diff = {k: (sorted(expected.get(k, ())), sorted(got.get(k, ())))
                for k in KEYWORDS if expected.get(k) != got.get(k)}
        assert not diff, (row.image, diff)


def test_simulated_amplifier_values_are_the_real_ones(small_campaign):
    row = small_campaign.images.iloc[0]
    header = fits.getheader(small_campaign.root / row.path, 0)
    gains = [header[f"ATODGN{a}"] for a in "ABCD"]
    noise = [header[f"READNSE{a}"] for a in "ABCD"]
    np.testing.assert_allclose(gains, 1.56, rtol=1e-3)
    assert all(3.0 <= n <= 3.2 for n in noise) and len(set(noise)) == 4
    assert header["FLASHCUR"] in ("ZERO", "LOW", "MED") and header["SHUTRPOS"] in "AB"
    # the simulated binned image is marked not usable from its SCI headers alone
    binned = small_campaign.images.query("proposal == 14012").iloc[0]
    path = small_campaign.root / binned.path
    assert "BINAXIS1" not in fits.getheader(path, 0)
    rows = read_header(path)
    assert [(r["binaxis1"], r["binaxis2"]) for r in rows] == [(2, 2), (2, 2)]
    assert not any(r["usable"] for r in rows)


#: POSTARG2 (arcsec) and the chip holding the field, with the shipped configuration's
#: chip dither 82.45 and tolerance 2.0 (|POSTARG2 - nominal| <= tolerance is nominal)
POSTARG2_CASES = [
    (0.0, 2), (1.999, 2), (-1.999, 2), (2.0, 2), (-2.0, 2),
    (2.001, 0), (-2.001, 0), (-5.0, 0),
    (82.45, 1), (80.451, 1), (84.449, 1), (80.449, 0), (84.451, 0),
    (-82.45, 0),  # a dither the other way leaves the detector: not a chip-1 image
]


@pytest.mark.parametrize(("postarg2", "field_chip"), POSTARG2_CASES)
def test_postarg2_at_the_tolerance_edges(uvis, tmp_path, config, postarg2, field_chip):
    assert (config.chip_dither_postarg2, config.postarg2_tolerance) == (82.45, 2.0)
    path = _variant(uvis[0], tmp_path / "ib4606c5q_flc.fits",
                    primary={**MONITORED, "POSTARG2": postarg2})
    rows = read_header(path, config=config)
    assert {r["field_chip"] for r in rows} == {field_chip}
    assert [r["holds_field"] for r in rows] == [r["chip"] == field_chip for r in rows]
    if field_chip:
        assert all(r["usable"] for r in rows)
    else:
        assert all(r["reason"] == f"sub-dither (POSTARG2={postarg2:g})" for r in rows)


def test_scanning_the_real_files(real_dir, config):
    scan = scan_images([real_dir / "wfc3", *sorted((real_dir / "other").glob("*.fits"))],
                       config=config)
    assert sorted(scan.records["image"].unique()) == ["ib4606c5q_flc", "ib4606c6q_flc"]
    assert len(scan.records) == 4
    assert sorted(scan.unreadable["error"]) == ["WrongInstrumentError"] * 2
    assert scan.records["flashcur"].tolist() == ["ZERO"] * 4


def test_a_nan_exposure_time_names_the_keyword(uvis, tmp_path):
    """EXPTIME = NAN as a raw card (astropy refuses to write NaN values itself)."""
    path = _variant(uvis[0], tmp_path / "ib4606c5q_flc.fits", primary=MONITORED)
    raw = bytearray(path.read_bytes())
    at = raw.find(b"EXPTIME =")
    raw[at:at + 80] = b"EXPTIME =                  NAN / exposure duration (seconds)".ljust(80)
    path.write_bytes(bytes(raw))
    with (pytest.warns(fits.verify.VerifyWarning),
          pytest.raises(InvalidImageError, match=r"primary header keyword EXPTIME='NAN' is "
                                                 r"not a valid number") as info):
        read_header(path)
    assert str(info.value).startswith(str(path))
