"""STIS CCD reference files from the pixel property cube: DQ reference and superdark.

Two files, made from one anneal period or a range of periods of a
:class:`~stiscube.PixelDB`:

DQ reference (:func:`write_dq_reference`)
    An empty primary HDU and one ``DQ`` image extension (``EXTNAME='DQ'``,
    ``EXTVER=1``) holding STIS DQ bit values as plain 16-bit integers (FITS
    ``BITPIX=16`` without ``BZERO``/``BSCALE``, as the DQ arrays of calstis products).
    Every STIS bit fits: the OR of all fifteen is 32767.  CRDS has no STIS reference
    type for a DQ image, so ``FILETYPE = 'DQ REFERENCE'``; calstis reads the same DQ
    from the superdark's ``DQ`` extension.
superdark (:func:`write_dark_reference`)
    The STIS imset layout of a dark reference file (``FILETYPE = 'DARK IMAGE'``):
    primary header + ``SCI``, ``ERR`` (float32, electron / s) and ``DQ`` (int16)
    extensions with ``EXTVER=1``.  With ``n_p`` the number of usable samples of a
    pixel in period ``p`` (``n_darks`` of the period minus the pixel's ``nan_count``),
    ``m_p`` its ``sci_mean`` and ``e_p`` its ``err_mean`` (the mean per-frame error)::

        SCI = sum_p n_p m_p / N,     ERR = sqrt(sum_p n_p e_p**2) / N,     N = sum_p n_p

    i.e. the mean rate over every usable sample of the periods, and the standard error
    of that mean from the per-frame errors (``e_p / sqrt(n_p)`` for one period).  A
    pixel without any usable sample (``N = 0``) gets ``SCI = ERR = 0`` and DQ bit 512
    (``bad_reference_pixel``: "bad pixel in a reference file", which is what it is).

Both files share the DQ array: the bitwise OR, over the chosen periods, of
:func:`stiscube.dq.dq_array` of each period with the given :class:`~stiscube.dq.DQRules`
(hot pixels on bit 16; unstable pixels on the rules' ``unstable_bit``, by default 4,
``bad_detector_pixel``, since STIS has no "unstable" bit).  The counts written in the
header (``NHOT``, ``NUNSTAB``, ``NBOTH``, ``NNODATA``, ``NFLAGGED``) are counted on the
array written, so ``NFLAGGED = NHOT + NUNSTAB - NBOTH`` (+ no-data pixels not already
flagged).

CRDS selection keywords (those of ``hst_stis_darkfile.rmap``: ``DETECTOR``,
``CCDAMP``, ``CCDGAIN``, and ``USEAFTER`` for the dataset's ``DATE-OBS``/``TIME-OBS``)
plus ``INSTRUME``, ``FILETYPE``, ``PEDIGREE``, ``DESCRIP`` and ``HISTORY`` cards (the
rules, the input periods with their darks, the cube version and each period's
checksum) are written in the formats that ``crds certify`` checks: ``USEAFTER`` as
``'Mon DD YYYY HH:MM:SS'`` (CRDS converts it to the rmap's ``'YYYY-MM-DD HH:MM:SS'``),
``PEDIGREE`` as ``'INFLIGHT DD/MM/YYYY DD/MM/YYYY'``.  ``CCDAMP``/``CCDGAIN`` come from
the cube's per-period coordinates ``ccdamp``/``ccdgain`` when it has them (they must
agree over the periods and with any value given), else from
:class:`ReferenceKeywords` (then required).

Provenance: the record of :mod:`stores.provenance`, written by
:func:`stores.provenance.to_header` and read back by :func:`stores.provenance.from_header`:
``DATE``, ``SOFTWARE``, ``CUBEVER`` (the cube version, :attr:`stores.CubeStore.version`,
or ``unknown``), ``CUBESUM`` (SHA-256 over the periods' checksums, in period order) and
``HISTORY`` lines ``provenance input ...`` (the database URL), ``provenance
software_versions ...`` and one ``provenance checksum {"<period>": "<sha256>"}`` per
period (SHA-256 of the checksums the store recorded for each property at commit), after
the readable ``HISTORY`` text (rules, periods, darks).  ``PERIODS`` lists the period
numbers.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from stiscube._provenance import iso
from stiscube.cube.pixeldb import PixelDB
from stiscube.dq.files import _dq_counts, _dq_extension, _target, _write_fits
from stiscube.dq.flags import BAD_REFERENCE_PIXEL
from stiscube.dq.rules import DQRules
from stiscube.exceptions import CubeQueryError, UnitMismatchError
from stores.provenance import cube_checksum, provenance, set_card, slice_checksums, to_header
from stores.validate import as_int, as_str, check_fields, instance_of, one_of

__all__ = [
    "NO_DATA_BIT",
    "ReferenceKeywords",
    "cube_provenance",
    "reference_dq",
    "superdark",
    "sybdate",
    "write_dark_reference",
    "write_dq_reference",
    "write_reference",
]

logger = logging.getLogger(__name__)

#: DQ bit of superdark pixels without any usable dark sample (STIS "bad pixel in a
#: reference file")
NO_DATA_BIT: int = BAD_REFERENCE_PIXEL

_AMPS = ("A", "B", "C", "D")
_GAINS = (1, 2, 4, 8)
_PEDIGREE = re.compile(
    r"^(GROUND|MODEL|DUMMY|SIMULATION)$|^INFLIGHT (\d\d)/(\d\d)/(\d{4}) (\d\d)/(\d\d)/(\d{4})$"
)
_MAX_DESCRIP = 67  # HST reference files: DESCRIP of at most 67 characters
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def sybdate(value: Any) -> str:
    """A date as HST reference files write ``USEAFTER``: ``'Mon DD YYYY HH:MM:SS'``.

    Examples
    --------
    >>> sybdate("2020-01-05T06:07:08.9")
    'Jan 05 2020 06:07:08'
    """
    t = np.datetime64(value, "s").astype(_dt.datetime)
    return f"{_MONTHS[t.month - 1]} {t.day:02d} {t.year:04d} {t:%H:%M:%S}"


def _slash(value: Any) -> str:
    t = np.datetime64(value, "D").astype(_dt.date)
    return f"{t.day:02d}/{t.month:02d}/{t.year:04d}"


@dataclass(frozen=True, kw_only=True)
class ReferenceKeywords:
    """CRDS selection and description keywords of a reference file (validated).

    Parameters
    ----------
    ccdamp : {"A", "B", "C", "D"} or None
        Amplifier read out.  None: from the cube's ``ccdamp`` coordinate (an error if
        the cube has none).
    ccdgain : {1, 2, 4, 8} or None
        Commanded CCD gain (``CCDGAIN``).  None: from the cube's ``ccdgain``.
    useafter : date-like or None
        First observation date the file applies to; default the start of the first
        period.  Written as ``'Mon DD YYYY HH:MM:SS'`` (UTC, whole seconds).
    pedigree : str or None
        ``'INFLIGHT DD/MM/YYYY DD/MM/YYYY'``, ``'GROUND'``, ``'MODEL'``, ``'DUMMY'`` or
        ``'SIMULATION'``; default ``INFLIGHT`` with the first and last day of the
        periods (the day before an end at midnight, since ends are exclusive).
    descrip : str or None
        One line (at most 67 characters); default names the file kind and periods.

    Raises
    ------
    ValueError, TypeError
        A keyword is out of range (the message names it).
    """

    ccdamp: str | None = None
    ccdgain: int | None = None
    useafter: Any = None
    pedigree: str | None = None
    descrip: str | None = None

    def __post_init__(self) -> None:
        spec = {
            "ccdamp": partial(one_of, choices=_AMPS),
            "ccdgain": lambda value, name: one_of(as_int(value, name), name, _GAINS),
            "useafter": _useafter,
            "pedigree": _pedigree,
            "descrip": _descrip,
        }
        check_fields(self, {k: v for k, v in spec.items() if getattr(self, k) is not None})


def _useafter(value: Any, name: str) -> np.datetime64:
    try:
        when = np.datetime64(value, "s")
    except (TypeError, ValueError) as exc:
        msg = f"{name} must be a date, got {value!r} ({exc})"
        raise ValueError(msg) from None
    if np.isnat(when) or not np.datetime64("1990") <= when < np.datetime64("2100"):
        msg = f"{name} must be a date between 1990 and 2100, got {value!r}"
        raise ValueError(msg)
    return when


def _pedigree(value: Any, name: str) -> str:
    match = _PEDIGREE.match(str(value))
    if match is None:
        msg = (
            f"{name} must be 'INFLIGHT DD/MM/YYYY DD/MM/YYYY', 'GROUND', 'MODEL', 'DUMMY' or "
            f"'SIMULATION', got {value!r}"
        )
        raise ValueError(msg)
    if match.group(2) is not None:
        d = [int(g) for g in match.groups()[1:]]
        try:
            first, last = _dt.date(d[2], d[1], d[0]), _dt.date(d[5], d[4], d[3])
        except ValueError as exc:
            msg = f"{name} {value!r}: {exc}"
            raise ValueError(msg) from None
        if last < first:
            msg = f"{name} {value!r}: the end date is before the start"
            raise ValueError(msg)
    return value


def _descrip(value: Any, name: str) -> str:
    value = as_str(value, name, one_line=True)
    if len(value) > _MAX_DESCRIP:
        msg = f"{name} must have 1 to {_MAX_DESCRIP} characters, got {len(value)}: {value!r}"
        raise ValueError(msg)
    return value


# -- inputs ----------------------------------------------------------------------------------
def _periods(db: PixelDB, anneals: int | Sequence[int] | None) -> list[int]:
    instance_of(db, "db", PixelDB, what="a stiscube.PixelDB")
    held = db.anneal_numbers
    if not held:
        msg = f"{db.location.url} holds no anneal periods"
        raise CubeQueryError(msg)
    if anneals is None:
        return [held[-1]]
    chosen = [anneals] if isinstance(anneals, int | np.integer) else list(anneals)
    integers = all(isinstance(n, int | np.integer) and not isinstance(n, bool) for n in chosen)
    if not chosen or not integers:
        msg = f"anneals must be a period number or a non-empty list of them, got {anneals!r}"
        raise TypeError(msg)
    missing = sorted({int(n) for n in chosen} - set(held))
    if missing:
        msg = f"anneal periods {missing} are not in {db.location.url}; it holds {held}"
        raise CubeQueryError(msg)
    return sorted({int(n) for n in chosen})


def cube_provenance(db: PixelDB, anneals: Sequence[int]) -> dict[str, Any]:
    """Cube version and per-period checksums of the periods *anneals* of *db*.

    Returns
    -------
    dict
        ``version`` (str of :attr:`stores.CubeStore.version`, or ``"unknown"`` when the
        store has none), ``checksums`` ({period: SHA-256 hex of the JSON of the store's
        per-property checksums of that period}, :func:`stores.provenance.slice_checksums`)
        and ``cubesum`` (SHA-256 hex of the periods' checksums joined in period order,
        :func:`stores.provenance.cube_checksum`).
    """
    sums = slice_checksums(db.store, [int(n) for n in anneals])
    version = getattr(db.store, "version", None)
    return {
        "version": "unknown" if version is None else str(version),
        "checksums": {int(n): digest for n, digest in sums.items()},
        "cubesum": cube_checksum(sums),
    }


def _ccd_setting(ds: xr.Dataset, name: str, given: Any, numbers: list[int]) -> Any:
    """CCDAMP/CCDGAIN of the periods: the cube's coordinate *name* where it is known
    (``""`` or NaN mean unknown), else the *given* value (then required)."""
    unknown = list(numbers)
    known: dict[int, Any] = {}
    if name in ds.coords or name in ds:
        values = np.atleast_1d(ds[name].sel(anneal=numbers).values).tolist()
        for number, value in zip(numbers, values, strict=True):
            if name == "ccdgain" and value is not None and np.isfinite(float(value)):
                known[number] = int(value)
            elif name == "ccdamp" and str(value).strip():
                known[number] = str(value).strip()
        unknown = [n for n in numbers if n not in known]
    found = sorted(set(known.values()), key=str)
    if len(found) > 1:
        msg = f"periods {numbers} mix {name} values {known}: one reference file per setting"
        raise ValueError(msg)
    if found and given is not None and found[0] != given:
        msg = f"{name}={given!r} was given but the cube's periods {sorted(known)} have {found[0]!r}"
        raise ValueError(msg)
    if unknown and given is None:
        msg = (
            f"the cube records no {name} for periods {unknown}: give it explicitly "
            f"(ReferenceKeywords({name}=...), or --{name} on the command line)"
        )
        raise ValueError(msg)
    value = found[0] if found else given
    allowed = _AMPS if name == "ccdamp" else _GAINS
    if value not in allowed:
        msg = f"the cube's {name} of periods {numbers} is {value!r}, not a STIS CCD setting"
        raise ValueError(msg)
    return value


@dataclass(frozen=True)
class _Resolved:
    ccdamp: str
    ccdgain: int
    useafter: np.datetime64
    pedigree: str
    descrip: str


def _resolve(
    db: PixelDB, numbers: list[int], keywords: ReferenceKeywords | None, kind: str
) -> _Resolved:
    keywords = ReferenceKeywords() if keywords is None else keywords
    instance_of(keywords, "keywords", ReferenceKeywords)
    ds = db.dataset
    amp = _ccd_setting(ds, "ccdamp", keywords.ccdamp, numbers)
    gain = _ccd_setting(ds, "ccdgain", keywords.ccdgain, numbers)
    start = ds["anneal_start"].sel(anneal=numbers[0]).values
    end = ds["anneal_end"].sel(anneal=numbers[-1]).values
    useafter = np.datetime64(start, "s") if keywords.useafter is None else keywords.useafter
    last = np.datetime64(end, "us") - np.timedelta64(1, "us")  # the end is exclusive
    pedigree = keywords.pedigree or f"INFLIGHT {_slash(start)} {_slash(last)}"
    span = f"{numbers[0]}" if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"
    descrip = keywords.descrip or f"{kind} of anneal period {span} from the stiscube pixel cube"
    return _Resolved(amp, gain, useafter, pedigree, descrip[:_MAX_DESCRIP])


# -- the arrays ----------------------------------------------------------------------------
def reference_dq(
    db: PixelDB, rules: DQRules | None = None, *, anneals: int | Sequence[int] | None = None
) -> xr.DataArray:
    """The DQ array of a reference file: the OR of :func:`~stiscube.dq.dq_array` per period.

    Parameters
    ----------
    db : PixelDB
        The database.
    rules : DQRules, optional
        The rules (default ``DQRules()``).
    anneals : int or sequence of int, optional
        The period or periods (default: the newest).

    Returns
    -------
    xarray.DataArray
        ``uint16`` on ``(row, col)`` with the attributes of the newest period's DQ array,
        ``anneals`` (the periods), and the counts on this array: ``n_hot``,
        ``n_unstable``, ``n_both`` (hot and unstable), ``n_flagged``.
    """
    from stiscube.dq import dq_array

    rules = DQRules() if rules is None else rules
    numbers = _periods(db, anneals)
    arrays = [dq_array(db, rules, anneal_num=n) for n in numbers]
    dq = arrays[-1].copy()
    dq.values = np.bitwise_or.reduce([a.values for a in arrays], axis=0)
    dq.attrs.update(_dq_counts(dq.values, rules))
    dq.attrs["anneals"] = np.asarray(numbers, dtype=np.int64)
    return dq


def superdark(
    db: PixelDB, rules: DQRules | None = None, *, anneals: int | Sequence[int] | None = None
) -> xr.Dataset:
    """The superdark of one or more periods: SCI, ERR (electron / s), DQ, samples.

    See the module docstring for the formulas.  Periods must be in the ``"rate"`` unit
    system (electron / s) and record their number of darks.

    Returns
    -------
    xarray.Dataset
        ``sci`` and ``err`` (float32, electron / s), ``dq`` (uint16, see
        :func:`reference_dq`, plus :data:`NO_DATA_BIT` where no sample is usable) and
        ``n_samples`` (int32, usable samples per pixel) on ``(row, col)``; attrs as the
        DQ array's plus ``n_no_data``.

    Raises
    ------
    UnitMismatchError
        A period is in the ``"counts"`` unit system.
    ValueError
        A period records no darks, or the rules use bit 512 (kept for no-data pixels).
    """
    rules = DQRules() if rules is None else rules
    if (rules.has_hot_rule and rules.hot_bit == NO_DATA_BIT) or (
        rules.has_unstable_rule and rules.unstable_bit == NO_DATA_BIT
    ):
        msg = f"the rules use DQ bit {NO_DATA_BIT}, which the superdark keeps for no-data pixels"
        raise ValueError(msg)
    numbers = _periods(db, anneals)
    ds = db.dataset.sel(anneal=numbers)
    systems = np.atleast_1d(ds["unit_system"].values).astype(str)
    if np.any(systems != "rate"):
        bad = [n for n, s in zip(numbers, systems, strict=True) if s != "rate"]
        msg = f"periods {bad} are not in electron / s (unit system 'counts'): no superdark"
        raise UnitMismatchError(msg)
    n_darks = np.atleast_1d(ds["n_darks"].values).astype(np.int64)
    if np.any(n_darks <= 0):
        bad = [n for n, k in zip(numbers, n_darks, strict=True) if k <= 0]
        msg = f"periods {bad} record no darks: the samples per pixel are unknown"
        raise ValueError(msg)
    total = np.zeros(db.shape, dtype=np.int64)  # N
    rate_sum = np.zeros(db.shape)  # sum_p n_p m_p
    var_sum = np.zeros(db.shape)  # sum_p n_p e_p**2
    for number, darks in zip(numbers, n_darks, strict=True):  # one period in memory at a time
        arrays = db.store.read_arrays([number], variables=["sci_mean", "err_mean", "nan_count"])
        m = np.asarray(arrays["sci_mean"][0], dtype=np.float64)
        e = np.asarray(arrays["err_mean"][0], dtype=np.float64)
        n = int(darks) - np.asarray(arrays["nan_count"][0], dtype=np.int64)
        n = np.where(np.isfinite(m) & np.isfinite(e), np.clip(n, 0, None), 0)
        total += n
        rate_sum += n * np.nan_to_num(m)
        var_sum += n * np.nan_to_num(e) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        sci = np.where(total > 0, rate_sum / total, 0.0)
        err = np.where(total > 0, np.sqrt(var_sum) / total, 0.0)
    dq = reference_dq(db, rules, anneals=numbers)
    no_data = total == 0
    values = dq.values | np.where(no_data, np.uint16(NO_DATA_BIT), np.uint16(0))
    attrs = dict(dq.attrs)
    attrs.update(_dq_counts(values, rules, int(np.count_nonzero(no_data))))
    dims = ("row", "col")
    coords = {"row": dq["row"].values, "col": dq["col"].values}
    return xr.Dataset(
        {
            "sci": (dims, sci.astype(np.float32), {"units": "electron / s"}),
            "err": (dims, err.astype(np.float32), {"units": "electron / s"}),
            "dq": (dims, values.astype(np.uint16), {"flag_meanings": attrs["flag_meanings"]}),
            "n_samples": (dims, total.astype(np.int32), {"units": "1"}),
        },
        coords=coords,
        attrs=attrs,
    )


# -- headers ---------------------------------------------------------------------------------
def _history(db: PixelDB, numbers: list[int], rules: DQRules, extra: list[str]) -> list[str]:
    """The HISTORY text a reader reads: how the file was made, the rules, each period with
    its darks, exposure mix and temperature scaling (the provenance record follows it)."""
    ds = db.dataset
    lines = ["made from the stiscube pixel property cube (provenance input below)", *extra]
    lines.append("DQ rules (bitwise OR over the periods):")
    lines += [f"  {line}" for line in rules.describe()]
    darks = db.darks
    for number in numbers:
        one = ds.sel(anneal=number)
        names = darks.loc[darks["anneal"] == number, "rootname"].tolist()
        lines.append(
            f"period {number}: {iso(one['anneal_start'].values)[:19]} to "
            f"{iso(one['anneal_end'].values)[:19]}, {int(one['n_darks'].values)} darks"
            + (f": {' '.join(names)}" if names else "")
        )
        for coord, label in (("exptime_class", "exposures"), ("temperature_correction",
                                                              "temperature scaling")):
            value = _period_text(one, coord)
            if value:
                lines.append(f"  period {number} {label}: {value}")
    wrapped = []
    for line in lines:
        wrapped += textwrap.wrap(line, 70, subsequent_indent="  ", break_on_hyphens=False) or [""]
    return wrapped


def _period_text(one: xr.Dataset, coord: str) -> str:
    """A period's string coordinate, or "" where the cube has none (e.g. seed CSV periods)."""
    if coord not in one.coords:
        return ""
    return str(one[coord].values).strip()


