"""STIS CCD dark frames: open, validate, select and stack lazily with dask.

A *dark frame* is one exposure of a calibrated STIS CCD dark file: one imset
(``SCI``, float32 counts; ``ERR``, float32 counts; ``DQ``, int16) of a file whose primary
header says ``INSTRUME = 'STIS'``, ``DETECTOR = 'CCD'``, ``TARGNAME = 'DARK'``.  Where real
STIS files keep each keyword (checked against an archive file in the tests):

- primary header: ``ROOTNAME``, ``TEXPSTRT``/``TEXPEND`` (MJD) and ``TEXPTIME`` (s) of the
  whole file (for a file of several imsets, ``TEXPTIME`` is their *total*),
  ``ATODGAIN`` (e-/count), ``READNSE``, ``CCDGAIN``, ``CCDAMP``, ``BINAXIS1/2``,
  ``SUBARRAY``, ``NRPTEXP``, ``CRSPLIT``;
- each imset's SCI header: ``EXPSTART``/``EXPEND`` (MJD), ``EXPTIME`` (s), ``EXPNAME`` and
  ``OCCDHTAV`` (CCD housing temperature, deg C; -1 in Side-1 data).

How files are counted:

- ``_flt``: a file of N imsets (CR-SPLIT or repeat exposures) gives N frames, each with
  its own ``EXPSTART``/``EXPTIME`` from its SCI header, identified as ``rootname`` when the
  file holds one imset and ``rootname[k]`` (k = EXTVER) when it holds several;
- ``_crj``/``_sfl``: one combined imset, one frame whose exposure time is the total
  ``EXPTIME`` of the combination (its DQ 8192 marks pixels where a cosmic ray was
  rejected from an input; the default DQ mask excludes them);
- the primary ``TEXPSTRT``/``TEXPEND``/``TEXPTIME`` are used only for a file of one imset
  whose SCI header lacks ``EXPSTART``/``EXPTIME``;
- raw files (``_raw``, integer SCI, calstis switches at ``PERFORM``) are refused: they need
  calstis first.  Binned frames are refused (the cube holds detector pixels).

:func:`read_frames` validates one file and returns its frames, :func:`check_darks`
validates a set (each file, then the set: full frame or subarray, same shape, unique
frames, and optionally every exposure starting inside an anneal period),
:func:`select_darks` applies the homogeneity rules of :class:`DarkSelection` (one CCDGAIN,
CCDAMP, binning and exposure class per period), and :func:`open_darks` returns the stack
as a lazy :class:`xarray.Dataset`, with the temperature scaling of
:class:`TemperatureCorrection` recorded per frame.  Every check reads headers only and
happens before any pixel is read or computed.  Files may be local paths or fsspec URLs
(``file://``, ``memory://``, ``s3://``; credentials in ``storage_options``).

Temperature (Side-2 electronics, from 2001-07-23)
-------------------------------------------------
The dark rate rises by about 7 % per deg C of the CCD housing temperature.  As the STScI
pipeline does, a Side-2 frame with a valid ``OCCDHTAV`` (``T``) is brought to the reference
temperature ``T0 = 18`` deg C by dividing its dark signal by ``s = 1 + 0.07 (T - T0)``.  The
division is applied through the exposure time: the kernel's rate ``e_i / t_i`` becomes
``e_i / (s_i t_i)`` (coordinate ``dark_scale`` = ``s_i``), so electron counts, read noise
and the error model are untouched.  Side-1 frames and frames without a valid ``OCCDHTAV``
(-1, missing, NaN, non-numeric) keep ``s = 1``, and the period records it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from stiscube.exceptions import (
    IncompatibleDarksError,
    InvalidDarkError,
    MixedDarksError,
    TooFewDarksError,
)
from stiscube.io._fitsio import (
    FileLayout,
    ImageLayout,
    RawImageStack,
    check_rootname,
    header_int,
    is_remote,
    local_name,
    read_imsets,
)
from stores.common.dates import describe_mjd, mjd_to_datetime64, to_mjd
from stores.common.validate import (
    as_bool,
    as_float,
    as_int,
    as_sequence_of,
    as_str,
    card_value,
    check_fields,
    instance_of,
    one_of,
)

__all__ = [
    "SIDE2_START_MJD",
    "DarkFrame",
    "DarkSelection",
    "MixedDarksError",
    "TemperatureCorrection",
    "TooFewDarksError",
    "check_darks",
    "open_darks",
    "read_frames",
    "select_darks",
]

logger = logging.getLogger(__name__)

_EXPECTED = {"INSTRUME": "STIS", "DETECTOR": "CCD", "TARGNAME": "DARK"}
_DIMS = ("frame", "row", "col")
#: First day of STIS operations on Side-2 electronics (2001-07-23, MJD).
SIDE2_START_MJD = 52113.0


@dataclass(frozen=True, kw_only=True)
class TemperatureCorrection:
    """Scaling of Side-2 dark frames to a reference CCD housing temperature.

    A frame taken on or after ``side2_start`` (MJD) with a valid ``OCCDHTAV`` ``T`` has its
    dark rate divided by ``1 + coefficient * (T - reference)`` (the STScI pipeline's
    1/(1 + 0.07 (OCCDHTAV - 18)) by default).  ``enabled=False`` switches it off.

    Parameters
    ----------
    enabled : bool
        Whether Side-2 frames are scaled.
    reference : float
        Reference temperature, deg C.
    coefficient : float
        Fractional dark-rate change per deg C (1/deg C), in [0, 1).
    side2_start : float
        MJD from which frames are Side-2.
    """

    enabled: bool = True
    reference: float = 18.0
    coefficient: float = 0.07
    side2_start: float = SIDE2_START_MJD

    def __post_init__(self) -> None:
        check_fields(self, {
            "enabled": as_bool,
            "reference": partial(as_float, min=-60, max=60, units="deg C"),
            "coefficient": partial(as_float, min=0, max=1, strict_max=True),
            "side2_start": as_float,
        }, prefix="TemperatureCorrection.")

    def scale(self, occdhtav: Any, start_mjd: Any) -> np.ndarray:
        """``1 + coefficient (T - reference)`` for Side-2 frames with a valid T, else 1.

        Parameters
        ----------
        occdhtav, start_mjd : array_like
            Each frame's ``OCCDHTAV`` (deg C) and exposure start (MJD).

        Returns
        -------
        numpy.ndarray
            One value per frame.
        """
        temp = np.asarray(occdhtav, dtype=float)
        on = self.applies(temp, start_mjd)
        out = np.ones(np.shape(temp))
        out[on] = 1 + self.coefficient * (temp[on] - self.reference)
        return out

    def applies(self, occdhtav: Any, start_mjd: Any) -> np.ndarray:
        """Which frames are scaled (enabled, Side-2 date, valid temperature).

        Parameters
        ----------
        occdhtav, start_mjd : array_like
            As for :meth:`scale`.

        Returns
        -------
        numpy.ndarray of bool
            Whether each frame is scaled.
        """
        temp = np.asarray(occdhtav, dtype=float)
        side2 = np.asarray(start_mjd, dtype=float) >= self.side2_start
        return bool(self.enabled) & side2 & np.isfinite(temp)

    def describe(self) -> str:
        """The formula, e.g. ``1/(1+0.07*(OCCDHTAV-18))``, or ``off``."""
        if not self.enabled:
            return "off"
        return f"1/(1+{self.coefficient:g}*(OCCDHTAV-{self.reference:g})) Side-2"


def _ccd_gain(value: Any, name: str) -> Any:
    """A STIS CCD gain: a number (TypeError otherwise) among 1, 2, 4, 8."""
    as_float(value, name)
    return one_of(value, name, (1, 2, 4, 8))


def _ccd_amp(value: Any, name: str) -> str:
    """A STIS CCD amplifier, ``A`` ... ``D`` in either case (kept as given)."""
    one_of(as_str(value, name).strip().upper(), name, ("A", "B", "C", "D"))
    return value


def _exposure_class(item: Any, name: str) -> tuple[str, float, float]:
    """One ``(name, low, high)`` exposure class, seconds, ``0 <= low <= high < inf``."""
    if not (isinstance(item, tuple) and len(item) == 3):
        msg = f"{name} must be a tuple (name, low, high), got {item!r}"
        raise TypeError(msg)
    label = as_str(item[0], f"{name} name")
    low = as_float(item[1], f"{name} low", min=0)
    high = as_float(item[2], f"{name} high", min=low)
    return label, low, high


@dataclass(frozen=True, kw_only=True)
class DarkSelection:
    """Homogeneity rules of one period's frames, and an optional explicit selection.

    Frames are grouped by ``(CCDGAIN, CCDAMP, BINAXIS1/2, exposure class)``.  Without a
    selection, frames of more than one group are a :class:`MixedDarksError` listing the
    groups.  With ``ccdgain``, ``ccdamp`` and/or ``exptime`` given, only the frames that
    match are used and the others are skipped (logged, and recorded with their reasons).

    Parameters
    ----------
    ccdgain : float, optional
        Keep only frames of this ``CCDGAIN`` (1, 2, 4 or 8).
    ccdamp : str, optional
        Keep only frames read through this amplifier (``A``, ``B``, ``C``, ``D``).
    exptime : str or float, optional
        Keep only frames of this exposure class (a name of ``exposure_classes``), or of
        this exposure time in seconds (within 0.5 s).
    exposure_classes : tuple of (name, low, high)
        Exposure classes, seconds inclusive; a frame in none of them is in the class
        ``"<t> s"``.  Default: the long darks, 1000-1200 s, as the STScI reference darks.
    min_frames : int
        A period needs at least this many usable frames (>= 2).
    min_valid_fraction : float
        A frame is usable if at least this fraction of its pixels has a valid sample
        (finite SCI, finite ERR > 0, DQ not masked); in (0, 1].
    """

    ccdgain: float | None = None
    ccdamp: str | None = None
    exptime: str | float | None = None
    exposure_classes: tuple[tuple[str, float, float], ...] = (("long", 1000.0, 1200.0),)
    min_frames: int = 3
    min_valid_fraction: float = 0.5

    def __post_init__(self) -> None:
        optional = {
            "ccdgain": _ccd_gain,
            "ccdamp": _ccd_amp,
        }
        check_fields(self, {k: v for k, v in optional.items() if getattr(self, k) is not None})
        check_fields(self, {
            "exposure_classes": partial(as_sequence_of, item=_exposure_class),
            "min_frames": partial(as_int, min=2),  # stability needs two frames
            "min_valid_fraction": partial(as_float, min=0, max=1, strict_min=True),
        })
        names = [c[0] for c in self.exposure_classes]
        if len(set(names)) != len(names):
            msg = f"exposure_classes names must be unique, got {names}"
            raise ValueError(msg)
        if isinstance(self.exptime, str):
            one_of(self.exptime, "exptime", names)
        elif self.exptime is not None:
            as_float(self.exptime, "exptime", min=0, strict_min=True)  # seconds

    @property
    def explicit(self) -> bool:
        """Whether a group was chosen (then other groups are skipped, not an error)."""
        return any(x is not None for x in (self.ccdgain, self.ccdamp, self.exptime))

    def exposure_class(self, exptime: float) -> str:
        """The class name of an exposure time: a class of ``exposure_classes`` or ``"<t> s"``.

        Parameters
        ----------
        exptime : float
            Seconds.

        Returns
        -------
        str
            The class name.
        """
        for name, low, high in self.exposure_classes:
            if low <= exptime <= high:
                return name
        return f"{exptime:g} s"

    def describe_class(self, name: str) -> str:
        """A class name with its bounds, e.g. ``long (1000-1200 s)``.

        Parameters
        ----------
        name : str
            A class name.

        Returns
        -------
        str
            The name with its bounds (itself if it is not a class of ``exposure_classes``).
        """
        for cname, low, high in self.exposure_classes:
            if cname == name:
                return f"{name} ({low:g}-{high:g} s)"
        return name


@dataclass(frozen=True)
class DarkFrame:
    """Header facts of one validated dark frame (one imset of a file).

    Parameters
    ----------
    path : pathlib.Path or str
        The file (a :class:`~pathlib.Path`, or the URL string of a remote file).
    rootname : str
        ``ROOTNAME`` (lower case) of the file.
    start_mjd, end_mjd : float
        ``EXPSTART`` and ``EXPEND`` of the imset (MJD, UTC); for a one-imset file without
        them, ``TEXPSTRT`` and ``TEXPEND``; ``end_mjd`` falls back to
        ``start_mjd + exptime / 86400``.
    exptime : float
        ``EXPTIME`` of the imset in seconds (> 0); ``TEXPTIME`` only for a one-imset file
        without it.
    gain : float
        ``ATODGAIN`` in e-/count (> 0).
    ccdgain : float or None
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
        ``SIMULATE = T`` (files of :mod:`stiscube.datasets.simulate`).
    imset : int
        EXTVER of the imset (1-based).
    n_imsets : int
        Number of imsets in the file.
    expname : str
        ``EXPNAME`` of the imset (the exposure's own rootname), or ``""``.
    occdhtav : float
        ``OCCDHTAV`` (deg C), NaN when missing or invalid (-1 marks Side-1 data).
    readnse : float
        ``READNSE`` of the primary header (e-), NaN if absent.
    layout, stamp, storage_options
        How the reader reaches the pixels again: the file's HDU layout, its identity
        when read (size, modification) and the fsspec options of a URL.
    """

    path: Path | str
    rootname: str
    start_mjd: float
    end_mjd: float
    exptime: float
    gain: float
    ccdgain: float | None
    ccdamp: str
    binning: tuple[int, int]
    subarray: bool
    shape: tuple[int, int]
    simulated: bool = False
    layout: Mapping[str, ImageLayout] = field(default_factory=dict, repr=False)
    imset: int = 1
    n_imsets: int = 1
    expname: str = ""
    occdhtav: float = math.nan
    readnse: float = math.nan
    stamp: Any = field(default=None, repr=False)
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def start(self) -> np.datetime64:
        """Exposure start, UTC ``datetime64[us]``."""
        return mjd_to_datetime64(self.start_mjd)

    @property
    def frame_id(self) -> str:
        """``rootname`` for a one-imset file, ``rootname[k]`` for imset k of several."""
        return self.rootname if self.n_imsets == 1 else f"{self.rootname}[{self.imset}]"


def _number(
    name: str, header: Any, key: str, *, required: bool = True, where: str = "primary header"
) -> float | None:
    if key not in header:
        if required:
            msg = f"{name}: the {where} has no {key} keyword"
            raise InvalidDarkError(msg)
        return None
    value = header[key]
    try:
        return float(card_value(value, key, float))
    except (TypeError, ValueError):
        msg = f"{name}: {key} = {value!r} is not a number, or not finite"
        raise InvalidDarkError(msg) from None


def _temperature(name: str, sci: Mapping[str, Any], extver: int) -> float:
    value = sci.get("OCCDHTAV")
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        logger.warning("%s: imset %d: OCCDHTAV = %r is not a number; not used", name, extver, value)
        return math.nan
    value = float(value)
    if not math.isfinite(value) or value == -1 or not -60 <= value <= 60:
        return math.nan
    return value


def _exposure(
    name: str, primary: Mapping[str, Any], sci: Mapping[str, Any], n_imsets: int, extver: int
) -> tuple[float, float, float]:
    """(start, end, exptime) of one imset: SCI keywords, the primary ones for one imset."""
    # The primary values, when present, must be sane: a corrupt header is refused.
    texptime = _number(name, primary, "TEXPTIME", required=False)
    if texptime is not None and texptime <= 0:
        msg = f"{name}: exposure time TEXPTIME = {texptime:g} s is not positive"
        raise InvalidDarkError(msg)
    texpstrt = _number(name, primary, "TEXPSTRT", required=False)
    texpend = _number(name, primary, "TEXPEND", required=False)
    where = f"SCI header of imset {extver}"
    exptime = _number(name, sci, "EXPTIME", required=False, where=where)
    start = _number(name, sci, "EXPSTART", required=False, where=where)
    end = _number(name, sci, "EXPEND", required=False, where=where)
    if exptime is None or start is None:
        if n_imsets > 1:
            missing = "EXPTIME" if exptime is None else "EXPSTART"
            msg = (
                f"{name}: the {where} has no {missing}; the primary TEXPSTRT/TEXPTIME describe "
                f"all {n_imsets} imsets together and cannot date one of them"
            )
            raise InvalidDarkError(msg)
        if exptime is None:
            if texptime is None:
                msg = f"{name}: no exposure time: neither EXPTIME (SCI) nor TEXPTIME (primary)"
                raise InvalidDarkError(msg)
            exptime = texptime
        if start is None:
            if texpstrt is None:
                msg = f"{name}: the primary header has no TEXPSTRT keyword (and no EXPSTART)"
                raise InvalidDarkError(msg)
            start, end = texpstrt, texpend
    if exptime <= 0:
        msg = f"{name}: exposure time EXPTIME = {exptime:g} s of imset {extver} is not positive"
        raise InvalidDarkError(msg)
    if end is None:
        end = start + exptime / 86400.0
    elif end < start:
        msg = f"{name}: imset {extver} ends ({end}) before it starts ({start})"
        raise InvalidDarkError(msg)
    return start, end, exptime


def read_frames(
    path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
) -> list[DarkFrame]:
    """Open and validate one STIS CCD dark file (headers only); one frame per imset.

    Parameters
    ----------
    path : path or str
        A local path or an fsspec URL (``file://``, ``memory://``, ``s3://``...).
    storage_options : dict, optional
        fsspec options of a URL (credentials, ``endpoint_url``, ...).

    Raises
    ------
    InvalidDarkError
        If the file is missing, not FITS, truncated, raw (needs calstis), not a STIS CCD
        dark (``INSTRUME``, ``DETECTOR``, ``TARGNAME``), lacks a SCI/ERR/DQ extension, has
        an unsupported image layout, a bad ``ROOTNAME``, a missing, non-numeric or
        non-positive exposure time or ``ATODGAIN``, a missing start, a non-numeric
        ``CCDGAIN``/``BINAXIS1/2``/``EXTVER``, a ``SUBARRAY`` that is not T/F, or binned
        pixels.  Messages name the file and the keyword.
    """
    name = os.fspath(path)
    layout: FileLayout = read_imsets(name, storage_options=storage_options)
    primary = layout.primary
    for key, expected in _EXPECTED.items():
        value = str(primary.get(key, "")).strip().upper()
        if value != expected:
            found = repr(primary[key]) if key in primary else "missing"
            msg = f"{name}: not a STIS CCD dark: {key} = {found} (expected {expected!r})"
            raise InvalidDarkError(msg)
    rootname = check_rootname(name, primary.get("ROOTNAME"))
    first_sci = layout.imsets[0].header
    if "ATODGAIN" in primary:
        gain = _number(name, primary, "ATODGAIN")
    elif "ATODGAIN" in first_sci:
        gain = _number(name, first_sci, "ATODGAIN")
    else:
        msg = f"{name}: no ATODGAIN keyword (primary or SCI header): the gain is unknown"
        raise InvalidDarkError(msg)
    if gain <= 0:
        msg = f"{name}: ATODGAIN = {gain:g} e-/count is not positive"
        raise InvalidDarkError(msg)
    ccdgain = _number(name, primary, "CCDGAIN", required=False)
    if ccdgain is not None and ccdgain <= 0:
        msg = f"{name}: CCDGAIN = {ccdgain:g} is not positive"
        raise InvalidDarkError(msg)
    binning = (
        header_int(name, "the primary header's", primary, "BINAXIS1", 1),
        header_int(name, "the primary header's", primary, "BINAXIS2", 1),
    )
    if binning != (1, 1):
        msg = (
            f"{name}: binned {binning[0]}x{binning[1]} frame (BINAXIS1/2); the pixel cube "
            "holds unbinned detector pixels, so binned darks are not supported"
        )
        raise InvalidDarkError(msg)
    subarray = primary.get("SUBARRAY", False)
    if not isinstance(subarray, bool | np.bool_):
        msg = f"{name}: SUBARRAY = {subarray!r} is not a logical value (T or F)"
        raise InvalidDarkError(msg)
    readnse = _number(name, primary, "READNSE", required=False)
    ccdamp = primary.get("CCDAMP", "")
    if not isinstance(ccdamp, str):
        msg = f"{name}: CCDAMP = {ccdamp!r} is not an amplifier name"
        raise InvalidDarkError(msg)
    n = len(layout.imsets)
    frames = []
    for imset in layout.imsets:
        start, end, exptime = _exposure(name, primary, imset.header, n, imset.extver)
        expname = imset.header.get("EXPNAME", "")
        frames.append(
            DarkFrame(
                path=name if is_remote(name) else Path(local_name(name)),
                rootname=rootname,
                start_mjd=start,
                end_mjd=end,
                exptime=exptime,
                gain=gain,
                ccdgain=ccdgain,
                ccdamp=ccdamp.strip().upper(),
                binning=binning,
                subarray=bool(subarray),
                shape=imset.layouts["SCI"].shape,
                simulated=bool(primary.get("SIMULATE", False)),
                layout=imset.layouts,
                imset=imset.extver,
                n_imsets=n,
                expname=str(expname).strip().lower(),
                occdhtav=_temperature(name, imset.header, imset.extver),
                readnse=math.nan if readnse is None else readnse,
                stamp=layout.stamp,
                storage_options=layout.storage_options,
            )
        )
    return frames


def _as_frames(
    files: Iterable[str | os.PathLike[str] | DarkFrame],
    storage_options: Mapping[str, Any] | None = None,
) -> list[DarkFrame]:
    if isinstance(files, str | os.PathLike):
        files = [files]
    frames: list[DarkFrame] = []
    for f in files:
        if isinstance(f, DarkFrame):
            frames.append(f)
        else:
            frames.extend(read_frames(f, storage_options=storage_options))
    if not frames:
        msg = "files must name at least one dark frame, got none"
        raise ValueError(msg)
    return frames


def check_darks(
    files: Iterable[str | os.PathLike[str] | DarkFrame],
    *,
    start: Any = None,
    end: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> list[DarkFrame]:
    """Validate a set of dark frames; return them sorted by exposure start.

    Parameters
    ----------
    files : iterable of path, URL or DarkFrame
        The files (each gives one frame per imset, see :func:`read_frames`) or frames.
    start, end : date, optional
        The anneal period the frames are assigned to (any form of
        :func:`stores.common.dates.to_mjd`); every exposure must start in
        ``start <= EXPSTART < end``.
    storage_options : dict, optional
        fsspec options for URLs.

    Returns
    -------
    list of DarkFrame
        In order of ``start_mjd`` (ties kept in input order).

    Raises
    ------
    InvalidDarkError
        For an invalid file (see :func:`read_frames`) or a frame dated outside
        ``[start, end)``.
    IncompatibleDarksError
        For subarray and full frames mixed, shapes that differ, or a frame given twice
        (two files with the same rootname, or the same file twice).
    ValueError
        For no files, or ``end <= start``.
    """
    frames = _as_frames(files, storage_options)
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
        key = frame.frame_id
        if key in seen:
            msg = (
                f"{frame.path}: duplicate rootname {key!r}, also the rootname of "
                f"{seen[key].path}"
            )
            raise IncompatibleDarksError(msg)
        seen[key] = frame
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


def frame_group(frame: DarkFrame, selection: DarkSelection) -> tuple[Any, ...]:
    """The homogeneity key of a frame: (CCDGAIN, CCDAMP, binning, exposure class)."""
    gain = math.nan if frame.ccdgain is None else float(frame.ccdgain)
    return (gain, frame.ccdamp, frame.binning, selection.exposure_class(frame.exptime))


def describe_group(key: tuple[Any, ...], selection: DarkSelection) -> str:
    """A group key as text, e.g. ``CCDGAIN=1 CCDAMP=D bin 1x1 long (1000-1200 s)``."""
    gain, amp, binning, cls = key
    gain_text = "?" if math.isnan(gain) else f"{gain:g}"
    return (
        f"CCDGAIN={gain_text} CCDAMP={amp or '?'} bin {binning[0]}x{binning[1]} "
        f"{selection.describe_class(cls)}"
    )


def select_darks(
    frames: Sequence[DarkFrame], selection: DarkSelection | None = None
) -> tuple[list[DarkFrame], list[tuple[DarkFrame, str]]]:
    """Apply the homogeneity rules of one period (headers only).

    Parameters
    ----------
    frames : sequence of DarkFrame
        The frames (:func:`check_darks`).
    selection : DarkSelection, optional
        The rules (default ``DarkSelection()``).

    Returns
    -------
    chosen : list of DarkFrame
        The frames of the period's one group, in input order.
    skipped : list of (DarkFrame, reason)
        Frames left out by an explicit selection, with the reason.

    Raises
    ------
    MixedDarksError
        More than one group without an explicit selection, or an explicit selection that
        still leaves several groups, or that matches no frame; the message lists every
        group with its number of frames.
    TooFewDarksError
        Fewer than ``selection.min_frames`` frames chosen.
    """
    selection = selection or DarkSelection()
    groups: dict[tuple[Any, ...], list[DarkFrame]] = {}
    for frame in frames:
        groups.setdefault(frame_group(frame, selection), []).append(frame)
    listing = {describe_group(k, selection): len(v) for k, v in groups.items()}
    text = "; ".join(f"{k}: {n} frame{'s' if n != 1 else ''}" for k, n in listing.items())
    chosen, skipped = [], []
    for frame in frames:
        reasons = []
        if selection.ccdgain is not None and frame.ccdgain != selection.ccdgain:
            reasons.append(f"CCDGAIN {frame.ccdgain} is not the selected {selection.ccdgain:g}")
        if selection.ccdamp is not None and frame.ccdamp != selection.ccdamp.strip().upper():
            reasons.append(f"CCDAMP {frame.ccdamp!r} is not the selected {selection.ccdamp!r}")
        if isinstance(selection.exptime, str):
            cls = selection.exposure_class(frame.exptime)
            if cls != selection.exptime:
                wanted = selection.describe_class(selection.exptime)
                reasons.append(f"exposure {frame.exptime:g} s is not in the class {wanted}")
        elif selection.exptime is not None and abs(frame.exptime - selection.exptime) > 0.5:
            wanted = f"{selection.exptime:g} s"
            reasons.append(f"exposure {frame.exptime:g} s is not the selected {wanted}")
        if reasons:
            skipped.append((frame, "; ".join(reasons)))
        else:
            chosen.append(frame)
    if not chosen:
        msg = f"no frame matches the selection; the frames form these groups: {text}"
        raise MixedDarksError(msg, listing)
    left = {frame_group(f, selection) for f in chosen}
    if len(left) > 1:
        remaining = "; ".join(
            f"{describe_group(k, selection)}: {len(groups[k])} frames" for k in groups if k in left
        )
        how = "the selection still leaves" if selection.explicit else "the frames form"
        msg = (
            f"the frames of one period must share CCDGAIN, CCDAMP, binning and exposure class, "
            f"but {how} {len(left)} groups: {remaining}; choose one with a selection "
            "(ccdgain=, ccdamp=, exptime=; CLI --gain, --amp, --exptime)"
        )
        raise MixedDarksError(msg, listing)
    for frame, reason in skipped:
        logger.warning("skipped %s (%s): %s", frame.frame_id, frame.path, reason)
    if len(chosen) < selection.min_frames:
        msg = (
            f"a period needs at least {selection.min_frames} usable frames (min_frames), got "
            f"{len(chosen)}" + (f" after skipping {len(skipped)}" if skipped else "")
            + f": {', '.join(f.frame_id for f in chosen)}"
        )
        raise TooFewDarksError(msg)
    return chosen, skipped


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
    temperature: TemperatureCorrection | None = None,
    storage_options: Mapping[str, Any] | None = None,
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
    temperature : TemperatureCorrection, optional
        Scaling of Side-2 frames to a reference temperature (default: the STScI one);
        recorded per frame in ``dark_scale`` (applied by
        :func:`stiscube.properties.compute.properties_from_stack`), ``occdhtav`` and
        ``temperature_scaled``, and for the stack in the attrs.
    storage_options : dict, optional
        fsspec options for URLs.

    Returns
    -------
    xarray.Dataset
        Variables ``sci`` (float32, count), ``err`` (float32, count) and ``dq`` (int16)
        with dims ``(frame, row, col)``, frames in order of
        exposure start; coordinates
        ``frame`` (0..n-1), ``row``, ``col`` (pixel indices) and, per frame,
        ``rootname``, ``path``, ``exptime`` (s), ``start_mjd``, ``end_mjd`` (d),
        ``start`` (datetime64, UTC), ``gain`` (ATODGAIN, e-/count), ``ccdgain``,
        ``ccdamp``, ``imset``, ``expname``, ``occdhtav`` (deg C, NaN if invalid),
        ``dark_scale`` (``1 + c (T - T0)`` or 1) and ``temperature_scaled``; the
        ``rootname`` coordinate holds the frame identifier (``rootname`` or
        ``rootname[k]``, see :attr:`DarkFrame.frame_id`).  Nothing is read until the data
        are computed.
    """
    frames = check_darks(files, start=start, end=end, storage_options=storage_options)
    temperature = TemperatureCorrection() if temperature is None else temperature
    instance_of(temperature, "temperature", TemperatureCorrection)
    n = len(frames)
    ny, nx = frames[0].shape
    sizes = _chunk_sizes(chunks, (n, ny, nx))
    variables = {}
    attrs = {
        "sci": {"units": "count", "long_name": "science value (dark signal, counts = DN)"},
        "err": {"units": "count", "long_name": "error of the science value (counts = DN)"},
        "dq": {"units": "1", "long_name": "STIS data-quality flags (bit mask)"},
    }
    for ext, var in (("SCI", "sci"), ("ERR", "err"), ("DQ", "dq")):
        stack = RawImageStack(
            [str(f.path) for f in frames],
            [f.layout[ext].offset for f in frames],
            (ny, nx),
            frames[0].layout[ext].dtype,
            constants=[f.layout[ext].constant for f in frames],
            storage_options=frames[0].storage_options,
            stamps=[(f.stamp, f.imset) for f in frames],
        )
        data = _from_stack(stack, sizes, var)
        variables[var] = (_DIMS, data, attrs[var])
    start_mjd = np.array([f.start_mjd for f in frames])
    occdhtav = np.array([f.occdhtav for f in frames], dtype=float)
    coords = {
        "frame": ("frame", np.arange(n)),
        "row": ("row", np.arange(ny)),
        "col": ("col", np.arange(nx)),
        "rootname": ("frame", np.array([f.frame_id for f in frames], dtype=str)),
        "imset": ("frame", np.array([f.imset for f in frames], dtype=np.int64)),
        "expname": ("frame", np.array([f.expname for f in frames], dtype=str)),
        "path": ("frame", np.array([str(f.path) for f in frames], dtype=str)),
        "exptime": ("frame", np.array([f.exptime for f in frames]), {"units": "s"}),
        "start_mjd": ("frame", start_mjd, {"units": "d", "long_name": "EXPSTART (MJD, UTC)"}),
        "end_mjd": (
            "frame",
            np.array([f.end_mjd for f in frames]),
            {"units": "d", "long_name": "EXPEND (MJD, UTC)"},
        ),
        "start": ("frame", np.asarray(mjd_to_datetime64(start_mjd)).astype("datetime64[ns]")),
        "gain": ("frame", np.array([f.gain for f in frames]), {"units": "electron / count"}),
        "ccdgain": (
            "frame",
            np.array([np.nan if f.ccdgain is None else f.ccdgain for f in frames], dtype=float),
        ),
        "ccdamp": ("frame", np.array([f.ccdamp for f in frames], dtype=str)),
        "occdhtav": (
            "frame",
            occdhtav,
            {"units": "deg_C", "long_name": "CCD housing temperature OCCDHTAV (NaN: invalid)"},
        ),
        "dark_scale": (
            "frame",
            temperature.scale(occdhtav, start_mjd),
            {
                "units": "1",
                "long_name": "temperature factor s: rates are e / (s t)",
                "formula": temperature.describe(),
            },
        ),
        "temperature_scaled": ("frame", temperature.applies(occdhtav, start_mjd)),
    }
    ds = xr.Dataset(
        variables,
        coords=coords,
        attrs={
            "title": "stack of STIS CCD dark frames",
            "binning": list(frames[0].binning),
            "subarray": int(frames[0].subarray),
            "simulated": int(any(f.simulated for f in frames)),
            "temperature_correction": temperature.describe(),
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
