"""STIS reference files (superdark, BPIXTAB): headers vs the real CRDS rmaps, arrays vs numpy."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from stiscube import CubeQueryError, PixelDB, UnitMismatchError
from stiscube.datasets._synthcube import random_properties
from stiscube.dq import DQRules
from stiscube.dq.reffiles import (
    ReferenceKeywords,
    _ccd_setting,
    superdark,
    sybdate,
    write_reference,
)
from stores.common.provenance import from_header
from tests.stiscube._crds import offline_certifier

SHAPE = (64, 48)
PERIODS = {3: 20, 4: 18, 5: 22}  # number: darks
COUNTS = 9
START = np.datetime64("2019-04-01T00:00:00", "s")
DAY = np.timedelta64(86400, "s")
KEYS = ReferenceKeywords(ccdamp="D", ccdgain=1)
RULES = DQRules(hot_level=0.1, hot_nsigma=None, unstable_level=3.0)


def _dates(i):
    return START + 30 * i * DAY, START + 30 * (i + 1) * DAY


def _frames(number, n_darks):
    ds = random_properties(SHAPE, seed=number, hot_fraction=0.03)
    ds["nan_count"].values[2, 3] = n_darks  # no usable sample in every period
    if number == 4:
        ds["nan_count"].values[7, 7] = n_darks  # none in period 4 only
        ds["sci_mean"].values[8, 8] = np.nan  # a NaN property in period 4 only
    ds["stability"].values[20, 5] = 7.0  # unstable, not hot
    ds["sci_mean"].values[30, 10:14] = 0.5  # a persistent hot run of 4 pixels
    if number != 5:
        ds["sci_mean"].values[31, 20] = 0.5  # hot in 2 of 3 periods, healed in period 5
    ds["sci_mean"].values[20, 5] = 0.004
    return ds


@pytest.fixture(scope="module")
def truth():
    return {n: _frames(n, k) for n, k in PERIODS.items()}


@pytest.fixture(scope="module")
def db(tmp_path_factory, truth):
    db = PixelDB.create(tmp_path_factory.mktemp("ref") / "db", shape=SHAPE)
    for i, (number, n_darks) in enumerate(PERIODS.items()):
        start, end = _dates(i)
        darks = pd.DataFrame(
            {
                "rootname": [f"o{number}x{k:04d}" for k in range(n_darks)],
                "exptime": np.full(n_darks, 1100.0),
                "start": [start + k * DAY for k in range(n_darks)],
            }
        )
        db.ingest_properties(truth[number], number, start=start, end=end, darks=darks)
    start, end = _dates(len(PERIODS))
    db.ingest_properties(
        random_properties(SHAPE, seed=COUNTS), COUNTS, start=start, end=end, unit_system="counts"
    )
    return db


# -- the real rmap ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rmap(real_dir):
    """Selection rules of the real hst_stis_darkfile.rmap, parsed here."""
    text = (real_dir / "crds" / "hst_stis_darkfile.rmap").read_text()
    header = ast.literal_eval(re.search(r"header = (\{.*?\n\})", text, re.S).group(1))
    match = re.search(r"\('CCD', '([^']*)', '([^']*)'\) : UseAfter", text)
    dates = re.findall(r"'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)' :", text)
    return {"header": header, "ccd": match.groups(), "dates": dates}


def test_rmap_is_what_we_think(rmap):
    assert rmap["header"]["filekind"] == "DARKFILE" and rmap["header"]["instrument"] == "STIS"
    assert rmap["header"]["parkey"] == (("DETECTOR", "CCDAMP", "CCDGAIN"), ("DATE-OBS", "TIME-OBS"))
    assert len(rmap["dates"]) > 500


def _first_dark(i):
    return _dates(i)[0]


def test_superdark_header_is_what_crds_and_calstis_read(db, rmap, tmp_path):
    path = write_reference(db, tmp_path / "drk.fits", "dark", rules=RULES, anneals=[3, 4])
    hdr = fits.getheader(path, 0)
    match_keys, date_keys = rmap["header"]["parkey"]
    assert match_keys == ("DETECTOR", "CCDAMP", "CCDGAIN")
    # as the STScI superdarks (refstis): any amplifier, gain and offset; CRDS expands
    # ANY / -1 to every value of the rmap's match ('A|B|C|D', '1|2|4|8')
    assert (hdr["DETECTOR"], hdr["CCDAMP"], hdr["CCDGAIN"], hdr["CCDOFFST"]) == (
        "CCD", "ANY", -1, -1
    )
    assert rmap["ccd"] == ("A|B|C|D", "1|2|4|8")
    assert isinstance(hdr["CCDGAIN"], int)
    for key in ("OBSTYPE", "OPT_ELEM", "APERTURE"):
        assert hdr[key] == "ANY", key
    assert (hdr["BINAXIS1"], hdr["BINAXIS2"]) == (1, 1)
    # DATE-OBS/TIME-OBS select by USEAFTER: 'Mon DD YYYY HH:MM:SS' (the rmap's format
    # after CRDS's conversion), the first dark of the period the file applies to (4)
    assert date_keys == ("DATE-OBS", "TIME-OBS")
    useafter = dt.datetime.strptime(hdr["USEAFTER"], "%b %d %Y %H:%M:%S")
    assert dt.datetime.strptime(rmap["dates"][0], "%Y-%m-%d %H:%M:%S")  # same format
    assert np.datetime64(useafter, "s") == _first_dark(1) == np.datetime64("2019-05-01")
    assert hdr["APPLIES"] == 4
    # PEDIGREE spans the darks used: period 3's first (Apr 01) to period 4's last (+17 d)
    assert hdr["PEDIGREE"] == "INFLIGHT 01/04/2019 18/05/2019"
    assert hdr["FILETYPE"] == "DARK IMAGE"
    assert hdr["INSTRUME"] == "STIS" and len(hdr["DESCRIP"]) == 67
    assert hdr["DESCRIP"].startswith("STIS CCD superdark of anneal period 3-4") and hdr[
        "DESCRIP"
    ].endswith("---")
    assert hdr["PERIODS"] == "3,4"
    with fits.open(path) as hdul:  # extensions as calstis reads an imset
        assert [(h.name, h.ver) for h in hdul[1:]] == [("SCI", 1), ("ERR", 1), ("DQ", 1)]
        assert hdul["SCI"].header["BUNIT"] == hdul["ERR"].header["BUNIT"] == "ELECTRONS/S"
        assert hdul["DQ"].header["BITPIX"] == 16
    history = "\n".join(str(c) for c in hdr["HISTORY"])
    assert "sci_mean > 0.1 electron / s" in history and "stability > 3" in history
    assert "o3x0000" in history and "o4x0017" in history  # the input darks
    assert "USEAFTER: exposure start of the first dark of period 4" in history
    assert "not scaled for temperature" in history and "REF_TEMP" not in hdr
    # the cube version and the periods' checksums, from the store's commit records
    sums = {}
    for n in (3, 4):
        text = json.dumps(db.store.slice_info(n)["sha256"], sort_keys=True)
        sums[n] = hashlib.sha256(text.encode()).hexdigest()
    prov = from_header(hdr)  # the stores.common.provenance record, read back
    assert prov["checksums"] == {str(n): digest for n, digest in sums.items()}
    assert prov["inputs"] == [db.location.url]
    assert prov["software"].startswith("stiscube ") and "numpy" in prov["software_versions"]
    assert hdr["CUBESUM"] == hashlib.sha256((sums[3] + sums[4]).encode()).hexdigest()
    assert hdr["CUBEVER"] != "unknown"
    assert DQRules.from_dict(json.loads(hdr["RULES"])) == RULES


def _expected_dq(frames):
    """The rules written out in numpy for one period's properties."""
    sci = frames["sci_mean"].values.astype(np.float64)
    stab = frames["stability"].values.astype(np.float64)
    with np.errstate(invalid="ignore"):
        return (np.where(sci > 0.1, 16, 0) | np.where(stab > 3.0, 4, 0)).astype(np.uint16)


