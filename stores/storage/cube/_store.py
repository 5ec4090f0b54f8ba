"""The façade of a cube store: :class:`CubeStore` (open, read, commit, maintain)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from os import PathLike
from typing import Any

import numpy as np

from stores._exceptions import (
    CorruptStoreError,
    KeyNotFoundError,
    NotAStoreError,
    ReadOnlyStoreError,
    SchemaMismatchError,
    StoreExistsError,
)
from stores.common.validate import as_bool, as_float, as_int, instance_of
from stores.storage.cube import _log, _maintenance
from stores.storage.cube._log import CHECKPOINTS, Damaged, State, VersionLog
from stores.storage.cube._reading import Reading
from stores.storage.cube._slots import STAGING, Slots, create_arrays
from stores.storage.cube._writing import FORMAT_VERSION, LOCK, Writing
from stores.storage.cube.schema import (
    CubeSchema,
)
from stores.storage.fs import Location, write_errors
from stores.storage.locks import LOCK_TIMEOUT, WriterLock, break_lock, lock_holder

__all__ = ["CubeStore"]

logger = logging.getLogger(__name__)

MARKER = "cubestore.json"
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


class CubeStore(Reading, Writing):
    """A labelled cube in Zarr v3 that grows along one dimension (see :mod:`stores.storage.cube`).

    Open an existing store with ``CubeStore(location, mode="r")`` (read-only) or
    ``mode="r+"`` (read-write); make a new one with :meth:`create`.

    Parameters
    ----------
    location : str or path-like
        Local directory or fsspec URL.  Writing needs a backend with an atomic writer
        lock: a local path (also ``file://`` or ``local://``), ``memory://`` or ``s3://``.
    mode : {"r", "r+"}
        Read-only or read-write.
    lock_timeout : float
        Seconds a write waits for another writer to finish before raising
        :class:`~stores.StoreLockedError` (0: fail at once).
    version : int, optional
        Open this committed version (see :meth:`versions`) instead of the newest; the
        handle is then read-only (``mode="r"`` is required).

    Raises
    ------
    NotAStoreError
        Nothing, or something other than a cube store, is at *location*.
    CorruptStoreError
        The store's metadata is unreadable or its arrays do not cover the committed
        slices.  (A damaged newest version opens, so that it can be repaired, but every
        read and write of it raises, naming the damage and ``stiscube repair``.)
    KeyNotFoundError
        *version* is not (or no longer) held.
    """

    def __init__(self, location: str | PathLike, *, mode: str = "r",
                 lock_timeout: float = LOCK_TIMEOUT, version: int | None = None) -> None:
        if mode not in ("r", "r+"):
            msg = f"mode must be 'r' or 'r+', got {mode!r} (use CubeStore.create for new stores)"
            raise ValueError(msg)
        lock_timeout = as_float(lock_timeout, "lock_timeout", min=0, finite=False, units="seconds")
        self._pinned = as_int(version, "version", allow_none=True)
        if version is not None and mode != "r":
            msg = f"an old version is read-only: open version={version} with mode='r'"
            raise ValueError(msg)
        self.location = Location.parse(location)
        self.mode = mode
        self.lock_timeout = lock_timeout
        self._problems: list[str] = []
        self._state: State | None = None
        self._handle_lock = threading.RLock()
        self._held = None
        self._depth = 0
        self._log = VersionLog(self.location, (STAGING,))
        self.schema = self._read_schema()
        self._slots = Slots(self.location, self.schema, read_only=mode == "r")
        self.refresh()

    # -- creation ------------------------------------------------------------------------
    @classmethod
    def create(cls, location: str | PathLike, schema: CubeSchema, *,
               lock_timeout: float = LOCK_TIMEOUT) -> CubeStore:
        """Create an empty cube store with *schema* at *location*; returns it read-write.

        Parameters
        ----------
        location : str or path-like
            Local directory or fsspec URL (as for :class:`CubeStore`).
        schema : CubeSchema
            The variables and the growing dimension.
        lock_timeout : float
            As for :class:`CubeStore`.

        Raises
        ------
        StoreExistsError
            Something already exists at *location* (an existing store is never
            overwritten).
        ReadOnlyStoreError
            The backend offers no atomic writer lock (see :class:`CubeStore`).
        """
        instance_of(schema, "schema", CubeSchema, what="a CubeSchema")
        loc = Location.parse(location)
        loc.check_writable()
        if loc.exists() and (not loc.isdir() or loc.listdir()):
            what = "a cube store" if loc.exists(MARKER) else "files that are not a cube store"
            msg = f"cannot create a cube store at {loc.url}: it already holds {what}"
            raise StoreExistsError(msg)
        with write_errors(f"cube store {loc.url}"):
            loc.makedirs()
            with WriterLock(loc, LOCK, timeout=lock_timeout, purpose="create"):
                create_arrays(loc, schema)
                change = {"action": "create", "label": None, "time": _log.now()}
                VersionLog(loc, (STAGING,)).publish(
                    _log.record(_log.empty(-1), sequence=0, change=change)
                )
                # the marker goes last: a crash before it leaves no half-made store that opens
                write_marker(loc, schema, created=_log.now())
        logger.info("created cube store at %s", loc.url)
        return cls(loc, mode="r+", lock_timeout=lock_timeout)

    # -- the committed state -------------------------------------------------------------
    def _read_schema(self) -> CubeSchema:
        loc = self.location
        if not loc.exists(MARKER):
            what = "does not exist" if not loc.exists() else f"has no {MARKER}"
            msg = f"{loc.url} is not a cube store: it {what}; create one with CubeStore.create"
            raise NotAStoreError(msg)
        where = loc.join(MARKER)
        try:
            marker = json.loads(loc.read_bytes(MARKER))
            if not isinstance(marker, dict) or marker.get("format") != _maintenance.FORMAT:
                msg = f"{loc.url}: {MARKER} does not describe a cube store"
                raise NotAStoreError(msg)
            version = marker.get("version", 0)
            if isinstance(version, bool) or not isinstance(version, int):
                msg = f"{where}: format version must be an integer, got {version!r}"
                raise CorruptStoreError(msg)
            if version > FORMAT_VERSION:
                msg = (
                    f"{loc.url}: cube format version {version} is newer than "
                    f"this software understands ({FORMAT_VERSION}); upgrade stiscube"
                )
                raise CorruptStoreError(msg)
            self.format_version = version
            self._created = marker.get("created")
            return CubeSchema.from_json(marker["schema"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            msg = f"{loc.url}: unreadable {MARKER} ({where}: {exc!r})"
            raise CorruptStoreError(msg) from exc

    def refresh(self) -> None:
        """Re-read the committed state (to see slices committed by another writer).

        Reads only the version records committed since this handle's state.  A handle
        opened at a fixed ``version`` keeps that version.
        """
        for attempt in range(3):
            try:
                state, problems = self._load()
                break
            except FileNotFoundError:  # pruned by a writer while we listed: list again
                time.sleep(0.01 * (attempt + 1))
        else:
            msg = f"{self.location.url}: manifests kept changing while being read"
            raise CorruptStoreError(msg)
        need = max((s["slot"] for s in state.slices.values()), default=-1) + 1
        self._slots_on_disk = self._slots.held(need)
        if self._pinned is None and not problems and self._slots_on_disk and (
            not self._log.numbers()
        ):
            problems.append(
                f"the data arrays hold {self._slots_on_disk} slots but {_log.MANIFESTS}/ "
                "holds no manifest (missing or emptied): the committed state is unknown"
            )
        self._state, self._problems = state, problems

    def _load(self) -> tuple[State, list[str]]:
        numbers = self._log.numbers()
        checkpoints = self._log.numbers(CHECKPOINTS)
        if self._pinned is not None:
            return self._load_version(self._pinned, numbers, checkpoints), []
        if not numbers:
            return _log.empty(0), []
        known = self._state if self._state is not None and not self._problems else None
        try:
            return self._log.load(numbers[-1], numbers, checkpoints, known=known), []
        except Damaged as exc:
            logger.warning("%s: %s; reads and writes are refused until the store is repaired",
                           self.location.url, exc.describe())
            return self._newest_good(numbers, checkpoints, exc.number), [exc.describe()]

    def _newest_good(self, numbers: list[int], checkpoints: list[int], below: int) -> State:
        """The newest version that loads (the state a repair keeps), else the empty state."""
        for number in reversed(numbers):
            if number == numbers[-1] or number == below:
                continue
            with contextlib.suppress(Damaged):
                return self._log.load(number, numbers, checkpoints)
        return _log.empty(-1)

    def _load_version(self, number: int, numbers: list[int], checkpoints: list[int]) -> State:
        if number not in numbers and not (number == 0 and (not numbers or numbers[0] == 1)):
            held = [v["version"] for v in self.versions()]
            msg = (
                f"version {number} is not in cube store {self.location.url} (never made or "
                f"pruned); it holds versions {held}"
            )
            raise KeyNotFoundError(msg)
        try:
            return self._log.load(number, numbers, checkpoints)
        except Damaged as exc:
            msg = f"{self.location.url}: version {number} is damaged ({exc.describe()})"
            raise CorruptStoreError(msg) from None

    @property
    def _manifest(self) -> State:
        """The state this handle reads; raises while the newest version is damaged."""
        if self._problems and self._pinned is None:
            raise CorruptStoreError(self._damage_message())
        return self._state

    def _damage_message(self) -> str:
        return (
            f"cube store {self.location.url} refuses writes until it is repaired: "
            f"{'; '.join(self._problems)}. Run CubeStore.repair() (or `stiscube repair`) to "
            "see what the repair will do; the newest version cannot be read until then "
            "(an older one only explicitly, with version=N)"
        )

    # -- introspection -------------------------------------------------------------------
    @property
    def append_dim(self) -> str:
        return self.schema.append_dim

    @property
    def labels(self) -> list:
        """Labels of the committed slices, sorted."""
        return sorted(self._manifest.slices)

    @property
    def version(self) -> int:
        """The number of the committed version this handle reads (0: the empty cube)."""
        return int(self._manifest.sequence)

    @property
    def problems(self) -> list[str]:
        """Damage found on open that makes the store refuse writes (see :meth:`repair`)."""
        return list(self._problems)

    def versions(self) -> list[dict]:
        """Every committed version held, oldest first (one small record read each, its
        checksum not verified: reading a version verifies the records it uses).

        Returns
        -------
        list of dict
            One per version: ``version`` (int), ``time`` (UTC, ISO 8601, or None when
            unknown), ``action`` (``"create"``, ``"append"``, ``"replace"``, ``"repair"``,
            or ``"damaged"`` for an unreadable record), ``label`` (the slice
            appended or replaced, else None) and ``labels`` (how many slices it holds).
        """
        return self._log.listing(self._created)

    def stored_bytes(self) -> int:
        """Bytes of the slices this version holds, as recorded when each was committed
        (measured from the slot's directories for slices committed without the record)."""
        return sum(
            int(e["bytes"]) if "bytes" in e else self._slots.slot_bytes(int(e["slot"]))
            for e in self._manifest.slices.values()
        )

    def __len__(self) -> int:
        return len(self._manifest.slices)

    def __contains__(self, label: object) -> bool:
        try:
            return self._label(label) in self._manifest.slices
        except SchemaMismatchError:
            return False

    def __repr__(self) -> str:
        pinned = "" if self._pinned is None else f", version={self._pinned}"
        held = "damaged" if self._problems else repr(self.labels)
        return f"CubeStore({self.location.url!r}, mode={self.mode!r}{pinned}, " \
               f"{self.append_dim}={held})"

    def slice_info(self, label) -> dict:
        """Commit record of one slice: slot, coordinates, checksums, bytes, commit time.

        Parameters
        ----------
        label : object
            The slice's label.
        """
        return dict(self._require(label))

    def _label(self, label) -> Any:
        if self.schema.label_dtype == "str":
            if isinstance(label, (str, np.str_)):
                return str(label)
        elif isinstance(label, (int, np.integer)) and not isinstance(label, (bool, np.bool_)):
            value = int(label)
            if not _INT64_MIN <= value <= _INT64_MAX:
                msg = (
                    f"{self.append_dim} label {value} is outside the int64 range "
                    f"[{_INT64_MIN}, {_INT64_MAX}] of the cube's labels"
                )
                raise SchemaMismatchError(msg)
            return value
        msg = (
            f"{self.append_dim} label must be of type {self.schema.label_dtype}, "
            f"got {label!r} ({type(label).__name__})"
        )
        raise SchemaMismatchError(msg)

    def _require(self, label) -> dict:
        key = self._label(label)
        try:
            return self._manifest.slices[key]
        except KeyError:
            msg = (
                f"{self.append_dim} {key!r} is not in cube store {self.location.url}; "
                f"it holds {self.labels}"
            )
            raise KeyNotFoundError(msg) from None

    # -- maintenance (stores.storage.cube._maintenance) ------------------------------------------
    def repair(self, *, dry_run: bool = True) -> _maintenance.RepairReport:
        """Find damage that blocks writes and (with ``dry_run=False``) repair it.

        See :func:`stores.storage.cube._maintenance.repair`: nothing committed and readable is
        deleted, and the repaired version is published before anything is moved.

        Parameters
        ----------
        dry_run : bool
            Only report what would be done (default).
        """
        return _maintenance.repair(self, dry_run=as_bool(dry_run, "dry_run"))

    def prune(self, *, keep_last: int, dry_run: bool = False) -> _maintenance.PruneReport:
        """Remove all but the newest *keep_last* versions, and the storage only they used.

        See :func:`stores.storage.cube._maintenance.prune` (never a side effect of a write).

        Parameters
        ----------
        keep_last : int
            Versions kept (>= 1).
        dry_run : bool
            Only report what would be removed.
        """
        return _maintenance.prune(self, keep_last=keep_last, dry_run=dry_run)

    def upgrade(self, *, dry_run: bool = True) -> _maintenance.RepairReport:
        """Turn a format-1 store into the current format (records instead of whole
        manifests); see :func:`stores.storage.cube._maintenance.upgrade`.

        Parameters
        ----------
        dry_run : bool
            Only report what would be done (default).
        """
        return _maintenance.upgrade(self, dry_run=as_bool(dry_run, "dry_run"))

    def lock_holder(self):
        """Who holds the writer lock (a :class:`stores.storage.locks.LockHolder`: pid, host,
        since, purpose, age, stale), or None when it is free."""
        return lock_holder(self.location, LOCK)

    def break_lock(self, *, force: bool = False):
        """Remove the lock left by a crashed writer on a non-local store; returns its
        holder (None if there was no lock).

        A live lock (renewed within its lease) is refused with
        :class:`~stores.StoreLockedError` unless *force*; a read-only handle may not
        break locks (:class:`~stores.ReadOnlyStoreError`).

        Parameters
        ----------
        force : bool
            Remove a live lock too.
        """
        if self.mode == "r":
            msg = f"cube store {self.location.url} was opened read-only (mode='r'): "
            msg += "open it with mode='r+' to break its lock"
            raise ReadOnlyStoreError(msg)
        return break_lock(self.location, LOCK, force=as_bool(force, "force"))


def write_marker(loc: Location, schema: CubeSchema, *, created: str | None) -> None:
    """Write ``cubestore.json`` (format marker and schema) of the current format."""
    marker = {"format": _maintenance.FORMAT, "version": FORMAT_VERSION, "created": created,
              "schema": schema.to_json()}
    loc.write_bytes((MARKER,), json.dumps(marker, indent=1).encode(), staging=(STAGING,))
