"""A labelled Zarr v3 cube that grows along one dimension, committed slice by slice.

Layout of a cube store at ``<root>`` (a local directory or any fsspec URL)::

    <root>/cubestore.json        format marker and schema (written once, at creation)
    <root>/data/                 Zarr v3 group: one array per variable, with dims
                                 (<append_dim>, *fixed dims); index 0 is a *slot*
    <root>/extras/SSSSSSSS.json  optional JSON document attached to the slice in slot S
                                 (e.g. the table of frames a slice was computed from)
    <root>/manifests/NNNNNNNNNNNN.json
                                 committed states; the newest valid one is the truth
    <root>/.lock                 the writer lock (local stores: ``fcntl.flock``)

Commit protocol (how readers never see a half-written slice):

1. Data for a new or replaced slice is written to a *fresh slot*, one never referenced
   by any committed manifest.  Committed slots are never written again, so a reader of
   an older state keeps reading consistent values.
2. Checksums (SHA-256 of each variable's bytes) are computed from the data offered.
3. The new state is *published last* by writing manifest number n+1, itself atomic
   (temporary file + rename locally; a single object put elsewhere) and carrying a
   SHA-256 of its own body.  On open, the newest manifest whose checksum verifies is
   used, and the arrays are checked to cover every slot it names.

A writer killed at any moment therefore leaves at worst an unreferenced slot, which
the next write reuses.  Replacing a slice retires its old slot (kept on disk, listed
in the manifest's ``retired`` entry) rather than overwriting it.

Only one writer at a time: each append or replace takes the store's writer lock, waiting
up to ``lock_timeout`` seconds, and raises :class:`~stores.StoreLockedError` otherwise.

Why not icechunk?  icechunk (transactional Zarr) gives the same all-or-nothing commits
and more (history, branches), but it has its own storage backends instead of fsspec
URLs, resolves concurrent writers optimistically (the loser's commit fails after its
work is done) rather than with a lock, and adds a young on-disk format that every
reader of the cube would need.  The commit protocol needed here is small: fresh slots
plus an atomically published manifest, on plain Zarr v3 that any Zarr reader can open.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np
import xarray as xr

from stores._exceptions import (
    CorruptStoreError,
    KeyNotFoundError,
    NotAStoreError,
    ReadOnlyStoreError,
    SchemaMismatchError,
    SliceExistsError,
    StoreExistsError,
)
from stores._fs import Location, break_lock, remove_stale_temporaries

__all__ = ["CubeSchema", "CubeStore", "VariableSpec"]

logger = logging.getLogger(__name__)

_MARKER = "cubestore.json"
_FORMAT = "stores.CubeStore"
_FORMAT_VERSION = 1
_DATA = "data"
_MANIFESTS = "manifests"
_EXTRAS = "extras"
_LOCK = ".lock"
_KEEP_MANIFESTS = 8
_DIRECT_MAX_CHUNKS = 64  # windows touching more chunks per slot are read through zarr
_MANIFEST_NAME = re.compile(r"^(\d{12})\.json$")
_COMPRESSIONS = ("zstd", "blosc", "none")
_LABEL_DTYPES = ("int64", "str")


# ---------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariableSpec:
    """One data variable of a cube.

    Parameters
    ----------
    dims : tuple of str
        The variable's fixed dimensions (not including the append dimension).
    dtype : str
        NumPy dtype name of the stored values, e.g. ``"float32"``.
    attrs : dict
        Attributes (``units``, ``long_name``, ``description``, ...), JSON-serialisable.
    fill_value : scalar, optional
        Value of never-written elements; NaN for floats and 0 otherwise by default.
    """

    dims: tuple[str, ...]
    dtype: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    fill_value: Any = None

    def to_json(self) -> dict:
        return {
            "dims": list(self.dims),
            "dtype": self.dtype,
            "attrs": dict(self.attrs),
            "fill_value": _json_scalar(self.resolved_fill_value()),
        }

    def resolved_fill_value(self):
        if self.fill_value is not None:
            return self.fill_value
        return np.nan if np.dtype(self.dtype).kind == "f" else 0


@dataclass(frozen=True)
class CubeSchema:
    """Layout of a cube: what one slice holds and how it is stored.

    Parameters
    ----------
    append_dim : str
        The dimension the cube grows along (for the pixel cube, ``"anneal"``).
    sizes : dict of str to int
        Sizes of the fixed dimensions, e.g. ``{"row": 1024, "col": 1024}``.
    variables : dict of str to VariableSpec
        The data variables of each slice.
    label_dtype : {"int64", "str"}
        Type of the labels along ``append_dim``.
    slice_coords : dict of str to str
        Per-slice coordinates along ``append_dim`` and their dtype names (for example
        ``{"anneal_start": "datetime64[ns]"}``); given with each appended slice.
    coords : dict
        Static coordinates of the fixed dimensions, ``{name: (dims, values)}`` or
        ``{name: (dims, values, attrs)}``.
    chunks : dict of str to int
        Chunk length per dimension (``append_dim`` included); missing fixed dims are
        not split, and ``append_dim`` defaults to 1.
    shards : dict of str to int, optional
        Shard shape (Zarr v3 sharding); each shard holds several chunks in one object.
    compression : {"zstd", "blosc", "none"}
        Compressor of the chunks.
    compression_level : int
        Level of the compressor.
    attrs : dict
        Global attributes of the cube.
    """

    append_dim: str
    sizes: Mapping[str, int]
    variables: Mapping[str, VariableSpec]
    label_dtype: str = "int64"
    slice_coords: Mapping[str, str] = field(default_factory=dict)
    coords: Mapping[str, tuple] = field(default_factory=dict)
    chunks: Mapping[str, int] = field(default_factory=dict)
    shards: Mapping[str, int] | None = None
    compression: str = "zstd"
    compression_level: int = 3
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate_schema(self)

    # -- derived -------------------------------------------------------------------------
    def chunk_shape(self, name: str) -> tuple[int, ...]:
        spec = self.variables[name]
        return (
            int(self.chunks.get(self.append_dim, 1)),
            *(int(self.chunks.get(d, self.sizes[d])) for d in spec.dims),
        )

    def shard_shape(self, name: str) -> tuple[int, ...] | None:
        if not self.shards:
            return None
        spec = self.variables[name]
        chunk = self.chunk_shape(name)
        dims = (self.append_dim, *spec.dims)
        return tuple(int(self.shards.get(d, c)) for d, c in zip(dims, chunk, strict=True))

    def slice_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.sizes[d] for d in self.variables[name].dims)

    # -- (de)serialisation ---------------------------------------------------------------
    def to_json(self) -> dict:
        coords = {}
        for name, spec in self.coords.items():
            dims, values, attrs = _coord_parts(spec)
            arr = np.asarray(values)
            coords[name] = {
                "dims": list(dims),
                "dtype": str(arr.dtype) if arr.dtype.kind != "U" else "str",
                "values": _json_values(arr),
                "attrs": dict(attrs),
            }
        return {
            "append_dim": self.append_dim,
            "sizes": {k: int(v) for k, v in self.sizes.items()},
            "variables": {k: v.to_json() for k, v in self.variables.items()},
            "label_dtype": self.label_dtype,
            "slice_coords": dict(self.slice_coords),
            "coords": coords,
            "chunks": {k: int(v) for k, v in self.chunks.items()},
            "shards": None if self.shards is None else {k: int(v) for k, v in self.shards.items()},
            "compression": self.compression,
            "compression_level": int(self.compression_level),
            "attrs": dict(self.attrs),
        }

    @classmethod
    def from_json(cls, doc: Mapping) -> CubeSchema:
        coords = {}
        for name, c in doc.get("coords", {}).items():
            dtype = c["dtype"]
            values = np.asarray(c["values"], dtype=None if dtype == "str" else dtype)
            if dtype == "str":
                values = values.astype(str)
            coords[name] = (tuple(c["dims"]), values, c.get("attrs", {}))
        return cls(
            append_dim=doc["append_dim"],
            sizes=doc["sizes"],
            variables={
                k: VariableSpec(
                    dims=tuple(v["dims"]),
                    dtype=v["dtype"],
                    attrs=v.get("attrs", {}),
                    fill_value=v.get("fill_value"),
                )
                for k, v in doc["variables"].items()
            },
            label_dtype=doc.get("label_dtype", "int64"),
            slice_coords=doc.get("slice_coords", {}),
            coords=coords,
            chunks=doc.get("chunks", {}),
            shards=doc.get("shards"),
            compression=doc.get("compression", "zstd"),
            compression_level=doc.get("compression_level", 3),
            attrs=doc.get("attrs", {}),
        )


def _coord_parts(spec: tuple) -> tuple[tuple[str, ...], Any, Mapping]:
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        msg = f"coords entries must be (dims, values) or (dims, values, attrs), got {spec!r}"
        raise ValueError(msg)
    dims = (spec[0],) if isinstance(spec[0], str) else tuple(spec[0])
    return dims, spec[1], (spec[2] if len(spec) == 3 else {})


def _validate_schema(schema: CubeSchema) -> None:
    if not isinstance(schema.append_dim, str) or not schema.append_dim:
        msg = f"append_dim must be a non-empty string, got {schema.append_dim!r}"
        raise ValueError(msg)
    for dim, size in schema.sizes.items():
        if dim == schema.append_dim:
            msg = f"sizes must not include the append dimension {dim!r} (it grows)"
            raise ValueError(msg)
        if not isinstance(size, (int, np.integer)) or size < 1:
            msg = f"sizes[{dim!r}] must be a positive integer, got {size!r}"
            raise ValueError(msg)
    if not schema.variables:
        msg = "variables must name at least one variable"
        raise ValueError(msg)
    for name, spec in schema.variables.items():
        if not isinstance(spec, VariableSpec):
            msg = f"variables[{name!r}] must be a VariableSpec, got {type(spec).__name__}"
            raise TypeError(msg)
        unknown = [d for d in spec.dims if d not in schema.sizes]
        if unknown:
            msg = (
                f"variables[{name!r}] uses dims {unknown} that are not in sizes "
                f"{dict(schema.sizes)}"
            )
            raise ValueError(msg)
        np.dtype(spec.dtype)  # raises TypeError for a bad dtype name
        if np.dtype(spec.dtype).kind not in "biuf":
            msg = f"variables[{name!r}].dtype must be numeric or bool, got {spec.dtype!r}"
            raise ValueError(msg)
    if schema.label_dtype not in _LABEL_DTYPES:
        msg = f"label_dtype must be one of {_LABEL_DTYPES}, got {schema.label_dtype!r}"
        raise ValueError(msg)
    for name, dtype in schema.slice_coords.items():
        if dtype != "str":
            np.dtype(dtype)
        if name == schema.append_dim or name in schema.variables:
            msg = f"slice_coords name {name!r} clashes with the append dim or a variable"
            raise ValueError(msg)
    for name, spec in schema.coords.items():
        dims, values, _ = _coord_parts(spec)
        arr = np.asarray(values)
        expected = tuple(schema.sizes.get(d, -1) for d in dims)
        if arr.shape != expected:
            msg = f"coords[{name!r}] has shape {arr.shape}, expected {expected} for dims {dims}"
            raise ValueError(msg)
    all_dims = {schema.append_dim, *schema.sizes}
    for what, mapping in (("chunks", schema.chunks), ("shards", schema.shards or {})):
        for dim, n in mapping.items():
            if dim not in all_dims:
                msg = f"{what} names unknown dimension {dim!r}; dims are {sorted(all_dims)}"
                raise ValueError(msg)
            if not isinstance(n, (int, np.integer)) or n < 1:
                msg = f"{what}[{dim!r}] must be a positive integer, got {n!r}"
                raise ValueError(msg)
    if schema.shards:
        for name in schema.variables:
            for c, s in zip(schema.chunk_shape(name), schema.shard_shape(name), strict=True):
                if s % c:
                    msg = f"shards must be multiples of chunks; got shard {s} for chunk {c}"
                    raise ValueError(msg)
    if schema.compression not in _COMPRESSIONS:
        msg = f"compression must be one of {_COMPRESSIONS}, got {schema.compression!r}"
        raise ValueError(msg)


# ---------------------------------------------------------------------------------------
# JSON helpers
# ---------------------------------------------------------------------------------------
def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    return value


def _json_values(arr: np.ndarray) -> list:
    if arr.dtype.kind == "M":
        return [str(v) for v in np.datetime_as_string(arr, unit="ns")]
    return arr.tolist()


def _encode_coord(value: Any, dtype: str, name: str, where: str) -> Any:
    """Encode one slice-coordinate value for the manifest, checking its type."""
    try:
        if dtype == "str":
            if not isinstance(value, (str, np.str_)):
                raise TypeError
            return str(value)
        kind = np.dtype(dtype).kind
        if kind == "M":
            return str(np.datetime_as_string(np.datetime64(value, "ns"), unit="ns"))
        arr = np.asarray(value)
        if arr.ndim != 0 or not np.can_cast(arr.dtype, dtype, "same_kind"):
            raise TypeError
        return _json_scalar(arr.astype(dtype)[()])
    except (TypeError, ValueError):
        msg = f"{where}: slice coordinate {name!r} must be a scalar of type {dtype}, got {value!r}"
        raise SchemaMismatchError(msg) from None


def _decode_coord(values: list, dtype: str) -> np.ndarray:
    if dtype == "str":
        return np.asarray(values, dtype=str)
    if np.dtype(dtype).kind == "f":
        return np.asarray([float(v) for v in values], dtype=dtype)
    return np.asarray(values, dtype=dtype)


def _sha256(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).view(np.uint8).data).hexdigest()


def _body_digest(body: Mapping) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------------------
@dataclass
class _Manifest:
    sequence: int
    slots_allocated: int
    slices: dict  # label (python scalar) -> {"slot", "coords", "sha256", "committed"}
    retired: list

    def body(self) -> dict:
        return {
            "sequence": self.sequence,
            "slots_allocated": self.slots_allocated,
            "slices": [{"label": k, **v} for k, v in self.slices.items()],
            "retired": list(self.retired),
        }


_EMPTY = _Manifest(sequence=0, slots_allocated=0, slices={}, retired=[])


class CubeStore:
    """A labelled cube in Zarr v3 that grows along one dimension.

    Open an existing store with ``CubeStore(location, mode="r")`` (read-only) or
    ``mode="r+"`` (read-write); make a new one with :meth:`create`.

    Parameters
    ----------
    location : str or path-like
        Local directory or fsspec URL.
    mode : {"r", "r+"}
        Read-only or read-write.
    lock_timeout : float
        Seconds a write waits for another writer to finish before raising
        :class:`~stores.StoreLockedError` (default 0: fail at once).

    Raises
    ------
    NotAStoreError
        Nothing, or something other than a cube store, is at *location*.
    CorruptStoreError
        The store's metadata is unreadable or its arrays do not cover the committed
        slices.
    """

    def __init__(
        self, location: str | PathLike, *, mode: str = "r", lock_timeout: float = 0.0
    ) -> None:
        if mode not in ("r", "r+"):
            msg = f"mode must be 'r' or 'r+', got {mode!r} (use CubeStore.create for new stores)"
            raise ValueError(msg)
        if lock_timeout < 0:
            msg = f"lock_timeout must be >= 0 seconds, got {lock_timeout!r}"
            raise ValueError(msg)
        self.location = Location.parse(location)
        self.mode = mode
        self.lock_timeout = float(lock_timeout)
        self.schema = self._read_schema()
        self._manifest = self._load_manifest()
        self._verify_arrays(self._manifest)

    # -- creation ------------------------------------------------------------------------
    @classmethod
    def create(
        cls, location: str | PathLike, schema: CubeSchema, *, lock_timeout: float = 0.0
    ) -> CubeStore:
        """Create an empty cube store with *schema* at *location*; returns it read-write.

        Raises
        ------
        StoreExistsError
            Something already exists at *location* (an existing store is never
            overwritten).
        """
        import zarr

        if not isinstance(schema, CubeSchema):
            msg = f"schema must be a CubeSchema, got {type(schema).__name__}"
            raise TypeError(msg)
        loc = Location.parse(location)
        if loc.exists() and (not loc.isdir() or loc.listdir()):
            what = "a cube store" if loc.exists(_MARKER) else "files that are not a cube store"
            msg = f"cannot create a cube store at {loc.url}: it already holds {what}"
            raise StoreExistsError(msg)
        loc.makedirs()
        with loc.lock(_LOCK, timeout=lock_timeout, purpose="create"):
            group = zarr.open_group(loc.zarr_store(_DATA), mode="w", zarr_format=3)
            for name, spec in schema.variables.items():
                group.create_array(
                    name,
                    shape=(0, *schema.slice_shape(name)),
                    chunks=schema.chunk_shape(name),
                    shards=schema.shard_shape(name),
                    dtype=spec.dtype,
                    fill_value=spec.resolved_fill_value(),
                    compressors=_compressors(schema),
                    dimension_names=(schema.append_dim, *spec.dims),
                    attributes=dict(spec.attrs),
                )
            # the marker goes last: a crash before it leaves no half-made store that opens
            marker = {"format": _FORMAT, "version": _FORMAT_VERSION, "schema": schema.to_json()}
            loc.write_bytes((_MARKER,), json.dumps(marker, indent=1).encode())
        logger.info("created cube store at %s", loc.url)
        return cls(loc, mode="r+", lock_timeout=lock_timeout)

    # -- metadata ------------------------------------------------------------------------
    def _read_schema(self) -> CubeSchema:
        loc = self.location
        if not loc.exists(_MARKER):
            what = "does not exist" if not loc.exists() else f"has no {_MARKER}"
            msg = f"{loc.url} is not a cube store: it {what}; create one with CubeStore.create"
            raise NotAStoreError(msg)
        try:
            marker = json.loads(loc.read_bytes(_MARKER))
            if marker.get("format") != _FORMAT:
                msg = f"{loc.url}: {_MARKER} does not describe a cube store"
                raise NotAStoreError(msg)
            if marker.get("version", 0) > _FORMAT_VERSION:
                msg = (
                    f"{loc.url}: cube format version {marker.get('version')} is newer than "
                    f"this software understands ({_FORMAT_VERSION}); upgrade stiscube"
                )
                raise CorruptStoreError(msg)
            return CubeSchema.from_json(marker["schema"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            msg = f"{loc.url}: unreadable {_MARKER} ({exc!r})"
            raise CorruptStoreError(msg) from exc

    def _manifest_numbers(self) -> list[int]:
        names = self.location.listdir(_MANIFESTS)
        return sorted(int(m.group(1)) for n in names if (m := _MANIFEST_NAME.match(n)))

    def _load_manifest(self) -> _Manifest:
        """The newest manifest whose checksum verifies (the empty state if none)."""
        for attempt in range(3):
            numbers = self._manifest_numbers()
            for number in reversed(numbers):
                try:
                    raw = self.location.read_bytes(_MANIFESTS, f"{number:012d}.json")
                except FileNotFoundError:
                    break  # pruned by a writer while we listed: list again
                manifest = self._parse_manifest(raw, number)
                if manifest is not None:
                    return manifest
            else:
                if numbers:
                    msg = f"{self.location.url}: no manifest verifies ({len(numbers)} damaged)"
                    raise CorruptStoreError(msg)
                return _EMPTY
            time.sleep(0.01 * (attempt + 1))
        msg = f"{self.location.url}: manifests kept changing while being read"
        raise CorruptStoreError(msg)

    def _parse_manifest(self, raw: bytes, number: int) -> _Manifest | None:
        try:
            doc = json.loads(raw)
            body = doc["body"]
            if doc["sha256"] != _body_digest(body) or body["sequence"] != number:
                raise ValueError("checksum or sequence mismatch")
            slices = {}
            for entry in body["slices"]:
                entry = dict(entry)
                slices[entry.pop("label")] = entry
            return _Manifest(
                sequence=body["sequence"],
                slots_allocated=body["slots_allocated"],
                slices=slices,
                retired=list(body["retired"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "%s: ignoring damaged manifest %012d (%s)", self.location.url, number, exc
            )
            return None

    def _zarr_group(self, *, read_only: bool = False):
        import zarr

        read_only = read_only or self.mode == "r"
        try:
            return zarr.open_group(
                self.location.zarr_store(_DATA, read_only=read_only),
                mode="r" if read_only else "r+",
                zarr_format=3,
            )
        except (FileNotFoundError, ValueError, KeyError) as exc:
            msg = f"{self.location.url}: the data group is missing or unreadable ({exc})"
            raise CorruptStoreError(msg) from exc

    def _verify_arrays(self, manifest: _Manifest) -> None:
        group = self._zarr_group()
        need = max((s["slot"] for s in manifest.slices.values()), default=-1) + 1
        for name in self.schema.variables:
            try:
                arr = group[name]
            except KeyError:
                msg = f"{self.location.url}: variable {name!r} is missing from the data group"
                raise CorruptStoreError(msg) from None
            expected = self.schema.slice_shape(name)
            if tuple(arr.shape[1:]) != expected or arr.shape[0] < need:
                msg = (
                    f"{self.location.url}: array {name!r} has shape {arr.shape}, but the "
                    f"committed state needs ({need}, {', '.join(map(str, expected))})"
                )
                raise CorruptStoreError(msg)

    def refresh(self) -> None:
        """Re-read the committed state (to see slices committed by another writer)."""
        self._manifest = self._load_manifest()
        self._verify_arrays(self._manifest)

    # -- introspection -------------------------------------------------------------------
    @property
    def append_dim(self) -> str:
        return self.schema.append_dim

    @property
    def labels(self) -> list:
        """Labels of the committed slices, sorted."""
        return sorted(self._manifest.slices)

    def __len__(self) -> int:
        return len(self._manifest.slices)

    def __contains__(self, label: object) -> bool:
        try:
            return self._label(label) in self._manifest.slices
        except SchemaMismatchError:
            return False

    def __repr__(self) -> str:
        return (
            f"CubeStore({self.location.url!r}, mode={self.mode!r}, "
            f"{self.append_dim}={self.labels!r})"
        )

    def slice_info(self, label) -> dict:
        """Commit record of one slice: slot, coordinates, checksums, commit time."""
        return dict(self._require(label))

    def _label(self, label) -> Any:
        if self.schema.label_dtype == "str":
            if isinstance(label, (str, np.str_)):
                return str(label)
        elif isinstance(label, (int, np.integer)) and not isinstance(label, (bool, np.bool_)):
            return int(label)
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

    # -- reading -------------------------------------------------------------------------
    def to_dataset(self, *, lazy: bool = True, labels: Sequence | None = None) -> xr.Dataset:
        """The committed cube as an :class:`xarray.Dataset`, sorted by label.

        Parameters
        ----------
        lazy : bool
            ``True`` (default) returns dask arrays chunked as stored; ``False`` loads
            the values into memory.
        labels : sequence, optional
            Only these slices (in this order); all by default.

        The result reflects the state committed when it was made: slices committed
        later are not seen, and slices replaced later keep their old values.
        """
        manifest = self._manifest
        chosen = self.labels if labels is None else [self._label(x) for x in labels]
        for label in chosen:
            self._require(label)
        slots = np.asarray([manifest.slices[label]["slot"] for label in chosen], dtype=np.int64)
        group = self._zarr_group(read_only=True)
        variables = {}
        for name, spec in self.schema.variables.items():
            dims = (self.append_dim, *spec.dims)
            values = _read_slots(group[name], slots, lazy=lazy)
            variables[name] = xr.Variable(dims, values, attrs=dict(spec.attrs))
        ds = xr.Dataset(variables, coords=self._coords_for(chosen, manifest))
        ds.attrs = dict(self.schema.attrs)
        return ds

    def read_arrays(
        self, labels, *, variables: Sequence[str] | None = None, **window: slice | int
    ) -> dict[str, np.ndarray]:
        """Eagerly read a window of one or several slices as plain numpy arrays.

        The fast path behind point and region queries: no xarray objects are built.

        Parameters
        ----------
        labels : label or sequence of labels
            One label (arrays have only the window's dims) or several (arrays gain a
            leading axis along the append dimension, in the order given).
        variables : sequence of str, optional
            Only these variables (default all).
        **window : slice or int
            Per fixed dimension, a slice with step 1 or an index (that dimension is then
            dropped); dimensions not named are read whole.

        Small windows are read straight from the chunk objects, bypassing zarr's
        per-call overhead, for the codecs CubeStore writes; large windows and other
        layouts go through zarr.
        """
        single = not isinstance(labels, (list, tuple, np.ndarray))
        chosen = [labels] if single else list(labels)
        slots = [self._require(label)["slot"] for label in chosen]
        unknown = set(window) - set(self.schema.sizes)
        if unknown:
            dims = list(self.schema.sizes)
            msg = f"window names unknown dimensions {sorted(unknown)}; dims are {dims}"
            raise ValueError(msg)
        names = list(self.schema.variables) if variables is None else list(variables)
        missing = [n for n in names if n not in self.schema.variables]
        if missing:
            msg = f"no variables {missing} in the cube; it holds {list(self.schema.variables)}"
            raise KeyNotFoundError(msg)
        out = {}
        for name in names:
            spec = self.schema.variables[name]
            slices, keep = _window_slices(spec.dims, self.schema.sizes, window)
            read = self._reader(name, slices)
            values = np.stack([read(slot, slices) for slot in slots])
            values = values[(slice(None), *keep)]
            out[name] = values[0] if single else values
        return out

    def read_window(self, labels, **window: slice | int) -> xr.Dataset:
        """:meth:`read_arrays` as an :class:`xarray.Dataset` with coordinates and attrs."""
        single = not isinstance(labels, (list, tuple, np.ndarray))
        chosen = [labels] if single else list(labels)
        ds = self.assemble(chosen, self.read_arrays(chosen, **window), **window)
        return ds.isel({self.append_dim: 0}) if single else ds

    def assemble(self, labels: list, arrays: dict, **window: slice | int) -> xr.Dataset:
        """A Dataset like :meth:`read_window`'s from arrays read elsewhere.

        *arrays* maps every variable to values with a leading axis along *labels* and the
        window's shape (as :meth:`read_arrays` returns for a list of labels).
        """
        chosen = list(labels)
        data = {}
        for name, spec in self.schema.variables.items():
            dims = [d for d in spec.dims if not isinstance(window.get(d), (int, np.integer))]
            data[name] = xr.Variable([self.append_dim, *dims], arrays[name], attrs=dict(spec.attrs))
        coords = self._coords_for(chosen, self._manifest)
        for name, spec in self.schema.coords.items():
            dims, _, _ = _coord_parts(spec)
            sel = {d: window[d] for d in dims if d in window}
            coords[name] = xr.Variable(*coords[name][:2], attrs=coords[name][2])[
                tuple(sel.get(d, slice(None)) for d in dims)
            ]
        return xr.Dataset(data, coords=coords, attrs=dict(self.schema.attrs))

    def _reader(self, name: str, slices: list[slice]):
        """``(slot, slices) -> ndarray`` for variable *name*: direct for small windows."""
        readers = self.__dict__.setdefault("_readers", {})
        if name not in readers:
            from stores._direct import DirectReader, Unsupported

            array = self._zarr_group(read_only=True)[name]
            try:
                direct = DirectReader(self.location, (_DATA, name))
            except (Unsupported, KeyError, ValueError, OSError) as exc:
                logger.debug("direct reads of %s unavailable (%s); using zarr", name, exc)
                direct = None
            readers[name] = (direct, array)
        direct, array = readers[name]
        if direct is not None and direct.n_chunks(slices) <= _DIRECT_MAX_CHUNKS:
            return direct.read
        return lambda slot, sl: np.asarray(array[(slot, *sl)])

    def read_slice(self, label, *, lazy: bool = False) -> xr.Dataset:
        """One slice as a Dataset without the append dimension (eager by default)."""
        ds = self.to_dataset(lazy=lazy, labels=[label])
        return ds.isel({self.append_dim: 0})

    def _coords_for(self, chosen: list, manifest: _Manifest) -> dict:
        dim = self.append_dim
        label_dtype = str if self.schema.label_dtype == "str" else np.int64
        coords: dict[Hashable, Any] = {dim: (dim, np.asarray(chosen, dtype=label_dtype))}
        for name, dtype in self.schema.slice_coords.items():
            values = [manifest.slices[label]["coords"][name] for label in chosen]
            coords[name] = (dim, _decode_coord(values, dtype))
        for name, spec in self.schema.coords.items():
            dims, values, attrs = _coord_parts(spec)
            coords[name] = (dims, np.asarray(values), dict(attrs))
        return coords

    def slice_extras(self, label) -> dict | None:
        """The extras document committed with slice *label* (None if it has none).

        Raises
        ------
        CorruptStoreError
            The document on disk differs from the one committed.
        """
        entry = self._require(label)
        digest = entry.get("extras_sha256")
        if digest is None:
            return None
        raw = self.location.read_bytes(_EXTRAS, f"{entry['slot']:08d}.json")
        if hashlib.sha256(raw).hexdigest() != digest:
            msg = (
                f"{self.location.url}: extras of {self.append_dim} {label!r} do not match "
                "their committed checksum"
            )
            raise CorruptStoreError(msg)
        return json.loads(raw)

    def verify(self) -> None:
        """Re-read every committed slice and compare it with its recorded checksum.

        Raises
        ------
        CorruptStoreError
            A slice's stored bytes differ from what was committed.
        """
        group = self._zarr_group()
        for label, entry in sorted(self._manifest.slices.items()):
            for name in self.schema.variables:
                digest = _sha256(np.asarray(group[name][entry["slot"]]))
                if digest != entry["sha256"][name]:
                    msg = (
                        f"{self.location.url}: {self.append_dim} {label!r}, variable {name!r} "
                        "does not match its committed checksum"
                    )
                    raise CorruptStoreError(msg)
            self.slice_extras(label)

    # -- writing -------------------------------------------------------------------------
    def append(
        self,
        data: xr.Dataset,
        label,
        *,
        coords: Mapping | None = None,
        extras: Mapping | None = None,
    ) -> None:
        """Commit a new slice labelled *label*.

        Parameters
        ----------
        data : xarray.Dataset
            The slice: every schema variable with its fixed dims and sizes (a length-1
            append dimension is accepted and squeezed), in a dtype that casts safely to
            the stored one.  Values are computed if they are dask arrays.
        label : int or str
            The slice's label along the append dimension.
        coords : dict
            A value for each of the schema's ``slice_coords``.
        extras : dict, optional
            A JSON-serialisable document committed with the slice (read it back with
            :meth:`slice_extras`), for per-slice tables that do not fit a coordinate.

        Raises
        ------
        ReadOnlyStoreError, SchemaMismatchError, SliceExistsError, StoreLockedError
            Nothing is written in any of these cases.
        """
        self._write(data, label, coords, extras, replace=False)

    def replace(
        self,
        data: xr.Dataset,
        label,
        *,
        coords: Mapping | None = None,
        extras: Mapping | None = None,
    ) -> None:
        """Atomically replace the committed slice *label* (see :meth:`append`).

        Readers see the old slice until the new one is complete.

        Raises
        ------
        KeyNotFoundError
            No slice *label* is committed.
        """
        self._write(data, label, coords, extras, replace=True)

    def _write(self, data, label, coords, extras, *, replace: bool) -> None:
        if self.mode == "r":
            msg = f"cube store {self.location.url} was opened read-only (mode='r')"
            raise ReadOnlyStoreError(msg)
        key = self._label(label)
        values = self._validate_slice(data, key)
        encoded = self._validate_coords(coords or {}, key)
        extras_doc = None
        if extras is not None:
            try:
                extras_doc = json.dumps(extras, sort_keys=True, allow_nan=False).encode()
            except (TypeError, ValueError) as exc:
                msg = f"{self.append_dim} {key!r}: extras are not JSON-serialisable ({exc})"
                raise SchemaMismatchError(msg) from exc
        self._check_presence(self._manifest, key, replace=replace)  # early, before locking
        sums = {name: _sha256(v) for name, v in values.items()}
        with self.location.lock(_LOCK, timeout=self.lock_timeout, purpose="write"):
            manifest = self._load_manifest()  # another writer may have committed
            self._check_presence(manifest, key, replace=replace)
            slot = manifest.slots_allocated
            group = self._zarr_group()
            for name, vals in values.items():
                arr = group[name]
                if arr.shape[0] <= slot:
                    arr.resize((slot + 1, *arr.shape[1:]))
                arr[slot] = vals
            if extras_doc is not None:
                self.location.write_bytes((_EXTRAS, f"{slot:08d}.json"), extras_doc)
            slices = dict(manifest.slices)
            retired = list(manifest.retired)
            if replace:
                retired.append(slices[key]["slot"])
            slices[key] = {
                "slot": slot,
                "coords": encoded,
                "sha256": sums,
                "extras_sha256": None
                if extras_doc is None
                else hashlib.sha256(extras_doc).hexdigest(),
                "committed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            new = _Manifest(
                sequence=manifest.sequence + 1,
                slots_allocated=slot + 1,
                slices=slices,
                retired=retired,
            )
            self._publish(new)
            self._manifest = new
            self._prune_manifests(new.sequence)
        logger.info(
            "%s %s %r in %s (slot %d)",
            "replaced" if replace else "appended",
            self.append_dim,
            key,
            self.location.url,
            slot,
        )

    def _check_presence(self, manifest: _Manifest, key, *, replace: bool) -> None:
        present = key in manifest.slices
        if replace and not present:
            msg = (
                f"cannot replace {self.append_dim} {key!r} in {self.location.url}: it is not "
                f"committed (held: {sorted(manifest.slices)}); use append"
            )
            raise KeyNotFoundError(msg)
        if not replace and present:
            msg = (
                f"{self.append_dim} {key!r} is already in {self.location.url}; "
                "use replace to overwrite it"
            )
            raise SliceExistsError(msg)

    def _publish(self, manifest: _Manifest) -> None:
        body = manifest.body()
        doc = {"sha256": _body_digest(body), "body": body}
        name = f"{manifest.sequence:012d}.json"
        if self.location.exists(_MANIFESTS, name):
            msg = (
                f"{self.location.url}: manifest {name} already exists; another writer "
                "bypassed the lock"
            )
            raise CorruptStoreError(msg)
        remove_stale_temporaries(self.location, _MANIFESTS)
        self.location.write_bytes((_MANIFESTS, name), json.dumps(doc).encode())

    def _prune_manifests(self, newest: int) -> None:
        for number in self._manifest_numbers():
            if number <= newest - _KEEP_MANIFESTS:
                with contextlib.suppress(FileNotFoundError):  # already gone
                    self.location.remove(_MANIFESTS, f"{number:012d}.json")

    def _validate_slice(self, data, key) -> dict[str, np.ndarray]:
        where = f"{self.append_dim} {key!r} for {self.location.url}"
        if not isinstance(data, xr.Dataset):
            msg = f"{where}: expected an xarray.Dataset, got {type(data).__name__}"
            raise SchemaMismatchError(msg)
        dim = self.append_dim
        if dim in data.dims:
            if data.sizes[dim] != 1:
                msg = f"{where}: data has {data.sizes[dim]} entries along {dim!r}, expected 1"
                raise SchemaMismatchError(msg)
            data = data.isel({dim: 0})
        expected, given = set(self.schema.variables), set(data.data_vars)
        if expected != given:
            missing, extra = sorted(expected - given), sorted(given - expected)
            msg = f"{where}: variables do not match the schema (missing {missing}, extra {extra})"
            raise SchemaMismatchError(msg)
        out = {}
        for name, spec in self.schema.variables.items():
            var = data[name]
            shape = self.schema.slice_shape(name)
            if var.dims != spec.dims:
                msg = f"{where}: variable {name!r} has dims {var.dims}, expected {spec.dims}"
                raise SchemaMismatchError(msg)
            if var.shape != shape:
                msg = f"{where}: variable {name!r} has shape {var.shape}, expected {shape}"
                raise SchemaMismatchError(msg)
            if not np.can_cast(var.dtype, spec.dtype, casting="safe"):
                msg = (
                    f"{where}: variable {name!r} has dtype {var.dtype}, which does not cast "
                    f"safely to the stored {spec.dtype}; convert it explicitly"
                )
                raise SchemaMismatchError(msg)
            out[name] = np.ascontiguousarray(np.asarray(var.values, dtype=spec.dtype))
        for name, spec in self.schema.coords.items():
            if name in data.coords:
                dims, values, _ = _coord_parts(spec)
                if data[name].dims != dims or not np.array_equal(data[name].values, values):
                    msg = f"{where}: coordinate {name!r} differs from the cube's"
                    raise SchemaMismatchError(msg)
        return out

    def _validate_coords(self, coords: Mapping, key) -> dict:
        where = f"{self.append_dim} {key!r} for {self.location.url}"
        expected, given = set(self.schema.slice_coords), set(coords)
        if expected != given:
            missing, extra = sorted(expected - given), sorted(given - expected)
            msg = (
                f"{where}: slice coordinates do not match the schema "
                f"(missing {missing}, extra {extra})"
            )
            raise SchemaMismatchError(msg)
        return {
            name: _encode_coord(coords[name], dtype, name, where)
            for name, dtype in self.schema.slice_coords.items()
        }

    def break_lock(self) -> None:
        """Remove a stale lock left by a crashed writer on a non-local store."""
        break_lock(self.location, _LOCK)


def _window_slices(dims, sizes, window) -> tuple[list[slice], tuple]:
    """Slices (step 1) of a window over *dims*, and the indexer dropping int-indexed dims."""
    slices, keep = [], []
    for dim in dims:
        sel = window.get(dim, slice(None))
        size = sizes[dim]
        if isinstance(sel, (int, np.integer)) and not isinstance(sel, bool):
            if not -size <= sel < size:
                msg = f"index {sel} is out of range for dimension {dim!r} of size {size}"
                raise IndexError(msg)
            sel = int(sel) % size
            slices.append(slice(sel, sel + 1))
            keep.append(0)
        elif isinstance(sel, slice):
            start, stop, step = sel.indices(size)
            if step != 1:
                msg = f"window slices must have step 1, got {sel!r} for {dim!r}"
                raise ValueError(msg)
            slices.append(slice(start, max(start, stop)))
            keep.append(slice(None))
        else:
            msg = f"window entries must be ints or slices, got {sel!r} for {dim!r}"
            raise TypeError(msg)
    return slices, tuple(keep)


def _read_slots(array, slots: np.ndarray, *, lazy: bool):
    """Rows *slots* of a zarr array: a dask array (lazy) or a numpy array.

    Arrays are read one by one (not with ``xr.open_zarr``) because a writer that died
    may have grown some arrays and not others; only committed slots are ever read.
    """
    if lazy:
        import dask.array as da

        # one dask chunk per slice: a whole frame is then one task reading its chunks
        # concurrently through zarr (3x faster than a task per zarr chunk)
        stacked = da.from_zarr(array, chunks=(1, *array.shape[1:]))
        if slots.size and np.array_equal(slots, np.arange(slots[0], slots[0] + slots.size)):
            return stacked[slots[0] : slots[0] + slots.size]
        return stacked[slots]
    if slots.size == 0:
        return np.empty((0, *array.shape[1:]), dtype=array.dtype)
    rest = (slice(None),) * (array.ndim - 1)
    return array.get_orthogonal_selection((slots, *rest))


def _compressors(schema: CubeSchema):
    from zarr.codecs import BloscCodec, ZstdCodec

    if schema.compression == "none":
        return None
    if schema.compression == "zstd":
        return (ZstdCodec(level=schema.compression_level),)
    return (BloscCodec(cname="zstd", clevel=schema.compression_level, shuffle="bitshuffle"),)
