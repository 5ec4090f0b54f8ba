"""Real STIS archive files (tests/data/real/stis) through the dark reader (issue 9).

The expected values come from astropy reads of the real files, never from the reader.
Variants (TARGNAME=DARK, other rootnames, gains, binning, constant arrays) are derived
here from the real files with astropy; the 21 MB FLT is read once per session and the
variants that are ingested are cropped to 96 x 128 pixels to keep the tests fast.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from stiscube import InvalidDarkError, PixelDB
from stiscube.io._fitsio import read_imsets
from stiscube.io.darks import (
    DarkSelection,
    MixedDarksError,
    TooFewDarksError,
    check_darks,
    open_darks,
    read_frames,
    select_darks,
)
from stores.common.testing import tree_digest

FLT = "stis/o4k19a010_flt.fits"
RAW = "stis/o4sp040b0_raw.fits"
CROP = (slice(400, 496), slice(300, 428))  # 96 x 128 pixels of the real frame


@pytest.fixture(scope="session")
def real_flt(real_dir) -> fits.HDUList:
    """The real two-imset FLT, read once (in memory) for the whole session."""
    with fits.open(real_dir / FLT, memmap=False) as hdul:
        hdul = fits.HDUList([h.copy() for h in hdul])
    for h in hdul[1:]:
        h.data  # noqa: B018  (load now, while the file is open)
    return hdul


def _variant(
    hdul: fits.HDUList,
    path: Path,
    *,
    primary: dict | None = None,
    imsets: list[int] | None = None,
    crop: tuple | None = CROP,
    sci: dict | None = None,
    edit=None,
) -> Path:
    """Write a copy of *hdul* (astropy) with primary keywords set, only some imsets kept
    (renumbered 1..n), the images cropped, SCI keywords set per imset, and ``edit``."""
    keep = imsets or sorted({h.header["EXTVER"] for h in hdul[1:] if h.name == "SCI"})
    out = [fits.PrimaryHDU(header=hdul[0].header.copy())]
    for new, old in enumerate(keep, 1):
        for ext in ("SCI", "ERR", "DQ"):
            src = hdul[ext, old]
            data = None if src.data is None else src.data[crop] if crop else src.data
            hdu = fits.ImageHDU(
                data=None if data is None else np.array(data), header=src.header.copy()
            )
            hdu.header["EXTVER"] = new
            if ext == "SCI" and sci:
                for key, value in sci.get(new, {}).items():
                    hdu.header[key] = value
            out.append(hdu)
    out[0].header["NEXTEND"] = 3 * len(keep)
    for key, value in (primary or {}).items():
        out[0].header[key] = value
    result = fits.HDUList(out)
    if edit is not None:
        edit(result)
    result.writeto(path)
    return path


# -- the files as the archive delivers them ---------------------------------------------------
def test_real_flt_is_read_as_two_imsets(real_dir):
    layout = read_imsets(real_dir / FLT)
    assert [im.extver for im in layout.imsets] == [1, 2]
    with fits.open(real_dir / FLT) as hdul:
        for im in layout.imsets:
            assert im.header["EXPSTART"] == hdul["SCI", im.extver].header["EXPSTART"]
            for ext in ("SCI", "ERR", "DQ"):
                index = hdul.index_of((ext, im.extver))
                assert im.layouts[ext].offset == hdul.fileinfo(index)["datLoc"]
                assert im.layouts[ext].shape == (1024, 1024)
    # it is a calibrated STIS CCD file but not a dark: refused as such, naming TARGNAME
    with pytest.raises(InvalidDarkError, match=r"not a STIS CCD dark: TARGNAME = 'ANY'"):
        read_frames(real_dir / FLT)


def test_dark_variant_of_the_real_flt_gives_two_frames(real_flt, real_dir, tmp_path):
    """Frame times from each SCI header (150 s each, not the primary's 300 s total)."""
    path = _variant(real_flt, tmp_path / "o4k19a010_flt.fits", primary={"TARGNAME": "DARK"},
                    crop=None)
    frames = read_frames(path)
    assert len(frames) == 2
    primary = fits.getheader(real_dir / FLT, 0)
    assert primary["TEXPTIME"] == 300.0
    for k, frame in enumerate(frames, 1):
        sci = fits.getheader(real_dir / FLT, ("SCI", k))
        assert frame.imset == k and frame.n_imsets == 2
        assert frame.frame_id == f"o4k19a010[{k}]"
        assert frame.start_mjd == sci["EXPSTART"] and frame.end_mjd == sci["EXPEND"]
        assert frame.exptime == sci["EXPTIME"] == 150.0
        assert frame.expname == sci["EXPNAME"]
        assert frame.gain == primary["ATODGAIN"] == 1.0
        assert frame.ccdgain == primary["CCDGAIN"] == 1
        assert frame.ccdamp == primary["CCDAMP"] == "D"
        assert frame.readnse == primary["READNSE"] == 3.99
        assert sci["OCCDHTAV"] == -1.0  # Side-1: no valid temperature
        assert math.isnan(frame.occdhtav)
    assert frames[1].start_mjd - frames[0].start_mjd == pytest.approx(
        (3 * 60 + 14) / 86400, abs=2e-5
    )  # 05:22:58 and 05:26:12 (TIME-OBS)
    # the pixels of both imsets, read through the byte offsets, equal astropy's
    stack = open_darks(frames)
    window = stack.isel(row=slice(500, 520), col=slice(0, 1024, 97)).compute()
    for k in (1, 2):
        for var in ("sci", "err", "dq"):
            expected = real_flt[var.upper(), k].data[500:520, 0:1024:97]
            np.testing.assert_array_equal(window[var].values[k - 1], expected)
    # Side-1 frames are not temperature-scaled
    assert stack["dark_scale"].values.tolist() == [1.0, 1.0]
    assert not stack["temperature_scaled"].values.any()


def test_raw_file_needs_calstis(real_dir):
    with pytest.raises(InvalidDarkError, match=r"o4sp040b0_raw\.fits: a raw \(uncalibrated\)"):
        read_frames(real_dir / RAW)
    with pytest.raises(InvalidDarkError, match=r"needs calstis first") as info:
        check_darks([real_dir / RAW])
    message = str(info.value)
    assert "BITPIX = 16 with BZERO = 32768" in message
    assert "BLEVCORR=PERFORM" in message and "its name ends in _raw" in message


def test_raw_detected_by_content_not_only_by_name(real_dir, tmp_path):
    renamed = tmp_path / "o4sp040b0_flt.fits"
    renamed.write_bytes((real_dir / RAW).read_bytes())
    with pytest.raises(InvalidDarkError, match=r"raw \(uncalibrated\).*integers.*calstis"):
        read_frames(renamed)


def test_constant_array_err_and_dq_are_accepted(real_flt, real_dir, tmp_path):
    """ERR/DQ as HST constant arrays: the raw file's own constant-array extensions on a
    calibrated SCI of the same 44 x 62 shape (cut from the real FLT)."""
    with fits.open(real_dir / RAW) as raw:
        err_header = raw["ERR", 1].header.copy()
        dq_header = raw["DQ", 1].header.copy()
    assert err_header["NAXIS"] == 0 and dq_header["NAXIS"] == 0
    shape = (err_header["NPIX2"], err_header["NPIX1"])

    def constants(hdul):
        hdul["ERR", 1] = fits.ImageHDU(header=err_header)
        hdul["ERR", 1].header["PIXVALUE"] = 7.5
        hdul["DQ", 1] = fits.ImageHDU(header=dq_header)
        hdul["DQ", 1].header["PIXVALUE"] = 16

    path = _variant(
        real_flt,
        tmp_path / "o4k19a010_flt.fits",
        primary={"TARGNAME": "DARK"},
        imsets=[1],
        crop=(slice(0, shape[0]), slice(0, shape[1])),
        edit=constants,
    )
    with fits.open(path) as hdul:  # astropy agrees that they are constant arrays
        assert hdul["ERR", 1].header["NAXIS"] == 0 and "PIXVALUE" in hdul["ERR", 1].header
    frame = read_frames(path)[0]
    assert frame.layout["ERR"].constant == 7.5 and frame.layout["DQ"].constant == 16
    stack = open_darks([frame]).compute()
    assert stack["err"].shape == (1, *shape)
    assert np.all(stack["err"].values == np.float32(7.5))
    assert np.all(stack["dq"].values == 16)
    np.testing.assert_array_equal(
        stack["sci"].values[0], real_flt["SCI", 1].data[: shape[0], : shape[1]]
    )


# -- variants: binned headers, mixed gains -------------------------------------------------------
def test_binned_header_variant_is_refused(real_flt, tmp_path):
    path = _variant(
        real_flt,
        tmp_path / "o4k19a010_flt.fits",
        primary={"TARGNAME": "DARK", "BINAXIS1": 2, "BINAXIS2": 2},
    )
    with pytest.raises(InvalidDarkError, match=r"binned 2x2 frame \(BINAXIS1/2\)"):
        read_frames(path)


@pytest.fixture
def real_period(real_flt, tmp_path) -> dict[str, list[Path]]:
    """Cropped DARK variants of the real FLT: the two-imset file itself, two one-imset
    files cut from it (other rootnames, one day later), and a gain-4 two-imset file."""
    base = {"TARGNAME": "DARK"}
    later = {k: {"EXPSTART": real_flt["SCI", k].header["EXPSTART"] + 1,
                 "EXPEND": real_flt["SCI", k].header["EXPEND"] + 1} for k in (1, 2)}
    files = {
        "gain1": [
            _variant(real_flt, tmp_path / "o4k19a010_flt.fits", primary=base),
            _variant(real_flt, tmp_path / "o4k19b01q_flt.fits", imsets=[1], sci={1: later[1]},
                     primary={**base, "ROOTNAME": "o4k19b01q", "NRPTEXP": 1, "TEXPTIME": 150.0}),
            _variant(real_flt, tmp_path / "o4k19c01q_flt.fits", imsets=[2], sci={1: later[2]},
                     primary={**base, "ROOTNAME": "o4k19c01q", "NRPTEXP": 1, "TEXPTIME": 150.0}),
        ],
        "gain4": [
            _variant(real_flt, tmp_path / "o4k19d010_flt.fits",
                     primary={**base, "ROOTNAME": "o4k19d010", "CCDGAIN": 4, "ATODGAIN": 4.016},
                     sci={k: {key: v + 1 for key, v in later[k].items()} for k in (1, 2)}),
        ],
    }
    return files


def test_period_from_the_two_imset_file_lists_every_frame_once(real_period, tmp_path):
    files = real_period["gain1"]
    db = PixelDB.create(tmp_path / "db", shape=(96, 128))
    db.ingest_darks(files, 5, start="1998-02-09", end="1998-02-12")
    listed = db.query_anneal_darks(anneal_num=5)["Darks"].tolist()
    assert sorted(listed) == ["o4k19a010[1]", "o4k19a010[2]", "o4k19b01q", "o4k19c01q"]
    assert len(set(listed)) == len(listed) == 4
    assert db.query_anneal(anneal_num=5)["NumberOfDarks"].item() == 4
    table = db.darks
    assert table["exptime"].tolist() == [150.0] * 4  # per imset, never the 300-s total
    imsets = [im for f in files for im in _imsets(f)]
    got = sorted((table["start"] - np.datetime64("1858-11-17")).dt.total_seconds() / 86400)
    np.testing.assert_allclose(got, sorted(im["EXPSTART"] for im in imsets), atol=2e-6)
    ds = db.dataset.sel(anneal=5)
    assert ds["ccdgain"].item() == 1.0 and ds["ccdamp"].item() == "D"
    assert ds["temperature_correction"].item().endswith(
        "0 of 4 frames scaled; 4 Side-1 frames not scaled"
    )
    assert ds["exptime_class"].item() == "150 s"
    # sci_mean = sum(e) / sum(t) of the four frames, computed with numpy from astropy reads,
    # for pixels without DQ flags and of small spread (nothing clipped there)
    sci = np.stack([im["SCI"] for im in imsets]).astype(np.float64)
    dq = np.stack([im["DQ"] for im in imsets])
    plain = (dq == 0).all(0) & (np.ptp(sci, axis=0) < 20)
    assert plain.sum() > 100
    np.testing.assert_allclose(
        ds["sci_mean"].values[plain], sci.sum(0)[plain] / 600.0, rtol=1e-5, atol=1e-6
    )


def _imsets(path: Path) -> list[dict]:
    """SCI and DQ data and EXPSTART of every imset of a file, read with astropy."""
    with fits.open(path) as hdul:
        return [
            {"SCI": h.data.copy(), "DQ": hdul["DQ", h.ver].data.copy(),
             "EXPSTART": h.header["EXPSTART"]}
            for h in hdul[1:]
            if h.name == "SCI"
        ]


def test_mixed_gains_name_the_groups_and_write_nothing(real_period, tmp_path):
    files = real_period["gain1"] + real_period["gain4"]
    db = PixelDB.create(tmp_path / "db", shape=(96, 128))
    before = tree_digest(db.location.url)
    with pytest.raises(MixedDarksError) as info:
        db.ingest_darks(files, 5, start="1998-02-09", end="1998-02-13")
    message = str(info.value)
    assert "CCDGAIN=1 CCDAMP=D bin 1x1 150 s: 4 frames" in message
    assert "CCDGAIN=4 CCDAMP=D bin 1x1 150 s: 2 frames" in message
    assert info.value.groups == {
        "CCDGAIN=1 CCDAMP=D bin 1x1 150 s": 4,
        "CCDGAIN=4 CCDAMP=D bin 1x1 150 s": 2,
    }
    assert tree_digest(db.location.url) == before


def test_gain_selection_uses_only_the_chosen_group(real_period, tmp_path):
    files = real_period["gain1"] + real_period["gain4"]
    db = PixelDB.create(tmp_path / "db", shape=(96, 128))
    props = db.ingest_darks(
        files, 5, start="1998-02-09", end="1998-02-13", selection=DarkSelection(ccdgain=4,
                                                                                min_frames=2)
    )
    listed = sorted(db.query_anneal_darks(anneal_num=5)["Darks"])
    assert listed == ["o4k19d010[1]", "o4k19d010[2]"]
    skipped = db.store.slice_extras(5)["skipped"]
    assert sorted(s["frame"] for s in skipped) == sorted(
        ["o4k19a010[1]", "o4k19a010[2]", "o4k19b01q", "o4k19c01q"]
    )
    assert all("CCDGAIN 1.0 is not the selected 4" in s["reason"] for s in skipped)
    assert db.dataset["ccdgain"].sel(anneal=5).item() == 4.0
    # the gain-4 frames' rate uses their ATODGAIN (4.016 e-/count): compare with numpy
    imsets = _imsets(real_period["gain4"][0])
    sci = np.stack([im["SCI"] for im in imsets])
    dq = np.stack([im["DQ"] for im in imsets])
    plain = (dq == 0).all(0) & (np.abs(sci[0] - sci[1]) < 20)
    expected = 4.016 * sci.astype(np.float64).sum(0) / 300.0
    np.testing.assert_allclose(props["sci_mean"].values[plain], expected[plain], rtol=1e-5,
                               atol=1e-5)
    # with the default (no selection) the same frames are refused; select_darks alone
    frames = check_darks(files)
    with pytest.raises(MixedDarksError, match="2 groups"):
        select_darks(frames)
    with pytest.raises(TooFewDarksError, match=r"at least 3 usable frames .* got 2"):
        select_darks(frames, DarkSelection(ccdgain=4))


def test_crj_is_one_combined_frame(real_flt, tmp_path):
    """An _crj (CR-rejected combination of the two imsets): one imset, one frame whose
    time is the combined EXPTIME (300 s), dated by its EXPSTART."""
    first, second = real_flt["SCI", 1].header, real_flt["SCI", 2].header
    combined = {"EXPTIME": 300.0, "NCOMBINE": 2, "EXPEND": second["EXPEND"]}
    path = _variant(real_flt, tmp_path / "o4k19a010_crj.fits", imsets=[1], sci={1: combined},
                    primary={"TARGNAME": "DARK", "CRCORR": "COMPLETE"})
    frames = read_frames(path)
    assert len(frames) == 1
    frame = frames[0]
    assert frame.frame_id == "o4k19a010" and frame.exptime == 300.0
    assert frame.start_mjd == first["EXPSTART"] and frame.end_mjd == second["EXPEND"]