def test_superdark_vs_numpy(db, truth, tmp_path):
    path = write_reference(db, tmp_path / "drk.fits", "dark", rules=RULES, anneals=[3, 4, 5])
    n = {k: PERIODS[k] - truth[k]["nan_count"].values.astype(np.int64) for k in PERIODS}
    m = {k: truth[k]["sci_mean"].values.astype(np.float64) for k in PERIODS}
    e = {k: truth[k]["err_mean"].values.astype(np.float64) for k in PERIODS}
    for k in PERIODS:
        n[k][~np.isfinite(m[k])] = 0
    total = sum(n.values())
    with np.errstate(invalid="ignore", divide="ignore"):
        sci = sum(n[k] * np.nan_to_num(m[k]) for k in PERIODS) / total
        err = np.sqrt(sum(n[k] * e[k] ** 2 for k in PERIODS)) / total
    sci[total == 0] = 0
    err[total == 0] = 0
    # DQ: the flags of period 5 only (the period the file applies to), plus no-data
    expected = _expected_dq(truth[5]) | np.where(total == 0, 512, 0).astype(np.uint16)
    with fits.open(path, do_not_scale_image_data=True) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR", "DQ"]
        assert [h.ver for h in hdul[1:]] == [1, 1, 1]
        assert hdul["SCI"].data.dtype == np.dtype(">f4")
        np.testing.assert_allclose(hdul["SCI"].data, sci, rtol=2e-7)
        np.testing.assert_allclose(hdul["ERR"].data, err, rtol=2e-7)
        dq = hdul["DQ"].data
        assert dq.dtype == np.dtype(">i2") and "BZERO" not in hdul["DQ"].header
        assert dq.tobytes() == expected.astype(">i2").tobytes()  # bit-identical
        hdr = hdul[0].header
    older_only = (_expected_dq(truth[3]) & 16).astype(bool) & ~(expected & 16).astype(bool)
    assert older_only.any()  # hot in period 3 only: not flagged in a file for period 5
    assert total[2, 3] == 0 and dq[2, 3] & 512
    assert total[7, 7] > 0 and not dq[7, 7] & 512  # usable in periods 3 and 5
    assert hdr["NNODATA"] == np.count_nonzero(total == 0) == 1
    assert hdr["NHOT"] == np.count_nonzero(expected & 16) > 0
    assert hdr["NUNSTAB"] == np.count_nonzero(expected & 4) > 0
    assert hdr["NFLAGGED"] == np.count_nonzero(dq)
    assert dq[20, 5] == 4  # unstable only: bit 4, not hot
    # a single period: SCI is that period's sci_mean, ERR err_mean / sqrt(n)
    one = superdark(db, rules=RULES, anneals=5)
    good = n[5] > 0
    np.testing.assert_allclose(one["sci"].values[good], m[5][good], rtol=2e-7)
    np.testing.assert_allclose(
        one["err"].values[good], e[5][good] / np.sqrt(n[5][good]), rtol=2e-7
    )
    with pytest.raises(UnitMismatchError, match=r"periods \[9\] are not in electron / s"):
        superdark(db, rules=RULES)  # default: one period, the newest (here in counts)


