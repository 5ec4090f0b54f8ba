"""Dark frames: validation of every bad input (type and message), and the lazy stack."""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from stiscube import IncompatibleDarksError, InvalidDarkError, StiscubeError
from stiscube.io._fitsio import RawImageStack
from stiscube.io.darks import check_darks, open_darks, read_frames
from stiscube.properties.compute import compute_properties


def _variant(src: Path, dst: Path, edit) -> Path:
    """Copy ``src`` to ``dst`` with ``edit(hdul)`` applied (with astropy, not the code tested)."""
    with fits.open(src) as hdul:
        hdul = fits.HDUList([h.copy() for h in hdul])
        edit(hdul)
        hdul.writeto(dst)
    return dst


def _set(ext, key, value):
    def edit(hdul):
        hdul[ext].header[key] = value

    return edit


@pytest.fixture
def files(small_darks, tmp_path) -> list[Path]:
    """Private copies of the 5 small darks (tests modify them)."""
    out = []
    for path in small_darks.files[1]:
        out.append(Path(shutil.copy(path, tmp_path / path.name)))
    return out


# -- single-file problems ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_set(0, "INSTRUME", "ACS"), r"not a STIS CCD dark: INSTRUME = 'ACS' \(expected 'STIS'\)"),
        (_set(0, "DETECTOR", "FUV-MAMA"), r"not a STIS CCD dark: DETECTOR = 'FUV-MAMA'"),
        (
            _set(0, "TARGNAME", "NGC104"),
            r"not a STIS CCD dark: TARGNAME = 'NGC104' \(expected 'DARK'\)",
        ),
        (_set(0, "TEXPTIME", 0.0), r"exposure time TEXPTIME = 0 s is not positive"),
        (_set(0, "TEXPTIME", -60.0), r"exposure time TEXPTIME = -60 s is not positive"),
        (_set(0, "TEXPTIME", "long"), r"TEXPTIME = 'long' is not a number"),
        (_set(0, "ROOTNAME", "abc"), r"ROOTNAME = 'abc' is not a 9-character HST rootname"),
        (_set(0, "ATODGAIN", 0.0), r"ATODGAIN = 0 e-/count is not positive"),
    ],
    ids=[
        "instrument",
        "detector",
        "target",
        "zero-exptime",
        "negative-exptime",
        "text-exptime",
        "rootname",
        "zero-gain",
    ],
)
def test_bad_header_values(files, tmp_path, edit, match):
    bad = _variant(files[0], tmp_path / "bad_flt.fits", edit)
    with pytest.raises(InvalidDarkError, match=match) as info:
        read_frames(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(InvalidDarkError, match=match):
        compute_properties([*files[1:], bad])


def test_missing_keywords(files, tmp_path):
    def drop(*keys):
        def edit(hdul):
            for h in hdul:
                for key in keys:
                    h.header.remove(key, ignore_missing=True)

        return edit

    bad = _variant(files[0], tmp_path / "a_flt.fits", drop("TEXPSTRT", "EXPSTART"))
    with pytest.raises(InvalidDarkError, match="the primary header has no TEXPSTRT keyword"):
        read_frames(bad)
    # the SCI EXPSTART is enough (the primary TEXPSTRT is optional)
    fine = _variant(files[0], tmp_path / "d_flt.fits", drop("TEXPSTRT"))
    assert read_frames(fine)[0].start_mjd == fits.getval(files[0], "EXPSTART", ext=1)
    bad = _variant(files[0], tmp_path / "b_flt.fits", drop("ATODGAIN"))
    with pytest.raises(InvalidDarkError, match=r"no ATODGAIN keyword \(primary or SCI header\)"):
        read_frames(bad)
    bad = _variant(files[0], tmp_path / "c_flt.fits", drop("INSTRUME"))
    with pytest.raises(InvalidDarkError, match="INSTRUME = missing"):
        read_frames(bad)


def test_gain_from_the_sci_header_when_not_in_the_primary(files, tmp_path):
    def edit(hdul):
        del hdul[0].header["ATODGAIN"]
        hdul[1].header["ATODGAIN"] = 4.0

    frame = read_frames(_variant(files[0], tmp_path / "g_flt.fits", edit))[0]
    assert frame.gain == 4.0


@pytest.mark.parametrize("ext", ["SCI", "ERR", "DQ"])
def test_missing_extension(files, tmp_path, ext):
    def edit(hdul):
        del hdul[ext]

    others = ", ".join(e for e in ("SCI", "ERR", "DQ") if e != ext)
    bad = _variant(files[0], tmp_path / "m_flt.fits", edit)
    with pytest.raises(
        InvalidDarkError, match=rf"missing the {ext} extension.*\(found: {others}\)"
    ):
        read_frames(bad)


def test_incomplete_second_imset(files, tmp_path):
    def edit(hdul):
        extra = hdul["SCI"].copy()
        extra.header["EXTVER"] = 2
        hdul.append(extra)

    with pytest.raises(InvalidDarkError, match=r"missing the ERR extension of imset 2"):
        read_frames(_variant(files[0], tmp_path / "i_flt.fits", edit))


def test_unsupported_image_layouts(files, tmp_path):
    def float64_sci(hdul):
        hdul["SCI"].data = hdul["SCI"].data.astype(np.float64)

    with pytest.raises(InvalidDarkError, match=r"the SCI image has BITPIX = -64, expected -32"):
        read_frames(_variant(files[0], tmp_path / "f_flt.fits", float64_sci))

    def scaled_dq(hdul):
        hdul["DQ"].header["BZERO"] = 32768

    with pytest.raises(InvalidDarkError, match=r"the DQ image is scaled"):
        read_frames(_variant(files[0], tmp_path / "s_flt.fits", scaled_dq))

    def short_err(hdul):
        hdul["ERR"].data = hdul["ERR"].data[:10]

    with pytest.raises(InvalidDarkError, match=r"SCI, ERR and DQ shapes differ"):
        read_frames(_variant(files[0], tmp_path / "e_flt.fits", short_err))


def test_truncated_files(files, tmp_path):
    data = files[0].read_bytes()
    with fits.open(files[0]) as hdul:
        dq_start = hdul.fileinfo(3)["datLoc"]
    cut_data = tmp_path / "cut_data_flt.fits"
    cut_data.write_bytes(data[: dq_start + 100])  # inside the DQ data
    with pytest.raises(
        InvalidDarkError,
        match=r"truncated: the DQ data should end at byte \d+ but the file has only",
    ):
        read_frames(cut_data)
    cut_header = tmp_path / "cut_header_flt.fits"
    cut_header.write_bytes(data[:4000])  # inside the SCI extension's header
    with pytest.raises(
        InvalidDarkError, match=r"cut_header_flt\.fits: (not a readable FITS file|missing the)"
    ):
        read_frames(cut_header)


def test_not_fits(tmp_path, files):
    text = tmp_path / "notes_flt.fits"
    text.write_text("this is not a FITS file\n")
    with pytest.raises(InvalidDarkError, match=r"notes_flt\.fits: not a FITS file$"):
        read_frames(text)
    empty = tmp_path / "empty_flt.fits"
    empty.write_bytes(b"")
    with pytest.raises(InvalidDarkError, match="an empty file"):
        read_frames(empty)
    packed = tmp_path / "packed_flt.fits.gz"
    packed.write_bytes(gzip.compress(files[0].read_bytes()))
    with pytest.raises(InvalidDarkError, match="gzip-compressed: decompress it first"):
        read_frames(packed)
    with pytest.raises(InvalidDarkError, match=r"nowhere_flt\.fits: file does not exist"):
        read_frames(tmp_path / "nowhere_flt.fits")
    with pytest.raises(InvalidDarkError, match="is a directory"):
        read_frames(tmp_path)


# -- set-level problems ---------------------------------------------------------------------
def test_binned_frames_are_refused_even_when_the_shape_matches(files, tmp_path):
    """Issue 14.12: a binned header on a frame of the right shape is refused, not stacked."""
    bad = _variant(files[0], tmp_path / "bin_flt.fits", _set(0, "BINAXIS1", 2))
    bad_set = [*files[1:], bad]
    with pytest.raises(InvalidDarkError, match=r"bin_flt\.fits: binned 2x1 frame \(BINAXIS1/2\)"):
        check_darks(bad_set)
    with pytest.raises(InvalidDarkError, match="binned 2x1 frame"):
        compute_properties(bad_set)


def test_full_frame_mixed_with_subarrays(files, tmp_path):
    bad = _variant(files[0], tmp_path / "full_flt.fits", _set(0, "SUBARRAY", False))
    with pytest.raises(
        IncompatibleDarksError, match=r"full_flt\.fits: full frame mixed with subarray frames"
    ):
        check_darks([*files[1:], bad])
    with pytest.raises(IncompatibleDarksError, match=r"subarray frame mixed with full frames"):
        check_darks([bad, *files[1:]])


def test_shape_mismatch(files, tmp_path):
    def narrower(hdul):
        for ext in ("SCI", "ERR", "DQ"):
            hdul[ext].data = hdul[ext].data[:, :10]

    bad = _variant(files[0], tmp_path / "narrow_flt.fits", narrower)
    with pytest.raises(
        IncompatibleDarksError,
        match=r"narrow_flt\.fits: shape \(16, 10\) differs from the shape \(16, 12\)",
    ):
        check_darks([*files[1:], bad])


def test_duplicate_rootname(files, tmp_path):
    twin = Path(shutil.copy(files[0], tmp_path / "twin_flt.fits"))
    rootname = fits.getval(files[0], "ROOTNAME")
    with pytest.raises(
        IncompatibleDarksError,
        match=rf"twin_flt\.fits: duplicate rootname '{rootname}', also the rootname of .*"
        + files[0].name,
    ):
        check_darks([*files, twin])


def test_frame_outside_its_period(files, small_darks):
    period = small_darks.periods[1]
    starts = sorted(fits.getval(f, "TEXPSTRT") for f in files)
    with pytest.raises(
        InvalidDarkError, match=r"exposure starts .* outside the anneal period it is assigned to"
    ):
        check_darks(files, start=starts[1], end=period.end_mjd)
    with pytest.raises(InvalidDarkError, match=r"outside the anneal period"):
        check_darks(files, start=period.start_mjd, end=starts[-1])  # end is exclusive
    assert len(check_darks(files, start=starts[0], end=period.end_mjd)) == 5
    with pytest.raises(InvalidDarkError, match=r"outside the anneal period"):
        compute_properties(files, start="2030-01-01", end="2030-02-01")
    with pytest.raises(ValueError, match="end .* must be after start"):
        check_darks(files, start=period.end_mjd, end=period.start_mjd)


def test_no_files():
    with pytest.raises(ValueError, match="files must name at least one dark frame"):
        check_darks([])


def test_errors_come_before_any_read_or_compute(
    files, tmp_path, monkeypatch, raise_if_dask_computes
):
    """A bad last file stops everything before a pixel is read or a graph computed."""

    def forbidden(self, key):
        raise AssertionError("pixel data read before validation finished")

    monkeypatch.setattr(RawImageStack, "__getitem__", forbidden)
    bad = _variant(files[0], tmp_path / "zz_flt.fits", _set(0, "TEXPTIME", 0.0))
    with raise_if_dask_computes(), pytest.raises(StiscubeError, match=r"zz_flt\.fits"):
        compute_properties([*files, bad])
    with raise_if_dask_computes():
        lazy = compute_properties(files)  # valid files: a graph is built, nothing is read
    assert lazy["sci_mean"].chunks is not None


# -- the lazy stack ---------------------------------------------------------------------------
def test_stack_values_and_coordinates(files, raise_if_dask_computes):
    shuffled = [files[i] for i in (3, 0, 4, 2, 1)]
    with raise_if_dask_computes():
        stack = open_darks(shuffled)
    assert stack["sci"].dims == ("frame", "row", "col")
    assert stack["sci"].chunks == ((1,) * 5, (16,), (12,))  # one frame per chunk by default
    headers = [fits.getheader(f) for f in files]
    order = np.argsort([h["TEXPSTRT"] for h in headers])
    assert stack["rootname"].values.tolist() == [headers[i]["ROOTNAME"] for i in order]
    np.testing.assert_array_equal(stack["exptime"].values, [headers[i]["TEXPTIME"] for i in order])
    np.testing.assert_array_equal(
        stack["start_mjd"].values, [headers[i]["TEXPSTRT"] for i in order]
    )
    assert np.all(np.diff(stack["start"].values) > np.timedelta64(0, "s"))
    assert stack["gain"].attrs["units"] == "electron / count"
    assert stack["sci"].attrs["units"] == "count"
    loaded = stack.compute()
    for k, i in enumerate(order):
        for var, ext in (("sci", "SCI"), ("err", "ERR"), ("dq", "DQ")):
            expected = fits.getdata(files[i], ext)
            np.testing.assert_array_equal(loaded[var].values[k], expected)
            assert loaded[var].dtype == expected.dtype.newbyteorder("=")


def test_stack_chunks(files):
    stack = open_darks(files, chunks={"frame": -1, "row": 5})
    assert stack["err"].chunks == ((5,), (5, 5, 5, 1), (12,))
    np.testing.assert_array_equal(stack["err"].values, open_darks(files)["err"].values)
    with pytest.raises(ValueError, match=r"chunks has unknown dimension\(s\) \['pixel'\]"):
        open_darks(files, chunks={"pixel": 3})
    with pytest.raises(ValueError, match=r"chunks\['row'\] must be >= 1 or -1, got 0"):
        open_darks(files, chunks={"row": 0})
    with pytest.raises(TypeError, match=r"chunks\['frame'\] must be an integer"):
        open_darks(files, chunks={"frame": 1.5})


def test_raw_stack_indexing_matches_numpy(files):
    frames = check_darks(files)
    stack = RawImageStack(
        [f.path for f in frames],
        [f.layout["SCI"].offset for f in frames],
        frames[0].shape,
        frames[0].layout["SCI"].dtype,
    )
    reference = np.stack([fits.getdata(f.path, "SCI") for f in frames])
    keys = [
        (slice(None),),
        (2,),
        (slice(1, 4), slice(3, 9), slice(2, 7)),
        (-1, 5, slice(None, None, -2)),
        (slice(None, None, 2), slice(10, 2, -3)),
        (Ellipsis, 4),
        (slice(0, 0),),
    ]
    for key in keys:
        np.testing.assert_array_equal(stack[key], reference[key])
    again = pickle.loads(pickle.dumps(stack))  # what a distributed worker receives
    np.testing.assert_array_equal(again[1:3, 4:6], reference[1:3, 4:6])
    with pytest.raises(IndexError, match="out of bounds"):
        stack[7]


# -- keywords that name neither file nor keyword elsewhere (issue 14.13) --------------------------
def _nan_card(path: Path, key: str) -> None:
    """Overwrite the 80-byte card of *key* in the primary header with ``KEY = NAN``
    (astropy refuses to write NaN values, so the bytes are edited)."""
    data = bytearray(path.read_bytes())
    start = data.find(key.ljust(8).encode() + b"=")
    assert 0 <= start < 2880 * 10 and start % 80 == 0
    data[start : start + 80] = f"{key:<8}=                  NAN / not a number".ljust(80).encode()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_set(0, "BINAXIS1", "two"), r"BINAXIS1 = 'two' is not an integer"),
        (_set(0, "CCDGAIN", "one"), r"CCDGAIN = 'one' is not a number"),
        (_set(1, "EXTVER", "x"), r"extension 1 \(SCI\) EXTVER = 'x' is not an integer"),
        (_set(0, "SUBARRAY", "maybe"), r"SUBARRAY = 'maybe' is not a logical value"),
        (_set(1, "EXPTIME", 0.0), r"EXPTIME = 0 s of imset 1 is not positive"),
        (_set(1, "EXPTIME", "long"), r"EXPTIME = 'long' is not a number"),
        (_set(0, "CCDAMP", 3), r"CCDAMP = 3 is not an amplifier name"),
    ],
    ids=["binaxis", "ccdgain", "extver", "subarray", "zero-exptime", "text-exptime", "ccdamp"],
)
def test_bad_keywords_name_file_and_keyword(files, tmp_path, edit, match):
    bad = _variant(files[0], tmp_path / "kw_flt.fits", edit)
    with pytest.raises(InvalidDarkError, match=match) as info:
        read_frames(bad)
    assert str(bad) in str(info.value)


