"""Writing a cube store: the writer lock, slice validation and the commit of one slice.

Part of :class:`stores.CubeStore` (a base class of it).  Commit protocol: the slice is
written to a fresh slot (:class:`stores.storage.cube._slots.Slots`), then published by one
small version record (:class:`stores.storage.cube._log.VersionLog`); every
:data:`~stores.storage.cube._log.CHECKPOINT_EVERY` records, a checkpoint of the whole state.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import xarray as xr

from stores._exceptions import (
    CorruptStoreError,
    KeyNotFoundError,
    ReadOnlyStoreError,
    SchemaMismatchError,
    SliceExistsError,
)
from stores.common.validate import as_bool
from stores.storage.cube import _log
from stores.storage.cube._log import State
from stores.storage.cube.schema import sha256, validate_coords, validate_slice
from stores.storage.fs import write_errors
from stores.storage.locks import WriterLock

__all__: list[str] = []

logger = logging.getLogger("stores.storage.cube")

LOCK = ".lock"
FORMAT_VERSION = 2


class Writing:
    """The write methods of :class:`stores.CubeStore`."""

    _held: WriterLock | None  # the writer lock while this handle holds it

    # -- writing -------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Raise now the error a write through this handle would raise.

        For callers that validate and compute before they write (a read-only or pinned
        handle, or damage that blocks writes until :meth:`repair`): they fail before
        their work, not after it.  Takes no lock; the write checks again under it.

        Raises
        ------
        ReadOnlyStoreError, CorruptStoreError
        """
        self._check_writable()
        self._check_healthy()

    def _check_writable(self) -> None:
        if self._pinned is not None:
            msg = (
                f"cube store {self.location.url} was opened at version {self._pinned}; "
                "old versions are read-only"
            )
            raise ReadOnlyStoreError(msg)
        if self.mode == "r":
            msg = f"cube store {self.location.url} was opened read-only (mode='r')"
            raise ReadOnlyStoreError(msg)
        self.location.check_writable()

    def _check_healthy(self) -> None:
        if self._problems:
            raise CorruptStoreError(self._damage_message())
        if self.format_version < FORMAT_VERSION:
            msg = (
                f"cube store {self.location.url} is in format {self.format_version}; it is "
                "read as it is, but writes need `stiscube upgrade` (CubeStore.upgrade()) first"
            )
            raise CorruptStoreError(msg)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Any]:
        """Hold the writer lock across a caller's checks and its writes.

        ``with store.writing(): ...`` takes the store's writer lock (waiting up to
        ``lock_timeout``), refreshes the handle to the newest committed version, and
        keeps the lock until the block ends, so checks made inside the block see the
        state the writes inside it extend.  Re-entrant on the same handle (:meth:`append`
        and :meth:`replace` inside it do not lock again).  It also removes temporary
        files left by killed writers (in ``staging/`` and the uncommitted slot only).

        Raises
        ------
        ReadOnlyStoreError
            The handle is read-only, pinned to a version, or on a backend without an
            atomic lock.
        StoreLockedError
            Another writer holds the lock beyond ``lock_timeout``.
        CorruptStoreError
            The store needs :meth:`repair` (or :meth:`upgrade`) first.
        """
        self._check_writable()
        with self._handle_lock:
            if self._depth == 0:
                lock = WriterLock(self.location, LOCK, timeout=self.lock_timeout)
                lock.acquire()
                self._held = lock
            self._depth += 1
            try:
                if self._depth == 1:
                    self.refresh()
                    self._check_healthy()
                    first = self._state.slots_allocated
                    self._slots.clean(first, max(first + 1, self._slots_on_disk))
                yield self
            finally:
                self._depth -= 1
                if self._depth == 0:
                    held, self._held = self._held, None
                    if held is not None:
                        held.release()

    def commit(self, data: xr.Dataset, label, *, coords: Mapping | None = None,
               extras: Mapping | None = None, replace: bool = False) -> None:
        """Commit the slice *label*: a new one, or (``replace=True``) a new committed one.

        :meth:`append` and :meth:`replace` are this method with ``replace`` fixed.  A
        slice is written to a fresh slot, then published by one small version record:
        readers see the old state until it is complete, and a replaced slice's old
        values stay readable at the older versions (``CubeStore(url, version=n)``).

        Parameters
        ----------
        data : xarray.Dataset
            The slice: every schema variable with its fixed dims and sizes (a length-1
            append dimension is accepted and squeezed), in a dtype that casts safely to
            the stored one.  Values are computed if they are dask arrays.
        label : int or str
            The slice's label along the append dimension (an int must fit int64).
        coords : dict
            A value for each of the schema's ``slice_coords`` (datetimes must lie in the
            datetime64[ns] range, 1677-09-21 to 2262-04-11; they are refused, not wrapped).
        extras : dict, optional
            A JSON-serialisable document committed with the slice (read it back with
            :meth:`slice_extras`), for per-slice tables that do not fit a coordinate.
        replace : bool
            False: *label* must be new (:class:`~stores.SliceExistsError` otherwise).
            True: *label* must be committed (:class:`~stores.KeyNotFoundError` otherwise).

        Raises
        ------
        ReadOnlyStoreError, SchemaMismatchError, SliceExistsError, KeyNotFoundError,
        StoreLockedError
            Nothing is written in any of these cases.
        CorruptStoreError
            The store needs :meth:`repair` before it accepts writes.
        StoreWriteError
            The filesystem failed (for example the disk is full); nothing was committed.
        """
        replace = as_bool(replace, "replace")
        self._check_writable()
        key = self._label(label)
        where = f"{self.append_dim} {key!r} for {self.location.url}"
        values = validate_slice(self.schema, data, where)
        encoded = validate_coords(self.schema, coords or {}, where)
        extras_doc = None
        if extras is not None:
            try:
                extras_doc = json.dumps(extras, sort_keys=True, allow_nan=False).encode()
            except (TypeError, ValueError) as exc:
                msg = f"{self.append_dim} {key!r}: extras are not JSON-serialisable ({exc})"
                raise SchemaMismatchError(msg) from exc
        if self._depth == 0:
            self._check_healthy()
            self._check_presence(self._state, key, replace=replace)  # early, before locking
        sums = {name: sha256(v) for name, v in values.items()}
        with self.writing():
            base = self._state  # the newest: refreshed under the lock
            self._check_presence(base, key, replace=replace)
            slot = base.slots_allocated
            with write_errors(f"cube store {self.location.url}"):
                written = self._slots.write(slot, values, key, extras_doc)
                now = _log.now()
                entry = {"slot": slot, "coords": encoded, "sha256": sums, **written,
                         "committed": now}
                action = "replace" if replace else "append"
                body = _log.record(
                    base, sequence=base.sequence + 1, slots_allocated=slot + 1,
                    change={"action": action, "label": key, "time": now},
                    slices={key: entry},
                    retire=(base.slices[key]["slot"],) if replace else (),
                )
                self._log.publish(body)
            self._state = _log.apply(base, body)
            self._checkpoint()
        logger.info("%sd %s %r in %s (slot %d, version %d)", action, self.append_dim, key,
                    self.location.url, slot, self._state.sequence)

    def _checkpoint(self) -> None:
        """Write a checkpoint at every multiple of CHECKPOINT_EVERY (or when as many
        records were read since the last one).

        The version is committed already: a failure is logged and retried next commit.
        """
        state = self._state
        if state.sequence % _log.CHECKPOINT_EVERY and state.depth < _log.CHECKPOINT_EVERY:
            return
        try:
            self._log.checkpoint(state, self._log.listing(self._created))
        except OSError as exc:
            logger.warning("%s: checkpoint of version %d not written (%s); retried at the "
                           "next commit", self.location.url, self._state.sequence, exc)
            return
        self._state.depth = 0

    def append(self, data: xr.Dataset, label, **options: Any) -> None:
        """Commit a new slice labelled *label*: :meth:`commit` with ``replace=False``.

        *options* are :meth:`commit`'s ``coords`` and ``extras``; a *label* already
        committed raises :class:`~stores.SliceExistsError` (use :meth:`replace`).
        """
        self.commit(data, label, **options, replace=False)

    def replace(self, data: xr.Dataset, label, **options: Any) -> None:
        """Atomically replace the committed slice *label*: :meth:`commit` with ``replace=True``.

        *options* are :meth:`commit`'s ``coords`` and ``extras``; a *label* not committed
        raises :class:`~stores.KeyNotFoundError` (use :meth:`append`).
        """
        self.commit(data, label, **options, replace=True)

    def _check_presence(self, state: State, key, *, replace: bool) -> None:
        present = key in state.slices
        if replace and not present:
            msg = (
                f"cannot replace {self.append_dim} {key!r} in {self.location.url}: it is not "
                f"committed (held: {sorted(state.slices)}); use append"
            )
            raise KeyNotFoundError(msg)
        if not replace and present:
            msg = (
                f"{self.append_dim} {key!r} is already in {self.location.url}; "
                "use replace to overwrite it"
            )
            raise SliceExistsError(msg)

