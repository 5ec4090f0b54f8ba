"""A labelled Zarr v3 cube that grows along one dimension, committed slice by slice.

Layout of a cube store at ``<root>`` (a local directory or any fsspec URL)::

    <root>/cubestore.json        format marker and schema (written once, at creation)
    <root>/data/                 Zarr v3 group: one array per variable, with dims
                                 (slot, *fixed dims).  This is *internal storage*: index 0
                                 is a slot, not a label (retired and uncommitted slots are
                                 there too); the group's attrs say so.  Open the cube
                                 with CubeStore (or the ``stiscube`` xarray engine).
    <root>/checksums/SSSSSSSS.json
                                 CRC-32C of the stored bytes of every chunk of slot S
    <root>/extras/SSSSSSSS.json  optional JSON document attached to the slice in slot S
                                 (e.g. the table of frames a slice was computed from)
    <root>/manifests/NNNNNNNNNNNN.json
                                 committed states (versions); the newest valid one is
                                 the truth, and every one stays readable until pruned
    <root>/.lock                 the writer lock (local stores: ``fcntl.flock``)

Commit protocol (how readers never see a half-written slice):

1. Data for a new or replaced slice is written to a *fresh slot*, one never referenced
   by any committed manifest.  Committed slots are never written again, so a reader of
   an older state keeps reading consistent values.
2. Checksums are recorded: SHA-256 of each variable's values (checked by
   :meth:`CubeStore.verify`) and, in ``checksums/SSSSSSSS.json``, the CRC-32C of every
   stored chunk, which every read verifies for the chunks it touches.
3. The new state is *published last* by writing manifest number n+1, itself atomic
   (temporary file + rename locally; a single object put elsewhere) and carrying a
   SHA-256 of its own body (which holds the SHA-256 of the slot's checksum and extras
   files).  On open, the newest manifest whose checksum verifies is used, and the
   arrays are checked to cover every slot it names.

A writer killed at any moment therefore leaves at worst an unreferenced slot, which
the next write reuses, and temporary files, which the next writer removes.

Versions: manifest n is version n (version 0, the empty cube, is written at creation),
and each records what changed (append, replace or repair, and the label).  Open an old
one with ``CubeStore(url, version=n)``; list them with :meth:`CubeStore.versions`.
Replacing a slice retires its old slot, which stays on disk for the older versions;
only :meth:`CubeStore.prune` removes old versions and the slots no kept version needs.

Damage: a newest manifest that does not verify, or data without any manifest, opens
read-only at the newest good state, and writes are refused until :meth:`CubeStore.repair`
has been run (it reports what it will do before doing it).

Only one writer at a time: each append or replace takes the store's writer lock, waiting
up to ``lock_timeout`` seconds, and raises :class:`~stores.StoreLockedError` otherwise.
A caller whose checks depend on the committed state holds the lock across its checks
and its writes with ``with store.writing(): ...``.

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
import threading
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
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
from stores._fs import Location, break_lock, remove_stale_temporaries, write_errors
from stores.validate import as_bool, as_float, as_int, as_str, instance_of, one_of, subset_of

__all__ = ["CubeSchema", "CubeStore", "PruneReport", "RepairReport", "VariableSpec"]

logger = logging.getLogger(__name__)

_MARKER = "cubestore.json"
_FORMAT = "stores.CubeStore"
_FORMAT_VERSION = 1
_DATA = "data"
_MANIFESTS = "manifests"
_EXTRAS = "extras"
_LOCK = ".lock"
_CHECKSUMS = "checksums"
_DAMAGED = "damaged"
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
    as_str(schema.append_dim, "append_dim")
    for dim, size in schema.sizes.items():
        if dim == schema.append_dim:
            msg = f"sizes must not include the append dimension {dim!r} (it grows)"
            raise ValueError(msg)
        as_int(size, f"sizes[{dim!r}]", min=1)
    if not schema.variables:
        msg = "variables must name at least one variable"
        raise ValueError(msg)
    for name, spec in schema.variables.items():
        instance_of(spec, f"variables[{name!r}]", VariableSpec, what="a VariableSpec")
        subset_of(spec.dims, f"variables[{name!r}].dims", schema.sizes, non_empty=False)
        np.dtype(spec.dtype)  # raises TypeError for a bad dtype name
        if np.dtype(spec.dtype).kind not in "biuf":
            msg = f"variables[{name!r}].dtype must be numeric or bool, got {spec.dtype!r}"
            raise ValueError(msg)
    one_of(schema.label_dtype, "label_dtype", _LABEL_DTYPES)
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
        subset_of(mapping, f"{what} dimensions", all_dims, non_empty=False)
        for dim, n in mapping.items():
            as_int(n, f"{what}[{dim!r}]", min=1)
    for what, mapping in (("chunks", schema.chunks), ("shards", schema.shards or {})):
        if int(mapping.get(schema.append_dim, 1)) != 1:
            msg = (
                f"{what}[{schema.append_dim!r}] must be 1: each slice is stored in its own "
                "chunks so that committed slices are never rewritten"
            )
            raise ValueError(msg)
    if schema.shards:
        for name in schema.variables:
            for c, s in zip(schema.chunk_shape(name), schema.shard_shape(name), strict=True):
                if s % c:
                    msg = f"shards must be multiples of chunks; got shard {s} for chunk {c}"
                    raise ValueError(msg)
    one_of(schema.compression, "compression", _COMPRESSIONS)


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
            return str(as_str(value, name, non_empty=False))
        kind = np.dtype(dtype).kind
        if kind == "M":
            return str(np.datetime_as_string(_datetime_ns(value, name, where), unit="ns"))
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            if np.dtype(dtype).kind in "iu":
                info = np.iinfo(dtype)
                if not info.min <= int(value) <= info.max:
                    msg = (
                        f"{where}: slice coordinate {name!r} = {value} is outside the range "
                        f"of {dtype} ([{info.min}, {info.max}])"
                    )
                    raise SchemaMismatchError(msg)
                return int(value)
        arr = np.asarray(value)
        if arr.ndim != 0 or not np.can_cast(arr.dtype, dtype, "same_kind"):
            raise TypeError
        return _json_scalar(arr.astype(dtype)[()])
    except SchemaMismatchError:
        raise
    except (TypeError, ValueError, OverflowError):
        msg = f"{where}: slice coordinate {name!r} must be a scalar of type {dtype}, got {value!r}"
        raise SchemaMismatchError(msg) from None


#: the representable range of datetime64[ns] (whole seconds inside it)
_NS_MIN = np.datetime64("1677-09-21T00:12:44", "s")
_NS_MAX = np.datetime64("2262-04-11T23:47:16", "s")


def _datetime_ns(value: Any, name: str, where: str) -> np.datetime64:
    """*value* as datetime64[ns], refusing (never wrapping) dates outside its range."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, np.datetime64):
        raise TypeError  # a bare number is not a date (which epoch? which unit?)
    parsed = np.datetime64(value)  # natural unit first: no silent wrap-around
    if np.isnat(parsed):
        return np.datetime64("NaT", "ns")
    coarse = parsed.astype("datetime64[s]")
    if np.isnat(coarse) or not _NS_MIN <= coarse < _NS_MAX:
        msg = (
            f"{where}: slice coordinate {name!r} = {value!r} is outside the datetime64[ns] "
            f"range ({_NS_MIN} to {_NS_MAX}); it is refused rather than wrapped"
        )
        raise SchemaMismatchError(msg)
    converted = parsed.astype("datetime64[ns]")
    finer = np.datetime_data(parsed.dtype)[0] in ("ps", "fs", "as")
    if finer and converted.astype(parsed.dtype) != parsed:  # precision below 1 ns
        msg = f"{where}: slice coordinate {name!r} = {value!r} cannot be held in datetime64[ns]"
        raise SchemaMismatchError(msg)
    return converted


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
    slices: dict  # label (python scalar) -> {"slot", "coords", "sha256", "committed", ...}
    retired: list
    change: dict | None = None  # {"action", "label", "time"} of the commit that made it

    def body(self) -> dict:
        body = {
            "sequence": self.sequence,
            "slots_allocated": self.slots_allocated,
            "slices": [{"label": k, **v} for k, v in self.slices.items()],
            "retired": list(self.retired),
        }
        if self.change is not None:
            body["change"] = dict(self.change)
        return body

    def slots(self) -> set[int]:
        return {int(e["slot"]) for e in self.slices.values()}