def test_nan_texptime_names_file_and_keyword(files, tmp_path):
    bad = Path(shutil.copy(files[0], tmp_path / "nan_flt.fits"))
    _nan_card(bad, "TEXPTIME")
    with pytest.raises(InvalidDarkError, match=r"nan_flt\.fits: primary header keyword TEXPTIME"):
        read_frames(bad)


def test_imsets_without_their_own_times_are_refused(files, tmp_path):
    """Two imsets and no EXPSTART/EXPTIME in their SCI headers: the primary's total
    TEXPTIME cannot be split, so the file is refused (no silent wrong rate)."""

    def edit(hdul):
        for ext in ("SCI", "ERR", "DQ"):
            extra = hdul[ext].copy()
            extra.header["EXTVER"] = 2
            hdul.append(extra)
        for h in hdul[1:]:
            for key in ("EXPTIME", "EXPSTART", "EXPEND"):
                h.header.remove(key, ignore_missing=True)

    bad = _variant(files[0], tmp_path / "two_flt.fits", edit)
    with pytest.raises(InvalidDarkError, match=r"has no EXPTIME; the primary TEXPSTRT/TEXPTIME"):
        read_frames(bad)


def test_one_imset_falls_back_to_the_primary_times(files, tmp_path):
    def edit(hdul):
        for key in ("EXPTIME", "EXPSTART", "EXPEND"):
            del hdul[1].header[key]

    frame = read_frames(_variant(files[0], tmp_path / "old_flt.fits", edit))[0]
    primary = fits.getheader(files[0])
    assert frame.exptime == primary["TEXPTIME"] and frame.start_mjd == primary["TEXPSTRT"]


