"""Low-level FITS access for dark frames: header validation and fast block reads.

:func:`read_layout` opens a file once with :mod:`astropy.io.fits`, validates the primary
header and the SCI/ERR/DQ image extensions, and records where each image's bytes are.
:class:`RawImageStack` then reads any block of rows of a stack of such images straight
from those byte offsets (FITS images are stored row-major and big-endian), without
astropy, which is what makes a dask task per block cheap.  Only uncompressed images
without scaling (``BSCALE = 1``, ``BZERO = 0``) are supported, as in calstis output.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stiscube._exceptions import InvalidDarkError

__all__ = [
    "EXTENSION_KEYWORDS",
    "IMAGE_DTYPES",
    "PRIMARY_KEYWORDS",
    "ImageLayout",
    "RawImageStack",
    "read_layout",
]

logger = logging.getLogger(__name__)

#: On-disk dtype (from BITPIX) required for each extension of a dark FLT file.
IMAGE_DTYPES: dict[str, str] = {"SCI": ">f4", "ERR": ">f4", "DQ": ">i2"}
_BITPIX = {"SCI": -32, "ERR": -32, "DQ": 16}
_ROOTNAME = re.compile(r"^[A-Za-z0-9]{9}$")
_FITS_SIGNATURE = b"SIMPLE  ="


@dataclass(frozen=True)
class ImageLayout:
    """Where one image extension's data lie in a file."""

    offset: int  # byte offset of the first pixel
    shape: tuple[int, int]  # (NAXIS2, NAXIS1) = (rows, columns)
    dtype: str  # numpy dtype string of the on-disk data, e.g. '>f4'


#: Primary-header keywords read from a dark frame.
PRIMARY_KEYWORDS: tuple[str, ...] = (
    "INSTRUME",
    "DETECTOR",
    "TARGNAME",
    "ROOTNAME",
    "TEXPTIME",
    "TEXPSTRT",
    "TEXPEND",
    "ATODGAIN",
    "CCDGAIN",
    "CCDAMP",
    "BINAXIS1",
    "BINAXIS2",
    "SUBARRAY",
    "SIMULATE",
    "NEXTEND",
)
#: Extension-header keywords read from a dark frame.
EXTENSION_KEYWORDS: tuple[str, ...] = (
    "XTENSION",
    "EXTNAME",
    "EXTVER",
    "NAXIS",
    "NAXIS1",
    "NAXIS2",
    "BITPIX",
    "BSCALE",
    "BZERO",
    "ATODGAIN",
)


