"""Low-level FITS access for dark frames: header validation and fast block reads.

:func:`read_imsets` opens a file once with :mod:`astropy.io.fits` (a local path, or an
fsspec URL such as ``file://``, ``memory://`` or ``s3://`` read through astropy's fsspec
support, headers only), validates the primary header and every SCI/ERR/DQ *imset* (one
exposure each; a calibrated STIS file may hold several, e.g. CR-SPLIT or repeat
exposures), and records where each image's bytes are.  :class:`RawImageStack` then reads
any block of rows of a stack of such images straight from those byte offsets (FITS
images are stored row-major and big-endian), without astropy, which is what makes a dask
task per block cheap.  Only uncompressed images without scaling (``BSCALE = 1``,
``BZERO = 0``) are supported, as in calstis output; ERR and DQ may be HST *constant
arrays* (``NAXIS = 0`` with ``NPIX1``, ``NPIX2`` and ``PIXVALUE``).  Raw (uncalibrated)
files are refused: they need calstis first.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stiscube.exceptions import InvalidDarkError
from stores.common.validate import card_value

__all__ = [
    "EXTENSION_KEYWORDS",
    "IMAGE_DTYPES",
    "PRIMARY_KEYWORDS",
    "FileLayout",
    "ImageLayout",
    "Imset",
    "RawImageStack",
    "is_remote",
    "read_imsets",
]

logger = logging.getLogger(__name__)

#: On-disk dtype (from BITPIX) required for each extension of a dark FLT file.
IMAGE_DTYPES: dict[str, str] = {"SCI": ">f4", "ERR": ">f4", "DQ": ">i2"}
_BITPIX = {"SCI": -32, "ERR": -32, "DQ": 16}
_ROOTNAME = re.compile(r"^[A-Za-z0-9]{9}$")
_FITS_SIGNATURE = b"SIMPLE  ="
#: calstis switches whose value ``PERFORM`` means the step has not been done (raw file)
_CALIBRATION_SWITCHES = ("DQICORR", "BLEVCORR", "BIASCORR")
#: Read-ahead of remote files while parsing headers (bytes): headers only, not the data.
_REMOTE_BLOCK = 1 << 16


@dataclass(frozen=True)
class ImageLayout:
    """Where one image extension's data lie in a file.

    ``constant`` is the value of an HST constant array (``NAXIS = 0``, ``PIXVALUE``),
    whose pixels are not stored (then ``offset`` is -1).
    """

    offset: int  # byte offset of the first pixel (-1 for a constant array)
    shape: tuple[int, int]  # (NAXIS2, NAXIS1) = (rows, columns)
    dtype: str  # numpy dtype string of the on-disk data, e.g. '>f4'
    constant: float | None = None


@dataclass(frozen=True)
class Imset:
    """One SCI/ERR/DQ group of a file (one exposure): its number, SCI keywords, layouts."""

    extver: int
    header: Mapping[str, Any]
    layouts: Mapping[str, ImageLayout]


@dataclass(frozen=True)
class FileLayout:
    """A validated file: its primary keywords and its imsets (in EXTVER order)."""

    name: str
    primary: Mapping[str, Any]
    imsets: tuple[Imset, ...]
    size: int
    stamp: Any = None  # modification stamp (mtime, ETag, ...) for dask tokens
    storage_options: Mapping[str, Any] = field(default_factory=dict)


#: Primary-header keywords read from a dark frame (where real STIS files keep them).
PRIMARY_KEYWORDS: tuple[str, ...] = (
    "INSTRUME",
    "DETECTOR",
    "TARGNAME",
    "ROOTNAME",
    "FILETYPE",
    "TEXPTIME",
    "TEXPSTRT",
    "TEXPEND",
    "ATODGAIN",
    "READNSE",
    "CCDGAIN",
    "CCDAMP",
    "BINAXIS1",
    "BINAXIS2",
    "SUBARRAY",
    "NRPTEXP",
    "CRSPLIT",
    "SIMULATE",
    "NEXTEND",
    *_CALIBRATION_SWITCHES,
)
#: Extension-header keywords read from each extension (SCI: exposure keywords).
EXTENSION_KEYWORDS: tuple[str, ...] = (
    "XTENSION",
    "EXTNAME",
    "EXTVER",
    "NAXIS",
    "NAXIS1",
    "NAXIS2",
    "NPIX1",
    "NPIX2",
    "PIXVALUE",
    "BITPIX",
    "BSCALE",
    "BZERO",
    "ATODGAIN",
    "EXPSTART",
    "EXPEND",
    "EXPTIME",
    "EXPNAME",
    "OCCDHTAV",
    "NCOMBINE",
)


def is_remote(name: str) -> bool:
    """Whether *name* is an fsspec URL other than ``file://`` (read through fsspec)."""
    return "://" in name and not name.startswith("file://")