def _temperature_card(db: PixelDB, numbers: list[int]) -> str | None:
    """TEMPCORR: the periods' dark-rate temperature scaling (the formula, or ``off``) when
    they share one; how many frames each period scaled is in the HISTORY."""
    texts = {
        _period_text(db.dataset.sel(anneal=n), "temperature_correction").split(":")[0]
        for n in numbers
    }
    texts.discard("")
    if not texts:
        return None
    return texts.pop() if len(texts) == 1 else "differs by period (see HISTORY)"


def _primary(
    db: PixelDB,
    numbers: list[int],
    keys: _Resolved,
    filetype: str,
    rules: DQRules,
    counts: dict[str, int],
    extra_history: list[str],
):
    from astropy.io import fits

    cube = cube_provenance(db, numbers)
    prov = provenance(
        inputs=[db.location.url], cube_version=cube["version"], checksums=cube["checksums"]
    )
    primary = fits.PrimaryHDU()
    hdr = primary.header
    cards = [
        ("TELESCOP", "HST", "telescope"),
        ("INSTRUME", "STIS", "instrument"),
        ("DETECTOR", "CCD", "detector"),
        ("FILETYPE", filetype, "reference file type"),
        ("CCDAMP", keys.ccdamp, "CCD amplifier read out (CRDS selection)"),
        ("CCDGAIN", keys.ccdgain, "commanded CCD gain (CRDS selection)"),
        ("USEAFTER", sybdate(keys.useafter), "use after this date (UTC)"),
        ("PEDIGREE", keys.pedigree, "origin of the data"),
        ("DESCRIP", keys.descrip, ""),
        ("PERIODS", ",".join(str(n) for n in numbers), "anneal periods used"),
        ("NHOT", counts["n_hot"], f"pixels with the hot bit {rules.hot_bit}"),
        ("NUNSTAB", counts["n_unstable"], f"pixels with the unstable bit {rules.unstable_bit}"),
        ("NBOTH", counts["n_both"], "pixels both hot and unstable"),
        ("NNODATA", counts["n_no_data"], f"pixels without usable samples (DQ {NO_DATA_BIT})"),
        ("NFLAGGED", counts["n_flagged"], "pixels with any DQ bit"),
        ("RULES", json.dumps(rules.to_dict()), "DQ rules as JSON"),
    ]
    tempcorr = _temperature_card(db, numbers)
    if tempcorr is not None:
        cards.append(("TEMPCORR", tempcorr, "dark-rate temperature scaling of the inputs"))
    for key, value, comment in cards:
        set_card(hdr, key, value, comment)
    for line in _history(db, numbers, rules, extra_history):
        hdr.add_history(line)
    to_header(hdr, prov)  # DATE, SOFTWARE, CUBEVER, CUBESUM; the rest as HISTORY
    return primary