def test_same_file_twice_is_a_duplicate(files):
    with pytest.raises(IncompatibleDarksError, match="duplicate rootname"):
        check_darks([*files, files[2]])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_frames": 1}, ValueError, r"min_frames must be an integer >= 2, got 1"),
        ({"min_frames": 2.5}, TypeError, r"min_frames must be an integer"),
        ({"min_valid_fraction": 0}, ValueError, r"min_valid_fraction must be in \(0, 1\]"),
        ({"ccdgain": 3}, ValueError, r"ccdgain must be one of \[1, 2, 4, 8\], got 3"),
        ({"ccdgain": "2"}, TypeError, r"ccdgain must be a number, got '2'"),
        ({"ccdamp": "E"}, ValueError, r"ccdamp must be one of \['A', 'B', 'C', 'D'\], got 'E'"),
        ({"exptime": "medium"}, ValueError, r"exptime must be one of \['long'\], got 'medium'"),
        ({"exptime": -5.0}, ValueError, r"exptime must be > 0, got -5.0"),
        ({"exposure_classes": (("long", 1200.0, 1000.0),)}, ValueError,
         r"exposure_classes\[0\] high must be >= 1200.0, got 1000.0"),
    ],
)
def test_bad_selection_options(kwargs, error, match):
    from stiscube.io.darks import DarkSelection

    with pytest.raises(error, match=match):
        DarkSelection(**kwargs)