PERSIST = DQRules(hot_level=0.1, hot_nsigma=None, unstable_level=3.0, persist_k=2, persist_m=3)


def test_bpixtab_vs_numpy(db, truth, tmp_path):
    path = write_reference(db, tmp_path / "bpx.fits", "bpixtab", rules=PERSIST, anneals=5)
    flags = np.stack([_expected_dq(truth[n]) for n in (3, 4, 5)])
    expected = np.zeros(SHAPE, np.uint16)
    for bit in (16, 4):  # bad in >= 2 of the 3 periods, per rule
        expected |= np.where(((flags & bit) != 0).sum(axis=0) >= 2, bit, 0).astype(np.uint16)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "BPIXTAB"]
        table = hdul["BPIXTAB"].data
        hdr = hdul[0].header
    assert table.columns.names == ["PIX1", "PIX2", "LENGTH", "AXIS", "VALUE"]
    assert set(table["AXIS"]) <= {1}
    back = np.zeros(SHAPE, np.uint16)
    for x, y, length, value in zip(table["PIX1"], table["PIX2"], table["LENGTH"],
                                   table["VALUE"], strict=True):  # a few hundred rows
        assert not back[y - 1, x - 1 : x - 1 + length].any()  # runs do not overlap
        back[y - 1, x - 1 : x - 1 + length] = value
    np.testing.assert_array_equal(back, expected)
    assert (table["LENGTH"] > 1).any()  # adjacent equal pixels of a row are one run
    assert hdr["FILETYPE"] == "BAD PIXEL TABLE" and hdr["NHOT"] == np.count_nonzero(expected & 16)
    assert "CCDAMP" not in hdr and hdr["USEAFTER"] == sybdate(_first_dark(2))
    with pytest.raises(ValueError, match="persistent bad pixels: give rules with persist_k"):
        write_reference(db, tmp_path / "x.fits", "bpixtab", rules=RULES, anneals=5)
    with pytest.raises(ValueError, match="BPIXTAB is made for one period"):
        write_reference(db, tmp_path / "x.fits", "bpixtab", rules=PERSIST, anneals=[4, 5])
    assert not (tmp_path / "x.fits").exists()