def _categories_text(rules: DQRules) -> list[str]:
    lines = ["categories and their DQ bits:"]
    if rules.has_hot_rule:
        lines.append(f"  hot -> {rules.hot_bit}")
    if rules.has_unstable_rule:
        lines.append(
            f"  unstable (STIS has no such bit) -> {rules.unstable_bit}; unstable is not hot"
        )
    return lines


def write_reference(
    db: PixelDB,
    path: str | os.PathLike,
    kind: str,
    *,
    rules: DQRules | None = None,
    anneals: int | Sequence[int] | None = None,
    keywords: ReferenceKeywords | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a STIS CCD reference file of one or more periods (atomically).

    Parameters
    ----------
    db : PixelDB
        The database.
    path : path-like
        The FITS file to write.
    kind : {"dq", "dark"}
        ``"dq"``: the DQ reference (primary + ``DQ``); ``"dark"``: the superdark
        (:func:`superdark`) in the STIS imset layout, primary + ``SCI``, ``ERR`` (float32,
        ``BUNIT = 'ELECTRONS/S'``) and ``DQ`` (int16), each with ``EXTVER = 1``.
    rules : DQRules, optional
        The DQ rules (default ``DQRules()``).
    anneals : int or sequence of int, optional
        The period or periods (default: the newest).
    keywords : ReferenceKeywords, optional
        CRDS keywords; ``ccdamp``/``ccdgain`` are required when the cube has none.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError, TypeError
        A parameter is invalid, or the periods mix CCD settings; nothing is written.
    FileExistsError
        *path* exists and *overwrite* is false.
    """
    from astropy.io import fits

    kind = one_of(kind, "kind", ("dq", "dark"))
    rules = DQRules() if rules is None else instance_of(rules, "rules", DQRules)
    numbers = _periods(db, anneals)
    keys = _resolve(db, numbers, keywords, "DQ flags" if kind == "dq" else "superdark")
    path = _target(path, overwrite)
    if kind == "dq":
        dq = reference_dq(db, rules, anneals=numbers)
        counts = _dq_counts(dq.values, rules)
        text = _categories_text(rules)
        primary = _primary(db, numbers, keys, "DQ REFERENCE", rules, counts, text)
        hdus = [primary, _dq_extension(dq.values)]
    else:
        dark = superdark(db, rules, anneals=numbers)
        counts = {k: int(dark.attrs[k]) for k in ("n_hot", "n_unstable", "n_both", "n_no_data")}
        counts["n_flagged"] = int(np.count_nonzero(dark["dq"].values))
        formulas = [
            "SCI = sum_p n_p sci_mean_p / N; ERR = sqrt(sum_p n_p err_mean_p^2) / N;",
            "N = sum_p n_p, n_p = n_darks_p - nan_count_p (usable samples); e-/s",
            *_categories_text(rules),
            f"  no usable sample -> {NO_DATA_BIT} (SCI = ERR = 0)",
        ]
        primary = _primary(db, numbers, keys, "DARK IMAGE", rules, counts, formulas)
        sci = fits.ImageHDU(data=dark["sci"].values.astype(">f4"), name="SCI", ver=1)
        err = fits.ImageHDU(data=dark["err"].values.astype(">f4"), name="ERR", ver=1)
        for hdu, what in ((sci, "dark rate"), (err, "standard error of the dark rate")):
            hdu.header["BUNIT"] = ("ELECTRONS/S", what)
        hdus = [primary, sci, err, _dq_extension(dark["dq"].values)]
    primary.header["NEXTEND"] = (len(hdus) - 1, "number of extensions")
    _write_fits(fits.HDUList(hdus), path)
    logger.info("wrote %s reference of periods %s to %s (%s)", kind, numbers, path, counts)
    return path


def write_dq_reference(db: PixelDB, path: str | os.PathLike, **options: Any) -> Path:
    """Write the DQ reference file: ``write_reference(db, path, "dq", **options)``.

    *options* are :func:`write_reference`'s ``rules``, ``anneals``, ``keywords`` and
    ``overwrite``.
    """
    return write_reference(db, path, "dq", **options)


def write_dark_reference(db: PixelDB, path: str | os.PathLike, **options: Any) -> Path:
    """Write the superdark: ``write_reference(db, path, "dark", **options)``.

    *options* are :func:`write_reference`'s ``rules``, ``anneals``, ``keywords`` and
    ``overwrite``.
    """
    return write_reference(db, path, "dark", **options)