def local_name(name: str) -> str:
    """A ``file://`` URL as a plain path; other names unchanged."""
    return name[len("file://") :] if name.startswith("file://") else name


def _remote_fs(name: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(name, **dict(storage_options))


def _pick(name: str, where: str, header: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The given keywords of a header that are present, as a plain dict.

    An unparsable card (e.g. ``TEXPTIME = NAN``) is an :class:`InvalidDarkError` naming
    the file, the header and the keyword.
    """
    from astropy.io.fits.verify import VerifyError

    out = {}
    for key in keys:
        if key not in header:
            continue
        try:
            out[key] = header[key]
        except (VerifyError, ValueError) as exc:
            msg = f"{name}: {where} keyword {key} has an unreadable value: {exc}"
            raise InvalidDarkError(msg) from exc
    return out


def _describe_hdus(names: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{n},{v}" if v != 1 else n for n, v in names) or "none"


def header_int(name: str, where: str, header: Mapping[str, Any], key: str, default: Any) -> int:
    """An integer keyword (default if absent), or an error naming file, header and key."""
    value = header.get(key, default)
    try:
        return int(card_value(value, key, int))
    except (TypeError, ValueError):
        msg = f"{name}: {where} {key} = {value!r} is not an integer"
        raise InvalidDarkError(msg) from None


def _open_checks(name: str, storage_options: Mapping[str, Any]) -> tuple[int, bytes, Any]:
    """Size, first bytes and modification stamp of a file or URL; errors name it."""
    if is_remote(name):
        try:
            fs, path = _remote_fs(name, storage_options)
            if not fs.exists(path):
                msg = f"{name}: file does not exist"
                raise InvalidDarkError(msg)
            if fs.isdir(path):
                msg = f"{name}: is a directory, not a FITS file"
                raise InvalidDarkError(msg)
            info = fs.info(path)
            size = int(info.get("size") or 0)
            head = fs.cat_file(path, start=0, end=len(_FITS_SIGNATURE)) if size else b""
        except InvalidDarkError:
            raise
        except (OSError, ValueError, ImportError) as exc:
            msg = f"{name}: cannot read it: {exc}"
            raise InvalidDarkError(msg) from exc
        stamp = info.get("ETag") or info.get("mtime") or info.get("created") or size
        return size, head, str(stamp)
    path = local_name(name)
    if not os.path.exists(path):
        msg = f"{name}: file does not exist"
        raise InvalidDarkError(msg)
    if os.path.isdir(path):
        msg = f"{name}: is a directory, not a FITS file"
        raise InvalidDarkError(msg)
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(len(_FITS_SIGNATURE))
    return size, head, os.stat(path).st_mtime_ns


def read_imsets(
    path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
) -> FileLayout:
    """Open one file (path or fsspec URL), check its FITS structure; return its layout.

    The primary keywords of :data:`PRIMARY_KEYWORDS` and, per imset, the SCI header's
    :data:`EXTENSION_KEYWORDS` (dicts of the keywords present) and the layout of its SCI,
    ERR and DQ images.  Only headers are read (remote files: a few 64 KiB blocks).

    Parameters
    ----------
    path : path or str
        A local path, a ``file://`` URL or any fsspec URL (``memory://``, ``s3://``...).
    storage_options : dict, optional
        fsspec options of a URL (credentials, ``endpoint_url``...).

    Raises
    ------
    InvalidDarkError
        Missing file, not FITS, unreadable or truncated FITS, a raw (uncalibrated) file,
        a missing or duplicated SCI/ERR/DQ extension of an imset, an extension that is
        not a 2-D image (or constant array) of the expected BITPIX without scaling,
        images of different shapes, or an unreadable/non-integer EXTVER.
    """
    from astropy.io import fits

    name = os.fspath(path)
    options = dict(storage_options or {})
    size, head, stamp = _open_checks(name, options)
    if head != _FITS_SIGNATURE:
        hint = " (it is gzip-compressed: decompress it first)" if head[:2] == b"\x1f\x8b" else ""
        what = "an empty file" if size == 0 else "not a FITS file"
        msg = f"{name}: {what}{hint}"
        raise InvalidDarkError(msg)
    if is_remote(name):
        fsspec_kwargs = dict(options)
        protocol = name.split("://", 1)[0]
        if protocol in ("s3", "s3a", "gs", "gcs", "az", "abfs") and not any(
            k in fsspec_kwargs for k in ("default_block_size", "block_size")
        ):
            fsspec_kwargs["default_block_size"] = _REMOTE_BLOCK
        opener: dict[str, Any] = {"use_fsspec": True, "fsspec_kwargs": fsspec_kwargs}
        target: Any = name
    else:
        opener = {}
        target = local_name(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(target, memmap=False, lazy_load_hdus=True, **opener) as hdul:
                # Only the keywords used are copied out (copying whole headers makes
                # astropy parse and verify every card, most of the cost of opening).
                primary = _pick(name, "primary header", hdul[0].header, PRIMARY_KEYWORDS)
                extensions = []
                index = 1
                while True:
                    try:
                        hdu = hdul[index]
                    except IndexError:
                        break
                    where = f"extension {index}"
                    header = _pick(name, where, hdu.header, EXTENSION_KEYWORDS)
                    # the HDU's own fileinfo: HDUList.fileinfo would also check every
                    # header for resizing, re-serialising all cards (40% of the check)
                    extensions.append((index, header, int(hdu.fileinfo()["datLoc"])))
                    index += 1
        except InvalidDarkError:
            raise
        except (OSError, ValueError, IndexError, KeyError, TypeError) as exc:
            msg = f"{name}: not a readable FITS file (truncated or corrupt?): {exc}"
            raise InvalidDarkError(msg) from exc
    for warning in caught:
        logger.warning("%s: %s", name, warning.message)
    _refuse_raw(name, primary, extensions)

    found: dict[tuple[str, int], tuple[Any, int]] = {}
    names: list[tuple[str, int]] = []
    for index, header, offset in extensions:
        extname = str(header.get("EXTNAME", "")).strip().upper()
        if extname not in ("SCI", "ERR", "DQ"):
            names.append((extname, 1))
            continue  # other extensions (WCSCORR, HDRLET, ...) are not ours
        extver = header_int(name, f"extension {index} ({extname})", header, "EXTVER", 1)
        names.append((extname, extver))
        if (extname, extver) in found:
            msg = (
                f"{name}: extension {extname},{extver} appears twice; each imset needs one "
                "SCI, ERR and DQ"
            )
            raise InvalidDarkError(msg)
        found[(extname, extver)] = (header, offset)
    versions = sorted({v for (n, v) in found})
    if not versions:
        versions = [1]
    imsets = []
    for extver in versions:
        layouts: dict[str, ImageLayout] = {}
        for ext in ("SCI", "ERR", "DQ"):
            if (ext, extver) not in found:
                nextend = primary.get("NEXTEND")
                hint = ""
                if isinstance(nextend, int) and nextend > len(extensions):
                    hint = f" (NEXTEND = {nextend} but only {len(extensions)} found: truncated?)"
                which = "" if extver == 1 else f" of imset {extver}"
                msg = (
                    f"{name}: missing the {ext} extension{which}; a dark FLT file needs SCI, "
                    f"ERR and DQ (found: {_describe_hdus(names)}){hint}"
                )
                raise InvalidDarkError(msg)
            header, offset = found[(ext, extver)]
            layouts[ext] = _image_layout(name, ext, extver, header, offset, size)
        shapes = {ext: lay.shape for ext, lay in layouts.items()}
        if len(set(shapes.values())) != 1:
            msg = f"{name}: SCI, ERR and DQ shapes differ in imset {extver}: {shapes}"
            raise InvalidDarkError(msg)
        imsets.append(Imset(extver=extver, header=found[("SCI", extver)][0], layouts=layouts))
    return FileLayout(
        name=name,
        primary=primary,
        imsets=tuple(imsets),
        size=size,
        stamp=stamp,
        storage_options=options,
    )


def _refuse_raw(name: str, primary: Mapping[str, Any], extensions: Sequence) -> None:
    """A raw (uncalibrated) file: integer SCI, ``_raw`` name, or calstis steps to do."""
    reasons = []
    base = name.rsplit("/", 1)[-1].lower()
    if re.search(r"_raw\.fits?(\.gz)?$", base):
        reasons.append("its name ends in _raw")
    for _, header, _ in extensions:
        if str(header.get("EXTNAME", "")).strip().upper() == "SCI":
            bitpix = header.get("BITPIX")
            if isinstance(bitpix, int) and bitpix > 0:
                zero = f" with BZERO = {header['BZERO']}" if "BZERO" in header else ""
                reasons.append(f"its SCI image holds integers (BITPIX = {bitpix}{zero})")
            break
    pending = [
        k for k in _CALIBRATION_SWITCHES if str(primary.get(k, "")).strip().upper() == "PERFORM"
    ]
    if pending:
        done = ", ".join(f"{k}=PERFORM" for k in pending)
        reasons.append(f"calibration switches not done: {done}")
    if reasons:
        msg = (
            f"{name}: a raw (uncalibrated) STIS file ({'; '.join(reasons)}); it needs calstis "
            "first: calibrate it and give the _flt (or _crj/_sfl) file"
        )
        raise InvalidDarkError(msg)


def _image_layout(
    name: str, ext: str, extver: int, header: Any, offset: int, size: int
) -> ImageLayout:
    label = ext if extver == 1 else f"{ext},{extver}"
    if str(header.get("XTENSION", "")).strip() != "IMAGE":
        msg = f"{name}: the {label} extension is a {header.get('XTENSION')!r}, not an IMAGE"
        raise InvalidDarkError(msg)
    if header.get("NAXIS") == 0 and ext in ("ERR", "DQ") and "PIXVALUE" in header:
        where = f"the {label} constant array's"
        npix1 = header_int(name, where, header, "NPIX1", None)
        npix2 = header_int(name, where, header, "NPIX2", None)
        value = header["PIXVALUE"]
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            msg = f"{name}: {where} PIXVALUE = {value!r} is not a number"
            raise InvalidDarkError(msg)
        if npix1 < 1 or npix2 < 1:
            msg = f"{name}: {where} NPIX1 x NPIX2 = {npix1} x {npix2} is empty"
            raise InvalidDarkError(msg)
        if ext == "DQ" and float(value) != int(value):
            msg = f"{name}: {where} PIXVALUE = {value!r} is not an integer DQ value"
            raise InvalidDarkError(msg)
        return ImageLayout(offset=-1, shape=(npix2, npix1), dtype=IMAGE_DTYPES[ext],
                           constant=float(value))
    if header.get("NAXIS") != 2:
        msg = f"{name}: the {label} image has NAXIS = {header.get('NAXIS')}, expected a 2-D image"
        raise InvalidDarkError(msg)
    if header.get("BITPIX") != _BITPIX[ext]:
        msg = (
            f"{name}: the {label} image has BITPIX = {header.get('BITPIX')}, expected "
            f"{_BITPIX[ext]} ({np.dtype(IMAGE_DTYPES[ext]).name})"
        )
        raise InvalidDarkError(msg)
    for key, neutral in (("BSCALE", 1), ("BZERO", 0)):
        value = header.get(key, neutral)
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            msg = f"{name}: the {label} image has {key} = {value!r}, not a number"
            raise InvalidDarkError(msg)
    if float(header.get("BSCALE", 1)) != 1 or float(header.get("BZERO", 0)) != 0:
        msg = (
            f"{name}: the {label} image is scaled (BSCALE = {header.get('BSCALE', 1)}, "
            f"BZERO = {header.get('BZERO', 0)}); only unscaled images are supported"
        )
        raise InvalidDarkError(msg)
    where = f"the {label} image's"
    shape = (header_int(name, where, header, "NAXIS2", None),
             header_int(name, where, header, "NAXIS1", None))
    end = offset + shape[0] * shape[1] * np.dtype(IMAGE_DTYPES[ext]).itemsize
    if end > size:
        msg = (
            f"{name}: truncated: the {label} data should end at byte {end} but the file has "
            f"only {size} bytes"
        )
        raise InvalidDarkError(msg)
    return ImageLayout(offset=offset, shape=shape, dtype=IMAGE_DTYPES[ext])


def check_rootname(name: str, value: Any) -> str:
    """The ROOTNAME as a lower-case 9-character string, or :class:`InvalidDarkError`."""
    text = str(value).strip() if value is not None else ""
    if not _ROOTNAME.match(text):
        msg = f"{name}: ROOTNAME = {value!r} is not a 9-character HST rootname"
        raise InvalidDarkError(msg)
    return text.lower()


class RawImageStack:
    """Array-like view of one image extension across many files (or imsets).

    Dimensions are ``(frame, row, col)``.  Indexing reads only the requested rows of the
    requested images (one contiguous read per image: a seek and a read for a local file,
    one ranged request for an fsspec URL), converts them from big-endian and returns a
    native numpy array (the conversion and the copy into place are one pass).  An image
    whose ``constants`` entry is not None is an HST constant array: it is filled with that
    value and nothing is read.  Suitable for :func:`dask.array.from_array` and picklable
    (it holds only names, offsets and storage options), so it works with the threaded
    scheduler and with distributed worker processes.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        offsets: Sequence[int],
        shape: tuple[int, int],
        disk_dtype: str,
        *,
        constants: Sequence[float | None] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        stamps: Sequence[Any] | None = None,
    ) -> None:
        if len(paths) != len(offsets):
            msg = "paths and offsets must have the same length"
            raise ValueError(msg)
        self.paths = tuple(os.fspath(p) for p in paths)
        self.offsets = tuple(int(o) for o in offsets)
        if constants is None:
            constants = [None] * len(self.paths)
        if len(constants) != len(self.paths):
            msg = "paths and constants must have the same length"
            raise ValueError(msg)
        self.constants = tuple(None if c is None else float(c) for c in constants)
        self.storage_options = dict(storage_options or {})
        self.stamps = None if stamps is None else tuple(stamps)
        self.disk_dtype = np.dtype(disk_dtype)
        self.dtype = self.disk_dtype.newbyteorder("=")
        self._image = (int(shape[0]), int(shape[1]))
        n = len(self.paths)
        self.shape = (n, *self._image)
        self.ndim = 3

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        if self.stamps is not None:
            stamps = self.stamps
        else:
            stamps = tuple(
                None if is_remote(p) else os.stat(local_name(p)).st_mtime_ns for p in self.paths
            )
        return (
            type(self).__name__,
            self.paths,
            self.offsets,
            self.constants,
            self.shape,
            self.disk_dtype.str,
            stamps,
        )

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key) or len(key) > 3:
            key = _expand_ellipsis(key, 3)
        key = tuple(key) + (slice(None),) * (3 - len(key))
        squeeze = tuple(axis for axis, k in enumerate(key) if isinstance(k, int | np.integer))
        ranges = [_as_range(k, n) for k, n in zip(key, self.shape, strict=True)]
        frames, rows, cols = ranges
        out = self._read(frames, rows, cols)
        return out.squeeze(axis=squeeze) if squeeze else out

    def _read_bytes(self, f: int, start: int, raw: np.ndarray) -> int:
        """Read ``raw.size`` bytes of image *f* from byte *start*; the count read."""
        name = self.paths[f]
        if is_remote(name):
            fs, path = _remote_fs(name, self.storage_options)
            data = fs.cat_file(path, start=start, end=start + raw.size)
            got = min(len(data), raw.size)
            raw[:got] = np.frombuffer(data, dtype=np.uint8, count=got)
            return got
        with open(local_name(name), "rb") as handle:
            handle.seek(start)
            return handle.readinto(raw)

    def _read(self, frames: range, rows: range, cols: range) -> np.ndarray:
        ncols = self._image[1]
        out = np.empty((len(frames), len(rows), len(cols)), dtype=self.dtype)
        if out.size == 0:
            return out
        r0 = min(rows[0], rows[-1])
        r1 = max(rows[0], rows[-1]) + 1
        row_bytes = ncols * self.disk_dtype.itemsize
        buffer = np.empty((r1 - r0, ncols), dtype=self.disk_dtype)
        raw = buffer.view(np.uint8).reshape(-1)
        pick_rows = slice(None) if rows.step == 1 else np.asarray(rows) - r0
        pick_cols = slice(None) if cols == range(ncols) else np.asarray(cols)
        for j, f in enumerate(frames):
            if self.constants[f] is not None:
                image = self.constants[f]
            else:
                start = self.offsets[f] + r0 * row_bytes
                got = self._read_bytes(f, start, raw)
                if got != raw.size:
                    msg = (
                        f"{self.paths[f]}: truncated: expected {raw.size} bytes of rows "
                        f"{r0}..{r1 - 1} at byte {start}, read {got} "
                        "(file changed since it was validated?)"
                    )
                    raise InvalidDarkError(msg)
                image = buffer[pick_rows][:, pick_cols]
            out[j] = image  # one pass: byte order conversion and the copy into place
        return out


def _expand_ellipsis(key: tuple[Any, ...], ndim: int) -> tuple[Any, ...]:
    if sum(k is Ellipsis for k in key) > 1:
        msg = "an index can only have a single ellipsis"
        raise IndexError(msg)
    if Ellipsis not in key:
        msg = f"too many indices: {len(key)} for {ndim} dimensions"
        raise IndexError(msg)
    i = key.index(Ellipsis)
    return key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]


def _as_range(key: Any, n: int) -> range:
    if isinstance(key, int | np.integer):
        index = int(key)
        if not -n <= index < n:
            msg = f"index {index} is out of bounds for size {n}"
            raise IndexError(msg)
        index %= n
        return range(index, index + 1)
    if isinstance(key, slice):
        return range(*key.indices(n))
    msg = f"RawImageStack supports integer and slice indices only, got {key!r}"
    raise TypeError(msg)