def test_crds_certify_offline(db, real_dir, tmp_path, monkeypatch):
    """crds certify (the package's own TPN checks) on the superdark and the BPIXTAB,
    against the real rmaps, without a server; and it can fail."""
    pytest.importorskip("crds")
    certify = offline_certifier(tmp_path / "crds", real_dir / "crds", monkeypatch)
    dark = write_reference(db, tmp_path / "good_drk.fits", "dark", rules=RULES, anneals=5)
    bpx = write_reference(db, tmp_path / "good_bpx.fits", "bpixtab", rules=PERSIST, anneals=5)
    restricted = write_reference(
        db, tmp_path / "d_drk.fits", "dark", rules=RULES, anneals=5, keywords=KEYS
    )
    assert certify(dark) == 0 and certify(bpx) == 0 and certify(restricted) == 0
    # the check can fail: the rmap's own date format is not what certify wants in USEAFTER
    bad = tmp_path / "bad_drk.fits"
    with fits.open(dark) as hdul:
        hdul[0].header["USEAFTER"] = "2019-06-30 00:00:00"
        hdul.writeto(bad)
    assert certify(bad) == 1
    bad = tmp_path / "bad_bpx.fits"
    with fits.open(bpx) as hdul:
        hdul[0].header["FILETYPE"] = "DQ REFERENCE"  # the old, invalid type
        hdul.writeto(bad)
    assert certify(bad) >= 1


# -- keywords and errors --------------------------------------------------------------------
def test_sybdate():
    assert sybdate("2019-04-01T00:00:00") == "Apr 01 2019 00:00:00"
    assert sybdate(np.datetime64("2001-12-31T23:59:59.7")) == "Dec 31 2001 23:59:59"


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"ccdamp": "E"}, ValueError, "CCDAMP must be one of"),
        ({"ccdgain": 3}, ValueError, "CCDGAIN must be one of"),
        ({"ccdgain": "1"}, TypeError, "CCDGAIN must be an integer"),
        ({"ccdgain": True}, TypeError, "CCDGAIN must be an integer"),
        ({"useafter": "yesterday"}, ValueError, "USEAFTER must be a date"),
        ({"useafter": "2200-01-01"}, ValueError, "USEAFTER must be a date between"),
        ({"pedigree": "INFLIGHT 2019-01-01 2019-02-01"}, ValueError, "PEDIGREE must be"),
        ({"pedigree": "INFLIGHT 31/02/2019 01/03/2019"}, ValueError, "day is out of range"),
        ({"pedigree": "INFLIGHT 01/03/2019 01/02/2019"}, ValueError, "end date is before"),
        ({"pedigree": "INFLIGHT 01/03/2019 01/04/2019 "}, ValueError, "PEDIGREE must be "
         "printable ASCII"),
        ({"descrip": "x" * 68}, ValueError, "DESCRIP must have 1 to 67 characters"),
        ({"descrip": "two\nlines"}, ValueError, "DESCRIP must be one line"),
        ({"descrip": 5}, TypeError, "DESCRIP must be a string, got 5"),
        ({"descrip": "superdark été 2019"}, ValueError,
         r"DESCRIP must be printable ASCII \(FITS header text\), got .* with \['é'\]"),
        ({"descrip": "tab\there"}, ValueError, "DESCRIP must be printable ASCII"),
    ],
)
def test_bad_keywords(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ReferenceKeywords(**kwargs)


def test_keywords_given_are_used(db, tmp_path):
    keys = ReferenceKeywords(
        ccdamp="A", ccdgain=4, useafter="2019-05-02 03:04:05", pedigree="DUMMY", descrip="test"
    )
    path = write_reference(db, tmp_path / "d.fits", "dark", rules=RULES, anneals=4, keywords=keys)
    hdr = fits.getheader(path)
    assert (hdr["CCDAMP"], hdr["CCDGAIN"], hdr["USEAFTER"]) == ("A", 4, "May 02 2019 03:04:05")
    assert (hdr["PEDIGREE"], hdr["DESCRIP"], hdr["PERIODS"]) == ("DUMMY", "test" + "-" * 63, "4")


def test_ccd_restriction_agrees_with_the_cube(db):
    ds = db.dataset.sel(anneal=[3, 4, 5]).assign_coords(
        ccdamp=("anneal", ["D", "D", ""]), ccdgain=("anneal", [1.0, 4.0, np.nan])
    )  # "" and NaN: unknown (periods not computed from darks)
    assert _ccd_setting(ds, "ccdamp", None, [3, 4]) == "ANY"  # not restricted
    assert _ccd_setting(ds, "ccdgain", None, [3, 4]) == -1
    assert _ccd_setting(ds, "ccdgain", 1, [3]) == 1
    assert _ccd_setting(ds, "ccdamp", "D", [4, 5]) == "D"  # unknown for 5: allowed
    with pytest.raises(ValueError, match="CCDGAIN=1 was given but the cube's period 4 has"):
        _ccd_setting(ds, "ccdgain", 1, [3, 4])
    with pytest.raises(ValueError, match="CCDAMP='A' was given but the cube's period 3"):
        _ccd_setting(ds, "ccdamp", "A", [3])


def test_errors_write_nothing(db, tmp_path):
    out = tmp_path / "x.fits"
    with pytest.raises(CubeQueryError, match=r"anneal periods \[7\] are not in"):
        write_reference(db, out, "dark", anneals=[3, 7])
    with pytest.raises(TypeError, match="anneals must be a period number"):
        write_reference(db, out, "dark", anneals=["3"])
    with pytest.raises(UnitMismatchError, match=r"periods \[9\] are not in electron / s"):
        write_reference(db, out, "dark", anneals=[5, COUNTS], rules=RULES)
    with pytest.raises(ValueError, match="keeps for no-data pixels"):
        superdark(db, rules=DQRules(unstable_level=3.0, unstable_bit=512), anneals=3)
    with pytest.raises(TypeError, match="db must be a stiscube.PixelDB"):
        write_reference(db.dataset, out, "dark")
    with pytest.raises(ValueError, match="DESCRIP must be printable ASCII"):
        write_reference(db, out, "dark", anneals=3, keywords=ReferenceKeywords(descrip="é"))
    write_reference(db, out, "dark", rules=RULES, anneals=3)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="file exists"):
        write_reference(db, out, "bpixtab", rules=PERSIST, anneals=5)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.fits"]


