"""Conversion of the date forms accepted by :mod:`stiscube` and :mod:`cte` to MJD (UTC).

Accepted forms, scalar or array-like: strings ``'YYYY-MM-DD'``, ``'YYYY-MM-DD HH:MM:SS'``
(optionally with fractional seconds or a ``T`` separator), :class:`datetime.datetime`
(naive = UTC; aware ones are converted to UTC), :class:`datetime.date`,
:class:`numpy.datetime64`, :class:`pandas.Timestamp`, :class:`astropy.time.Time`, and
numbers, taken as a Modified Julian Date (MJD, days).

The MJD used throughout is the one in HST headers (``TEXPSTRT``, ``EXPSTART``)::

    MJD = (t - 1858-11-17T00:00:00) / 86400 s

computed on a microsecond grid with :mod:`numpy` ``datetime64`` arithmetic, so that the
same instant given as a string, a datetime or a Time converts to the *same* float and
period boundaries (``start <= date < end``) behave exactly.  Leap seconds are ignored (a
UTC day is 86400 s), as in the HST header convention.

The way back, :func:`mjd_to_datetime64`, gives the latest microsecond whose MJD is not
after the number given, so ``to_mjd(mjd_to_datetime64(m)) <= m`` always holds (equality
for instants on the microsecond grid): a period that starts at a frame's own start
(rounded this way) contains that frame.

Dates must lie in the range of ``datetime64[ns]`` (1677-09-22 to 2262-04-11), the type
the cube stores; others are refused with :class:`ValueError` instead of wrapping round.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["datetime64_to_mjd", "describe_mjd", "mjd_to_datetime64", "to_mjd"]

_MJD_EPOCH = np.datetime64("1858-11-17T00:00:00", "us")
_US_PER_DAY = 86_400_000_000
_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?$")
#: the range of datetime64[ns], in which every date must lie (whole days inside it)
_FIRST = np.datetime64("1677-09-22T00:00:00", "us")
_LAST = np.datetime64("2262-04-11T00:00:00", "us")
_ACCEPTED = (
    "'YYYY-MM-DD', 'YYYY-MM-DD HH:MM:SS', a datetime, a numpy datetime64, an astropy Time "
    "or an MJD number"
)


def datetime64_to_mjd(value: np.ndarray | np.datetime64) -> np.ndarray | float:
    """MJD (float64 days) of numpy ``datetime64`` values, on a microsecond grid.

    Parameters
    ----------
    value : numpy.datetime64 or numpy.ndarray
        The instants (UTC).
    """
    us = np.asarray(value).astype("datetime64[us]")
    if np.any(np.isnat(us)):
        msg = f"date {value!r} is not a time (NaT); expected {_ACCEPTED}"
        raise ValueError(msg)
    _check_range(np.asarray(value), us)
    mjd = _us_to_mjd((us - _MJD_EPOCH).astype(np.int64))
    return float(mjd) if mjd.ndim == 0 else mjd


def _check_range(original: Any, us: np.ndarray) -> None:
    _refuse_outside((us < _FIRST) | (us > _LAST), lambda: original)


def _refuse_outside(outside: np.ndarray, shown: Callable[[], Any]) -> None:
    """ValueError naming the first date of ``shown()`` (same shape) where *outside* holds."""
    if np.any(outside):
        first = np.asarray(shown()).ravel()[np.flatnonzero(np.ravel(outside))[0]]
        msg = (
            f"date {first!s} is outside the supported range {_FIRST.astype('datetime64[D]')} "
            f"to {_LAST.astype('datetime64[D]')} (that of datetime64[ns])"
        )
        raise ValueError(msg)


def _us_to_mjd(offset: np.ndarray) -> np.ndarray:
    days, rest = np.divmod(offset, _US_PER_DAY)
    return days.astype(np.float64) + rest.astype(np.float64) / _US_PER_DAY


def mjd_to_datetime64(mjd: Any) -> np.ndarray | np.datetime64:
    """``datetime64[us]`` (UTC) of MJD values: the latest microsecond not after each.

    The inverse of :func:`datetime64_to_mjd` on the microsecond grid; for other
    numbers ``datetime64_to_mjd(mjd_to_datetime64(m)) <= m`` (never a later instant).
    Non-finite values give NaT.

    Parameters
    ----------
    mjd : float or array_like
        MJD (UTC, days).
    """
    arr = np.asarray(mjd, dtype=np.float64)
    finite = np.isfinite(arr)
    arr = np.where(finite, arr, 0.0)  # NaN and inf become NaT below
    whole = np.floor(arr)
    us = whole.astype(np.int64) * _US_PER_DAY + np.floor((arr - whole) * _US_PER_DAY).astype(
        np.int64
    )
    # the product above is rounded: step back or forward by one microsecond where needed
    us = np.where(_us_to_mjd(us) > arr, us - 1, us)
    us = np.where(_us_to_mjd(us + 1) <= arr, us + 1, us)
    out = np.where(finite, _MJD_EPOCH + us.astype("timedelta64[us]"), np.datetime64("NaT", "us"))
    return out[()] if out.ndim == 0 else out


def describe_mjd(mjd: float) -> str:
    """Readable form of one MJD for messages: ``'2017-09-26 13:04:04 (MJD 58022.54449)'``.

    Parameters
    ----------
    mjd : float
        MJD (UTC, days).
    """
    stamp = str(mjd_to_datetime64(mjd).astype("datetime64[s]")).replace("T", " ")
    return f"{stamp} (MJD {mjd:.5f})"


def _string_to_datetime64(values: np.ndarray) -> np.ndarray:
    flat = values.ravel()
    for item in flat:
        if not _DATE_PATTERN.match(str(item)):
            msg = f"date {str(item)!r} is not in an accepted form: expected {_ACCEPTED}"
            raise ValueError(msg)
    iso = np.char.replace(flat.astype(str), " ", "T")
    try:
        parsed = iso.astype("datetime64[us]")
    except ValueError as exc:
        msg = f"date {str(flat[0]) if flat.size == 1 else list(flat)!r} is not a valid date: {exc}"
        raise ValueError(msg) from exc
    return parsed.reshape(values.shape)


def _datetime_to_datetime64(value: _dt.date) -> np.datetime64:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.UTC).replace(tzinfo=None)
        return np.datetime64(value, "us")
    return np.datetime64(value, "D").astype("datetime64[us]")


def to_mjd(value: Any) -> float | np.ndarray:
    """Convert one date or an array-like of dates to MJD (UTC, float64 days).

    Parameters
    ----------
    value : str, datetime.date, datetime.datetime, numpy.datetime64, pandas.Timestamp, \
