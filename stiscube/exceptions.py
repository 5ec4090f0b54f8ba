"""Exceptions of the :mod:`stiscube` package.

Every error raised on purpose by :mod:`stiscube` derives from :class:`StiscubeError`, and
each child also derives from the closest built-in exception so that generic handlers
(``except ValueError``, ``except LookupError``) keep working.  Messages name the file
(or the date, or the table) and the problem, and where possible suggest the fix.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AnnealPeriodError",
    "AnnealTableError",
    "CubeQueryError",
    "IncompatibleDarksError",
    "InvalidDarkError",
    "MixedDarksError",
    "PeriodExistsError",
    "SeedCSVError",
    "StiscubeError",
    "TooFewDarksError",
    "UnitMismatchError",
]


class StiscubeError(Exception):
    """Root of all errors raised by :mod:`stiscube`."""


class InvalidDarkError(StiscubeError, ValueError):
    """One file is not a usable STIS CCD dark frame.

    Raised for a missing, truncated or non-FITS file, a frame that is not a STIS CCD
    dark, a missing SCI/ERR/DQ extension, an unsupported data layout, a non-positive
    exposure time or gain, and a frame dated outside the anneal period it is assigned to.
    """


class IncompatibleDarksError(StiscubeError, ValueError):
    """Dark frames that are each valid cannot be stacked together.

    Raised for binned or subarray frames mixed with full frames, frames of different
    shapes, and two files with the same rootname.
    """


class MixedDarksError(IncompatibleDarksError):
    """The frames of one period differ in CCDGAIN, CCDAMP, binning or exposure class.

    ``groups`` maps each group's description to its number of frames.
    """

    def __init__(self, message: str, groups: Mapping[str, int] | None = None) -> None:
        super().__init__(message)
        self.groups = dict(groups or {})


class TooFewDarksError(IncompatibleDarksError):
    """A period has fewer usable frames than the minimum (``DarkSelection.min_frames``)."""


class AnnealTableError(StiscubeError, ValueError):
    """An anneal-period table is malformed (columns, dates, overlaps, duplicates)."""


class AnnealPeriodError(StiscubeError, LookupError):
    """A date lies outside every anneal period of a table, or a period is unknown."""

    def __str__(self) -> str:  # LookupError subclasses may quote; keep it readable
        return str(self.args[0]) if self.args else ""


class SeedCSVError(StiscubeError, ValueError):
    """A seed-layout CSV file (``anneal_{N}.csv``) is missing or malformed."""


class CubeQueryError(StiscubeError, LookupError):
    """A query names a pixel outside the frame, or a period or date the cube lacks."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PeriodExistsError(StiscubeError, ValueError):
    """A period is already in the cube and ``replace=True`` was not given."""


class UnitMismatchError(StiscubeError, ValueError):
    """An operation would combine periods stored in different unit systems."""