def test_temperature_scaling_and_exposures_are_in_the_headers(tmp_path):
    """REF_TEMP/DRK_VS_T state the scaling the darks went through, as calstis reads it."""
    from stiscube.datasets.simulate import simulate_darks
    from stiscube.io.darks import TemperatureCorrection

    sim = simulate_darks(  # Side-2 dates (2020): the STScI scaling applies by default
        tmp_path / "sim", n_periods=3, frames_per_period=4, shape=(32, 32), seed=8
    )
    db = PixelDB.create(tmp_path / "db", periods=sim.periods, shape=sim.shape)
    first, second, third = sorted(sim.files)
    db.ingest_darks(sim.files[first], first)
    db.ingest_darks(
        sim.files[second], second, temperature=TemperatureCorrection(enabled=False)
    )
    db.ingest_darks(
        sim.files[third], third, temperature=TemperatureCorrection(reference=20, coefficient=0.05)
    )
    one = write_reference(db, tmp_path / "one.fits", "dark", anneals=first)
    with fits.open(one) as hdul:
        hdr = hdul[0].header
        assert (hdr["REF_TEMP"], hdr["DRK_VS_T"]) == (18.0, 0.07)
        history = " ".join(" ".join(str(h) for h in hdr["HISTORY"]).split())
        assert (
            f"period {first} temperature scaling: 1/(1+0.07*(OCCDHTAV-18)) Side-2: "
            "4 of 4 frames scaled" in history
        )
        assert f"period {first} exposures: long (1000-1200 s)" in history
    hdr = fits.getheader(write_reference(db, tmp_path / "3.fits", "dark", anneals=third))
    assert (hdr["REF_TEMP"], hdr["DRK_VS_T"]) == (20.0, 0.05)
    hdr = fits.getheader(write_reference(db, tmp_path / "off.fits", "dark", anneals=second))
    assert "REF_TEMP" not in hdr and "DRK_VS_T" not in hdr
    history = " ".join(" ".join(str(h) for h in hdr["HISTORY"]).split())
    assert f"period {second} temperature scaling: off" in history
    assert "not scaled for temperature: no REF_TEMP/DRK_VS_T" in history
    with pytest.raises(ValueError, match="scaled for temperature differently"):
        write_reference(db, tmp_path / "both.fits", "dark", anneals=[first, second])
    assert not (tmp_path / "both.fits").exists()


def test_reference_keywords_normalise():
    keys = ReferenceKeywords(ccdgain=np.int64(4), useafter="2020-01-05T06:07:08.9")
    assert type(keys.ccdgain) is int and keys.ccdgain == 4
    assert keys.useafter == np.datetime64("2020-01-05T06:07:08")


def test_write_reference_refuses_an_unknown_kind_before_writing(db, tmp_path):
    out = tmp_path / "x.fits"
    with pytest.raises(
        ValueError, match=r"^kind must be one of \['dark', 'bpixtab'\], got 'dq'$"
    ):
        write_reference(db, out, "dq", keywords=KEYS)  # no DQ-image reference type in CRDS
    with pytest.raises(TypeError, match="unexpected keyword argument 'anneal'"):
        write_reference(db, out, "dark", anneal=3, keywords=KEYS)
    assert not out.exists()