def _pick(header: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The given keywords of a header that are present, as a plain dict."""
    return {key: header[key] for key in keys if key in header}


def _describe_hdus(names: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{n},{v}" if v != 1 else n for n, v in names) or "none"


def read_layout(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, ImageLayout]]:
    """Open one file, check its FITS structure; return the keywords of
    :data:`PRIMARY_KEYWORDS` and the SCI header's :data:`EXTENSION_KEYWORDS` (dicts of the
    keywords present), and the layout of the SCI, ERR and DQ images.

    Raises
    ------
    InvalidDarkError
        Missing file, not FITS, unreadable or truncated FITS, missing or duplicated
        SCI/ERR/DQ extension, an extension that is not a 2-D image of the expected BITPIX
        without scaling, or extensions of different shapes.
    """
    from astropy.io import fits

    name = os.fspath(path)
    if not os.path.exists(name):
        msg = f"{name}: file does not exist"
        raise InvalidDarkError(msg)
    if os.path.isdir(name):
        msg = f"{name}: is a directory, not a FITS file"
        raise InvalidDarkError(msg)
    size = os.path.getsize(name)
    with open(name, "rb") as handle:
        head = handle.read(len(_FITS_SIGNATURE))
    if head != _FITS_SIGNATURE:
        hint = " (it is gzip-compressed: decompress it first)" if head[:2] == b"\x1f\x8b" else ""
        what = "an empty file" if size == 0 else "not a FITS file"
        msg = f"{name}: {what}{hint}"
        raise InvalidDarkError(msg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(name, memmap=False, lazy_load_hdus=False) as hdul:
                # Only the keywords used are copied out (copying whole headers makes
                # astropy parse and verify every card, most of the cost of opening).
                primary = _pick(hdul[0].header, PRIMARY_KEYWORDS)
                extensions = []
                for index in range(1, len(hdul)):
                    header = _pick(hdul[index].header, EXTENSION_KEYWORDS)
                    info = hdul.fileinfo(index)
                    extensions.append((header, int(info["datLoc"])))
        except (OSError, ValueError, IndexError, KeyError) as exc:
            msg = f"{name}: not a readable FITS file (truncated or corrupt?): {exc}"
            raise InvalidDarkError(msg) from exc
    for warning in caught:
        logger.warning("%s: %s", name, warning.message)

    found: dict[tuple[str, int], tuple[Any, int]] = {}
    names: list[tuple[str, int]] = []
    for header, offset in extensions:
        extname = str(header.get("EXTNAME", "")).strip().upper()
        extver = int(header.get("EXTVER", 1))
        names.append((extname, extver))
        found.setdefault((extname, extver), (header, offset))
    layouts: dict[str, ImageLayout] = {}
    for ext in ("SCI", "ERR", "DQ"):
        if (ext, 1) not in found:
            nextend = primary.get("NEXTEND")
            hint = ""
            if nextend is not None and int(nextend) > len(extensions):
                hint = f" (NEXTEND = {nextend} but only {len(extensions)} found: truncated?)"
            msg = (
                f"{name}: missing the {ext} extension; a dark FLT file needs SCI, ERR and DQ "
                f"(found: {_describe_hdus(names)}){hint}"
            )
            raise InvalidDarkError(msg)
        if (ext, 2) in found:
            msg = f"{name}: holds more than one {ext} imset; a dark FLT file has exactly one"
            raise InvalidDarkError(msg)
        header, offset = found[(ext, 1)]
        layouts[ext] = _image_layout(name, ext, header, offset, size)
    shapes = {ext: lay.shape for ext, lay in layouts.items()}
    if len(set(shapes.values())) != 1:
        msg = f"{name}: SCI, ERR and DQ shapes differ: {shapes}"
        raise InvalidDarkError(msg)
    return primary, found[("SCI", 1)][0], layouts


def _image_layout(name: str, ext: str, header: Any, offset: int, size: int) -> ImageLayout:
    if str(header.get("XTENSION", "")).strip() != "IMAGE":
        msg = f"{name}: the {ext} extension is a {header.get('XTENSION')!r}, not an IMAGE"
        raise InvalidDarkError(msg)
    if header.get("NAXIS") != 2:
        msg = f"{name}: the {ext} image has NAXIS = {header.get('NAXIS')}, expected a 2-D image"
        raise InvalidDarkError(msg)
    if header.get("BITPIX") != _BITPIX[ext]:
        msg = (
            f"{name}: the {ext} image has BITPIX = {header.get('BITPIX')}, expected "
            f"{_BITPIX[ext]} ({np.dtype(IMAGE_DTYPES[ext]).name})"
        )
        raise InvalidDarkError(msg)
    if float(header.get("BSCALE", 1)) != 1 or float(header.get("BZERO", 0)) != 0:
        msg = (
            f"{name}: the {ext} image is scaled (BSCALE = {header.get('BSCALE', 1)}, "
            f"BZERO = {header.get('BZERO', 0)}); only unscaled images are supported"
        )
        raise InvalidDarkError(msg)
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    end = offset + shape[0] * shape[1] * np.dtype(IMAGE_DTYPES[ext]).itemsize
    if end > size:
        msg = (
            f"{name}: truncated: the {ext} data should end at byte {end} but the file has "
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
    """Array-like view of one image extension across many files.

    Dimensions are ``(frame, row, col)``, or ``(row, col, frame)`` with
    ``frames_last=True`` (the layout per-pixel statistics want: each pixel's samples
    contiguous).  Indexing reads only the requested rows of the requested files (one
    contiguous read per file), converts them from big-endian and returns a native numpy
    array; for ``frames_last`` the conversion and the transposition are one pass per
    frame.  Suitable for :func:`dask.array.from_array` and picklable (it holds only paths
    and offsets), so it works with the threaded scheduler and distributed workers.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        offsets: Sequence[int],
        shape: tuple[int, int],
        disk_dtype: str,
        *,
        frames_last: bool = False,
    ) -> None:
        if len(paths) != len(offsets):
            msg = "paths and offsets must have the same length"
            raise ValueError(msg)
        self.paths = tuple(os.fspath(p) for p in paths)
        self.offsets = tuple(int(o) for o in offsets)
        self.disk_dtype = np.dtype(disk_dtype)
        self.dtype = self.disk_dtype.newbyteorder("=")
        self.frames_last = bool(frames_last)
        self._image = (int(shape[0]), int(shape[1]))
        n = len(self.paths)
        self.shape = (*self._image, n) if self.frames_last else (n, *self._image)
        self.ndim = 3

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        stamps = tuple(os.stat(p).st_mtime_ns for p in self.paths)
        return (
            type(self).__name__,
            self.paths,
            self.offsets,
            self.shape,
            self.frames_last,
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
        if self.frames_last:
            rows, cols, frames = ranges
        else:
            frames, rows, cols = ranges
        out = self._read(frames, rows, cols)
        return out.squeeze(axis=squeeze) if squeeze else out

    def _read(self, frames: range, rows: range, cols: range) -> np.ndarray:
        ncols = self._image[1]
        shape = (len(rows), len(cols), len(frames))
        if not self.frames_last:
            shape = (shape[2], shape[0], shape[1])
        out = np.empty(shape, dtype=self.dtype)
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
            with open(self.paths[f], "rb") as handle:
                handle.seek(self.offsets[f] + r0 * row_bytes)
                got = handle.readinto(raw)
            if got != raw.size:
                msg = (
                    f"{self.paths[f]}: truncated: expected {raw.size} bytes of rows "
                    f"{r0}..{r1 - 1} at byte {self.offsets[f] + r0 * row_bytes}, read {got} "
                    "(file changed since it was validated?)"
                )
                raise InvalidDarkError(msg)
            image = buffer[pick_rows][:, pick_cols]
            # One pass: byte order conversion and the copy into place.
            if self.frames_last:
                out[:, :, j] = image
            else:
                out[j] = image
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
