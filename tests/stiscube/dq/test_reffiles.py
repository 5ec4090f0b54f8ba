"""STIS reference files (DQ and superdark): headers vs the real CRDS rmap, arrays vs numpy."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from stiscube import CubeQueryError, PixelDB, UnitMismatchError
from stiscube.datasets._synthcube import random_properties
from stiscube.dq import DQRules, dq_array
from stiscube.dq.reffiles import (
    ReferenceKeywords,
    _ccd_setting,
    superdark,
    sybdate,
    write_dark_reference,
    write_dq_reference,
    write_reference,
)
from stores.provenance import from_header

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


@pytest.mark.parametrize("kind", ["dq", "dark"])
def test_header_has_the_rmap_selection_keys(db, rmap, tmp_path, kind):
    write = write_dq_reference if kind == "dq" else write_dark_reference
    path = write(db, tmp_path / f"{kind}.fits", rules=RULES, anneals=[3, 4], keywords=KEYS)
    hdr = fits.getheader(path, 0)
    match_keys, date_keys = rmap["header"]["parkey"]
    patterns = dict(zip(match_keys, ("CCD", *rmap["ccd"]), strict=True))
    for key in match_keys:  # DETECTOR, CCDAMP, CCDGAIN: a value the rmap's match accepts
        assert str(hdr[key]) in patterns[key].split("|"), key
    assert (hdr["CCDAMP"], hdr["CCDGAIN"], hdr["DETECTOR"]) == ("D", 1, "CCD")
    assert isinstance(hdr["CCDGAIN"], int)
    # DATE-OBS/TIME-OBS select by USEAFTER: HST files write it as 'Mon DD YYYY HH:MM:SS',
    # which CRDS turns into the rmap's 'YYYY-MM-DD HH:MM:SS'
    assert date_keys == ("DATE-OBS", "TIME-OBS")
    useafter = dt.datetime.strptime(hdr["USEAFTER"], "%b %d %Y %H:%M:%S")
    as_rmap = useafter.strftime("%Y-%m-%d %H:%M:%S")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", as_rmap)
    assert dt.datetime.strptime(rmap["dates"][0], "%Y-%m-%d %H:%M:%S")  # same format
    assert as_rmap == "2019-04-01 00:00:00"  # start of the first period
    assert hdr["PEDIGREE"] == "INFLIGHT 01/04/2019 30/05/2019"
    assert hdr["FILETYPE"] == ("DQ REFERENCE" if kind == "dq" else "DARK IMAGE")
    assert hdr["INSTRUME"] == "STIS" and 0 < len(hdr["DESCRIP"]) <= 67
    assert hdr["PERIODS"] == "3,4"
    history = "\n".join(str(c) for c in hdr["HISTORY"])
    assert "sci_mean > 0.1 electron / s" in history and "stability > 3" in history
    assert "o3x0000" in history and "o4x0017" in history  # the input darks
    # the cube version and the periods' checksums, from the store's commit records
    sums = {}
    for n in (3, 4):
        text = json.dumps(db.store.slice_info(n)["sha256"], sort_keys=True)
        sums[n] = hashlib.sha256(text.encode()).hexdigest()
    prov = from_header(hdr)  # the stores.provenance record, read back
    assert prov["checksums"] == {str(n): digest for n, digest in sums.items()}
    assert prov["inputs"] == [db.location.url]
    assert prov["software"].startswith("stiscube ") and "numpy" in prov["software_versions"]
    assert hdr["CUBESUM"] == hashlib.sha256((sums[3] + sums[4]).encode()).hexdigest()
    assert hdr["CUBEVER"] != "unknown"
    assert DQRules.from_dict(json.loads(hdr["RULES"])) == RULES


def test_dq_reference_round_trip_and_counts(db, truth, tmp_path):
    path = write_dq_reference(
        db, tmp_path / "dq.fits", rules=RULES, anneals=[3, 4, 5], keywords=KEYS
    )
    expected = np.zeros(SHAPE, np.uint16)
    for n in (3, 4, 5):  # independent: the rules written out in numpy
        sci = truth[n]["sci_mean"].values.astype(np.float64)
        stab = truth[n]["stability"].values.astype(np.float64)
        with np.errstate(invalid="ignore"):
            expected |= np.where(sci > 0.1, 16, 0).astype(np.uint16)
            expected |= np.where(stab > 3.0, 4, 0).astype(np.uint16)
    with fits.open(path, do_not_scale_image_data=True) as raw:
        assert [h.name for h in raw] == ["PRIMARY", "DQ"]
        ext = raw["DQ"].header
        assert ext["BITPIX"] == 16 and ext["EXTVER"] == 1
        assert "BZERO" not in ext and "BSCALE" not in ext
        data = raw["DQ"].data
        assert data.dtype == np.dtype(">i2")
        # bit-identical: the bytes on disk are the expected values as big-endian int16
        assert data.tobytes() == expected.astype(">i2").tobytes()
        hdr = raw[0].header
    hot, unstable = (expected & 16) != 0, (expected & 4) != 0
    assert hdr["NHOT"] == hot.sum() > 0 and hdr["NUNSTAB"] == unstable.sum() > 0
    assert hdr["NBOTH"] == (hot & unstable).sum()
    assert hdr["NFLAGGED"] == np.count_nonzero(expected) == np.count_nonzero(data)
    assert hdr["NFLAGGED"] == hdr["NHOT"] + hdr["NUNSTAB"] - hdr["NBOTH"]
    assert data[20, 5] == 4  # unstable only: bit 4, not hot
    # the same file as astropy reads it by default: still int16, no scaling
    with fits.open(path) as hdul:
        assert hdul["DQ"].data.dtype == np.dtype(">i2")
        np.testing.assert_array_equal(hdul["DQ"].data, expected)


def test_superdark_vs_numpy(db, truth, tmp_path):
    path = write_dark_reference(
        db, tmp_path / "drk.fits", rules=RULES, anneals=[3, 4, 5], keywords=KEYS
    )
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
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR", "DQ"]
        assert [h.ver for h in hdul[1:]] == [1, 1, 1]
        assert hdul["SCI"].data.dtype == np.dtype(">f4")
        assert hdul["SCI"].header["BUNIT"] == "ELECTRONS/S"
        np.testing.assert_allclose(hdul["SCI"].data, sci, rtol=2e-7)
        np.testing.assert_allclose(hdul["ERR"].data, err, rtol=2e-7)
        dq = hdul["DQ"].data
        assert dq.dtype == np.dtype(">i2") and "BZERO" not in hdul["DQ"].header
        hdr = hdul[0].header
    assert total[2, 3] == 0 and dq[2, 3] & 512
    assert total[7, 7] > 0 and not dq[7, 7] & 512  # usable in periods 3 and 5
    assert hdr["NNODATA"] == np.count_nonzero(total == 0) == 1
    assert hdr["NFLAGGED"] == np.count_nonzero(dq)
    # a single period: SCI is that period's sci_mean, ERR err_mean / sqrt(n)
    one = superdark(db, RULES, anneals=5)
    good = n[5] > 0
    np.testing.assert_allclose(one["sci"].values[good], m[5][good], rtol=2e-7)
    np.testing.assert_allclose(
        one["err"].values[good], e[5][good] / np.sqrt(n[5][good]), rtol=2e-7
    )
    # and the DQ of one period is dq_array's
    np.testing.assert_array_equal(
        one["dq"].values & ~np.uint16(512), dq_array(db, RULES, anneal_num=5).values
    )


def test_crds_certify_offline(db, rmap, real_dir, tmp_path, monkeypatch):
    """crds certify (the package's own TPN checks) on our superdark, without a server.

    A local CRDS cache holds the real darkfile rmap and a two-line pipeline and
    instrument mapping that point to it; CRDS_SERVER_URL is unset.
    """
    pytest.importorskip("crds")
    cache = tmp_path / "crds"
    mappings = cache / "mappings" / "hst"
    mappings.mkdir(parents=True)
    shutil.copy(real_dir / "crds" / "hst_stis_darkfile.rmap", mappings)
    (mappings / "hst_0001.pmap").write_text(
        "header = {\n    'derived_from' : 'stiscube test',\n    'mapping' : 'PIPELINE',\n"
        "    'name' : 'hst_0001.pmap',\n    'observatory' : 'HST',\n"
        "    'parkey' : ('INSTRUME',),\n    'sha1sum' : '0',\n}\n\n"
        "selector = {\n    'STIS' : 'hst_stis_0001.imap',\n}\n"
    )
    (mappings / "hst_stis_0001.imap").write_text(
        "header = {\n    'derived_from' : 'stiscube test',\n    'instrument' : 'STIS',\n"
        "    'mapping' : 'INSTRUMENT',\n    'name' : 'hst_stis_0001.imap',\n"
        "    'observatory' : 'HST',\n    'parkey' : ('REFTYPE',),\n    'sha1sum' : '0',\n}\n\n"
        "selector = {\n    'darkfile' : 'hst_stis_darkfile.rmap',\n}\n"
    )
    monkeypatch.delenv("CRDS_SERVER_URL", raising=False)
    monkeypatch.setenv("CRDS_PATH", str(cache))
    monkeypatch.setenv("CRDS_OBSERVATORY", "hst")
    from crds.certify import certify
    from crds.core import log
    from crds.refactoring import checksum

    for name in ("hst_0001.pmap", "hst_stis_0001.imap"):
        checksum.update_checksum(str(mappings / name))
    good = write_dark_reference(
        db, tmp_path / "good_drk.fits", rules=RULES, anneals=5, keywords=KEYS
    )
    before = log.errors()
    certify.certify_file(str(good.resolve()), context="hst_0001.pmap", observatory="hst")
    assert log.errors() == before
    # the check can fail: the rmap's own date format is not what certify wants in USEAFTER
    bad = tmp_path / "bad_drk.fits"
    with fits.open(good) as hdul:
        hdul[0].header["USEAFTER"] = "2019-06-30 00:00:00"
        hdul.writeto(bad)
    certify.certify_file(str(bad.resolve()), context="hst_0001.pmap", observatory="hst")
    assert log.errors() == before + 1


# -- keywords and errors --------------------------------------------------------------------
def test_sybdate():
    assert sybdate("2019-04-01T00:00:00") == "Apr 01 2019 00:00:00"
    assert sybdate(np.datetime64("2001-12-31T23:59:59.7")) == "Dec 31 2001 23:59:59"


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"ccdamp": "E"}, ValueError, "ccdamp must be one of"),
        ({"ccdgain": 3}, ValueError, "ccdgain must be one of"),
        ({"ccdgain": "1"}, TypeError, "ccdgain must be an integer"),
        ({"ccdgain": True}, TypeError, "ccdgain must be an integer"),
        ({"useafter": "yesterday"}, ValueError, "useafter must be a date"),
        ({"useafter": "2200-01-01"}, ValueError, "useafter must be a date between"),
        ({"pedigree": "INFLIGHT 2019-01-01 2019-02-01"}, ValueError, "pedigree must be"),
        ({"pedigree": "INFLIGHT 31/02/2019 01/03/2019"}, ValueError, "day is out of range"),
        ({"pedigree": "INFLIGHT 01/03/2019 01/02/2019"}, ValueError, "end date is before"),
        ({"descrip": "x" * 68}, ValueError, "descrip must have 1 to 67 characters"),
        ({"descrip": "two\nlines"}, ValueError, "descrip must be one line"),
        ({"descrip": 5}, TypeError, "descrip must be a string, got 5"),
    ],
)
def test_bad_keywords(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ReferenceKeywords(**kwargs)


def test_keywords_given_are_used(db, tmp_path):
    keys = ReferenceKeywords(
        ccdamp="A", ccdgain=4, useafter="2019-05-02 03:04:05", pedigree="DUMMY", descrip="test"
    )
    path = write_dq_reference(db, tmp_path / "dq.fits", rules=RULES, anneals=4, keywords=keys)
    hdr = fits.getheader(path)
    assert (hdr["CCDAMP"], hdr["CCDGAIN"], hdr["USEAFTER"]) == ("A", 4, "May 02 2019 03:04:05")
    assert (hdr["PEDIGREE"], hdr["DESCRIP"], hdr["PERIODS"]) == ("DUMMY", "test", "4")


def test_ccd_settings_from_the_cube(db):
    ds = db.dataset.sel(anneal=[3, 4, 5]).assign_coords(
        ccdamp=("anneal", ["D", "D", ""]), ccdgain=("anneal", [1.0, 4.0, np.nan])
    )  # "" and NaN: unknown (periods not computed from darks)
    assert _ccd_setting(ds, "ccdamp", None, [3, 4]) == "D"
    assert _ccd_setting(ds, "ccdgain", 1, [3]) == 1
    assert _ccd_setting(ds, "ccdamp", "D", [4, 5]) == "D"  # given for the unknown one
    with pytest.raises(ValueError, match=r"periods \[3, 4\] mix ccdgain values"):
        _ccd_setting(ds, "ccdgain", None, [3, 4])
    with pytest.raises(ValueError, match="ccdamp='A' was given but the cube's periods"):
        _ccd_setting(ds, "ccdamp", "A", [3])
    with pytest.raises(ValueError, match=r"the cube records no ccdamp for periods \[5\]"):
        _ccd_setting(ds, "ccdamp", None, [4, 5])
    bare = db.dataset.drop_vars(["ccdamp", "ccdgain"], errors="ignore")
    with pytest.raises(ValueError, match="the cube records no ccdgain.*--ccdgain"):
        _ccd_setting(bare, "ccdgain", None, [3])


def test_errors_write_nothing(db, tmp_path):
    out = tmp_path / "x.fits"
    with pytest.raises(CubeQueryError, match=r"anneal periods \[7\] are not in"):
        write_dq_reference(db, out, anneals=[3, 7], keywords=KEYS)
    with pytest.raises(TypeError, match="anneals must be a period number"):
        write_dq_reference(db, out, anneals=["3"], keywords=KEYS)
    with pytest.raises(UnitMismatchError, match=r"periods \[9\] are not in electron / s"):
        write_dark_reference(db, out, anneals=[5, COUNTS], rules=RULES, keywords=KEYS)
    with pytest.raises(ValueError, match="keeps for no-data pixels"):
        superdark(db, DQRules(unstable_level=3.0, unstable_bit=512), anneals=3)
    with pytest.raises(TypeError, match="db must be a stiscube.PixelDB"):
        write_dq_reference(db.dataset, out, keywords=KEYS)
    write_dq_reference(db, out, rules=RULES, anneals=3, keywords=KEYS)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="file exists"):
        write_dark_reference(db, out, rules=RULES, anneals=3, keywords=KEYS)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.fits"]


def test_temperature_scaling_and_exposures_are_in_the_headers(tmp_path):
    """Issue 9: the temperature scaling of the inputs is recorded in every output header."""
    from stiscube.datasets.simulate import simulate_darks
    from stiscube.io.darks import TemperatureCorrection

    sim = simulate_darks(  # Side-2 dates (2020): the STScI scaling applies by default
        tmp_path / "sim", n_periods=2, frames_per_period=4, shape=(32, 32), seed=8
    )
    db = PixelDB.create(tmp_path / "db", periods=sim.periods, shape=sim.shape)
    first, second = sorted(sim.files)
    db.ingest_darks(sim.files[first], first)
    db.ingest_darks(
        sim.files[second], second, temperature=TemperatureCorrection(enabled=False)
    )
    one = write_dark_reference(db, tmp_path / "one.fits", anneals=first)
    both = write_dq_reference(db, tmp_path / "both.fits", anneals=[first, second])
    with fits.open(one) as hdul:
        hdr = hdul[0].header
        assert hdr["TEMPCORR"] == "1/(1+0.07*(OCCDHTAV-18)) Side-2"
        history = " ".join(" ".join(str(h) for h in hdr["HISTORY"]).split())
        assert (
            f"period {first} temperature scaling: 1/(1+0.07*(OCCDHTAV-18)) Side-2: "
            "4 of 4 frames scaled" in history
        )
        assert f"period {first} exposures: long (1000-1200 s)" in history
    with fits.open(both) as hdul:
        hdr = hdul[0].header
        assert hdr["TEMPCORR"] == "differs by period (see HISTORY)"
        history = " ".join(" ".join(str(h) for h in hdr["HISTORY"]).split())
        assert f"period {second} temperature scaling: off" in history


def test_reference_keywords_normalise():
    keys = ReferenceKeywords(ccdgain=np.int64(4), useafter="2020-01-05T06:07:08.9")
    assert type(keys.ccdgain) is int and keys.ccdgain == 4
    assert keys.useafter == np.datetime64("2020-01-05T06:07:08")


def test_write_reference_refuses_an_unknown_kind_before_writing(db, tmp_path):
    out = tmp_path / "x.fits"
    with pytest.raises(ValueError, match=r"^kind must be one of \['dq', 'dark'\], got 'bias'$"):
        write_reference(db, out, "bias", keywords=KEYS)
    with pytest.raises(TypeError, match="unexpected keyword argument 'anneal'"):
        write_dq_reference(db, out, anneal=3, keywords=KEYS)
    assert not out.exists()
