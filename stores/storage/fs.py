"""Filesystem plumbing shared by the stores: locations and atomic writes.

A *location* is a local path or any fsspec URL (``memory://``, ``s3://``, ...).
Local paths (plain paths, ``file://`` and ``local://`` URLs, all mapped to the same
absolute path) get the strongest guarantees: atomic replace by ``os.replace`` after
``fsync``, and a writer lock held through ``fcntl.flock`` that the operating system
releases when the holder dies, even by SIGKILL.

Other filesystems rely on a single object ``put`` being atomic (true for object stores
and ``memory://``), and their writer lock is a lock object created with an *exclusive
create* (``memory://``: in-process, under a process-wide guard; ``s3://``: a conditional
put with ``If-None-Match: *``, which S3 and moto honour).  A backend offering no atomic
create is readable but refused for writing (:class:`~stores.ReadOnlyStoreError`), since
a "check, then write" lock lets two writers in.  The locks are in :mod:`stores.storage.locks`.

URLs are normalised before anything is keyed on them: ``memory://x`` and
``memory:///x`` are the same store, and ``local:///abs`` is the absolute path ``/abs``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from stores._exceptions import ReadOnlyStoreError, StoreError, StoreWriteError
from stores.common.validate import instance_of

__all__ = [
    "LOCKABLE_PROTOCOLS",
    "Location",
    "atomic_path",
    "atomic_write",
]

logger = logging.getLogger(__name__)

_async_filesystems: dict[tuple[str, str], Any] = {}  # see Location.zarr_store
_memory_locks_guard = threading.Lock()
_LOCAL_PROTOCOLS = ("file://", "local://")
#: fsspec protocols whose writer lock is atomic (an exclusive create); others are read-only
LOCKABLE_PROTOCOLS = ("memory", "s3", "s3a")


@dataclass(frozen=True)
class Location:
    """Where a store lives: a local directory or an fsspec URL (made by :meth:`parse`).

    Parameters
    ----------
    url : str
        The normalised path or URL.
    fs : fsspec.AbstractFileSystem
        Its filesystem.
    root : str
        The root path on *fs*.
    is_local : bool
        Whether it is a local path.
    """

    url: str
    fs: Any
    root: str
    is_local: bool

    @classmethod
    def parse(cls, location: str | os.PathLike) -> Location:
        """Resolve *location* into a filesystem and a root path.

        Parameters
        ----------
        location : str, path-like or Location
            A local path or fsspec URL.
        """
        if isinstance(location, Location):
            return location
        instance_of(location, "store location", (str, os.PathLike), what="a path or URL string")
        text = os.fspath(location)
        local = next((p for p in _LOCAL_PROTOCOLS if text.startswith(p)), None)
        if "://" in text and local is None:
            fs, root = fsspec.core.url_to_fs(text)
            root = root.rstrip("/")
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            if protocol == "memory":
                root = "/" + root.lstrip("/")  # memory://x and memory:///x are one place
            if protocol == "memory":
                url = f"memory://{root}"
            elif protocol in ("s3", "s3a"):
                url = f"s3://{root.lstrip('/')}"
            else:  # keep the URL as given (some backends keep the host in the root)
                url = text.rstrip("/")
            return cls(url=url, fs=fs, root=root, is_local=False)
        if local is not None:
            text = text[len(local) :]
        path = Path(text).expanduser().absolute()
        return cls(url=str(path), fs=fsspec.filesystem("file"), root=str(path), is_local=True)

    @property
    def protocol(self) -> str:
        """The fsspec protocol (``"file"`` for local paths)."""
        if self.is_local:
            return "file"
        return self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]

    @property
    def key(self) -> str:
        """A normalised identity of the location (protocol and absolute root)."""
        return f"{self.protocol}://{self.root}"

    def check_writable(self) -> None:
        """Raise :class:`~stores.ReadOnlyStoreError` if writers cannot lock this backend."""
        if not self.is_local and self.protocol not in LOCKABLE_PROTOCOLS:
            msg = (
                f"{self.url}: writing to {self.protocol}:// stores is refused because the "
                "backend offers no atomic create for the writer lock (two writers could both "
                f"hold it); writable backends: local paths, {', '.join(LOCKABLE_PROTOCOLS)}"
            )
            raise ReadOnlyStoreError(msg)

    def child(self, *parts: str) -> Location:
        """The location ``<self>/<parts...>`` on the same filesystem (a URL stays a URL).

        Parameters
        ----------
        *parts : str
            Path components below the root.
        """
        sub = "/".join(p.strip("/") for p in parts if p)
        return Location(
            url=f"{self.url.rstrip('/')}/{sub}",
            fs=self.fs,
            root=f"{self.root.rstrip('/')}/{sub}" if self.root != "/" else f"/{sub}",
            is_local=self.is_local,
        )

    # -- paths ---------------------------------------------------------------------------
    def join(self, *parts: str) -> str:
        """The path ``<root>/<parts...>`` on :attr:`fs`.

        Parameters
        ----------
        *parts : str
            Path components below the root.
        """
        return "/".join([self.root, *parts])

    def zarr_store(self, *parts: str, read_only: bool = False):
        """A zarr v3 store rooted at ``self.join(*parts)``.

        Parameters
        ----------
        *parts : str
            Path components below the root.
        read_only : bool
            Open it read-only.
        """
        from zarr.storage import FsspecStore, LocalStore

        path = self.join(*parts)
        if self.is_local:
            return LocalStore(path, read_only=read_only)
        options = dict(getattr(self.fs, "storage_options", {}) or {})
        options.pop("asynchronous", None)
        url = f"{self.protocol}://{path.lstrip('/')}"
        if not getattr(self.fs, "async_impl", False):
            return FsspecStore.from_url(url, read_only=read_only, storage_options=options or None)
        # one asynchronous filesystem per backend and options, kept for the process's life:
        # an s3fs instance that is garbage-collected leaves its aiohttp session unclosed
        # (the environment is part of the key: it can choose the endpoint and credentials)
        env = sorted((k, v) for k, v in os.environ.items() if k.startswith(("AWS_", "FSSPEC_")))
        key = (self.protocol, json.dumps([options, env], sort_keys=True, default=str))
        with _memory_locks_guard:
            fs = _async_filesystems.get(key)
            if fs is None:
                fs = fsspec.filesystem(
                    self.protocol, asynchronous=True, skip_instance_cache=True, **options
                )
                _async_filesystems[key] = fs
        return FsspecStore(fs, path=path, read_only=read_only)

    # -- file operations -----------------------------------------------------------------
    def _fresh(self, path: str) -> str:
        """*path*, after dropping any cached listing of it (s3fs caches listings)."""
        if not self.is_local:
            self.fs.invalidate_cache(path)
        return path

    def exists(self, *parts: str) -> bool:
        """Whether ``<root>/<parts...>`` exists (listings cached by fsspec are refreshed).

        Parameters
        ----------
        *parts : str
            Path components below the root.
        """
        return self.fs.exists(self._fresh(self.join(*parts)))

    def isdir(self, *parts: str) -> bool:
        """Whether ``<root>/<parts...>`` is a directory.

        Parameters
        ----------
        *parts : str
            Path components below the root.
        """
        return self.fs.isdir(self._fresh(self.join(*parts)))

    def read_bytes(self, *parts: str) -> bytes:
        """The content of the file ``<root>/<parts...>``.

        Parameters
        ----------
        *parts : str
            Path components below the root.
        """
        return self.fs.cat_file(self.join(*parts))

    def write_bytes(
        self,
        parts: tuple[str, ...],
        data: bytes,
        *,
        exclusive: bool = False,
        staging: tuple[str, ...] | None = None,
    ) -> None:
        """Write *data* to the file ``<root>/<parts...>`` atomically.

        Parameters
        ----------
        parts : tuple of str
            Path components below the root.
        data : bytes
            The content.
        exclusive : bool
            Refuse an existing file (:class:`FileExistsError`): atomic on memory:// and
            s3:// (a conditional put), checked just before the rename on local disks
            (where the writer lock excludes others).
        staging : tuple of str, optional
            A directory of this location where a local write keeps its temporary file,
            so that a killed writer's leftovers are all in one place.
        """
        path = self.join(*parts)
        if exclusive and not self.is_local:
            parent = path.rsplit("/", 1)[0]
            with contextlib.suppress(FileExistsError, NotImplementedError):
                self.fs.makedirs(parent, exist_ok=True)
            try:
                self.fs.pipe_file(path, bytes(data), mode="create")
            except OSError as exc:
                if isinstance(exc, FileExistsError) or "pre-conditions" in str(exc):
                    raise FileExistsError(errno.EEXIST, "already exists", path) from exc
                raise
            return
        if exclusive and self.fs.exists(path):
            raise FileExistsError(errno.EEXIST, "already exists", path)
        tmp_dir = None if staging is None else self.join(*staging)
        atomic_write_bytes(self, path, data, staging=tmp_dir)

    def listdir(self, *parts: str) -> list[str]:
        """Base names in a directory (empty if it does not exist).

        Parameters
        ----------
        *parts : str
            Path components below the root.
        """
        path = self._fresh(self.join(*parts))
        if not self.fs.exists(path):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False))

    def remove(self, *parts: str) -> None:
        """Remove the file ``<root>/<parts...>``.

        Parameters
        ----------
        *parts : str
            Path components below the root.
        """
        self.fs.rm(self.join(*parts))

    def makedirs(self, *parts: str) -> None:
        """Create the directory ``<root>/<parts...>`` and its parents.

        Parameters
        ----------
        *parts : str
            Path components below the root.
        """
        self.fs.makedirs(self.join(*parts), exist_ok=True)


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):  # not all platforms allow fsync on a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(
    location: Location, path: str, data: bytes | memoryview, *, staging: str | None = None
) -> None:
    """Write *data* to *path* so that readers see either the old or the new content.

    Local files are written to a temporary file (a sibling, or in the directory
    *staging* on the same filesystem), flushed to disk, and renamed over the target.
    Other filesystems write one object in one call.
    """
    if location.is_local:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        place = directory if staging is None else staging
        if staging is not None:
            os.makedirs(staging, exist_ok=True)
        tmp = os.path.join(place, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
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


def atomic_write(target: str | os.PathLike, data: bytes | str, *, encoding: str = "utf-8") -> None:
    """Write *data* to the file *target* (a path or fsspec URL) atomically.

    Readers see the old content or the new, never a truncated file: a local file is
    written to a hidden temporary sibling (``.<name>.<uuid>.tmp``), flushed with
    ``fsync`` and renamed over *target*; elsewhere the object is written in one put.
    Parent directories are created.

    Parameters
    ----------
    target : str or path-like
        The file.
    data : bytes or str
        The content.
    encoding : str
        How a ``str`` is encoded.

    Raises
    ------
    StoreWriteError
        The write failed (for example the disk is full); *target* is unchanged and the
        message names it.
    """
    if isinstance(data, str):
        data = data.encode(encoding)
    what = f"atomic_write: data for {os.fspath(target)}"
    instance_of(data, what, (bytes, bytearray, memoryview), what="bytes or str")
    loc = Location.parse(target)
    with write_errors(loc.url):
        atomic_write_bytes(loc, loc.root, data)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str | None = None):
    """Context manager yielding a temporary local path that replaces *target* on success.

    For writers that need a file name (matplotlib's ``savefig``, astropy's ``writeto``):
    ``with atomic_path(target) as tmp:`` write to ``tmp`` (a :class:`pathlib.Path`); when
    the block exits without an exception the file is flushed and renamed over *target*
    (local) or uploaded in one put (fsspec URL); on an exception the temporary file is
    removed and *target* is untouched.

    Parameters
    ----------
    target : str or path-like
        The file.
    suffix : str, optional
        The temporary file's suffix (default: *target*'s own), for writers that choose
        the format from it.
    """
    loc = Location.parse(target)
    name = loc.root.rsplit("/", 1)[-1]
    ext = suffix if suffix is not None else (Path(name).suffix or "")
    if loc.is_local:
        directory = os.path.dirname(loc.root)
        os.makedirs(directory, exist_ok=True)
    else:
        import tempfile

        directory = tempfile.gettempdir()
    tmp = Path(directory) / f".{name}.{uuid.uuid4().hex}.tmp{ext}"
    try:
        with write_errors(loc.url):
            yield tmp
            if loc.is_local:
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, loc.root)
                _fsync_dir(directory)
            else:
                atomic_write_bytes(loc, loc.root, tmp.read_bytes())
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def write_errors(what: str):
    """Turn an ``OSError`` of a write (disk full, ...) into a StoreWriteError naming *what*."""
    try:
        yield
    except StoreError:
        raise
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        msg = f"cannot write to {what}: {reason} ({exc}); nothing was committed"
        raise StoreWriteError(exc.errno or 0, msg) from exc


def remove_stale_temporaries(location: Location, *parts: str, recursive: bool = False) -> list[str]:
    """Remove temporary files left in a local directory by a writer that died.

    Removes ``.*.tmp`` files (this module's atomic writes) and ``*.partial`` files
    (zarr's), in the directory or (``recursive``) its whole tree; returns their paths.
    Call it only while holding the store's writer lock.
    """
    if not location.is_local:
        return []
    directory = Path(location.join(*parts))
    if not directory.is_dir():
        return []
    removed = []
    stack = [str(directory)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append(entry.path)
                    continue
                if (name.startswith(".") and name.endswith(".tmp")) or name.endswith(".partial"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed.append(entry.path)
    if removed:
        logger.info("removed %d temporary files left under %s", len(removed), directory)
    return removed