_EMPTY = _Manifest(sequence=0, slots_allocated=0, slices={}, retired=[])


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class RepairReport:
    """What :meth:`CubeStore.repair` found and did (or, with ``dry_run``, would do).

    Attributes
    ----------
    problems : tuple of str
        What is wrong with the store (empty when it is healthy).
    actions : tuple of str
        The steps of the repair, in order, one sentence each.
    applied : bool
        Whether the actions were carried out (False for a dry run).
    """

    problems: tuple[str, ...]
    actions: tuple[str, ...]
    applied: bool

    def __str__(self) -> str:
        if not self.problems and not self.actions:
            return "nothing to repair"
        head = "repaired" if self.applied else "would repair (dry run)"
        lines = [f"{head}:", *(f"  problem: {p}" for p in self.problems)]
        lines += [f"  {'did' if self.applied else 'will'}: {a}" for a in self.actions]
        return "\n".join(lines)


@dataclass(frozen=True)
class PruneReport:
    """What :meth:`CubeStore.prune` removed (or, with ``dry_run``, would remove).

    Attributes
    ----------
    kept_versions : tuple of int
        The versions that stay readable.
    removed_versions : tuple of int
        Versions whose manifests are removed.
    removed_slots : tuple of int
        Storage slots (data chunks, checksum and extras files) no kept version uses.
    applied : bool
        Whether the removal was carried out (False for a dry run).
    """

    kept_versions: tuple[int, ...]
    removed_versions: tuple[int, ...]
    removed_slots: tuple[int, ...]
    applied: bool

    def __str__(self) -> str:
        verb = "removed" if self.applied else "would remove (dry run)"
        return (
            f"{verb} versions {list(self.removed_versions)} and slots "
            f"{list(self.removed_slots)}; kept versions {list(self.kept_versions)}"
        )


