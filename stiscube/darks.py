"""STIS CCD dark frames: open, validate, and stack lazily with dask.

A *dark frame* is a calibrated STIS CCD dark (FLT) file: a primary header with
``INSTRUME = 'STIS'``, ``DETECTOR = 'CCD'``, ``TARGNAME = 'DARK'``, ``ROOTNAME``,
``TEXPSTRT``/``TEXPEND`` (MJD), ``TEXPTIME`` (s), ``ATODGAIN`` (e-/count, in the primary
or the SCI header), ``CCDGAIN``, ``CCDAMP``, ``BINAXIS1/2`` and ``SUBARRAY``, and one
imset of ``SCI`` (float32, counts), ``ERR`` (float32, counts) and ``DQ`` (int16) images.

:func:`read_dark` validates one file, :func:`check_darks` validates a set (each file,
then the set: same binning, full frame or subarray, same shape, unique rootnames, and
optionally every exposure starting inside an anneal period), and :func:`open_darks`
returns the stack as a lazy :class:`xarray.Dataset`.  Every check reads headers only
and happens before any pixel is read or computed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from stiscube._dates import describe_mjd, mjd_to_datetime64, to_mjd
from stiscube._exceptions import IncompatibleDarksError, InvalidDarkError
from stiscube._fitsio import ImageLayout, RawImageStack, check_rootname, read_layout

__all__ = ["DarkFrame", "check_darks", "open_darks", "read_dark"]

logger = logging.getLogger(__name__)

_EXPECTED = {"INSTRUME": "STIS", "DETECTOR": "CCD", "TARGNAME": "DARK"}
_DIMS = ("frame", "row", "col")


@dataclass(frozen=True)
class DarkFrame:
    """Header facts of one validated dark frame.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    rootname : str
        ``ROOTNAME`` (lower case).
    start_mjd, end_mjd : float
        ``TEXPSTRT`` and ``TEXPEND`` (MJD, UTC); ``end_mjd`` falls back to
        ``start_mjd + exptime / 86400`` when ``TEXPEND`` is absent.
    exptime : float
        ``TEXPTIME`` in seconds (> 0).
    gain : float
        ``ATODGAIN`` in e-/count (> 0).
    ccdgain : int or None
        ``CCDGAIN`` (commanded gain).
    ccdamp : str
        ``CCDAMP``.
    binning : tuple of int
        ``(BINAXIS1, BINAXIS2)``.
    subarray : bool
        ``SUBARRAY``.
    shape : tuple of int
        Image shape (rows, columns).
    simulated : bool
        ``SIMULATE = T`` (files of :mod:`stiscube.simulate`).
    """

    path: Path
    rootname: str
    start_mjd: float
    end_mjd: float
    exptime: float
    gain: float
    ccdgain: int | None
    ccdamp: str
    binning: tuple[int, int]
    subarray: bool
    shape: tuple[int, int]
    simulated: bool = False
    layout: Mapping[str, ImageLayout] = field(default_factory=dict, repr=False)

    @property
    def start(self) -> np.datetime64:
        """Exposure start, UTC ``datetime64[us]``."""
        return mjd_to_datetime64(self.start_mjd)


def _number(name: str, header: Any, key: str, *, required: bool = True) -> float | None:
    if key not in header:
        if required:
            msg = f"{name}: the primary header has no {key} keyword"
            raise InvalidDarkError(msg)
        return None
    value = header[key]
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        msg = f"{name}: {key} = {value!r} is not a number"
        raise InvalidDarkError(msg)
    if not np.isfinite(value):
        msg = f"{name}: {key} = {value!r} is not finite"
        raise InvalidDarkError(msg)
    return float(value)


def read_dark(path: str | os.PathLike[str]) -> DarkFrame:
    """Open and validate one STIS CCD dark FLT file (headers only).

    Raises
    ------
    InvalidDarkError
        If the file is missing, not FITS, truncated, not a STIS CCD dark
        (``INSTRUME``, ``DETECTOR``, ``TARGNAME``), lacks a SCI/ERR/DQ extension, has an
        unsupported image layout, a bad ``ROOTNAME``, a missing or non-positive
        ``TEXPTIME`` or ``ATODGAIN``, or a missing ``TEXPSTRT``.
    """
    name = os.fspath(path)
    primary, sci_header, layouts = read_layout(name)
    for key, expected in _EXPECTED.items():
        value = str(primary.get(key, "")).strip().upper()
        if value != expected:
            found = repr(primary[key]) if key in primary else "missing"
            msg = f"{name}: not a STIS CCD dark: {key} = {found} (expected {expected!r})"
            raise InvalidDarkError(msg)
    rootname = check_rootname(name, primary.get("ROOTNAME"))
    exptime = _number(name, primary, "TEXPTIME")
    if exptime <= 0:
        msg = f"{name}: exposure time TEXPTIME = {exptime:g} s is not positive"
        raise InvalidDarkError(msg)
    start = _number(name, primary, "TEXPSTRT")
    end = _number(name, primary, "TEXPEND", required=False)
    if end is None:
        end = start + exptime / 86400.0
    elif end < start:
        msg = f"{name}: TEXPEND = {end} is before TEXPSTRT = {start}"
        raise InvalidDarkError(msg)
    if "ATODGAIN" in primary:
        gain = _number(name, primary, "ATODGAIN")
    elif "ATODGAIN" in sci_header:
        gain = _number(name, sci_header, "ATODGAIN")
    else:
        msg = f"{name}: no ATODGAIN keyword (primary or SCI header): the gain is unknown"
        raise InvalidDarkError(msg)
    if gain <= 0:
        msg = f"{name}: ATODGAIN = {gain:g} e-/count is not positive"
        raise InvalidDarkError(msg)
    ccdgain = primary.get("CCDGAIN")
    binning = (int(primary.get("BINAXIS1", 1)), int(primary.get("BINAXIS2", 1)))
    return DarkFrame(
        path=Path(name),
        rootname=rootname,
        start_mjd=start,
        end_mjd=end,
        exptime=exptime,
        gain=gain,
        ccdgain=None if ccdgain is None else int(ccdgain),
        ccdamp=str(primary.get("CCDAMP", "")).strip(),
        binning=binning,
        subarray=bool(primary.get("SUBARRAY", False)),
        shape=layouts["SCI"].shape,
        simulated=bool(primary.get("SIMULATE", False)),
        layout=layouts,
    )


def _as_frames(files: Iterable[str | os.PathLike[str] | DarkFrame]) -> list[DarkFrame]:
    if isinstance(files, str | os.PathLike):
        files = [files]
    frames = [f if isinstance(f, DarkFrame) else read_dark(f) for f in files]
    if not frames:
        msg = "files must name at least one dark frame, got none"
        raise ValueError(msg)
    return frames


def check_darks(
    files: Iterable[str | os.PathLike[str] | DarkFrame],
    *,
    start: Any = None,
    end: Any = None,
) -> list[DarkFrame]:
    """Validate a set of dark frames; return them sorted by exposure start.

    Parameters
    ----------
    files : iterable of path or DarkFrame
        The frames (paths are validated with :func:`read_dark`).
    start, end : date, optional
        The anneal period the frames are assigned to (any form of
        :func:`stiscube._dates.to_mjd`); every exposure must start in
        ``start <= TEXPSTRT < end``.

    Returns
    -------
    list of DarkFrame
        In order of ``start_mjd`` (ties kept in input order).

    Raises
    ------
    InvalidDarkError
        For an invalid file (see :func:`read_dark`) or a frame dated outside
        ``[start, end)``.
    IncompatibleDarksError
        For binned and unbinned frames mixed, subarray and full frames mixed, shapes that
        differ, or two files with the same rootname.
    ValueError
        For no files, or ``end <= start``.
    """
    frames = _as_frames(files)
    lo = None if start is None else float(to_mjd(start))
    hi = None if end is None else float(to_mjd(end))
    if lo is not None and hi is not None and hi <= lo:
        msg = f"end ({describe_mjd(hi)}) must be after start ({describe_mjd(lo)})"
        raise ValueError(msg)
    first = frames[0]
    seen: dict[str, DarkFrame] = {}
    for frame in frames:
        if frame.binning != first.binning:
            msg = (
                f"{frame.path}: binned {frame.binning[0]}x{frame.binning[1]} frame mixed with "
                f"{first.binning[0]}x{first.binning[1]} frames (e.g. {first.path})"
            )
            raise IncompatibleDarksError(msg)
        if frame.subarray != first.subarray:
            kinds = ("subarray", "full") if frame.subarray else ("full", "subarray")
            msg = f"{frame.path}: {kinds[0]} frame mixed with {kinds[1]} frames (e.g. {first.path})"
            raise IncompatibleDarksError(msg)
        if frame.shape != first.shape:
            msg = (
                f"{frame.path}: shape {frame.shape} differs from the shape {first.shape} "
                f"of {first.path}"
            )
            raise IncompatibleDarksError(msg)
        if frame.rootname in seen:
            msg = (
                f"{frame.path}: duplicate rootname {frame.rootname!r}, also the rootname of "
                f"{seen[frame.rootname].path}"
            )
            raise IncompatibleDarksError(msg)
        seen[frame.rootname] = frame
        if (lo is not None and frame.start_mjd < lo) or (hi is not None and frame.start_mjd >= hi):
            period = (
                f"[{'-inf' if lo is None else describe_mjd(lo)}, "
                f"{'+inf' if hi is None else describe_mjd(hi)})"
            )
            msg = (
                f"{frame.path}: exposure starts {describe_mjd(frame.start_mjd)}, outside the "
                f"anneal period it is assigned to {period}"
            )
            raise InvalidDarkError(msg)
    order = np.argsort([f.start_mjd for f in frames], kind="stable")
    return [frames[i] for i in order]


def _chunk_sizes(chunks: Mapping[str, int] | None, shape: tuple[int, int, int]) -> tuple[int, ...]:
    chunks = dict(chunks or {})
    unknown = sorted(set(chunks) - set(_DIMS))
    if unknown:
        msg = f"chunks has unknown dimension(s) {unknown}; use {list(_DIMS)}"
        raise ValueError(msg)
    sizes = []
    for dim, n, default in zip(_DIMS, shape, (1, -1, -1), strict=True):
        size = chunks.get(dim, default)
        if size is None:
            size = default
        if isinstance(size, bool) or not isinstance(size, int | np.integer):
            msg = f"chunks[{dim!r}] must be an integer (-1 = whole dimension), got {size!r}"
            raise TypeError(msg)
        if size == -1:
            size = n
        if size < 1:
            msg = f"chunks[{dim!r}] must be >= 1 or -1, got {size!r}"
            raise ValueError(msg)
        sizes.append(min(int(size), n))
    return tuple(sizes)


def open_darks(
    files: Iterable[str | os.PathLike[str] | DarkFrame],
    *,
    start: Any = None,
    end: Any = None,
    chunks: Mapping[str, int] | None = None,
    frames_last: bool = False,
) -> xr.Dataset:
    """Validate dark frames and stack them lazily (dask) as an :class:`xarray.Dataset`.

    Parameters
    ----------
    files : iterable of path or DarkFrame
        The frames; validated by :func:`check_darks` before anything is read.
    start, end : date, optional
        The anneal period the frames belong to (see :func:`check_darks`).
    chunks : dict, optional
        Dask chunk sizes along ``frame``, ``row``, ``col`` (``-1`` = whole dimension).
        Default ``{"frame": 1}``: one frame per chunk, each read by one task.  Reads are
        by rows, so ``{"frame": -1, "row": 64}`` gives one task per band of 64 rows of
        every frame, which is what per-pixel statistics want.
    frames_last : bool
        Dimension order ``(row, col, frame)`` instead of ``(frame, row, col)``: each
        pixel's samples are then contiguous in memory (what :func:`xarray.apply_ufunc`
        hands to a kernel over ``frame``), at the cost of a transposition while reading.

    Returns
    -------
    xarray.Dataset
        Variables ``sci`` (float32, count), ``err`` (float32, count) and ``dq`` (int16)
        with dims ``(frame, row, col)`` (or ``(row, col, frame)``), frames in order of
        exposure start; coordinates
        ``frame`` (0..n-1), ``row``, ``col`` (pixel indices) and, per frame,
        ``rootname``, ``path``, ``exptime`` (s), ``start_mjd``, ``end_mjd`` (d),
        ``start`` (datetime64, UTC), ``gain`` (ATODGAIN, e-/count), ``ccdgain``,
        ``ccdamp``.  Nothing is read until the data are computed.
    """
    frames = check_darks(files, start=start, end=end)
    n = len(frames)
    ny, nx = frames[0].shape
    sizes = _chunk_sizes(chunks, (n, ny, nx))
    variables = {}
    attrs = {
        "sci": {"units": "count", "long_name": "science value (dark signal, counts = DN)"},
        "err": {"units": "count", "long_name": "error of the science value (counts = DN)"},
        "dq": {"units": "1", "long_name": "STIS data-quality flags (bit mask)"},
    }
    dims = ("row", "col", "frame") if frames_last else _DIMS
    block = (sizes[1], sizes[2], sizes[0]) if frames_last else sizes
    for ext, var in (("SCI", "sci"), ("ERR", "err"), ("DQ", "dq")):
        stack = RawImageStack(
            [f.path for f in frames],
            [f.layout[ext].offset for f in frames],
            (ny, nx),
            frames[0].layout[ext].dtype,
            frames_last=frames_last,
        )
        data = _from_stack(stack, block, var)
        variables[var] = (dims, data, attrs[var])
    start_mjd = np.array([f.start_mjd for f in frames])
    coords = {
        "frame": ("frame", np.arange(n)),
        "row": ("row", np.arange(ny)),
        "col": ("col", np.arange(nx)),
        "rootname": ("frame", np.array([f.rootname for f in frames], dtype=str)),
        "path": ("frame", np.array([str(f.path) for f in frames], dtype=str)),
        "exptime": ("frame", np.array([f.exptime for f in frames]), {"units": "s"}),
        "start_mjd": ("frame", start_mjd, {"units": "d", "long_name": "TEXPSTRT (MJD, UTC)"}),
        "end_mjd": (
            "frame",
            np.array([f.end_mjd for f in frames]),
            {"units": "d", "long_name": "TEXPEND (MJD, UTC)"},
        ),
        "start": ("frame", np.asarray(mjd_to_datetime64(start_mjd)).astype("datetime64[ns]")),
        "gain": ("frame", np.array([f.gain for f in frames]), {"units": "electron / count"}),
        "ccdgain": ("frame", np.array([-1 if f.ccdgain is None else f.ccdgain for f in frames])),
        "ccdamp": ("frame", np.array([f.ccdamp for f in frames], dtype=str)),
    }
    ds = xr.Dataset(
        variables,
        coords=coords,
        attrs={
            "title": "stack of STIS CCD dark frames",
            "binning": list(frames[0].binning),
            "subarray": int(frames[0].subarray),
            "simulated": int(any(f.simulated for f in frames)),
        },
    )
    logger.debug("stacked %d darks of shape %s with chunks %s", n, (ny, nx), sizes)
    return ds


def _from_stack(stack: RawImageStack, sizes: Sequence[int], var: str) -> Any:
    import dask.array as da
    from dask.base import tokenize

    name = f"stiscube-{var}-{tokenize(stack, tuple(sizes))}"
    return da.from_array(
        stack,
        chunks=tuple(sizes),
        name=name,
        asarray=True,
        lock=False,
        meta=np.empty((0, 0, 0), stack.dtype),
    )
