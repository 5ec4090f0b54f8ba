"""The ``stiscube`` xarray backend: ``xr.open_dataset("pixels.db", engine="stiscube")``.

The labelled cube, opened lazily **without dask**: every property is a
:class:`xarray.backends.BackendArray` whose indexing goes straight to the store's direct
reader (:meth:`stores.CubeStore.read_arrays`), so ``.sel``/``.isel`` read only the chunks
they need; loading a point or small window of the Dataset reads all its variables in one
reader call (:meth:`_Source.read_one`).  Reads along ``anneal`` of a small (row, col)
window come from the pixel-major history index (:mod:`stiscube.cube.history_index`) when it
holds the same values, whichever API was used (``ds.sel(row=r, col=c)``,
``ds.pixels.history``, ``db.cube.sel(...)``).

Dask is used only when ``chunks=`` is passed.  The stored (row, col) chunks are the
preferred ones (``encoding["preferred_chunks"]``); ``anneal`` has none, because every
period is stored on its own, so that any chunking along it keeps the stored chunks.  So
``chunks={}`` gives one task per stored (row, col) chunk and variable, over all periods,
each one reader call (:meth:`stores.CubeStore.read_arrays` of those periods): a
whole-cube reduction such as ``ds.sci_mean.mean("anneal")`` reads at the direct
reader's speed, and a selection of a few periods reads only those (dask folds the
selection into the read).  ``chunks=`` that split the stored (row, col) chunks work
(each task reads its part; xarray warns).

Options of :func:`xarray.open_dataset` (and :func:`open_cube`):

``version``
    A committed state (a manifest number, see ``stiscube info``); default the newest.
``layout``
    ``"dataset"`` (default): one variable per property on (anneal, row, col);
    ``"cube"``: one float32 variable ``properties`` on (anneal, row, col, property),
    the view behind :attr:`stiscube.PixelDB.cube` (use with
    :func:`xarray.open_dataarray`).

Dates select periods through ``ds.pixels.period(date=...)`` (start <= date < end).

Examples
--------
>>> ds = xr.open_dataset("pixels.db", engine="stiscube")           # doctest: +SKIP
>>> ds.sel(anneal=200, row=5, col=20).load()                        # doctest: +SKIP
>>> old = xr.open_dataset("pixels.db", engine="stiscube", version=3)  # doctest: +SKIP
>>> cube = xr.open_dataarray("pixels.db", engine="stiscube", layout="cube")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Iterable
from functools import partial
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from stiscube.cube.history_index import HistoryIndex, HistoryIndexError
from stores import CubeStore
from stores.common.provenance import slice_digest
from stores.common.validate import as_int, instance_of, one_of
from stores.storage.fs import Location

__all__ = [
    "StiscubeBackendEntrypoint",
    "cube_location",
    "open_cube",
    "snapshot",
    "source_of",
]

logger = logging.getLogger(__name__)

_CUBE = "cube"
_MARKER = "cubestore.json"
_LAYOUTS = ("dataset", "cube")
#: reads along the append dim of at least this many periods, over at most this many
#: index tiles, go to the history index when it is current
_INDEX_MIN_PERIODS = 4
_INDEX_MAX_TILES = 4
#: a read of at most this many values per variable reads every variable of the Dataset
#: in the same reader call and keeps the others for their turn (``ds.sel(...).load()``
#: loads the variables one after the other; this makes it one reader call).  Far below
#: a stored chunk, so that dask tasks (whole stored chunks) read their own variable only.
_BATCH_MAX_VALUES = 512


def cube_location(db: Location) -> Location:
    """The location of a pixel database's cube store (``<db>/cube``), on the same filesystem.

    (``Location.join`` gives a path *inside* the filesystem, which is not a URL for
    fsspec locations.)

    Parameters
    ----------
    db : stores.storage.fs.Location
        The database's folder.

    Returns
    -------
    stores.storage.fs.Location
        Its ``cube`` folder.
    """
    return db.child(_CUBE)


#: *version* as a committed state number (an integer >= 0) or None for the newest
_check_version = partial(as_int, name="version", min=0, allow_none=True)


def snapshot(store: CubeStore) -> CubeStore:
    """A read-only view of *store*'s current committed state that later writes leave alone.

    Committed slots are never rewritten, so reading the slots of this state stays
    consistent however the original handle is used afterwards.

    Parameters
    ----------
    store : stores.CubeStore
        The store.

    Returns
    -------
    stores.CubeStore
        A read-only copy of the handle.
    """
    view = copy.copy(store)
    view.mode = "r"
    return view


# ---------------------------------------------------------------------------------------
# the reader shared by the arrays of one opened cube
# ---------------------------------------------------------------------------------------
class _Source:
    """One committed state of a cube, read by window (and by the history index)."""

    def __init__(self, store: CubeStore, index_root: Location | None) -> None:
        self.store = store
        self.index_root = index_root
        self.labels = store.labels
        self.label_array = np.asarray(self.labels, dtype=object)
        self.positions_array = np.arange(len(self.labels))
        self.sizes = {k: int(v) for k, v in store.schema.sizes.items()}
        self.index = None
        if index_root is not None and store.append_dim == "anneal" and set(self.sizes) == {
            "row",
            "col",
        }:
            self.index = HistoryIndex(index_root)
        self._digests: list[str] | None = None
        self.names: list[str] = list(store.schema.variables)  # the Dataset's variables
        self._batch: tuple[tuple, dict[str, np.ndarray]] | None = None
        self._batch_lock = threading.Lock()

    def __reduce__(self):
        # to a dask worker: the location and the version, reopened there (same state)
        root = None if self.index_root is None else self.index_root.url
        return (_reopen, (self.store.location.url, self.store.version, root,
                          self.names))

    def _index_lookup(self, where) -> tuple | None:
        """(index state, positions) of the periods at *where* (indices into labels)."""
        if self.index is None:
            return None
        if self._digests is None:
            self._digests = [slice_digest(self.store.slice_info(x)) for x in self.labels]
        found = self.index.lookup(self.labels, self._digests, token=id(self))
        if found is None:
            return None
        return found[0], found[1][where]

    def _index_positions(self, chosen: list) -> np.ndarray | None:
        """Index positions of the periods *chosen*, or None if the index is not current."""
        where = np.searchsorted(np.asarray(self.labels), np.asarray(chosen))
        found = self._index_lookup(where)
        return None if found is None else found[1]

    def read_one(self, name: str, key: tuple) -> np.ndarray:
        """Values of variable *name* for *key*, small reads batched over the variables.

        A read of at most ``_BATCH_MAX_VALUES`` values reads every variable of the
        Dataset for the same key in one reader call and keeps the others, each handed out
        once, until a read of another key: loading a point or a small window of the
        whole Dataset is one reader call, not one per variable.  (The values kept belong
        to the committed state this source reads, which never changes.)
        """
        token = _key_token(key)
        with self._batch_lock:
            if self._batch is not None and self._batch[0] == token:
                kept = self._batch[1].pop(name, None)
                if kept is not None:
                    return kept
        if _n_values(key, self.shape_of(name)) > _BATCH_MAX_VALUES or len(self.names) < 2:
            return self.read([name], key)[name]
        values = self.read(self.names, key)
        mine = values.pop(name)
        with self._batch_lock:
            self._batch = (token, values)
        return mine

    def shape_of(self, name: str) -> tuple[int, ...]:
        dims = self.store.schema.variables[name].dims
        return (len(self.labels), *(self.sizes[d] for d in dims))

    def read(self, names: list[str], key: tuple) -> dict[str, np.ndarray]:
        """Outer-indexed values of variables *names* for key (append, *fixed dims)."""
        akey, *fixed = key
        where = self.positions_array[akey]
        single = np.ndim(where) == 0
        where = np.atleast_1d(where)
        chosen = self.label_array[where].tolist()
        dims = list(self.sizes)
        window, post, drop = {}, [], []
        for dim, k in zip(dims, fixed, strict=True):
            size = self.sizes[dim]
            if isinstance(k, (int, np.integer)):
                window[dim] = slice(int(k), int(k) + 1)
                post.append(0)
                drop.append(True)
            elif isinstance(k, slice):
                start, stop, step = k.indices(size)
                stop = max(stop, start)
                if step == 1:
                    window[dim] = slice(start, stop)
                    post.append(slice(None))
                else:
                    window[dim] = slice(start, stop)
                    post.append(slice(None, None, step))
                drop.append(False)
            else:
                arr = np.asarray(k, dtype=np.int64)
                if arr.size == 0:
                    window[dim] = slice(0, 0)
                    post.append(slice(None))
                else:
                    lo = int(arr.min())
                    window[dim] = slice(lo, int(arr.max()) + 1)
                    post.append(arr - lo)
                drop.append(False)
        out = self._read_window(names, chosen, where, window)
        # residual outer indexing (steps, arrays) and dropping integer-indexed dims
        result = {}
        for name, values in out.items():
            for axis, p in enumerate(post, start=1):
                if isinstance(p, np.ndarray):
                    values = np.take(values, p, axis=axis)
                elif p != slice(None) and not isinstance(p, int):
                    values = values[(slice(None),) * axis + (p,)]
            squeeze = tuple(i + 1 for i, d in enumerate(drop) if d)
            if squeeze:
                values = values.squeeze(axis=squeeze)
            result[name] = values[0] if single else values
        return result

    def _read_window(self, names: list[str], chosen: list, where, window: dict) -> dict:
        specs = self.store.schema.variables
        shape = [len(chosen)] + [w.stop - w.start for w in window.values()]
        if 0 in shape:
            return {n: np.empty(shape, dtype=specs[n].dtype) for n in names}
        if len(chosen) >= _INDEX_MIN_PERIODS and self.index is not None:
            rows, cols = window["row"], window["col"]
            if HistoryIndex.tiles_touched(rows, cols) <= _INDEX_MAX_TILES:
                found = self._index_lookup(where)
                if found is not None:
                    try:
                        return {n: self.index.read(*found[:1], n, found[1], rows, cols)
                                for n in names}
                    except HistoryIndexError as exc:
                        logger.warning("history index unusable (%s); reading the cube", exc)
        if len(chosen) == 1:
            out = self.store.read_arrays(chosen[0], variables=names, **window)
            return {n: v[None] for n, v in out.items()}
        return self.store.read_arrays(chosen, variables=names, **window)


def _key_token(key: tuple) -> tuple:
    """A hashable, comparable form of an outer-indexing key."""
    out = []
    for k in key:
        if isinstance(k, slice):
            out.append(("s", k.start, k.stop, k.step))
        elif isinstance(k, (int, np.integer)):
            out.append(("i", int(k)))
        else:
            out.append(("a", tuple(np.asarray(k).ravel().tolist())))
    return tuple(out)


def _n_values(key: tuple, shape: tuple[int, ...]) -> int:
    """How many values an outer-indexing *key* selects from *shape*."""
    n = 1
    for k, size in zip(key, shape, strict=False):
        if isinstance(k, slice):
            n *= len(range(*k.indices(size)))
        elif not isinstance(k, (int, np.integer)):
            n *= int(np.size(k))
    return n


def _reopen(url: str, version: int, index_root: str | None, names: list[str]) -> _Source:
    store = CubeStore(Location.parse(url), mode="r", version=version)
    source = _Source(store, None if index_root is None else Location.parse(index_root))
    source.names = names
    return source


# ---------------------------------------------------------------------------------------
# lazy arrays
# ---------------------------------------------------------------------------------------
class StiscubeBackendArray(BackendArray):
    """One property of the cube on (anneal, row, col), indexed through the direct reader."""

    def __init__(self, source: _Source, name: str) -> None:
        self.source = source
        self.name = name
        spec = source.store.schema.variables[name]
        self.shape = (len(source.labels), *(source.sizes[d] for d in spec.dims))
        self.dtype = np.dtype(spec.dtype)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        if isinstance(key, indexing.BasicIndexer) and _simple(key.tuple):
            return self._raw(key.tuple)  # ints and step-1 slices: no decomposition needed
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw
        )

    def _raw(self, key: tuple) -> np.ndarray:
        return self.source.read_one(self.name, key)


def _simple(key: tuple) -> bool:
    return all(
        isinstance(k, (int, np.integer)) or (isinstance(k, slice) and k.step in (None, 1))
        for k in key
    )


class StiscubeCubeArray(BackendArray):
    """All properties as one float32 array on (anneal, row, col, property), not stacked."""

    def __init__(self, source: _Source, names: list[str]) -> None:
        self.source = source
        self.names = np.asarray(names, dtype=object)
        self.shape = (len(source.labels), *source.sizes.values(), len(names))
        self.dtype = np.dtype("float32")

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        if isinstance(key, indexing.BasicIndexer) and _simple(key.tuple):
            return self._raw(key.tuple)
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw
        )

    def _raw(self, key: tuple) -> np.ndarray:
        *rest, pkey = key
        names = self.names[pkey]
        if np.ndim(names) == 0:
            return self.source.read([names], tuple(rest))[names].astype("float32")
        if not len(names):  # rare: an empty property selection still needs its shape
            probe = self.source.read([self.names[0]], tuple(rest))[self.names[0]]
            return np.empty((*probe.shape, 0), dtype="float32")
        values = self.source.read(list(names), tuple(rest))
        # property-major in memory (contiguous copies), returned as a property-last view
        out = np.empty((len(names), *values[names[0]].shape), dtype="float32")
        for i, name in enumerate(names):
            out[i] = values[name]
        return np.moveaxis(out, 0, -1)


# ---------------------------------------------------------------------------------------
# opening
# ---------------------------------------------------------------------------------------
def _resolve(obj: Any, version: int | None) -> tuple[CubeStore, Location | None]:
    """(store at the version, database location for the history index) of *obj*."""
    if isinstance(obj, CubeStore):
        if version is None or version == obj.version:
            return snapshot(obj), None
        return CubeStore(obj.location, mode="r", version=version), None
    what = "a pixel database path or URL, or a CubeStore"
    instance_of(obj, "source", (str, os.PathLike, Location), what=what)
    loc = Location.parse(obj)
    if loc.exists(_CUBE, _MARKER):
        return CubeStore(cube_location(loc), mode="r", version=version), loc
    return CubeStore(loc, mode="r", version=version), None


def open_cube(
    source: Any,
    *,
    version: int | None = None,
    layout: str = "dataset",
    drop_variables: str | Iterable[str] | None = None,
    index: Location | None = None,
) -> xr.Dataset:
    """The labelled cube of *source* as a lazy Dataset (no dask), see the module docs.

    Parameters
    ----------
    source : path, URL or CubeStore
        A pixel database (or a bare cube store).
    version : int, optional
        The committed state to read; the newest by default.
    layout : {"dataset", "cube"}
        One variable per property, or one ``properties`` variable with a ``property`` dim.
    drop_variables : str or iterable of str, optional
        Properties not to expose.
    index : stores.storage.fs.Location, optional
        The database holding *source* (a CubeStore), whose history index serves
        histories (:attr:`stiscube.PixelDB.dataset` passes its own).

    Returns
    -------
    xarray.Dataset
        The cube, with attribute ``cube_version``.
    """
    one_of(layout, "layout", _LAYOUTS)
    version = _check_version(version)
    store, db_location = _resolve(source, version)
    db_location = db_location if index is None else index
    src = _Source(store, db_location)
    schema = store.schema
    drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables or ())
    names = [n for n in schema.variables if n not in drop]
    src.names = names
    coords = store.coords()
    append = store.append_dim
    chunk_of = {d: int(schema.chunks.get(d, n)) for d, n in schema.sizes.items()}
    variables = {}
    if layout == "dataset":
        for name in names:
            spec = schema.variables[name]
            dims = (append, *spec.dims)
            data = indexing.LazilyIndexedArray(StiscubeBackendArray(src, name))
            encoding = {"preferred_chunks": {d: chunk_of[d] for d in dims[1:]},
                        "dtype": spec.dtype}
            variables[name] = xr.Variable(dims, data, attrs=dict(spec.attrs), encoding=encoding)
    else:
        dims = (append, *schema.sizes, "property")
        data = indexing.LazilyIndexedArray(StiscubeCubeArray(src, names))
        preferred = {d: chunk_of[d] for d in dims[1:-1]}
        preferred["property"] = len(names)
        attrs = {
            "long_name": "pixel properties",
            "units_by_property": {n: schema.variables[n].attrs.get("units", "") for n in names},
        }
        variables["properties"] = xr.Variable(
            dims, data, attrs=attrs, encoding={"preferred_chunks": preferred}
        )
        coords["property"] = ("property", np.asarray(names, dtype=str))
    ds = xr.Dataset(variables, coords=coords, attrs=dict(schema.attrs))
    ds.attrs["cube_version"] = store.version
    ds.encoding["source"] = store.location.url
    return ds


def source_of(ds: xr.Dataset) -> _Source:
    """The reader behind a Dataset made by :func:`open_cube` (TypeError if there is none).

    Parameters
    ----------
    ds : xarray.Dataset
        A Dataset from :func:`open_cube`, or a selection of one.

    Returns
    -------
    object
        The reader of its committed state (its ``store``, ``version`` and history index).
    """
    for var in ds.variables.values():
        data = getattr(var, "_data", None)
        array = getattr(data, "array", None)
        if isinstance(array, (StiscubeBackendArray, StiscubeCubeArray)):
            return array.source
    msg = "this Dataset was not opened by the stiscube backend"
    raise TypeError(msg)


class StiscubeBackendEntrypoint(BackendEntrypoint):
    """``engine="stiscube"``: a pixel database (``<db>/cube``) as a lazy labelled cube."""

    description = "STIS pixel property cube (stiscube PixelDB): lazy, no dask unless chunks="
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "version", "layout")

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        version: int | None = None,
        layout: str = "dataset",
    ) -> xr.Dataset:
        """The cube of a pixel database: :func:`open_cube`.

        Parameters
        ----------
        filename_or_obj, drop_variables, version, layout
            The source and the options of :func:`open_cube`.

        Returns
        -------
        xarray.Dataset
            The lazy cube.
        """
        return open_cube(filename_or_obj, version=version, layout=layout,
                         drop_variables=drop_variables)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Whether *filename_or_obj* is a local pixel database (holds ``cube/`` with its marker).

        Parameters
        ----------
        filename_or_obj : object
            What :func:`xarray.open_dataset` was given.

        Returns
        -------
        bool
            True for a local pixel database.
        """
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        try:
            loc = Location.parse(filename_or_obj)
            return bool(loc.is_local and loc.exists(_CUBE, _MARKER))
        except (OSError, ValueError, TypeError):
            return False
