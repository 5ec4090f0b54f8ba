"""Filesystem plumbing shared by the stores: locations, atomic writes, locks.

A *location* is a local path or any fsspec URL (``memory://``, ``s3://``, ...).
Local paths get the strongest guarantees: atomic replace by ``os.replace`` after
``fsync``, and a writer lock held through ``fcntl.flock`` that the operating system
releases when the holder dies, even by SIGKILL.  Other filesystems rely on a single
object ``put`` being atomic (true for object stores and ``memory://``) and use a lock
object; a stale one left by a crashed remote writer is reported with its holder and
can be removed with ``break_lock``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from stores._exceptions import StoreLockedError

__all__ = ["Location", "atomic_write_bytes"]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
_memory_locks: dict[str, threading.Lock] = {}
_memory_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Location:
    """Where a store lives: a local directory or an fsspec URL."""

    url: str
    fs: Any
    root: str
    is_local: bool

    @classmethod
    def parse(cls, location: str | os.PathLike) -> Location:
        """Resolve *location* (path or URL) into a filesystem and a root path."""
        if isinstance(location, Location):
            return location
        if not isinstance(location, (str, os.PathLike)):
            msg = f"store location must be a path or URL string, not {type(location).__name__}"
            raise TypeError(msg)
        text = os.fspath(location)
        if "://" in text and not text.startswith("file://"):
            fs, root = fsspec.core.url_to_fs(text)
            root = root.rstrip("/")
            return cls(url=text, fs=fs, root=root, is_local=False)
        if text.startswith("file://"):
            text = text[len("file://") :]
        path = Path(text).expanduser().absolute()
        return cls(url=str(path), fs=fsspec.filesystem("file"), root=str(path), is_local=True)

    # -- paths ---------------------------------------------------------------------------
    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def zarr_store(self, *parts: str, read_only: bool = False):
        """A zarr v3 store rooted at ``self.join(*parts)``."""
        from zarr.storage import FsspecStore, LocalStore

        path = self.join(*parts)
        if self.is_local:
            return LocalStore(path, read_only=read_only)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return FsspecStore.from_url(f"{protocol}://{path.lstrip('/')}", read_only=read_only)

    # -- file operations -----------------------------------------------------------------
    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.join(*parts))

    def isdir(self, *parts: str) -> bool:
        return self.fs.isdir(self.join(*parts))

    def read_bytes(self, *parts: str) -> bytes:
        return self.fs.cat_file(self.join(*parts))

    def write_bytes(self, parts: tuple[str, ...], data: bytes) -> None:
        atomic_write_bytes(self, self.join(*parts), data)

    def listdir(self, *parts: str) -> list[str]:
        """Base names in a directory (empty if it does not exist)."""
        path = self.join(*parts)
        if not self.fs.exists(path):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False))

    def remove(self, *parts: str) -> None:
        self.fs.rm(self.join(*parts))

    def makedirs(self, *parts: str) -> None:
        self.fs.makedirs(self.join(*parts), exist_ok=True)

    def lock(self, name: str, *, timeout: float = 0.0, purpose: str = "write") -> WriterLock:
        """A writer lock on ``name`` inside this location (see :class:`WriterLock`)."""
        return WriterLock(self, name, timeout=timeout, purpose=purpose)


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):  # not all platforms allow fsync on a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(location: Location, path: str, data: bytes | memoryview) -> None:
    """Write *data* to *path* so that readers see either the old or the new content.

    Local files are written to a temporary sibling, flushed to disk, and renamed over
    the target.  Other filesystems write one object in one call.
    """
    if location.is_local:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(directory)
    else:
        parent = path.rsplit("/", 1)[0]
        location.fs.makedirs(parent, exist_ok=True)
        location.fs.pipe_file(path, bytes(data))


def remove_stale_temporaries(location: Location, *parts: str) -> None:
    """Remove temporary files left in a local directory by a writer that died."""
    if not location.is_local:
        return
    directory = Path(location.join(*parts))
    if not directory.is_dir():
        return
    for tmp in directory.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class WriterLock:
    """One writer at a time on a store.

    Use as a context manager.  ``timeout`` is how long to wait for another writer
    (seconds; 0 fails at once).  When the lock cannot be had, :class:`StoreLockedError`
    names the store and, where known, the holder.
    """

    def __init__(self, location: Location, name: str, *, timeout: float, purpose: str) -> None:
        if timeout < 0:
            msg = f"lock_timeout must be >= 0 seconds, got {timeout!r}"
            raise ValueError(msg)
        self.location = location
        self.path = location.join(name)
        self.timeout = float(timeout)
        self.purpose = purpose
        self._fd: int | None = None
        self._thread_lock: threading.Lock | None = None

    def _holder_info(self) -> str:
        try:
            info = json.loads(self.location.fs.cat_file(self.path) or b"{}")
        except (OSError, ValueError):
            return ""
        if not info:
            return ""
        return f" (held by pid {info.get('pid')} on {info.get('host')} since {info.get('since')})"

    def _locked_error(self) -> StoreLockedError:
        waited = f" after waiting {self.timeout:g} s" if self.timeout else ""
        msg = (
            f"store {self.location.url} is locked by another writer{self._holder_info()}{waited}; "
            "retry later or pass a larger lock_timeout"
        )
        return StoreLockedError(msg)

    def _stamp(self) -> bytes:
        return json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "purpose": self.purpose,
            }
        ).encode()

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        if self.location.is_local:
            self._acquire_local(deadline)
        else:
            self._acquire_remote(deadline)

    def _acquire_local(self, deadline: float) -> None:
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    err = self._locked_error()
                    os.close(fd)
                    raise err from None
                time.sleep(_POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, self._stamp(), 0)
        self._fd = fd

    def _acquire_remote(self, deadline: float) -> None:
        with _memory_locks_guard:
            lock = _memory_locks.setdefault(self.location.url, threading.Lock())
        fs = self.location.fs
        while True:
            if lock.acquire(blocking=False):
                if not fs.exists(self.path):
                    fs.pipe_file(self.path, self._stamp())
                    self._thread_lock = lock
                    return
                lock.release()
            if time.monotonic() >= deadline:
                raise self._locked_error()
            time.sleep(_POLL_SECONDS)

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._thread_lock is not None:
            with contextlib.suppress(FileNotFoundError):
                self.location.fs.rm(self.path)
            self._thread_lock.release()
            self._thread_lock = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def break_lock(location: Location, name: str) -> None:
    """Remove a stale lock object left by a remote writer that died."""
    if location.is_local:
        logger.info("local locks are released by the OS when their holder dies; nothing to break")
        return
    with contextlib.suppress(FileNotFoundError):
        location.fs.rm(location.join(name))
