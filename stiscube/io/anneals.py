"""Anneal periods of the STIS CCD: the table, and date -> period lookup.

The STIS CCD is annealed about once a month; the pixel properties of
:mod:`stiscube.properties.compute` are computed per *anneal period*, the interval between two
anneals.  An :class:`AnnealTable` holds one row per period with the columns of the
STScI "STIS Annealing Periods" table (``number, start, end, duration, num,
exposure_time, darks``) and maps dates to periods with the rule::

    period(date) = the period p with  p.start <= date < p.end

Dates are compared as MJD (UTC) through :func:`stores.common.dates.to_mjd`, so strings,
datetimes, numpy datetime64, astropy Time and MJD numbers all work, as scalars or arrays.

Two sources of tables:

- :meth:`AnnealTable.read` of the STScI CSV layout (real rows, e.g.
  ``anneal_periods_1997.csv``) or of an ECSV file written by :meth:`AnnealTable.write`
  (which keeps the metadata, e.g. ``simulated: true``);
- :func:`stiscube.datasets.simulate.simulate_darks`, whose tables are labelled
  ``meta["simulated"] = True``.  No real-world schedule is fabricated by this package.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stiscube.exceptions import AnnealPeriodError, AnnealTableError
from stores.common.dates import describe_mjd, mjd_to_datetime64, to_mjd

__all__ = ["COLUMNS", "AnnealPeriod", "AnnealTable", "format_exposure_mix", "parse_exposure_mix"]

logger = logging.getLogger(__name__)

#: Columns of the STScI table layout, in order.
COLUMNS: tuple[str, ...] = ("number", "start", "end", "duration", "num", "exposure_time", "darks")
_MIX_ITEM = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+(?:\.\d*)?)\s*(?:s|sec|secs|seconds)\s*$")
#: separators of the items of an exposure-mix cell: " / " or line breaks (the STScI page
#: puts each item on its own line; a copied table keeps them as newlines or <br>)
_MIX_SEPARATOR = re.compile(r"/|\r\n|\n|\r|<br\s*/?>", re.IGNORECASE)
_DURATION_TOLERANCE_S = 1.0


def parse_exposure_mix(text: str) -> dict[float, int]:
    """Parse an ``exposure_time`` cell such as ``'23 x 1800 s / 2 x 1000 s'``.

    Items are separated by ``/`` or by line breaks (``'23 x 1800 s\n2 x 1000 s'``, the
    layout of the STScI anneal page); blank lines are ignored.

    Parameters
    ----------
    text : str
        The cell.

    Returns
    -------
    dict
        Exposure time in seconds -> number of darks with that exposure time (an empty
        dict for an empty cell).

    Raises
    ------
    ValueError
        If an item is not of the form ``'<count> x <seconds> s'``.
    """
    mix: dict[float, int] = {}
    if not text or not text.strip():
        return mix
    for item in _MIX_SEPARATOR.split(text):
        if not item.strip():
            continue
        match = _MIX_ITEM.match(item)
        if match is None:
            msg = f"exposure_time item {item.strip()!r} is not of the form '<count> x <seconds> s'"
            raise ValueError(msg)
        seconds = float(match.group(2))
        mix[seconds] = mix.get(seconds, 0) + int(match.group(1))
    return mix


def format_exposure_mix(exptimes: Sequence[float]) -> str:
    """The ``exposure_time`` cell for a list of exposure times, e.g. ``'18 x 1100 s / 2 x 60 s'``.

    Longest exposure first; times are written as integers when they are whole seconds.

    Parameters
    ----------
    exptimes : sequence of float
        Exposure times, seconds.

    Returns
    -------
    str
        The cell.
    """
    values, counts = np.unique(np.asarray(exptimes, dtype=np.float64), return_counts=True)
    items = []
    for value, count in sorted(zip(values, counts, strict=True), key=lambda vc: -vc[0]):
        text = f"{int(value)}" if float(value).is_integer() else f"{value:g}"
        items.append(f"{int(count)} x {text} s")
    return " / ".join(items)


@dataclass(frozen=True)
class AnnealPeriod:
    """One anneal period (one row of an :class:`AnnealTable`).

    Parameters
    ----------
    number : int
        The anneal period number.
    start_mjd, end_mjd : float
        Start (inclusive) and end (exclusive) as MJD (UTC), days.
    num : int or None
        Number of darks taken in the period (``None`` if the table does not say).
    exposure_time : str
        The exposure mix as written in the table, e.g. ``'23 x 1800 s / 2 x 1000 s'``.
    darks : tuple of str
        Rootnames of the period's darks (may be empty: the STScI table lists them only
        for some periods).
    """

    number: int
    start_mjd: float
    end_mjd: float
    num: int | None = None
    exposure_time: str = ""
    darks: tuple[str, ...] = field(default_factory=tuple)

    @property
    def start(self) -> np.datetime64:
        """Start of the period, UTC ``datetime64[us]``."""
        return mjd_to_datetime64(self.start_mjd)

    @property
    def end(self) -> np.datetime64:
        """End of the period (exclusive), UTC ``datetime64[us]``."""
        return mjd_to_datetime64(self.end_mjd)

    def describe(self) -> str:
        """``'period 200 [2017-09-26 00:00:00 (MJD ...), 2017-10-25 ... )'`` for messages."""
        start, end = describe_mjd(self.start_mjd), describe_mjd(self.end_mjd)
        return f"period {self.number} [{start}, {end})"


class AnnealTable:
    """A table of anneal periods with date -> period lookup.

    Parameters
    ----------
    periods : sequence of AnnealPeriod
        The periods; they are sorted by start date.  Numbers must be unique, every period
        must end after it starts, and periods must not overlap (gaps are allowed: dates
        in a gap belong to no period).
    meta : mapping, optional
        Free metadata kept with the table, e.g. ``{"simulated": True, "source": ...}``.
    source : str, optional
        Name used in error messages (a file name, usually).

    Raises
    ------
    AnnealTableError
        For duplicate numbers, non-positive durations or overlapping periods.
    """

    def __init__(
        self,
        periods: Sequence[AnnealPeriod],
        *,
        meta: Mapping[str, Any] | None = None,
        source: str = "anneal table",
    ) -> None:
        self._source = source
        self.meta: dict[str, Any] = dict(meta or {})
        ordered = sorted(periods, key=lambda p: (p.start_mjd, p.number))
        if not ordered:
            msg = f"{source}: the table holds no anneal periods"
            raise AnnealTableError(msg)
        numbers = [p.number for p in ordered]
        seen: set[int] = set()
        for n in numbers:
            if n in seen:
                msg = f"{source}: anneal period number {n} appears more than once"
                raise AnnealTableError(msg)
            seen.add(n)
        for p in ordered:
            if not p.end_mjd > p.start_mjd:
                msg = (
                    f"{source}: period {p.number} ends ({describe_mjd(p.end_mjd)}) "
                    f"before or when it starts ({describe_mjd(p.start_mjd)})"
                )
                raise AnnealTableError(msg)
        for prev, nxt in itertools.pairwise(ordered):
            if nxt.start_mjd < prev.end_mjd:
                msg = (
                    f"{source}: periods {prev.number} and {nxt.number} overlap "
                    f"(period {prev.number} ends {describe_mjd(prev.end_mjd)}, "
                    f"period {nxt.number} starts {describe_mjd(nxt.start_mjd)})"
                )
                raise AnnealTableError(msg)
        self._periods: tuple[AnnealPeriod, ...] = tuple(ordered)
        self._starts = np.array([p.start_mjd for p in ordered], dtype=np.float64)
        self._ends = np.array([p.end_mjd for p in ordered], dtype=np.float64)
        self._numbers = np.array(numbers, dtype=np.int64)
        self._by_number = {p.number: p for p in ordered}

    # -- construction -------------------------------------------------------------------
    @classmethod
    def read(cls, path: str | os.PathLike[str], *, name: str | None = None) -> AnnealTable:
        """Read a table: ``.ecsv`` as written by :meth:`write`, otherwise the STScI CSV layout.

        Parameters
        ----------
        path : path-like
            The file.
        name : str, optional
            How messages and the table's source name the file (default: *path*), e.g.
            the URL of a table read from a local copy.

        Returns
        -------
        AnnealTable
            The table.

        Raises
        ------
        AnnealTableError
            If the file lacks a column of :data:`COLUMNS`, or a cell cannot be parsed.
        FileNotFoundError
            If the file does not exist.
        """
        path = os.fspath(path)
        name = path if name is None else name
        if not os.path.exists(path):
            msg = f"anneal table {name} does not exist"
            raise FileNotFoundError(msg)
        if path.lower().endswith(".ecsv"):
            from astropy.table import Table

            try:
                table = Table.read(path, format="ascii.ecsv")
            except Exception as exc:  # astropy raises several kinds for a damaged header
                msg = f"anneal table {name}: not a readable ECSV table ({exc})"
                raise AnnealTableError(msg) from exc
            frame = pd.DataFrame(
                {name: [_cell_text(v) for v in table[name]] for name in table.colnames}
            )
            meta = {str(k): v for k, v in table.meta.items() if k != "num_missing_value"}
            return cls.from_dataframe(frame, meta=meta, source=name)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return cls.from_dataframe(frame, meta={"simulated": False, "source": name}, source=name)

    @classmethod
    def from_dataframe(
        cls,
        frame: pd.DataFrame,
        *,
        meta: Mapping[str, Any] | None = None,
        source: str = "anneal table",
    ) -> AnnealTable:
        """Build a table from a DataFrame with the STScI columns (cells as text or values).

        ``start``/``end`` are dates (``'YYYY-MM-DD HH:MM:SS'``), ``duration`` a pandas
        timedelta string (``'30 days 02:17:41'``, checked against ``end - start``),
        ``num`` an integer (may be empty), ``exposure_time`` the exposure mix and
        ``darks`` comma-separated rootnames (may be empty).  Inconsistencies between
        ``duration`` and the dates, or between ``num`` and the exposure mix or the list
        of darks, are logged as warnings, not raised (the published table is the truth).

        Parameters
        ----------
        frame : pandas.DataFrame
            The columns :data:`COLUMNS`.
        meta : mapping, optional
            The table's metadata (``simulated``, source URL, ...).
        source : str
            How messages name the table.

        Returns
        -------
        AnnealTable
            The table.
        """
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            msg = (
                f"{source}: missing column(s) {missing}; an anneal table needs the columns "
                f"{list(COLUMNS)} (found {list(frame.columns)})"
            )
            raise AnnealTableError(msg)
        periods = []
        for index, row in enumerate(frame.itertuples(index=False)):
            periods.append(_parse_row(row._asdict(), index, source))
        return cls(periods, meta=meta, source=source)

    # -- access -------------------------------------------------------------------------
    @property
    def simulated(self) -> bool:
        """Whether the table is labelled as simulated (``meta["simulated"]``)."""
        return bool(self.meta.get("simulated", False))

    @property
    def numbers(self) -> np.ndarray:
        """Period numbers, in order of start date."""
        return self._numbers.copy()

    @property
    def start_mjd(self) -> np.ndarray:
        """Period starts (MJD), in order of start date."""
        return self._starts.copy()

    @property
    def end_mjd(self) -> np.ndarray:
        """Period ends (MJD, exclusive), in order of start date."""
        return self._ends.copy()

    def __len__(self) -> int:
        return len(self._periods)

    def __iter__(self) -> Iterator[AnnealPeriod]:
        return iter(self._periods)

    def __contains__(self, number: object) -> bool:
        return number in self._by_number

    def __getitem__(self, number: int) -> AnnealPeriod:
        """The period with this number.

        Raises
        ------
        AnnealPeriodError
            If the table holds no such period.
        """
        try:
            return self._by_number[int(number)]
        except (KeyError, TypeError, ValueError):
            msg = (
                f"{self._source}: no anneal period number {number!r}; the table holds "
                f"{self._describe_numbers()}"
            )
            raise AnnealPeriodError(msg) from None

    def __repr__(self) -> str:
        label = "simulated " if self.simulated else ""
        return (
            f"<AnnealTable: {len(self)} {label}periods ({self._describe_numbers()}), "
            f"{describe_mjd(self._starts[0])} to {describe_mjd(self._ends[-1])}>"
        )

    def _describe_numbers(self) -> str:
        nums = sorted(self._by_number)
        if len(nums) > 6:
            return f"numbers {nums[0]}..{nums[-1]}"
        return f"numbers {nums}"

    # -- lookup -------------------------------------------------------------------------
    def lookup(self, dates: Any) -> int | np.ndarray:
        """Number of the period holding each date (``start <= date < end``).

        Parameters
        ----------
        dates : date or array-like of dates
            Any form accepted by :func:`stores.common.dates.to_mjd`.

        Returns
        -------
        int or numpy.ndarray of int64
            An int for a scalar date, an array of the input's shape otherwise.

        Raises
        ------
        AnnealPeriodError
            If any date lies outside every period (before the first, after the last, or
            in a gap); the message names the first such date and the table's coverage.
        """
        mjd = np.asarray(to_mjd(dates), dtype=np.float64)
        index = np.searchsorted(self._starts, mjd, side="right") - 1
        safe = np.clip(index, 0, len(self._periods) - 1)
        inside = (index >= 0) & (mjd < self._ends[safe])
        if not np.all(inside):
            bad = float(mjd.ravel()[np.flatnonzero(~inside.ravel())[0]])
            msg = (
                f"{self._source}: date {describe_mjd(bad)} is in no anneal period; the table "
                f"covers {describe_mjd(self._starts[0])} to {describe_mjd(self._ends[-1])}"
                + (" with gaps" if np.any(self._starts[1:] > self._ends[:-1]) else "")
            )
            raise AnnealPeriodError(msg)
        numbers = self._numbers[safe]
        return int(numbers) if numbers.ndim == 0 else numbers

    def period_at(self, date: Any) -> AnnealPeriod:
        """The :class:`AnnealPeriod` holding one date (see :meth:`lookup`).

        Parameters
        ----------
        date : date-like
            One date.

        Returns
        -------
        AnnealPeriod
            Its period.
        """
        number = self.lookup(date)
        if not isinstance(number, int):
            msg = f"period_at takes one date, got an array of shape {np.shape(number)}"
            raise ValueError(msg)
        return self._by_number[number]

    # -- output -------------------------------------------------------------------------
    def to_pandas(self) -> pd.DataFrame:
        """The table as a DataFrame: the STScI columns (dates as ``datetime64``,
        ``duration`` as timedelta, ``darks`` as tuples) plus ``start_mjd``/``end_mjd``."""
        return pd.DataFrame(
            {
                "number": self._numbers,
                "start": mjd_to_datetime64(self._starts),
                "end": mjd_to_datetime64(self._ends),
                "duration": mjd_to_datetime64(self._ends) - mjd_to_datetime64(self._starts),
                "num": pd.array([p.num for p in self._periods], dtype="Int64"),
                "exposure_time": [p.exposure_time for p in self._periods],
                "darks": [p.darks for p in self._periods],
                "start_mjd": self._starts,
                "end_mjd": self._ends,
            }
        )

    def write(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the table as ECSV with the STScI columns and :attr:`meta` in the header.

        Parameters
        ----------
        path : path-like
            The ECSV file.
        overwrite : bool
            Replace an existing file.
        """
        from astropy.table import Table

        frame = self.to_pandas()
        table = Table(
            {
                "number": frame["number"].to_numpy(),
                "start": [_format_date(v) for v in self._starts],
                "end": [_format_date(v) for v in self._ends],
                "duration": [str(pd.Timedelta(d)) for d in frame["duration"]],
                "num": [-1 if p.num is None else p.num for p in self._periods],
                "exposure_time": list(frame["exposure_time"]),
                "darks": [", ".join(d) for d in frame["darks"]],
            },
            meta={**self.meta, "num_missing_value": -1},
        )
        table.write(os.fspath(path), format="ascii.ecsv", overwrite=overwrite)