class CubeStore:
    """A labelled cube in Zarr v3 that grows along one dimension.

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
        :class:`~stores.StoreLockedError` (default 0: fail at once).
    version : int, optional
        Open this committed version (see :meth:`versions`) instead of the newest; the
        handle is then read-only (``mode="r"`` is required).

    Raises
    ------
    NotAStoreError
        Nothing, or something other than a cube store, is at *location*.
    CorruptStoreError
        The store's metadata is unreadable or its arrays do not cover the committed
        slices.
    KeyNotFoundError
        *version* is not (or no longer) held.
    """

    def __init__(
        self,
        location: str | PathLike,
        *,
        mode: str = "r",
        lock_timeout: float = 0.0,
        version: int | None = None,
    ) -> None:
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
        self._checksum_cache: dict[tuple[int, str], dict] = {}
        self._verified_slots: set[tuple[str, int]] = set()
        self._handle_lock = threading.RLock()
        self._held = None
        self._depth = 0
        self._cleaned = False
        self.schema = self._read_schema()
        self.refresh()

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
        ReadOnlyStoreError
            The backend offers no atomic writer lock (see :class:`CubeStore`).
        """
        import zarr

        instance_of(schema, "schema", CubeSchema, what="a CubeSchema")
        loc = Location.parse(location)
        loc.check_writable()
        if loc.exists() and (not loc.isdir() or loc.listdir()):
            what = "a cube store" if loc.exists(_MARKER) else "files that are not a cube store"
            msg = f"cannot create a cube store at {loc.url}: it already holds {what}"
            raise StoreExistsError(msg)
        with write_errors(f"cube store {loc.url}"):
            loc.makedirs()
            with loc.lock(_LOCK, timeout=lock_timeout, purpose="create"):
                slot_dim = "slot" if "slot" not in schema.sizes else "_slot"
                group = zarr.open_group(
                    loc.zarr_store(_DATA),
                    mode="w",
                    zarr_format=3,
                    attributes=_storage_attrs(schema, slot_dim),
                )
                for name, spec in schema.variables.items():
                    group.create_array(
                        name,
                        shape=(0, *schema.slice_shape(name)),
                        chunks=schema.chunk_shape(name),
                        shards=schema.shard_shape(name),
                        dtype=spec.dtype,
                        fill_value=spec.resolved_fill_value(),
                        compressors=_compressors(schema),
                        dimension_names=(slot_dim, *spec.dims),
                        attributes={**dict(spec.attrs), "storage_note": _STORAGE_NOTE},
                    )
                empty = _Manifest(0, 0, {}, [], change={"action": "create", "time": _now()})
                _publish(loc, empty)
                # the marker goes last: a crash before it leaves no half-made store that opens
                marker = {
                    "format": _FORMAT,
                    "version": _FORMAT_VERSION,
                    "created": _now(),
                    "schema": schema.to_json(),
                }
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
        where = loc.join(_MARKER)
        try:
            marker = json.loads(loc.read_bytes(_MARKER))
            if not isinstance(marker, dict) or marker.get("format") != _FORMAT:
                msg = f"{loc.url}: {_MARKER} does not describe a cube store"
                raise NotAStoreError(msg)
            version = marker.get("version", 0)
            if isinstance(version, bool) or not isinstance(version, int):
                msg = f"{where}: format version must be an integer, got {version!r}"
                raise CorruptStoreError(msg)
            if version > _FORMAT_VERSION:
                msg = (
                    f"{loc.url}: cube format version {version} is newer than "
                    f"this software understands ({_FORMAT_VERSION}); upgrade stiscube"
                )
                raise CorruptStoreError(msg)
            self._created = marker.get("created")
            return CubeSchema.from_json(marker["schema"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            msg = f"{loc.url}: unreadable {_MARKER} ({where}: {exc!r})"
            raise CorruptStoreError(msg) from exc

    def _manifest_numbers(self) -> list[int]:
        names = self.location.listdir(_MANIFESTS)
        return sorted(int(m.group(1)) for n in names if (m := _MANIFEST_NAME.match(n)))

    def _read_manifest(self, number: int) -> tuple[_Manifest | None, str]:
        """Manifest *number* and "" if it verifies, else None and the reason."""
        raw = self.location.read_bytes(_MANIFESTS, f"{number:012d}.json")
        return _parse_manifest(raw, number)

    def _load_manifest(self) -> _Manifest:
        """The newest manifest whose checksum verifies (the empty state if none).

        Damaged manifests newer than it, and data without any manifest, are recorded in
        ``self._problems``: the store then refuses writes until :meth:`repair`.
        """
        if self._pinned is not None:
            return self._load_version(self._pinned)
        for attempt in range(3):
            numbers = self._manifest_numbers()
            damaged = []
            for number in reversed(numbers):
                try:
                    manifest, reason = self._read_manifest(number)
                except FileNotFoundError:
                    break  # pruned by a writer while we listed: list again
                if manifest is not None:
                    self._set_problems(damaged)
                    return manifest
                logger.warning(
                    "%s: ignoring damaged manifest %012d (%s); writes are refused until "
                    "the store is repaired",
                    self.location.url,
                    number,
                    reason,
                )
                damaged.append(f"manifest {number:012d}.json is damaged ({reason})")
            else:
                if numbers:
                    msg = (
                        f"{self.location.url}: no manifest verifies ({len(numbers)} damaged); "
                        "run CubeStore.repair() (stiscube repair) to see the options"
                    )
                    raise CorruptStoreError(msg)
                self._set_problems([])
                return _EMPTY
            time.sleep(0.01 * (attempt + 1))
        msg = f"{self.location.url}: manifests kept changing while being read"
        raise CorruptStoreError(msg)

    def _set_problems(self, damaged: list[str]) -> None:
        self._problems = list(damaged)

    def _load_version(self, number: int) -> _Manifest:
        try:
            manifest, reason = self._read_manifest(number)
        except FileNotFoundError:
            numbers = self._manifest_numbers()
            if number == 0 and (not numbers or numbers[0] == 1):
                return _EMPTY
            held = [v["version"] for v in self.versions()]
            msg = (
                f"version {number} is not in cube store {self.location.url} (never made or "
                f"pruned); it holds versions {held}"
            )
            raise KeyNotFoundError(msg) from None
        if manifest is None:
            msg = f"{self.location.url}: version {number} is damaged ({reason})"
            raise CorruptStoreError(msg)
        return manifest

    def _zarr_group(self, *, read_only: bool = False):
        import zarr

        read_only = read_only or self.mode == "r"
        try:
            return zarr.open_group(
                self.location.zarr_store(_DATA, read_only=read_only),
                mode="r" if read_only else "r+",
                zarr_format=3,
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
            path = self.location.join(_DATA, "zarr.json")
            msg = f"{self.location.url}: the data group is missing or unreadable ({path}: {exc})"
            raise CorruptStoreError(msg) from exc

    def _array(self, group, name: str):
        try:
            return group[name]
        except KeyError:
            msg = f"{self.location.url}: variable {name!r} is missing from the data group"
            raise CorruptStoreError(msg) from None
        except (ValueError, TypeError) as exc:
            path = self.location.join(_DATA, name, "zarr.json")
            msg = f"{self.location.url}: variable {name!r} has unreadable metadata ({path}: {exc})"
            raise CorruptStoreError(msg) from exc

    def _verify_arrays(self, manifest: _Manifest) -> None:
        group = self._zarr_group(read_only=True)
        need = max((s["slot"] for s in manifest.slices.values()), default=-1) + 1
        held = 0
        for name in self.schema.variables:
            arr = self._array(group, name)
            expected = self.schema.slice_shape(name)
            held = max(held, arr.shape[0])
            if tuple(arr.shape[1:]) != expected or arr.shape[0] < need:
                msg = (
                    f"{self.location.url}: array {name!r} has shape {arr.shape}, but the "
                    f"committed state needs ({need}, {', '.join(map(str, expected))})"
                )
                raise CorruptStoreError(msg)
        self._slots_on_disk = held
        if self._pinned is None and manifest is _EMPTY and held and not self._problems:
            self._problems.append(
                f"the data arrays hold {held} slots but {_MANIFESTS}/ holds no manifest "
                "(missing or emptied): the committed state is unknown"
            )

    def refresh(self) -> None:
        """Re-read the committed state (to see slices committed by another writer).

        A handle opened at a fixed ``version`` keeps that version.
        """
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

    @property
    def version(self) -> int:
        """The number of the committed version this handle reads (0: the empty cube)."""
        return int(self._manifest.sequence)

    @property
    def problems(self) -> list[str]:
        """Damage found on open that makes the store refuse writes (see :meth:`repair`)."""
        return list(self._problems)

    def versions(self) -> list[dict]:
        """Every committed version held, oldest first.

        Returns
        -------
        list of dict
            One per version: ``version`` (int), ``time`` (UTC, ISO 8601, or None when
            unknown), ``action`` (``"create"``, ``"append"``, ``"replace"``, ``"repair"``,
            or ``"damaged"`` for a manifest that does not verify), ``label`` (the slice
            appended or replaced, else None) and ``labels`` (how many slices it holds).
        """
        out = []
        previous: _Manifest | None = None
        numbers = self._manifest_numbers()
        if not numbers or numbers[0] == 1:  # a store made before version 0 was written
            out.append(
                {"version": 0, "time": self._created, "action": "create", "label": None,
                 "labels": 0}
            )
            previous = _EMPTY
        for number in numbers:
            try:
                manifest, _ = self._read_manifest(number)
            except FileNotFoundError:  # pruned meanwhile
                continue
            if manifest is None:
                out.append(
                    {"version": number, "time": None, "action": "damaged", "label": None,
                     "labels": None}
                )
                continue
            change = dict(manifest.change or _infer_change(previous, manifest))
            out.append(
                {
                    "version": number,
                    "time": change.get("time"),
                    "action": change.get("action"),
                    "label": change.get("label"),
                    "labels": len(manifest.slices),
                }
            )
            previous = manifest
        return out

    def __len__(self) -> int:
        return len(self._manifest.slices)

    def __contains__(self, label: object) -> bool:
        try:
            return self._label(label) in self._manifest.slices
        except SchemaMismatchError:
            return False

    def __repr__(self) -> str:
        pinned = "" if self._pinned is None else f", version={self._pinned}"
        return (
            f"CubeStore({self.location.url!r}, mode={self.mode!r}{pinned}, "
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

    # -- reading -------------------------------------------------------------------------
    def to_dataset(self, *, lazy: bool = True, labels: Sequence | None = None) -> xr.Dataset:
        """The committed cube as an :class:`xarray.Dataset`, sorted by label.

        Parameters
        ----------
        lazy : bool
            ``True`` (default) returns dask arrays (one chunk per slice); ``False``
            loads the values into memory.
        labels : sequence, optional
            Only these slices (in this order); all by default.

        The result reflects the state committed when it was made: slices committed
        later are not seen, and slices replaced later keep their old values.  Every
        chunk read is verified against its committed checksum.
        """
        manifest = self._manifest
        chosen = self.labels if labels is None else [self._label(x) for x in labels]
        for label in chosen:
            self._require(label)
        variables = {}
        for name, spec in self.schema.variables.items():
            dims = (self.append_dim, *spec.dims)
            source = _SlotStack(self, name, chosen, manifest)
            if lazy:
                import dask.array as da

                values = da.from_array(
                    source,
                    chunks=(1, *source.shape[1:]),
                    asarray=True,
                    lock=False,
                    name=f"cubestore-{name}-{source.token}",
                    meta=np.empty((0,) * source.ndim, dtype=source.dtype),
                )
            else:
                values = source[(slice(None),) * source.ndim]
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

        Windows are read straight from the chunk objects, bypassing zarr's per-call
        overhead, and every chunk touched is verified against its committed CRC-32C.

        Raises
        ------
        CorruptStoreError
            A chunk touched is damaged, missing or undecodable (the message names the
            variable, the slice label and the file).
        """
        single = not isinstance(labels, (list, tuple, np.ndarray))
        chosen = [labels] if single else list(labels)
        manifest = self._manifest
        entries = [(self._label(label), self._require(label)) for label in chosen]
        subset_of(window, "window dimensions", self.schema.sizes, non_empty=False)
        names = list(self.schema.variables) if variables is None else list(variables)
        missing = [n for n in names if n not in self.schema.variables]
        if missing:
            msg = f"no variables {missing} in the cube; it holds {list(self.schema.variables)}"
            raise KeyNotFoundError(msg)
        out = {}
        for name in names:
            spec = self.schema.variables[name]
            slices, keep = _window_slices(spec.dims, self.schema.sizes, window)
            values = np.stack(
                [self._read_slot(name, key, entry, slices, manifest) for key, entry in entries]
            )
            values = values[(slice(None), *keep)]
            out[name] = values[0] if single else values
        return out

    def _read_slot(self, name: str, label, entry: dict, slices: list, manifest) -> np.ndarray:
        """Verified values of ``variable[slot, *slices]`` for the committed slice *label*."""
        direct = self._direct(name)
        context = f"{self.location.url}: {self.append_dim} {label!r}, variable {name!r}"
        slot = int(entry["slot"])
        table = self._slot_checksums(label, entry)
        if direct is not None and table is not None:
            if name not in table:
                msg = f"{context}: the slot's checksum table has no entry for the variable"
                raise CorruptStoreError(msg)
            return direct.read(slot, slices, checksums=table[name], context=context)
        # a slice committed before per-chunk checksums: verify the whole slot once
        if (name, slot) not in self._verified_slots:
            full = [slice(0, n) for n in self.schema.slice_shape(name)]
            whole = self._read_unverified(name, slot, full, context)
            if _sha256(whole) != entry["sha256"][name]:
                msg = f"{context}: the stored values do not match their committed checksum"
                raise CorruptStoreError(msg)
            self._verified_slots.add((name, slot))
        return self._read_unverified(name, slot, slices, context)

    def _read_unverified(self, name, slot, slices, context) -> np.ndarray:
        direct = self._direct(name)
        if direct is not None:
            return direct.read(slot, slices, context=context)
        array = self._array(self._zarr_group(read_only=True), name)
        try:
            return np.asarray(array[(slot, *slices)])
        except (ValueError, RuntimeError, OSError) as exc:
            msg = f"{context}: unreadable chunk data ({exc!r})"
            raise CorruptStoreError(msg) from exc

    def _direct(self, name: str):
        """The direct chunk reader of variable *name* (None if zarr must be used)."""
        readers = self.__dict__.setdefault("_readers", {})
        if name not in readers:
            from stores._direct import DirectReader, Unsupported

            try:
                readers[name] = DirectReader(self.location, (_DATA, name))
            except Unsupported as exc:
                logger.debug("direct reads of %s unavailable (%s); using zarr", name, exc)
                readers[name] = None
            except FileNotFoundError:
                msg = f"{self.location.url}: variable {name!r} is missing from the data group"
                raise CorruptStoreError(msg) from None
        return readers[name]

    def _slot_checksums(self, label, entry: dict) -> dict | None:
        """The committed per-chunk checksum table of *entry*'s slot (None for old slices)."""
        digest = entry.get("checksums_sha256")
        if digest is None:
            return None
        slot = int(entry["slot"])
        cached = self._checksum_cache.get((slot, digest))
        if cached is not None:
            return cached
        name = f"{slot:08d}.json"
        path = self.location.join(_CHECKSUMS, name)
        where = f"{self.location.url}: {self.append_dim} {label!r}: checksum file {path}"
        table = json.loads(self._read_committed(_CHECKSUMS, name, digest, where))["variables"]
        self._checksum_cache[(slot, digest)] = table
        return table

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
            The document on disk differs from the one committed, or is missing.
        """
        entry = self._require(label)
        digest = entry.get("extras_sha256")
        if digest is None:
            return None
        name = f"{entry['slot']:08d}.json"
        path = self.location.join(_EXTRAS, name)
        where = f"{self.location.url}: extras of {self.append_dim} {label!r} ({path})"
        return json.loads(self._read_committed(_EXTRAS, name, digest, where, plural=True))

    def _read_committed(self, group: str, name: str, digest: str, where: str, *,
                        plural: bool = False) -> bytes:
        """The bytes of *group*/*name*, checked against their committed SHA-256 *digest*.

        Raises
        ------
        CorruptStoreError
            ``"<where> is missing"`` or ``"<where> does not match its committed checksum"``
            (``are`` / ``do not ... their`` when *plural*).
        """
        try:
            raw = self.location.read_bytes(group, name)
        except FileNotFoundError:
            msg = f"{where} {'are' if plural else 'is'} missing"
            raise CorruptStoreError(msg) from None
        if hashlib.sha256(raw).hexdigest() != digest:
            verb = "do not match their" if plural else "does not match its"
            raise CorruptStoreError(f"{where} {verb} committed checksum")
        return raw

    def verify(self) -> None:
        """Re-read every committed slice and compare it with its recorded checksums.

        Checks each stored chunk's CRC-32C, each variable's SHA-256 over its values, and
        the extras and checksum files.

        Raises
        ------
        CorruptStoreError
            A slice's stored bytes differ from what was committed.
        """
        for label, entry in sorted(self._manifest.slices.items()):
            for name in self.schema.variables:
                full = [slice(0, n) for n in self.schema.slice_shape(name)]
                values = self._read_slot(name, label, entry, full, self._manifest)
                if _sha256(values) != entry["sha256"][name]:
                    msg = (
                        f"{self.location.url}: {self.append_dim} {label!r}, variable {name!r} "
                        "does not match its committed checksum"
                    )
                    raise CorruptStoreError(msg)
            self.slice_extras(label)

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
            msg = (
                f"cube store {self.location.url} refuses writes until it is repaired: "
                f"{'; '.join(self._problems)}. Run CubeStore.repair() (or `stiscube repair`) "
                "to see what the repair will do"
            )
            raise CorruptStoreError(msg)

    @contextlib.contextmanager
    def writing(self) -> Iterator[CubeStore]:
        """Hold the writer lock across a caller's checks and its writes.

        ``with store.writing(): ...`` takes the store's writer lock (waiting up to
        ``lock_timeout``), refreshes the handle to the newest committed manifest, and
        keeps the lock until the block ends.  Checks made inside the block (for example
        "does this period overlap a committed one?") therefore see the state that the
        writes inside it will extend: no other writer can commit in between.  It is
        re-entrant on the same handle: :meth:`append` and :meth:`replace` inside it do
        not lock again.  The first writing block of a handle also removes temporary
        files left by killed writers.

        Raises
        ------
        ReadOnlyStoreError
            The handle is read-only, pinned to a version, or on a backend without an
            atomic lock.
        StoreLockedError
            Another writer holds the lock beyond ``lock_timeout``.
        CorruptStoreError
            The store needs :meth:`repair` first.
        """
        self._check_writable()
        with self._handle_lock:
            if self._depth == 0:
                lock = self.location.lock(_LOCK, timeout=self.lock_timeout, purpose="write")
                lock.acquire()
                self._held = lock
            self._depth += 1
            try:
                if self._depth == 1:
                    self.refresh()
                    self._check_healthy()
                    if not self._cleaned:
                        self._clean_temporaries()
                        self._cleaned = True
                yield self
            finally:
                self._depth -= 1
                if self._depth == 0:
                    held, self._held = self._held, None
                    held.release()

    def _clean_temporaries(self, *, dry_run: bool = False) -> list[str]:
        """Temporary files of killed writers (only while holding the lock)."""
        if not self.location.is_local:
            return []
        if dry_run:
            from pathlib import Path

            root = Path(self.location.root)
            return sorted(
                str(p)
                for p in root.rglob("*")
                if p.is_file()
                and ((p.name.startswith(".") and p.name.endswith(".tmp")) or p.name.endswith(
                    ".partial"))
            )
        removed = []
        for part in (_EXTRAS, _MANIFESTS, _CHECKSUMS):
            removed += remove_stale_temporaries(self.location, part)
        removed += remove_stale_temporaries(self.location, _DATA, recursive=True)
        removed += remove_stale_temporaries(self.location)
        return removed

    def commit(
        self,
        data: xr.Dataset,
        label,
        *,
        coords: Mapping | None = None,
        extras: Mapping | None = None,
        replace: bool = False,
    ) -> None:
        """Commit the slice *label*: a new one, or (``replace=True``) a new committed one.

        :meth:`append` and :meth:`replace` are this method with ``replace`` fixed.  A
        replaced slice is written to a fresh slot: readers see the old slice until the
        new one is complete, and the old values stay readable at the older versions
        (``CubeStore(url, version=n)``).

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
        values = self._validate_slice(data, key)
        encoded = self._validate_coords(coords or {}, key)
        extras_doc = None
        if extras is not None:
            try:
                extras_doc = json.dumps(extras, sort_keys=True, allow_nan=False).encode()
            except (TypeError, ValueError) as exc:
                msg = f"{self.append_dim} {key!r}: extras are not JSON-serialisable ({exc})"
                raise SchemaMismatchError(msg) from exc
        if self._depth == 0:
            self._check_healthy()
            self._check_presence(self._manifest, key, replace=replace)  # early, before locking
        sums = {name: _sha256(v) for name, v in values.items()}
        with self.writing():
            manifest = self._manifest  # the newest: refreshed under the lock
            self._check_presence(manifest, key, replace=replace)
            slot = manifest.slots_allocated
            with write_errors(f"cube store {self.location.url}"):
                table = self._write_slot(slot, values)
                doc = {
                    "algorithm": _checksum_algorithm(),
                    "slot": slot,
                    "label": key,
                    "variables": table,
                }
                checksums_doc = json.dumps(doc, sort_keys=True).encode()
                self.location.write_bytes((_CHECKSUMS, f"{slot:08d}.json"), checksums_doc)
                if extras_doc is not None:
                    self.location.write_bytes((_EXTRAS, f"{slot:08d}.json"), extras_doc)
                slices = dict(manifest.slices)
                retired = list(manifest.retired)
                if replace:
                    retired.append(slices[key]["slot"])
                now = _now()
                slices[key] = {
                    "slot": slot,
                    "coords": encoded,
                    "sha256": sums,
                    "checksums_sha256": hashlib.sha256(checksums_doc).hexdigest(),
                    "extras_sha256": None
                    if extras_doc is None
                    else hashlib.sha256(extras_doc).hexdigest(),
                    "committed": now,
                }
                new = _Manifest(
                    sequence=manifest.sequence + 1,
                    slots_allocated=slot + 1,
                    slices=slices,
                    retired=retired,
                    change={
                        "action": "replace" if replace else "append",
                        "label": key,
                        "time": now,
                    },
                )
                self._publish(new)
            self._manifest = new
        logger.info(
            "%s %s %r in %s (slot %d, version %d)",
            "replaced" if replace else "appended",
            self.append_dim,
            key,
            self.location.url,
            slot,
            new.sequence,
        )

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

    def _write_slot(self, slot: int, values: dict[str, np.ndarray]) -> dict:
        """Write *values* into *slot* of every array; returns the per-chunk checksums."""
        from stores._direct import DirectReader, Unsupported

        group = self._zarr_group()
        table = {}
        for name, vals in values.items():
            arr = group[name]
            if arr.shape[0] <= slot:
                arr.resize((slot + 1, *arr.shape[1:]))
            arr[slot] = vals
            try:
                reader = DirectReader(self.location, (_DATA, name))
            except Unsupported:
                continue  # such slices are verified through their values' SHA-256
            table[name] = reader.chunk_checksums(slot)
        return table

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
        _publish(self.location, manifest)

    # -- maintenance ---------------------------------------------------------------------
    def repair(self, *, dry_run: bool = True) -> RepairReport:
        """Find damage that blocks writes and (with ``dry_run=False``) repair it.

        Nothing committed and readable is ever deleted:

        - damaged manifests newer than the newest good one are moved to
          ``manifests/damaged/`` (kept for inspection);
        - a new version is published holding the newest good state (or, when no manifest
          is left, the empty state), with every slot present on disk marked as used, so
          later writes never overwrite storage a damaged or lost manifest pointed to;
        - temporary files of killed writers are removed.

        Parameters
        ----------
        dry_run : bool
            True (default): only report what would be done.

        Returns
        -------
        RepairReport
            The problems found and the actions (taken, or planned for a dry run).
        """
        self._check_writable()
        lock = self.location.lock(_LOCK, timeout=self.lock_timeout, purpose="repair")
        with self._handle_lock, lock:
            self.refresh()
            problems = list(self._problems)
            good = self._manifest
            numbers = self._manifest_numbers()
            damaged = [n for n in numbers if n > good.sequence]
            actions = [
                f"move damaged manifest {self.location.join(_MANIFESTS, f'{n:012d}.json')} "
                f"to {_MANIFESTS}/{_DAMAGED}/"
                for n in damaged
            ]
            temporaries = self._clean_temporaries(dry_run=True)
            new = None
            if problems:
                sequence = max([good.sequence, *numbers]) + 1
                slots = max(good.slots_allocated, self._slots_on_disk)
                new = _Manifest(
                    sequence=sequence,
                    slots_allocated=slots,
                    slices=dict(good.slices),
                    retired=list(good.retired),
                    change={"action": "repair", "label": None, "time": _now()},
                )
                state = f"version {good.sequence}" if good is not _EMPTY else "the empty state"
                actions.append(
                    f"publish version {sequence} holding {state} "
                    f"({len(good.slices)} slices), with slots 0-{slots - 1} marked used so "
                    "that no later write overwrites them"
                )
            actions += [f"remove temporary file {t}" for t in temporaries]
            if not dry_run:
                with write_errors(f"cube store {self.location.url}"):
                    for n in damaged:
                        name = f"{n:012d}.json"
                        raw = self.location.read_bytes(_MANIFESTS, name)
                        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                        self.location.write_bytes((_MANIFESTS, _DAMAGED, f"{name}.{stamp}"), raw)
                        self.location.remove(_MANIFESTS, name)
                    if new is not None:
                        self._publish(new)
                    self._clean_temporaries()
                self.refresh()
                logger.info("repaired %s: %s", self.location.url, "; ".join(actions) or "nothing")
        return RepairReport(tuple(problems), tuple(actions), applied=not dry_run)

    def prune(self, *, keep_last: int, dry_run: bool = False) -> PruneReport:
        """Remove all but the newest *keep_last* versions, and the storage only they used.

        Never a side effect of a write: old versions stay readable until this is called.
        Slots (data chunks, checksum and extras files) used by any kept version are
        never removed.  Handles still reading a removed version (opened with
        ``version=`` or not refreshed since) then get :class:`~stores.CorruptStoreError`
        for the removed chunks (never wrong values): refresh them or reopen.

        Parameters
        ----------
        keep_last : int
            How many of the newest versions stay readable (at least 1).
        dry_run : bool
            Only report what would be removed.

        Returns
        -------
        PruneReport
        """
        keep_last = as_int(keep_last, "keep_last")
        if keep_last < 1:  # message kept word for word: `stiscube prune` shows it
            msg = f"keep_last must be >= 1 (the current version is always kept), got {keep_last}"
            raise ValueError(msg)
        with self.writing():
            numbers = self._manifest_numbers()
            kept = numbers[-int(keep_last):]
            removed = [n for n in numbers if n not in kept]
            needed: set[int] = set()
            for n in kept:
                manifest, reason = self._read_manifest(n)
                if manifest is None:  # cannot happen on a healthy store; be safe
                    msg = f"{self.location.url}: version {n} is damaged ({reason}); not pruning"
                    raise CorruptStoreError(msg)
                needed |= manifest.slots()
            candidates = set(range(self._manifest.slots_allocated)) - needed
            slots = sorted(s for s in candidates if self._slot_stored(s))
            if not dry_run:
                with write_errors(f"cube store {self.location.url}"):
                    for n in removed:  # oldest first: a reader never sees a gap below kept
                        with contextlib.suppress(FileNotFoundError):
                            self.location.remove(_MANIFESTS, f"{n:012d}.json")
                    for slot in slots:
                        self._remove_slot(slot)
                logger.info(
                    "pruned %s: versions %s, slots %s", self.location.url, removed, slots
                )
        return PruneReport(tuple(kept), tuple(removed), tuple(slots), applied=not dry_run)

    def _slot_stored(self, slot: int) -> bool:
        if self.location.exists(_CHECKSUMS, f"{slot:08d}.json"):
            return True
        if self.location.exists(_EXTRAS, f"{slot:08d}.json"):
            return True
        return any(self.location.exists(_DATA, n, "c", str(slot)) for n in self.schema.variables)

    def _remove_slot(self, slot: int) -> None:
        for name in self.schema.variables:
            path = self.location.join(_DATA, name, "c", str(slot))
            if self.location.fs.exists(path):
                self.location.fs.rm(path, recursive=True)
        for part in (_CHECKSUMS, _EXTRAS):
            with contextlib.suppress(FileNotFoundError):
                self.location.remove(part, f"{slot:08d}.json")

    # -- validation ----------------------------------------------------------------------
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


class _SlotStack:
    """Array-like over the committed slots of one variable, read through verified reads.

    Indexing it reads only the chunks needed (through :meth:`CubeStore._read_slot`); it
    backs the dask arrays of :meth:`CubeStore.to_dataset`.
    """

    def __init__(self, store: CubeStore, name: str, labels: list, manifest: _Manifest) -> None:
        self.store = store
        self.name = name
        self.labels = list(labels)
        self.entries = [manifest.slices[label] for label in self.labels]
        self.manifest = manifest
        self.dtype = np.dtype(store.schema.variables[name].dtype)
        self.shape = (len(self.labels), *store.schema.slice_shape(name))
        self.ndim = len(self.shape)
        slots = ",".join(str(e["slot"]) for e in self.entries)
        self.token = hashlib.sha1(
            f"{store.location.key}|{manifest.sequence}|{name}|{slots}".encode()
        ).hexdigest()[:16]

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        # read the bounding box of step-1 slices, then apply the rest with numpy
        boxes, rest = [], []
        for k, n in zip(key[1:], self.shape[1:], strict=True):
            if isinstance(k, slice) and k.step in (None, 1):
                start, stop, _ = k.indices(n)
                boxes.append(slice(start, max(start, stop)))
                rest.append(slice(None))
            elif isinstance(k, (int, np.integer)):
                i = int(k) % n if -n <= int(k) < n else n
                if i >= n:
                    msg = f"index {k} is out of bounds for size {n}"
                    raise IndexError(msg)
                boxes.append(slice(i, i + 1))
                rest.append(0)
            else:
                boxes.append(slice(0, n))
                rest.append(k)
        picks = np.arange(self.shape[0])[key[0]]
        scalar = np.ndim(picks) == 0
        picks = np.atleast_1d(picks)
        blocks = [
            self.store._read_slot(
                self.name, self.labels[i], self.entries[i], boxes, self.manifest
            )
            for i in picks
        ]
        out = (
            np.stack(blocks)
            if blocks
            else np.empty((0, *(b.stop - b.start for b in boxes)), dtype=self.dtype)
        )
        # orthogonal indexing, one axis at a time from the last (an int drops its axis)
        for axis in reversed(range(len(rest))):
            r = rest[axis]
            if not (isinstance(r, slice) and r == slice(None)):
                out = out[(slice(None),) * (axis + 1) + (r,)]
        return out[0] if scalar else out


def _publish(loc: Location, manifest: _Manifest) -> None:
    """Write *manifest* as a new file; refuse if its number exists (a bypassed lock)."""
    body = manifest.body()
    doc = {"sha256": _body_digest(body), "body": body}
    name = f"{manifest.sequence:012d}.json"
    remove_stale_temporaries(loc, _MANIFESTS)
    try:
        loc.write_bytes((_MANIFESTS, name), json.dumps(doc).encode(), exclusive=True)
    except FileExistsError:
        msg = f"{loc.url}: manifest {name} already exists; another writer bypassed the lock"
        raise CorruptStoreError(msg) from None


def _parse_manifest(raw: bytes, number: int) -> tuple[_Manifest | None, str]:
    """The manifest in *raw*, or None and why it is refused (checksum first)."""
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or "sha256" not in doc or "body" not in doc:
            return None, "not a manifest document"
        body = doc["body"]
        if doc["sha256"] != _body_digest(body):
            return None, "its body does not match its SHA-256 checksum"
        if body["sequence"] != number:
            return None, f"it says sequence {body['sequence']}, not {number}"
        slices = {}
        for entry in body["slices"]:
            entry = dict(entry)
            slices[entry.pop("label")] = entry
        return (
            _Manifest(
                sequence=int(body["sequence"]),
                slots_allocated=int(body["slots_allocated"]),
                slices=slices,
                retired=list(body["retired"]),
                change=body.get("change"),
            ),
            "",
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"unreadable ({exc!r})"


def _infer_change(previous: _Manifest | None, manifest: _Manifest) -> dict:
    """What a manifest written before changes were recorded changed (by comparison)."""
    if previous is None:
        return {"action": None, "label": None, "time": None}
    for label, entry in manifest.slices.items():
        old = previous.slices.get(label)
        if old is None or old["slot"] != entry["slot"]:
            return {
                "action": "append" if old is None else "replace",
                "label": label,
                "time": entry.get("committed"),
            }
    return {"action": None, "label": None, "time": None}


_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)

_STORAGE_NOTE = (
    "internal storage of a stores.CubeStore: index 0 is a storage slot, not a period "
    "(replaced and uncommitted slices are here too); open with "
    "xr.open_dataset(<database>, engine='stiscube') or stores.CubeStore(<store>)"
)


def _storage_attrs(schema: CubeSchema, slot_dim: str) -> dict:
    return {
        "storage_note": _STORAGE_NOTE,
        "stores_format": _FORMAT,
        "slot_dimension": slot_dim,
        "label_dimension": schema.append_dim,
        "open_with": "xr.open_dataset(<database>, engine='stiscube')",
    }


def _checksum_algorithm() -> str:
    from stores._direct import CHECKSUM_ALGORITHM

    return CHECKSUM_ALGORITHM


def _compressors(schema: CubeSchema):
    from zarr.codecs import BloscCodec, ZstdCodec

    if schema.compression == "none":
        return None
    if schema.compression == "zstd":
        return (ZstdCodec(level=schema.compression_level),)
    return (BloscCodec(cname="zstd", clevel=schema.compression_level, shuffle="bitshuffle"),)
