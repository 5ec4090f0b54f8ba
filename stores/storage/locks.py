"""The single-writer lock of a store: :class:`WriterLock` and :func:`break_lock`.

Local stores lock with ``fcntl.flock`` on the lock file: the operating system releases
it when its holder dies, even by SIGKILL, so a local lock is never stale.

Other backends (``memory://``, ``s3://``) create a lock *object* with an exclusive
create (a conditional put).  It records its holder (pid, host, purpose, time), an
*owner token* (a random id of this acquisition) and a *lease*: while the lock is held a
heartbeat thread rewrites ``renewed`` every third of the lease, so a lock whose
``renewed`` is older than its lease has lost its holder (killed, or cut off) and is
*stale*.  Only the owner removes its lock (release checks the token first), and
:func:`break_lock` removes only a stale lock unless forced.  Neither S3 nor moto offers
a conditional delete, so the token check and the delete are two calls: a lock broken
and re-taken by another writer in that instant could still be removed; a lock is only
broken when stale, i.e. after its holder stopped renewing it for a whole lease.
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

from stores._exceptions import StoreLockedError
from stores.common.validate import as_float
from stores.storage.fs import Location, _memory_locks_guard, write_errors

__all__ = ["LEASE_SECONDS", "LOCK_TIMEOUT", "LockHolder", "WriterLock", "break_lock",
           "lock_holder"]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
#: seconds a remote lock stays live without a heartbeat (renewed every third of it)
LEASE_SECONDS = 60.0
#: seconds a writer waits for another writer's lock by default (every store of both
#: packages); 0 fails at once
LOCK_TIMEOUT = 60.0
_memory_locks: dict[str, threading.Lock] = {}


class LockHolder(dict):
    """What a lock object says about its holder (``pid``, ``host``, ``since``,
    ``purpose``, ``token``, ``lease``, ``renewed``), with :attr:`age` and :attr:`stale`."""

    @property
    def age(self) -> float | None:
        """Seconds since the holder last renewed the lock (None if not recorded)."""
        renewed = self.get("renewed")
        return None if renewed is None else max(0.0, time.time() - float(renewed))

    @property
    def stale(self) -> bool:
        """Whether the holder is gone: for a remote lock, it stopped renewing the lock for
        a whole lease (a lock written without a lease cannot show its holder is alive)."""
        if "live" in self:
            return not self["live"]
        age = self.age
        return age is None or age > float(self.get("lease") or 0)

    def describe(self) -> str:
        """The holder in words: pid, host, since when, purpose and lease."""
        age = self.age
        renewed = "" if age is None else f", renewed {age:.0f} s ago (lease {self['lease']:g} s)"
        return (f"pid {self.get('pid')} on {self.get('host')} since {self.get('since')} "
                f"({self.get('purpose', 'write')}{renewed})")


def lock_holder(location: Location, name: str) -> LockHolder | None:
    """The holder of the lock *name* of *location*, or None when it is not held.

    For a local lock ``live`` says whether a process holds the ``flock`` now.

    Parameters
    ----------
    location : Location
        The store's location.
    name : str
        The lock file's name in *location*.
    """
    path = location.join(name)
    try:
        raw = location.fs.cat_file(path)
    except FileNotFoundError:
        return None
    try:
        info = LockHolder(json.loads(raw or b"{}"))
    except ValueError:
        info = LockHolder()
    if location.is_local:
        import fcntl

        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            info["live"] = False
        except OSError:
            info["live"] = True
        finally:
            os.close(fd)
        return info if info["live"] else None
    return info


class WriterLock:
    """One writer at a time on a store.

    Use as a context manager.  When the lock cannot be had, :class:`StoreLockedError`
    names the store and, where known, the holder and how to break a stale lock.

    Parameters
    ----------
    location : Location
        The store.
    name : str
        The lock file's name in it.
    timeout : float
        Seconds to wait for another writer (0: fail at once).
    purpose : str
        What the writer does (recorded for other writers).
    lease : float
        Seconds after which an unrenewed remote lock is stale.
    """

    def __init__(self, location: Location, name: str, *, timeout: float = LOCK_TIMEOUT,
                 purpose: str = "write", lease: float = LEASE_SECONDS) -> None:
        self.location = location
        self.name = name
        self.path = location.join(name)
        self.timeout = as_float(timeout, "lock_timeout", min=0, finite=False, units="seconds")
        self.purpose = purpose
        self.lease = as_float(lease, "lease", min=0, units="seconds")
        self.token = uuid.uuid4().hex
        self._fd: int | None = None
        self._thread_lock: threading.Lock | None = None
        self._stop: threading.Event | None = None
        self._heartbeat: threading.Thread | None = None

    def _locked_error(self) -> StoreLockedError:
        waited = f" after waiting {self.timeout:g} s" if self.timeout else ""
        holder = lock_holder(self.location, self.name) if not self.location.is_local else None
        if holder is None and self.location.is_local:
            with contextlib.suppress(OSError, ValueError):
                holder = LockHolder(json.loads(self.location.fs.cat_file(self.path) or b"{}"))
        held = f" (held by {holder.describe()})" if holder else ""
        hint = ""
        if not self.location.is_local:
            hint = ("; if its holder died, break it once stale with CubeStore.break_lock() "
                    "(stale: not renewed for a whole lease)")
        msg = (f"store {self.location.url} is locked by another writer{held}{waited}; "
               f"retry later or pass a larger lock_timeout{hint}")
        return StoreLockedError(msg)

    def _stamp(self) -> bytes:
        return json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S"), "purpose": self.purpose,
            "token": self.token, "lease": self.lease, "renewed": time.time(),
        }).encode()

    def acquire(self) -> None:
        """Take the lock, waiting up to :attr:`timeout` seconds."""
        deadline = time.monotonic() + self.timeout
        if self.location.is_local:
            self._acquire_local(deadline)
        else:
            self._acquire_remote(deadline)

    def _acquire_local(self, deadline: float) -> None:
        import fcntl

        with write_errors(f"the writer lock of {self.location.url}"):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    if time.monotonic() >= deadline:
                        raise self._locked_error() from None
                    time.sleep(_POLL_SECONDS)
            # the owner stamp is informative; if it cannot be written (disk full), the
            # lock must not stay held: release it and report the store
            with write_errors(f"the writer lock of {self.location.url}"):
                os.ftruncate(fd, 0)
                os.pwrite(fd, self._stamp(), 0)
        except BaseException:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        self._fd = fd

    def _acquire_remote(self, deadline: float) -> None:
        self.location.check_writable()
        with _memory_locks_guard:
            lock = _memory_locks.setdefault(self.location.key + "/" + self.path, threading.Lock())
        fs = self.location.fs
        while True:
            if lock.acquire(blocking=False):
                try:
                    created = self._exclusive_create(fs)
                except BaseException:
                    lock.release()
                    raise
                if created:
                    self._thread_lock = lock
                    self._start_heartbeat()
                    return
                lock.release()
            if time.monotonic() >= deadline:
                raise self._locked_error()
            time.sleep(_POLL_SECONDS)

    def _exclusive_create(self, fs) -> bool:
        """Create the lock object only if absent (atomic on the backend); True if created."""
        parent = self.path.rsplit("/", 1)[0]
        with write_errors(f"the writer lock of {self.location.url}"):
            with contextlib.suppress(FileExistsError, NotImplementedError):
                fs.makedirs(parent, exist_ok=True)
            try:
                fs.pipe_file(self.path, self._stamp(), mode="create")
            except FileExistsError:
                return False
            except OSError as exc:
                # s3fs reports a failed If-None-Match precondition (HTTP 412) as EINVAL
                text = str(exc)
                if "PreconditionFailed" in text or "pre-conditions" in text:
                    return False
                raise
        return True

    def _owned(self) -> bool:
        """Whether the lock object is still this acquisition's (its token)."""
        holder = lock_holder(self.location, self.name)
        return holder is not None and holder.get("token") == self.token

    def _start_heartbeat(self) -> None:
        self._stop = threading.Event()

        def beat(stop=self._stop) -> None:
            while not stop.wait(self.lease / 3):
                try:
                    if not self._owned():
                        logger.warning("%s: the writer lock was broken by another process",
                                       self.location.url)
                        return
                    self.location.fs.pipe_file(self.path, self._stamp())
                except OSError as exc:  # the lease runs out; the writer finds out on release
                    logger.warning("%s: the writer lock could not be renewed (%s)",
                                   self.location.url, exc)

        self._heartbeat = threading.Thread(target=beat, name="stores-lock-heartbeat",
                                           daemon=True)
        self._heartbeat.start()

    def release(self) -> None:
        """Give the lock back (only the owner's lock is removed)."""
        if self._fd is not None:
            import fcntl

            with contextlib.suppress(OSError):  # a full disk must not keep the lock held
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._thread_lock is not None:
            try:
                self._stop.set()
                self._heartbeat.join()
                if self._owned():  # never another writer's lock (after a break)
                    with contextlib.suppress(FileNotFoundError):
                        self.location.fs.rm(self.path)
                else:
                    logger.warning("%s: the writer lock was broken while held; the lock "
                                   "now there is not removed", self.location.url)
            finally:
                self._thread_lock.release()
                self._thread_lock = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def break_lock(location: Location, name: str, *, force: bool = False) -> LockHolder | None:
    """Remove the lock left by a writer that died; returns the holder removed (or None).

    Refuses (:class:`StoreLockedError`) a live lock, one renewed within its lease,
    unless *force*.  A local lock is released by the OS when its holder dies: there is
    nothing to break, and a live one is refused.

    Parameters
    ----------
    location : Location
        The store.
    name : str
        The lock file's name in it.
    force : bool
        Remove a live lock too.
    """
    holder = lock_holder(location, name)
    if holder is None:
        logger.info("%s is not locked; nothing to break", location.url)
        return None
    if not force and not holder.stale:
        msg = (f"the lock of {location.url} is live: held by {holder.describe()}; "
               "it is broken only once stale (force=True to break it anyway)")
        raise StoreLockedError(msg)
    if location.is_local:
        msg = f"the lock of {location.url} is held by a running process ({holder.describe()})"
        raise StoreLockedError(msg)
    again = lock_holder(location, name)  # the same acquisition still (token), then remove
    if again is not None and again.get("token") == holder.get("token"):
        with contextlib.suppress(FileNotFoundError):
            location.fs.rm(location.join(name))
        logger.warning("%s: broke the lock held by %s", location.url, holder.describe())
    return holder
