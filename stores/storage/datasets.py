"""Keyed :class:`xarray.Dataset` storage in netCDF4/HDF5 files (through h5netcdf).

Layout: one file per key under the store's root, ``<root>/<k1>/<k2>/.../<kn>.nc``,
beside a marker file ``datasetstore.json``.  A key is a tuple of components (letters,
digits, ``_ . + -``), written as a tuple or as one string joined by ``/``, for example
``("ngc104", "F502N", "flash12")`` or ``"ngc104/F502N/flash12"``.

Every write first encodes the whole Dataset to netCDF bytes in memory (so encoding
errors are raised before the disk is touched), then replaces the key's file atomically
(temporary file, ``fsync``, rename).  A crash at any moment leaves the previous version
of the key intact.  Keys are independent: writers of different keys never interfere,
and two writers of the same key leave one complete version (the last).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from os import PathLike

import xarray as xr

from stores._exceptions import (
    CorruptStoreError,
    KeyNotFoundError,
    NotAStoreError,
    ReadOnlyStoreError,
    SchemaMismatchError,
    StoreExistsError,
)
from stores.common.validate import one_of
from stores.storage.fs import Location, remove_stale_temporaries, write_errors

__all__ = ["DatasetStore"]

logger = logging.getLogger(__name__)

_MARKER = "datasetstore.json"
_FORMAT = "stores.DatasetStore"
_FORMAT_VERSION = 1
_SUFFIX = ".nc"
_COMPONENT = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*")  # fullmatch: "$" allows "\n"
_MODES = ("r", "a", "w-")

Key = str | tuple[str | int, ...]


def normalize_key(key: Key) -> tuple[str, ...]:
    """Return *key* as a tuple of validated string components."""
    if isinstance(key, str):
        parts = tuple(key.strip("/").split("/"))
    elif isinstance(key, tuple) and key:
        parts = tuple(str(p) for p in key)
    else:
        msg = f"key must be a non-empty str or tuple, got {key!r}"
        raise TypeError(msg)
    for part in parts:
        if not _COMPONENT.fullmatch(part) or part.endswith(_SUFFIX):
            msg = (
                f"invalid key component {part!r} in key {key!r}: use letters, digits and "
                f"'_ . + -', not starting with '.' and not ending in {_SUFFIX!r}"
            )
            raise ValueError(msg)
    return parts


class DatasetStore:
    """Datasets stored by key, one netCDF4/HDF5 file each.

    Parameters
    ----------
    location : str or path-like
        Local directory or fsspec URL (``memory://...``) of the store.
    mode : {"a", "r", "w-"}
        ``"a"`` (default) opens for reading and writing, creating the store if the
        location does not exist or is an empty directory; ``"r"`` opens an existing
        store read-only; ``"w-"`` creates a new store and fails if one exists.

    Raises
    ------
    NotAStoreError
        The location holds something that is not a dataset store, or (mode ``"r"``)
        nothing at all.
    StoreExistsError
        Mode ``"w-"`` and a store already exists.

    Examples
    --------
    >>> store = DatasetStore("memory://doc/photometry")
    >>> store.write("ngc104/F502N/flash12", xr.Dataset({"flux": ("star", [1.0, 2.0])}))
    >>> store.keys()
    ['ngc104/F502N/flash12']
    """

    def __init__(self, location: str | PathLike, *, mode: str = "a") -> None:
        self.location = Location.parse(location)
        self.mode = one_of(mode, "mode", _MODES)
        loc = self.location
        has_marker = loc.exists(_MARKER)
        if has_marker:
            if mode == "w-":
                msg = f"a dataset store already exists at {loc.url}; open it with mode='a'"
                raise StoreExistsError(msg)
            self._check_marker()
        elif mode == "r":
            msg = f"{loc.url} is not a dataset store (no {_MARKER}); create one with mode='a'"
            raise NotAStoreError(msg)
        else:
            if loc.exists() and (not loc.isdir() or loc.listdir()):
                msg = (
                    f"{loc.url} exists and is not a dataset store (no {_MARKER}); "
                    "refusing to write into it"
                )
                raise NotAStoreError(msg)
            marker = {"format": _FORMAT, "version": _FORMAT_VERSION}
            with write_errors(f"dataset store {loc.url}"):
                loc.makedirs()
                loc.write_bytes((_MARKER,), json.dumps(marker).encode())
            logger.info("created dataset store at %s", loc.url)

    def _check_marker(self) -> None:
        try:
            marker = json.loads(self.location.read_bytes(_MARKER))
        except (OSError, ValueError) as exc:
            msg = f"{self.location.url}: unreadable {_MARKER} ({exc})"
            raise CorruptStoreError(msg) from exc
        if not isinstance(marker, dict) or marker.get("format") != _FORMAT:
            msg = f"{self.location.url}: {_MARKER} does not describe a dataset store"
            raise NotAStoreError(msg)
        version = marker.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            msg = (
                f"{self.location.join(_MARKER)}: store format version must be an integer, "
                f"got {version!r}"
            )
            raise CorruptStoreError(msg)
        if version > _FORMAT_VERSION:
            msg = (
                f"{self.location.url}: store format version {marker.get('version')} is newer "
                f"than this software understands ({_FORMAT_VERSION}); upgrade stiscube"
            )
            raise CorruptStoreError(msg)

    def __repr__(self) -> str:
        return f"DatasetStore({self.location.url!r}, mode={self.mode!r}, keys={len(self)})"

    # -- keys ----------------------------------------------------------------------------
    def _parts(self, key: Key) -> tuple[str, ...]:
        parts = normalize_key(key)
        return (*parts[:-1], parts[-1] + _SUFFIX)

    def keys(self) -> list[str]:
        """All keys held, sorted, as ``/``-joined strings."""
        loc = self.location
        root = loc.root.rstrip("/") + "/"
        if not loc.is_local:
            loc.fs.invalidate_cache(loc.root)  # s3fs caches listings: see other writers' keys
        found = loc.fs.find(loc.root) if loc.exists() else []
        keys = []
        for path in found:
            rel = path[len(root) :] if path.startswith(root) else path
            name = rel.rsplit("/", 1)[-1]
            if rel.endswith(_SUFFIX) and not name.startswith("."):
                keys.append(rel[: -len(_SUFFIX)])
        return sorted(keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        try:
            parts = self._parts(key)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        return self.location.exists(*parts)

    def _require(self, key: Key) -> tuple[str, ...]:
        parts = self._parts(key)
        if not self.location.exists(*parts):
            known = self.keys()
            shown = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
            msg = (
                f"no dataset under key {'/'.join(normalize_key(key))!r} in {self.location.url}; "
                f"keys held: [{shown}]"
            )
            raise KeyNotFoundError(msg)
        return parts

    # -- writing -------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.mode == "r":
            msg = f"dataset store {self.location.url} was opened read-only (mode='r')"
            raise ReadOnlyStoreError(msg)

    def write(self, key: Key, dataset: xr.Dataset) -> None:
        """Store *dataset* under *key*, atomically replacing any previous version.

        Parameters
        ----------
        key : str or tuple
            The key (see :meth:`read`).
        dataset : xarray.Dataset
            The data; dask-backed data is computed first.

        Raises
        ------
        ReadOnlyStoreError
            The store was opened with ``mode="r"``.
        SchemaMismatchError
            *dataset* is not a Dataset or cannot be encoded as netCDF4 (for example an
            attribute of a type netCDF cannot hold); nothing is written.
        """
        self._check_writable()
        parts = self._parts(key)
        name = "/".join(normalize_key(key))
        if not isinstance(dataset, xr.Dataset):
            msg = f"key {name!r}: expected an xarray.Dataset, got {type(dataset).__name__}"
            raise SchemaMismatchError(msg)
        try:
            # compute dask-backed data first (with whatever scheduler is active): encoding
            # numpy data to bytes then needs no dask lock, which a distributed client lacks
            payload = dataset.compute().to_netcdf(engine="h5netcdf")
        except (TypeError, ValueError) as exc:
            msg = f"key {name!r}: dataset cannot be stored as netCDF4: {exc}"
            raise SchemaMismatchError(msg) from exc
        directory = parts[:-1]
        # a temporary file, fsync and rename on local disks (plain paths, file://,
        # local://), one put elsewhere: a failure (disk full) never truncates the old file
        with write_errors(f"key {name!r} of dataset store {self.location.url}"):
            if directory:
                self.location.makedirs(*directory)
            remove_stale_temporaries(self.location, *directory)
            self.location.write_bytes(parts, bytes(payload))
        logger.debug("wrote %s (%d bytes) to %s", name, len(payload), self.location.url)

    def delete(self, key: Key) -> None:
        """Remove *key* from the store.

        Parameters
        ----------
        key : str or tuple
            The key.
        """
        self._check_writable()
        parts = self._require(key)
        self.location.remove(*parts)

    # -- reading -------------------------------------------------------------------------
    def read(self, key: Key, *, chunks: Mapping | str | None = None) -> xr.Dataset:
        """Read one dataset.

        Parameters
        ----------
        key : str or tuple
            The key.
        chunks : dict, "auto" or None
            ``None`` (default) loads the data into memory and closes the file; anything
            else returns a dask-backed Dataset that reads lazily (the file stays open
            until the Dataset is closed).
        """
        parts = self._require(key)
        loc = self.location
        name = "/".join(normalize_key(key))
        try:
            if loc.is_local:
                ds = xr.open_dataset(loc.join(*parts), engine="h5netcdf", chunks=chunks)
            else:
                ds = xr.open_dataset(
                    io.BytesIO(loc.read_bytes(*parts)), engine="h5netcdf", chunks=chunks
                )
            if chunks is None:
                ds.load()
                ds.close()
        except (OSError, ValueError) as exc:
            msg = f"key {name!r} in {loc.url}: unreadable netCDF file ({exc})"
            raise CorruptStoreError(msg) from exc
        return ds

    def read_many(
        self, keys: Iterable[Key], *, chunks: Mapping | str | None = None
    ) -> dict[str, xr.Dataset]:
        """Read several keys; returns ``{key: Dataset}`` in the order given.

        Parameters
        ----------
        keys : iterable of str or tuple
            The keys.
        chunks : dict, "auto" or None
            As for :meth:`read`.
        """
        keys = list(keys)
        for key in keys:  # fail before reading anything if one is missing
            self._require(key)
        return {"/".join(normalize_key(k)): self.read(k, chunks=chunks) for k in keys}

    def read_all(self, *, chunks: Mapping | str | None = None) -> dict[str, xr.Dataset]:
        """Read every key in the store.

        Parameters
        ----------
        chunks : dict, "auto" or None
            As for :meth:`read`.
        """
        return self.read_many(self.keys(), chunks=chunks)
