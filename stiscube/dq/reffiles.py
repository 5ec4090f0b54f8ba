"""STIS CCD reference files from the pixel property cube: the superdark and the BPIXTAB.

Both are written by :func:`write_reference` from periods of a :class:`~stiscube.PixelDB`,
with the pixel flags of the one rule object :class:`~stiscube.dq.DQRules` (the same
rules give the same hot pixels, and the same ``NHOT``, as :func:`stiscube.dq.dq_array`,
:func:`stiscube.dq.hot_pixels` and the monitoring site).

superdark (``kind="dark"``, ``FILETYPE = 'DARK IMAGE'``, CRDS type ``DARKFILE``)
    By default one anneal period, as the STScI basedarks (refstis) are.  The STIS
    imset layout: primary header + ``SCI``, ``ERR`` (float32, ``BUNIT = 'ELECTRONS/S'``)
    and ``DQ`` (int16) extensions with ``EXTNAME`` and ``EXTVER=1``.  With ``n_p`` the
    number of usable samples of a pixel in period ``p`` (``n_darks`` of the period minus
    the pixel's ``nan_count``), ``m_p`` its ``sci_mean`` and ``e_p`` its ``err_mean``
    (the mean per-frame error)::

        SCI = sum_p n_p m_p / N,     ERR = sqrt(sum_p n_p e_p**2) / N,     N = sum_p n_p

    i.e. the mean rate over every usable sample of the periods, and the standard error
    of that mean.  ``DQ`` is the DQ array of the period the file applies to, the
    newest of the periods (:func:`stiscube.dq.dq_array` of that period: a pixel is
    flagged only where the rules hold in that period, never because it was hot in an
    older period an anneal since healed), plus bit 512 (``bad_reference_pixel``) where
    no period has a usable sample (``SCI = ERR = 0`` there).  Several periods therefore
    mean: the dark averaged over them, the flags of the newest, and ``USEAFTER`` the
    newest period's first dark.
BPIXTAB (``kind="bpixtab"``, ``FILETYPE = 'BAD PIXEL TABLE'``, CRDS type ``BPIXTAB``)
    The persistent bad pixels: those the rules flag with persistence (``persist_k`` of
    the last ``persist_m`` periods up to the chosen one; rules without persistence are
    refused), as a binary table of the STIS BPIXTAB columns (:func:`bad_pixel_table`),
    one row per run of adjacent pixels of one row with the same value, in the cube's
    frame (the calibrated 1024 x 1024 image).  No ``OPT_ELEM`` column: every row
    applies to every optical element.

CRDS selection (``hst_stis_darkfile.rmap``: ``DETECTOR``, ``CCDAMP``, ``CCDGAIN`` and
``USEAFTER`` for ``DATE-OBS``/``TIME-OBS``; ``hst_stis_bpixtab.rmap``: ``DETECTOR`` and
``USEAFTER``).  The superdark writes ``CCDAMP = 'ANY'``, ``CCDGAIN = -1`` and
``CCDOFFST = -1`` unless :class:`ReferenceKeywords` restricts them, as refstis does for
darks (a dark in electron / s applies to every amplifier and gain; 539 of the 541 CCD
rows of the real darkfile rmap select any amplifier and gain); a restriction must agree
with the settings the cube records for the periods.  ``USEAFTER`` is the exposure start
of the first dark of the period the file applies to (refstis: the first input's start),
written as ``'Mon DD YYYY HH:MM:SS'`` (CRDS converts it to the rmap's ``'YYYY-MM-DD
HH:MM:SS'``); periods without recorded darks fall back to the period start (said in
``HISTORY``).  ``PEDIGREE`` is ``'INFLIGHT DD/MM/YYYY DD/MM/YYYY'`` over the darks used.
Both files also carry ``OBSTYPE``, ``OPT_ELEM``, ``APERTURE`` = ``'ANY'``, ``BINAXIS1``
= ``BINAXIS2`` = 1 (the cube holds unbinned frames) and ``DESCRIP`` padded with ``-``
to 67 characters (as refstis).  The superdark states the temperature scaling of its
inputs as calstis reads it: ``REF_TEMP`` (deg C) and ``DRK_VS_T`` (per deg C), from the
periods' recorded correction ``1/(1 + DRK_VS_T (OCCDHTAV - REF_TEMP))`` on Side-2 darks;
without a correction (``off`` or unknown) the cards are absent and ``HISTORY`` says so.

Header counts (``NHOT``, ``NUNSTAB``, ``NBOTH``, ``NNODATA``, ``NFLAGGED``) are counted
on the array written, so ``NFLAGGED = NHOT + NUNSTAB - NBOTH`` (+ no-data pixels not
already flagged), and ``NHOT`` equals the ``n_hot`` of :func:`stiscube.dq.dq_array` of
the period the file applies to.  ``HISTORY`` cards give the rules, the periods with
their darks, exposure mix and temperature scaling.

Provenance: the record of :mod:`stores.common.provenance`, written by
:func:`stores.common.provenance.to_header` and read back by
:func:`stores.common.provenance.from_header`:
``DATE``, ``SOFTWARE``, ``CUBEVER`` (the cube version, :attr:`stores.CubeStore.version`),
``CUBESUM`` (SHA-256 over the periods' checksums, in period order) and
``HISTORY`` lines ``provenance input ...`` (the database URL), ``provenance
software_versions ...`` and one ``provenance checksum {"<period>": "<sha256>"}`` per
period.  ``PERIODS`` lists the period numbers.

Every keyword is checked before anything is written, and an error names the FITS
keyword (``DESCRIP must be ASCII ...``).
"""

