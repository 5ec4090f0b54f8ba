"""Exceptions of the :mod:`stores` package.

Every error raised on purpose by :mod:`stores` derives from :class:`StoreError`, and
each also derives from the closest built-in exception so that generic handlers
(``except KeyError``) keep working.  Messages name the store (path or URL) and the
problem, and where possible suggest the fix.
"""

from __future__ import annotations

__all__ = [
    "CorruptStoreError",
    "KeyNotFoundError",
    "NotAStoreError",
    "ReadOnlyStoreError",
    "SchemaMismatchError",
    "SliceExistsError",
    "StoreError",
    "StoreExistsError",
    "StoreLockedError",
    "StoreWriteError",
]


class StoreError(Exception):
    """Root of all errors raised by :mod:`stores`."""


class NotAStoreError(StoreError, FileNotFoundError):
    """The path or URL does not hold a store of the expected kind."""


class CorruptStoreError(StoreError, OSError):
    """The store exists but its metadata or data are damaged."""


class StoreExistsError(StoreError, FileExistsError):
    """A store was to be created where one (or other files) already exist."""


class StoreLockedError(StoreError, BlockingIOError):
    """Another writer holds the store's lock."""


class ReadOnlyStoreError(StoreError, PermissionError):
    """A write was attempted through a read-only handle."""


class SchemaMismatchError(StoreError, ValueError):
    """Data offered for writing do not match the store's schema (dims, shape, dtype, names)."""


class SliceExistsError(StoreError, ValueError):
    """An append names a label that the cube already holds (use ``replace``)."""


class KeyNotFoundError(StoreError, KeyError):
    """A requested key or label is not in the store."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class StoreWriteError(StoreError, OSError):
    """A write failed in the filesystem (for example the disk is full); nothing was committed.

    ``errno`` is that of the underlying :class:`OSError` (``errno.ENOSPC`` for a full disk).
    """