astropy.time.Time, float, int, or an array-like of one of these
        The date(s).  Numbers are MJD.  Strings must look like ``'YYYY-MM-DD'`` or
        ``'YYYY-MM-DD HH:MM:SS[.fff]'`` (``T`` also accepted as separator).

    Returns
    -------
    float or numpy.ndarray
        MJD in days; a float for scalar input, an array of the input's shape otherwise.

    Raises
    ------
    ValueError
        For strings that are not such dates, invalid calendar dates, NaT and non-finite MJD.
    TypeError
        For values of any other type (``None``, booleans, ...).
    """
    from astropy.time import Time  # imported here: astropy.time is slow to import

    if isinstance(value, Time):
        return _time_to_mjd(value)
    if isinstance(value, str):
        return datetime64_to_mjd(_string_to_datetime64(np.asarray(value))[()])
    if isinstance(value, _dt.date):  # includes datetime and pandas.Timestamp
        to_dt64 = getattr(value, "to_datetime64", None)
        if to_dt64 is not None and getattr(value, "tzinfo", None) is None:
            return datetime64_to_mjd(to_dt64())
        return datetime64_to_mjd(_datetime_to_datetime64(value))
    if isinstance(value, np.datetime64):
        return datetime64_to_mjd(value)
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return _check_mjd(np.float64(value), value)
    if isinstance(value, np.ndarray | list | tuple) or (
        isinstance(value, Iterable) and hasattr(value, "__array__")
    ):
        return _array_to_mjd(value)
    msg = f"date {value!r} has an unsupported type {type(value).__name__}; expected {_ACCEPTED}"
    raise TypeError(msg)


def _time_to_mjd(value: Any) -> float | np.ndarray:
    import warnings

    from erfa import ErfaWarning

    with warnings.catch_warnings():  # "dubious year": refused below if out of range
        warnings.simplefilter("ignore", ErfaWarning)
        mjd = np.asarray(value.utc.mjd, dtype=np.float64)
        # refused before .datetime64, which wraps round outside its range (NaN refused too)
        _refuse_outside(~((mjd >= _MJD_FIRST) & (mjd <= _MJD_LAST)), lambda: value.utc.iso)
        return datetime64_to_mjd(value.utc.datetime64)


#: MJD of the first and last supported instants
_MJD_FIRST = float(_us_to_mjd(np.int64((_FIRST - _MJD_EPOCH).astype(np.int64))))
_MJD_LAST = float(_us_to_mjd(np.int64((_LAST - _MJD_EPOCH).astype(np.int64))))


def _check_mjd(mjd: Any, original: Any) -> Any:
    if not np.all(np.isfinite(mjd)):
        msg = f"MJD {original!r} is not finite; expected {_ACCEPTED}"
        raise ValueError(msg)
    if np.any((mjd < _MJD_FIRST) | (mjd > _MJD_LAST)):
        msg = (
            f"MJD {original!r} is outside the supported range {_MJD_FIRST:g} to "
            f"{_MJD_LAST:g} ({_FIRST.astype('datetime64[D]')} to "
            f"{_LAST.astype('datetime64[D]')}, that of datetime64[ns])"
        )
        raise ValueError(msg)
    return float(mjd) if np.ndim(mjd) == 0 else mjd


def _array_to_mjd(value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        return np.asarray(datetime64_to_mjd(_string_to_datetime64(arr)))
    if arr.dtype.kind == "M":
        return np.asarray(datetime64_to_mjd(arr))
    if arr.dtype.kind in "iuf":
        return np.asarray(_check_mjd(arr.astype(np.float64), value))
    if arr.dtype.kind == "O":
        flat = [to_mjd(item) for item in arr.ravel()]
        return np.asarray(flat, dtype=np.float64).reshape(arr.shape)
    msg = f"dates of dtype {arr.dtype} are not supported; expected {_ACCEPTED}"
    raise TypeError(msg)
