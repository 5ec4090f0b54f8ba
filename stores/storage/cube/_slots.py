"""Slots and chunk I/O of a cube store: the Zarr arrays, verified reads, slot writes.

Every slice is stored in a *slot* (index 0 of every array): a slot is written once,
before the version naming it is published, and never written again.  A slot's chunks
have their CRC-32C recorded in ``checksums/SSSSSSSS.json`` (and an optional extras
document in ``extras/SSSSSSSS.json``); every read verifies the chunks it touches.

Temporary files: this package's atomic writes keep theirs in ``staging/``; zarr's
(``*.partial``) can only be beside the chunks of an uncommitted slot or an array's
metadata.  A writer therefore finds a killed writer's leftovers without walking the tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from stores._exceptions import CorruptStoreError
from stores.storage.cube.schema import CubeSchema, sha256
from stores.storage.fs import Location, remove_stale_temporaries

__all__: list[str] = []

logger = logging.getLogger(__name__)

DATA = "data"
CHECKSUMS = "checksums"
EXTRAS = "extras"
STAGING = "staging"
FORMAT = "stores.CubeStore"

_STORAGE_NOTE = (
    "internal storage of a stores.CubeStore: index 0 is a storage slot, not a period "
    "(replaced and uncommitted slices are here too); open with "
    "xr.open_dataset(<database>, engine='stiscube') or stores.CubeStore(<store>)"
)


def slot_name(slot: int) -> str:
    return f"{slot:08d}.json"


def create_arrays(loc: Location, schema: CubeSchema) -> None:
    """Create the empty data group: one array per variable, dims (slot, *fixed dims)."""
    import zarr

    slot_dim = "slot" if "slot" not in schema.sizes else "_slot"
    attrs = {
        "storage_note": _STORAGE_NOTE,
        "stores_format": FORMAT,
        "slot_dimension": slot_dim,
        "label_dimension": schema.append_dim,
        "open_with": "xr.open_dataset(<database>, engine='stiscube')",
    }
    group = zarr.open_group(loc.zarr_store(DATA), mode="w", zarr_format=3, attributes=attrs)
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


def _compressors(schema: CubeSchema):
    from zarr.codecs import BloscCodec, ZstdCodec

    if schema.compression == "none":
        return None
    if schema.compression == "zstd":
        return (ZstdCodec(level=schema.compression_level),)
    return (BloscCodec(cname="zstd", clevel=schema.compression_level, shuffle="bitshuffle"),)


class Slots:
    """The slot storage of one store handle (its arrays, readers and checksum caches)."""

    def __init__(self, location: Location, schema: CubeSchema, *, read_only: bool) -> None:
        self.location = location
        self.schema = schema
        self.read_only = read_only
        self._readers: dict = {}
        self._checksums: dict[tuple[int, str], dict] = {}
        self._verified: set[tuple[str, int]] = set()

    # -- arrays --------------------------------------------------------------------------
    def group(self, *, read_only: bool = False):
        import zarr

        read_only = read_only or self.read_only
        try:
            return zarr.open_group(
                self.location.zarr_store(DATA, read_only=read_only),
                mode="r" if read_only else "r+",
                zarr_format=3,
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
            path = self.location.join(DATA, "zarr.json")
            msg = f"{self.location.url}: the data group is missing or unreadable ({path}: {exc})"
            raise CorruptStoreError(msg) from exc

    def array(self, group, name: str):
        try:
            return group[name]
        except KeyError:
            msg = f"{self.location.url}: variable {name!r} is missing from the data group"
            raise CorruptStoreError(msg) from None
        except (ValueError, TypeError) as exc:
            path = self.location.join(DATA, name, "zarr.json")
            msg = f"{self.location.url}: variable {name!r} has unreadable metadata ({path}: {exc})"
            raise CorruptStoreError(msg) from exc

    def held(self, need: int) -> int:
        """Slots the arrays hold, after checking they cover the *need* slots committed."""
        group = self.group(read_only=True)
        held = 0
        for name in self.schema.variables:
            arr = self.array(group, name)
            expected = self.schema.slice_shape(name)
            held = max(held, arr.shape[0])
            if tuple(arr.shape[1:]) != expected or arr.shape[0] < need:
                msg = (
                    f"{self.location.url}: array {name!r} has shape {arr.shape}, but the "
                    f"committed state needs ({need}, {', '.join(map(str, expected))})"
                )
                raise CorruptStoreError(msg)
        return held

    def direct(self, name: str):
        """The direct chunk reader of variable *name* (None if zarr must be used)."""
        if name not in self._readers:
            from stores.storage.direct import DirectReader, Unsupported

            try:
                self._readers[name] = DirectReader(self.location, (DATA, name))
            except Unsupported as exc:
                logger.debug("direct reads of %s unavailable (%s); using zarr", name, exc)
                self._readers[name] = None
            except FileNotFoundError:
                msg = f"{self.location.url}: variable {name!r} is missing from the data group"
                raise CorruptStoreError(msg) from None
        return self._readers[name]

    # -- reading -------------------------------------------------------------------------
    def read(self, name: str, label, entry: dict, slices: list) -> np.ndarray:
        """Verified values of ``variable[slot, *slices]`` for the committed slice *label*."""
        direct = self.direct(name)
        context = f"{self.location.url}: {self.schema.append_dim} {label!r}, variable {name!r}"
        slot = int(entry["slot"])
        table = self.checksums(label, entry)
        if direct is not None and table is not None:
            if name not in table:
                msg = f"{context}: the slot's checksum table has no entry for the variable"
                raise CorruptStoreError(msg)
            return direct.read(slot, slices, checksums=table[name], context=context)
        # a slice committed before per-chunk checksums: verify the whole slot once
        if (name, slot) not in self._verified:
            full = [slice(0, n) for n in self.schema.slice_shape(name)]
            whole = self._read_unverified(name, slot, full, context)
            if sha256(whole) != entry["sha256"][name]:
                msg = f"{context}: the stored values do not match their committed checksum"
                raise CorruptStoreError(msg)
            self._verified.add((name, slot))
        return self._read_unverified(name, slot, slices, context)

    def _read_unverified(self, name, slot, slices, context) -> np.ndarray:
        direct = self.direct(name)
        if direct is not None:
            return direct.read(slot, slices, context=context)
        array = self.array(self.group(read_only=True), name)
        try:
            return np.asarray(array[(slot, *slices)])
        except (ValueError, RuntimeError, OSError) as exc:
            msg = f"{context}: unreadable chunk data ({exc!r})"
            raise CorruptStoreError(msg) from exc

    def checksums(self, label, entry: dict) -> dict | None:
        """The committed per-chunk checksum table of *entry*'s slot (None for old slices)."""
        digest = entry.get("checksums_sha256")
        if digest is None:
            return None
        slot = int(entry["slot"])
        cached = self._checksums.get((slot, digest))
        if cached is not None:
            return cached
        path = self.location.join(CHECKSUMS, slot_name(slot))
        where = f"{self.location.url}: {self.schema.append_dim} {label!r}: checksum file {path}"
        table = json.loads(self.committed(CHECKSUMS, slot_name(slot), digest, where))
        self._checksums[(slot, digest)] = table["variables"]
        return table["variables"]

    def extras(self, label, entry: dict) -> dict | None:
        """The extras document committed with *entry* (None if it has none)."""
        digest = entry.get("extras_sha256")
        if digest is None:
            return None
        name = slot_name(int(entry["slot"]))
        path = self.location.join(EXTRAS, name)
        where = f"{self.location.url}: extras of {self.schema.append_dim} {label!r} ({path})"
        return json.loads(self.committed(EXTRAS, name, digest, where, plural=True))

    def committed(self, group: str, name: str, digest: str, where: str, *,
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

    # -- writing -------------------------------------------------------------------------
    def write(self, slot: int, values: dict[str, np.ndarray], label,
              extras: bytes | None) -> dict:
        """Write a slice into the fresh *slot*: chunks, checksum file, extras file.

        Returns the entry fields that commit it: ``checksums_sha256``,
        ``extras_sha256`` and ``bytes`` (stored bytes of the slot's files).
        """
        from stores.storage.direct import CHECKSUM_ALGORITHM, DirectReader, Unsupported

        group = self.group()
        table = {}
        for name, vals in values.items():
            arr = group[name]
            if arr.shape[0] <= slot:
                arr.resize((slot + 1, *arr.shape[1:]))
            arr[slot] = vals
            try:
                reader = DirectReader(self.location, (DATA, name))
            except Unsupported:
                continue  # such slices are verified through their values' SHA-256
            table[name] = reader.chunk_checksums(slot)
        doc = {"algorithm": CHECKSUM_ALGORITHM, "slot": slot, "label": label,
               "variables": table}
        checksums = json.dumps(doc, sort_keys=True).encode()
        staging = (STAGING,)
        self.location.write_bytes((CHECKSUMS, slot_name(slot)), checksums, staging=staging)
        if extras is not None:
            self.location.write_bytes((EXTRAS, slot_name(slot)), extras, staging=staging)
        return {
            "checksums_sha256": hashlib.sha256(checksums).hexdigest(),
            "extras_sha256": None if extras is None else hashlib.sha256(extras).hexdigest(),
            "bytes": self.slot_bytes(slot) + len(checksums) + len(extras or b""),
        }

    def slot_bytes(self, slot: int) -> int:
        """Bytes of the data files of *slot* (its directories only, never the tree)."""
        total = 0
        for name in self.schema.variables:
            path = self.location.join(DATA, name, "c", str(slot))
            if self.location.is_local:
                for d, _, files in os.walk(path):
                    total += sum(os.lstat(os.path.join(d, f)).st_size for f in files)
            elif self.location.fs.exists(path):
                total += sum(self.location.fs.du(path, total=False).values())
        return total

    def clean(self, first: int, stop: int) -> list[str]:
        """Remove temporaries of killed writers: ``staging/``, the array metadata
        directories, and the directories of the uncommitted slots ``first`` to ``stop``."""
        if not self.location.is_local:
            return []
        removed = remove_stale_temporaries(self.location, STAGING)
        removed += remove_stale_temporaries(self.location, DATA)
        for name in self.schema.variables:
            removed += remove_stale_temporaries(self.location, DATA, name)
            for slot in range(first, stop):
                removed += remove_stale_temporaries(
                    self.location, DATA, name, "c", str(slot), recursive=True
                )
        return removed

    def everywhere_temporaries(self) -> list[str]:
        """Temporary files anywhere in the store (a walk: for maintenance only)."""
        if not self.location.is_local:
            return []
        root = Path(self.location.root)
        return sorted(
            str(p) for p in root.rglob("*")
            if p.is_file() and ((p.name.startswith(".") and p.name.endswith(".tmp"))
                                or p.name.endswith(".partial"))
        )

    def stored(self, slot: int) -> bool:
        """Whether anything of *slot* is on disk."""
        if self.location.exists(CHECKSUMS, slot_name(slot)):
            return True
        if self.location.exists(EXTRAS, slot_name(slot)):
            return True
        return any(self.location.exists(DATA, n, "c", str(slot)) for n in self.schema.variables)

    def remove(self, slot: int) -> None:
        """Remove the chunks, checksum and extras files of *slot*."""
        for name in self.schema.variables:
            path = self.location.join(DATA, name, "c", str(slot))
            if self.location.fs.exists(path):
                self.location.fs.rm(path, recursive=True)
        for part in (CHECKSUMS, EXTRAS):
            with contextlib.suppress(FileNotFoundError):
                self.location.remove(part, slot_name(slot))


def window_slices(dims, sizes, window) -> tuple[list[slice], tuple]:
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


class SlotStack:
    """Array-like over the committed slots of one variable, read through verified reads.

    Indexing it reads only the chunks needed (through :meth:`Slots.read`); it backs the
    dask arrays of :meth:`CubeStore.to_dataset`.
    """

    def __init__(self, slots: Slots, name: str, labels: list, state) -> None:
        self.slots = slots
        self.name = name
        self.labels = list(labels)
        self.entries = [state.slices[label] for label in self.labels]
        self.dtype = np.dtype(slots.schema.variables[name].dtype)
        self.shape = (len(self.labels), *slots.schema.slice_shape(name))
        self.ndim = len(self.shape)
        used = ",".join(str(e["slot"]) for e in self.entries)
        self.token = hashlib.sha1(
            f"{slots.location.key}|{state.sequence}|{name}|{used}".encode()
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
        blocks = [self.slots.read(self.name, self.labels[i], self.entries[i], boxes)
                  for i in picks]
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