from __future__ import annotations

import datetime as _dt
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
from stiscube.dq._fitsfile import dq_cards, dq_counts, dq_extension, target, write_hdus
from stiscube.dq.flags import BAD_REFERENCE_PIXEL
from stiscube.dq.rules import DQRules
from stiscube.exceptions import CubeQueryError, UnitMismatchError
from stores.common.provenance import cube_checksum, provenance, set_card, slice_checksums, to_header
from stores.common.validate import as_int, as_str, check_fields, instance_of, one_of

__all__ = [
    "NO_DATA_BIT",
    "ReferenceKeywords",
    "bad_pixel_table",
    "cube_provenance",
    "superdark",
    "sybdate",
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
_MAX_DESCRIP = 67  # HST reference files: DESCRIP of 67 characters (padded with "-")
_TEMPERATURE = re.compile(r"1/\(1\+([0-9.eE+-]+)\*\(OCCDHTAV-([0-9.eE+-]+)\)\)")
#: the CRDS file type (FILETYPE) of each kind
FILETYPES = {"dark": "DARK IMAGE", "bpixtab": "BAD PIXEL TABLE"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def sybdate(value: Any) -> str:
    """A date as HST reference files write ``USEAFTER``: ``'Mon DD YYYY HH:MM:SS'``.

    Parameters
    ----------
    value : date-like
        The date (UTC).

    Returns
    -------
    str
        The date, whole seconds.

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
        Restrict the superdark to data read through this amplifier.  None (default):
        ``CCDAMP = 'ANY'``, as the STScI superdarks.
    ccdgain : {1, 2, 4, 8} or None
        Restrict the superdark to data of this commanded gain.  None (default):
        ``CCDGAIN = -1`` (any).
    useafter : date-like or None
        First observation date the file applies to; default the exposure start of the
        first dark of the period the file applies to.  Written as ``'Mon DD YYYY
        HH:MM:SS'`` (UTC, whole seconds).
    pedigree : str or None
        ``'INFLIGHT DD/MM/YYYY DD/MM/YYYY'``, ``'GROUND'``, ``'MODEL'``, ``'DUMMY'`` or
        ``'SIMULATION'``; default ``INFLIGHT`` with the days of the first and last dark
        used.
    descrip : str or None
        One line of ASCII, at most 67 characters (padded with ``-`` to 67 in the file);
        default names the file kind and periods.

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
        # messages name the FITS keyword (CCDAMP, USEAFTER, DESCRIP, ...)
        named = {k: partial(_as_keyword, check=v) for k, v in spec.items()}
        check_fields(self, {k: v for k, v in named.items() if getattr(self, k) is not None})


def _as_keyword(value: Any, name: str, *, check) -> Any:
    """*check* of a keyword's value, its messages naming the FITS keyword (upper case)."""
    return check(value, name.upper())


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


def _ascii(value: Any, name: str) -> str:
    value = as_str(value, name, one_line=True)
    if not value.isascii() or not value.isprintable():
        bad = sorted({c for c in value if not (c.isascii() and c.isprintable())})
        msg = f"{name} must be printable ASCII (FITS header text), got {value!r} with {bad}"
        raise ValueError(msg)
    return value


def _pedigree(value: Any, name: str) -> str:
    value = _ascii(value, name)
    match = _PEDIGREE.match(value)
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
    value = _ascii(value, name)
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

    Parameters
    ----------
    db : PixelDB
        The database.
    anneals : sequence of int
        The periods.

    Returns
    -------
    dict
        ``version`` (str of :attr:`stores.CubeStore.version`), ``checksums`` ({period:
        SHA-256 hex of the JSON of the store's per-property checksums of that period},
        :func:`stores.common.provenance.slice_checksums`) and ``cubesum`` (SHA-256 hex of
        the periods' checksums joined in period order,
        :func:`stores.common.provenance.cube_checksum`).
    """
    sums = slice_checksums(db.store, [int(n) for n in anneals])
    return {
        "version": str(db.store.version),
        "checksums": {int(n): digest for n, digest in sums.items()},
        "cubesum": cube_checksum(sums),
    }


def _ccd_setting(ds: xr.Dataset, name: str, given: Any, numbers: list[int]) -> Any:
    """The CCDAMP/CCDGAIN selection value: ``'ANY'``/``-1`` unless *given* restricts it;
    a restriction must agree with the cube's coordinate *name* where it is known
    (``""`` or NaN mean unknown)."""
    if given is None:
        return "ANY" if name == "ccdamp" else -1
    if name in ds.coords or name in ds:
        values = np.atleast_1d(ds[name].sel(anneal=numbers).values).tolist()
        for number, value in zip(numbers, values, strict=True):
            if name == "ccdgain" and value is not None and np.isfinite(float(value)):
                value = int(value)
            elif name == "ccdamp" and str(value).strip():
                value = str(value).strip()
            else:
                continue
            if value != given:
                msg = (
                    f"{name.upper()}={given!r} was given but the cube's period {number} has "
                    f"{name} {value!r}: a file restricted to {given!r} cannot be made from it"
                )
                raise ValueError(msg)
    return given


def _dark_dates(db: PixelDB, numbers: list[int]) -> dict[int, np.ndarray]:
    """Exposure starts (datetime64[s], sorted) of each period's recorded darks."""
    darks = db.darks
    out = {}
    for number in numbers:
        starts = darks.loc[darks["anneal"] == number, "start"].to_numpy()
        out[number] = np.sort(np.asarray(starts, dtype="datetime64[s]"))
    return out


@dataclass(frozen=True)
class _Resolved:
    ccdamp: str
    ccdgain: int
    useafter: np.datetime64
    useafter_from: str
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
    dates = _dark_dates(db, numbers)
    applies = numbers[-1]
    if keywords.useafter is not None:
        useafter, source = keywords.useafter, "given"
    elif dates[applies].size:
        useafter = dates[applies][0]
        source = f"exposure start of the first dark of period {applies}"
    else:
        useafter = np.datetime64(ds["anneal_start"].sel(anneal=applies).values, "s")
        source = f"start of period {applies} (no darks recorded)"
    used = np.concatenate([d for d in dates.values()]) if dates else np.array([], "M8[s]")
    if used.size:
        first, last = used.min(), used.max()
    else:  # no darks recorded: the periods' dates (the end is exclusive)
        first = ds["anneal_start"].sel(anneal=numbers[0]).values
        end = ds["anneal_end"].sel(anneal=numbers[-1]).values
        last = np.datetime64(end, "us") - np.timedelta64(1, "us")
    pedigree = keywords.pedigree or f"INFLIGHT {_slash(first)} {_slash(last)}"
    span = f"{numbers[0]}" if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"
    what = "superdark" if kind == "dark" else "persistent bad pixels"
    descrip = keywords.descrip or f"STIS CCD {what} of anneal period {span} (stiscube)"
    return _Resolved(amp, gain, np.datetime64(useafter, "s"), source, pedigree,
                     descrip.ljust(_MAX_DESCRIP, "-"))


# -- the arrays ----------------------------------------------------------------------------
def superdark(
    db: PixelDB, *, rules: DQRules | None = None, anneals: int | Sequence[int] | None = None
) -> xr.Dataset:
    """The superdark of one or more periods: SCI, ERR (electron / s), DQ, samples.

    See the module docstring for the formulas: SCI and ERR over every period, DQ of the
    newest period (the one the file applies to).  Periods must be in the ``"rate"``
    unit system (electron / s) and record their number of darks.

    Parameters
    ----------
    db : PixelDB
        The database.
    rules : DQRules, optional
        The DQ rules (default ``DQRules()``).
    anneals : int or sequence of int, optional
        The periods (default the newest).

    Returns
    -------
    xarray.Dataset
        ``sci`` and ``err`` (float32, electron / s), ``dq`` (uint16: the
        :func:`~stiscube.dq.dq_array` of the newest period, plus :data:`NO_DATA_BIT`
        where no sample is usable) and ``n_samples`` (int32, usable samples per pixel)
        on ``(row, col)``; attrs as that DQ array's, ``anneals`` (the periods), and the
        counts on this array (``n_hot``, ``n_unstable``, ``n_both``, ``n_no_data``,
        ``n_flagged``).

    Raises
    ------
    UnitMismatchError
        A period is in the ``"counts"`` unit system.
    ValueError
        A period records no darks, or the rules use bit 512 (kept for no-data pixels).
    """
    from stiscube.dq.array import dq_array

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
    dq = dq_array(db, rules=rules, anneal_num=numbers[-1])  # the flags of the period it applies to
    no_data = total == 0
    values = dq.values | np.where(no_data, np.uint16(NO_DATA_BIT), np.uint16(0))
    attrs = dict(dq.attrs)
    attrs.update(dq_counts(values, rules, int(np.count_nonzero(no_data))))
    attrs["anneals"] = np.asarray(numbers, dtype=np.int64)
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


def bad_pixel_table(db: PixelDB, *, rules: DQRules, anneal: int | None = None):
    """The persistent bad pixels of a period as a STIS BPIXTAB table (runs along rows).

    Parameters
    ----------
    db : PixelDB
        The database.
    rules : DQRules
        The rules, with persistence (``persist_k`` of the last ``persist_m`` periods).
    anneal : int, optional
        The period (default: the newest).

    Returns
    -------
    astropy.table.Table
        Columns ``PIX1`` (1-based column of the run's first pixel), ``PIX2`` (1-based
        row), ``LENGTH`` (pixels), ``AXIS`` (1: along the row), ``VALUE`` (DQ value)
        as int16, sorted by row then column; ``meta`` holds the DQ array's attributes.

    Raises
    ------
    ValueError
        The rules have no persistence.
    """
    from astropy.table import Table

    from stiscube.dq.array import dq_array

    rules = instance_of(rules, "rules", DQRules, what="a stiscube.dq.DQRules")
    if rules.persist_k is None:
        msg = (
            "a BPIXTAB lists persistent bad pixels: give rules with persist_k and persist_m "
            "(bad in K of the last M periods; --persist K M)"
        )
        raise ValueError(msg)
    numbers = _periods(db, anneal)
    dq = dq_array(db, rules=rules, anneal_num=numbers[-1])
    values = np.asarray(dq.values, dtype=np.int64)
    flat = values.ravel()
    bad = np.flatnonzero(flat)
    cols = values.shape[1]
    # a run starts where the previous flat pixel is not its left neighbour of equal value
    new = np.ones(bad.size, dtype=bool)
    if bad.size > 1:
        same_row = (bad[1:] // cols) == (bad[:-1] // cols)
        new[1:] = ~((bad[1:] == bad[:-1] + 1) & same_row & (flat[bad[1:]] == flat[bad[:-1]]))
    starts = bad[new]
    lengths = np.diff(np.append(np.flatnonzero(new), bad.size))
    rows, first_cols = np.divmod(starts, cols)
    table = Table(
        {
            "PIX1": (first_cols + 1).astype(np.int16),
            "PIX2": (rows + 1).astype(np.int16),
            "LENGTH": lengths.astype(np.int16),
            "AXIS": np.ones(starts.size, dtype=np.int16),
            "VALUE": flat[starts].astype(np.int16),
        }
    )
    table.meta.update({k: v for k, v in dq.attrs.items() if np.isscalar(v)})
    return table


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


def _temperature(db: PixelDB, numbers: list[int]) -> tuple[float, float] | None:
    """(REF_TEMP, DRK_VS_T) of the Side-2 scaling ``1/(1 + DRK_VS_T (OCCDHTAV - REF_TEMP))``
    the periods' darks went through, or None when they were not scaled (``off`` or
    unknown).  Periods that differ are refused: one file, one scaling."""
    found = {}
    for n in numbers:
        text = _period_text(db.dataset.sel(anneal=n), "temperature_correction")
        match = _TEMPERATURE.search(text)
        found[n] = None if match is None else (float(match.group(2)), float(match.group(1)))
    values = set(found.values())
    if len(values) > 1:
        msg = (
            f"periods {numbers} were scaled for temperature differently ({found}): calstis "
            "reads one REF_TEMP/DRK_VS_T per superdark; make one file per scaling"
        )
        raise ValueError(msg)
    return values.pop()


def _primary(
    db: PixelDB,
    numbers: list[int],
    keys: _Resolved,
    kind: str,
    rules: DQRules,
    counts: dict[str, int],
    attrs: dict,
    extra_history: list[str],
):
    from astropy.io import fits

    cube = cube_provenance(db, numbers)
    prov = provenance(
        inputs=[db.location.url], cube_version=cube["version"], checksums=cube["checksums"]
    )
    primary = fits.PrimaryHDU()
    hdr = primary.header
    dq_cards(hdr, attrs, rules, counts, numbers)
    cards: list[tuple[str, Any, str]] = [("FILETYPE", FILETYPES[kind], "reference file type")]
    if kind == "dark":
        cards += [
            ("CCDAMP", keys.ccdamp, "CCD amplifier (CRDS selection; ANY = all)"),
            ("CCDGAIN", keys.ccdgain, "commanded CCD gain (CRDS selection; -1 = any)"),
            ("CCDOFFST", -1, "CCD bias offset (-1 = any)"),
        ]
    cards += [
        ("OBSTYPE", "ANY", "observation type"),
        ("OPT_ELEM", "ANY", "optical element"),
        ("APERTURE", "ANY", "aperture"),
        ("BINAXIS1", 1, "binning along axis 1 (columns)"),
        ("BINAXIS2", 1, "binning along axis 2 (rows)"),
        ("USEAFTER", sybdate(keys.useafter), "use after this date (UTC)"),
        ("PEDIGREE", keys.pedigree, "origin of the data"),
        ("DESCRIP", keys.descrip, ""),
    ]
    history = list(extra_history)
    if kind == "dark":
        temperature = _temperature(db, numbers)
        if temperature is None:
            history.append("the darks were not scaled for temperature: no REF_TEMP/DRK_VS_T")
        else:
            cards += [
                ("REF_TEMP", temperature[0], "reference CCD housing temperature (deg C)"),
                ("DRK_VS_T", temperature[1], "dark rate change per deg C (fraction)"),
            ]
    for key, value, comment in cards:
        set_card(hdr, key, value, comment)
    for line in _history(db, numbers, rules, [f"USEAFTER: {keys.useafter_from}", *history]):
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
    """Write a STIS CCD reference file (atomically): the superdark or the BPIXTAB.

    Parameters
    ----------
    db : PixelDB
        The database.
    path : path-like
        The FITS file to write.
    kind : {"dark", "bpixtab"}
        The superdark (:func:`superdark`) or the persistent bad pixels
        (:func:`bad_pixel_table`), in the layouts of the module docstring.
    rules : DQRules, optional
        The DQ rules (default ``DQRules()``; the BPIXTAB needs persistence).
    anneals : int or sequence of int, optional
        The period or periods (default: the newest).  The file applies to the newest;
        a BPIXTAB takes exactly one period (its window is the rules' persistence).
    keywords : ReferenceKeywords, optional
        CRDS keywords (default: ``CCDAMP = 'ANY'``, ``CCDGAIN = -1``, ``USEAFTER`` the
        first dark of the period the file applies to).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError, TypeError
        A parameter or keyword is invalid (the message names it); nothing is written.
    FileExistsError
        *path* exists and *overwrite* is false.
    """
    from astropy.io import fits

    kind = one_of(kind, "kind", tuple(FILETYPES))
    rules = DQRules() if rules is None else instance_of(rules, "rules", DQRules)
    numbers = _periods(db, anneals)
    if kind == "bpixtab" and len(numbers) != 1:
        msg = (
            f"a BPIXTAB is made for one period (its window is the rules' persist_m), got "
            f"anneals={numbers}"
        )
        raise ValueError(msg)
    keys = _resolve(db, numbers, keywords, kind)
    path = target(path, overwrite)
    if kind == "bpixtab":
        table = bad_pixel_table(db, rules=rules, anneal=numbers[0])
        values = np.zeros(db.shape, dtype=np.uint16)  # counts from the table's runs
        lengths = np.asarray(table["LENGTH"], dtype=np.int64)
        first = (np.asarray(table["PIX2"], np.int64) - 1) * db.shape[1] + table["PIX1"] - 1
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        values.ravel()[np.repeat(first, lengths) + offsets] = np.repeat(table["VALUE"], lengths)
        counts = dq_counts(values, rules)
        text = [
            f"persistent bad pixels of period {numbers[0]}: flagged in >= {rules.persist_k} "
            f"of the last {rules.persist_m} periods (window "
            f"{','.join(str(n) for n in np.atleast_1d(table.meta['window_anneals']))})"
            if "window_anneals" in table.meta else
            f"persistent bad pixels of period {numbers[0]}",
            "PIX1/PIX2: 1-based column/row of the cube's (calibrated, unbinned) frame; "
            "runs along rows (AXIS=1)",
            *_categories_text(rules),
        ]
        primary = _primary(db, numbers, keys, kind, rules, counts, dict(table.meta), text)
        ext = fits.BinTableHDU(table.as_array(), name="BPIXTAB")
        hdus = [primary, ext]
    else:
        dark = superdark(db, rules=rules, anneals=numbers)
        counts = {k: int(dark.attrs[k]) for k in ("n_hot", "n_unstable", "n_both", "n_no_data")}
        counts["n_flagged"] = int(np.count_nonzero(dark["dq"].values))
        formulas = [
            "SCI = sum_p n_p sci_mean_p / N; ERR = sqrt(sum_p n_p err_mean_p^2) / N;",
            "N = sum_p n_p, n_p = n_darks_p - nan_count_p (usable samples); e-/s",
            f"DQ: the flags of period {numbers[-1]} (the period the file applies to)",
            *_categories_text(rules),
            f"  no usable sample -> {NO_DATA_BIT} (SCI = ERR = 0)",
        ]
        primary = _primary(db, numbers, keys, kind, rules, counts, dark.attrs, formulas)
        sci = fits.ImageHDU(data=dark["sci"].values.astype(">f4"), name="SCI", ver=1)
        err = fits.ImageHDU(data=dark["err"].values.astype(">f4"), name="ERR", ver=1)
        for hdu, what in ((sci, "dark rate"), (err, "standard error of the dark rate")):
            hdu.header["BUNIT"] = ("ELECTRONS/S", what)
        hdus = [primary, sci, err, dq_extension(dark["dq"].values)]
    primary.header["NEXTEND"] = (len(hdus) - 1, "number of extensions")
    write_hdus(fits.HDUList(hdus), path)
    logger.info("wrote %s reference of periods %s to %s (%s)", kind, numbers, path, counts)
    return path