def _cell_text(value: Any) -> str:
    """Text of one ECSV cell; masked (empty) cells become ``''``."""
    return "" if np.ma.is_masked(value) else str(value)


def _format_date(mjd: float) -> str:
    value = mjd_to_datetime64(mjd)
    text = str(value.astype("datetime64[s]")) if value == value.astype("datetime64[s]") else str(
        value
    )
    return text.replace("T", " ")


def _parse_row(row: Mapping[str, Any], index: int, source: str) -> AnnealPeriod:
    where = f"{source}, row {index + 1}"
    try:
        number = int(str(row["number"]).strip())
    except ValueError:
        msg = f"{where}: number {row['number']!r} is not an integer"
        raise AnnealTableError(msg) from None
    where = f"{source}, period {number}"
    try:
        start = float(to_mjd(str(row["start"]).strip()))
        end = float(to_mjd(str(row["end"]).strip()))
    except (TypeError, ValueError) as exc:
        msg = f"{where}: {exc}"
        raise AnnealTableError(msg) from exc
    num_text = str(row["num"]).strip()
    num: int | None
    if num_text in ("", "-1"):
        num = None
    else:
        try:
            num = int(num_text)
        except ValueError:
            msg = f"{where}: num {num_text!r} is not an integer"
            raise AnnealTableError(msg) from None
    exposure_time = str(row["exposure_time"]).strip()
    try:
        mix = parse_exposure_mix(exposure_time)
    except ValueError as exc:
        msg = f"{where}: {exc}"
        raise AnnealTableError(msg) from exc
    darks_text = str(row["darks"]).strip()
    darks = tuple(d.strip() for d in darks_text.split(",") if d.strip()) if darks_text else ()
    duration_text = str(row["duration"]).strip()
    if duration_text:
        try:
            duration_s = pd.Timedelta(duration_text).total_seconds()
        except ValueError:
            msg = f"{where}: duration {duration_text!r} is not a time interval"
            raise AnnealTableError(msg) from None
        if abs(duration_s - (end - start) * 86400.0) > _DURATION_TOLERANCE_S:
            logger.warning(
                "%s: duration %s differs from end - start (%.0f s)",
                where,
                duration_text,
                (end - start) * 86400.0,
            )
    if num is not None and mix and sum(mix.values()) != num:
        logger.warning("%s: num=%d but exposure_time lists %d darks", where, num, sum(mix.values()))
    if num is not None and darks and len(darks) != num:
        logger.warning("%s: num=%d but %d dark rootnames are listed", where, num, len(darks))
    return AnnealPeriod(number=number, start_mjd=start, end_mjd=end, num=num,
                        exposure_time=exposure_time, darks=darks)