def test_amplifier_and_exposure_class_selection(files, tmp_path):
    """Groups by CCDAMP and exposure class; an explicit choice keeps one group and says
    why each other frame was skipped."""
    from stiscube.io.darks import DarkSelection, MixedDarksError, select_darks

    def amp_c(hdul):
        hdul[0].header["CCDAMP"] = "C"

    def short(hdul):
        hdul[1].header["EXPTIME"] = 60.0
        hdul[1].header["EXPEND"] = hdul[1].header["EXPSTART"] + 60.0 / 86400

    mixed = [
        *files[:3],
        _variant(files[3], tmp_path / "c_flt.fits", amp_c),
        _variant(files[4], tmp_path / "s_flt.fits", short),
    ]
    frames = check_darks(mixed)
    with pytest.raises(MixedDarksError, match="3 groups") as info:
        select_darks(frames)
    assert info.value.groups == {
        "CCDGAIN=1 CCDAMP=D bin 1x1 long (1000-1200 s)": 3,
        "CCDGAIN=1 CCDAMP=C bin 1x1 long (1000-1200 s)": 1,
        "CCDGAIN=1 CCDAMP=D bin 1x1 60 s": 1,
    }
    with pytest.raises(MixedDarksError, match="the selection still leaves 2 groups"):
        select_darks(frames, DarkSelection(ccdamp="D", min_frames=2))
    chosen, skipped = select_darks(frames, DarkSelection(ccdamp="d", exptime="long"))
    assert sorted(str(f.path) for f in chosen) == sorted(str(p) for p in files[:3])
    reasons = {f.path.name: why for f, why in skipped}
    assert reasons == {
        "c_flt.fits": "CCDAMP 'C' is not the selected 'd'",
        "s_flt.fits": "exposure 60 s is not in the class long (1000-1200 s)",
    }
    from stiscube.io.darks import TooFewDarksError

    with pytest.raises(TooFewDarksError, match=r"at least 2 usable frames .* got 1 after skip"):
        select_darks(frames, DarkSelection(exptime=60.0, min_frames=2))
    with pytest.raises(MixedDarksError, match="no frame matches the selection"):
        select_darks(frames, DarkSelection(ccdgain=8))
