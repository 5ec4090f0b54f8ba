"""Fast eager reads of small windows of a cube's Zarr arrays, without the zarr machinery.

zarr-python's synchronous API costs about half a millisecond per call (an event-loop
round trip and the codec pipeline), which dominates point queries.  The arrays that
:class:`stores.CubeStore` writes use a small, known set of Zarr v3 codecs, so the chunks
holding a window can be read and decoded directly:

- ``bytes`` (little-endian) optionally followed by ``zstd`` or ``blosc``;
- optionally inside ``sharding_indexed`` with the index at the end, encoded as
  ``bytes`` + ``crc32c`` (zarr-python's default), one entry ``(offset, nbytes)`` of
  two little-endian uint64 per inner chunk in C order, ``2**64 - 1`` for an empty chunk.

Anything else makes :class:`DirectReader` raise :class:`Unsupported` at construction,
and callers fall back to zarr.  Only *committed* slots are read through it: those are
never written again (see :mod:`stores.storage.cube`), so shard indexes can be cached safely.

Checksums: :meth:`DirectReader.chunk_checksums` returns the CRC-32C of the *stored*
(encoded) bytes of every chunk of one slot, recorded by CubeStore when it commits the
slot; :meth:`DirectReader.read` given that table verifies every chunk it touches before
decoding it (about a microsecond per 16 KiB), so damaged, truncated or deleted chunks
raise :class:`~stores.CorruptStoreError` naming the file, never garbage or NaN.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from itertools import product

import numpy as np

from stores._exceptions import CorruptStoreError
from stores.storage.fs import Location

__all__ = ["CHECKSUM_ALGORITHM", "DirectReader", "Unsupported", "checksum"]

#: name of the per-chunk checksum recorded in CubeStore checksum files
CHECKSUM_ALGORITHM = "crc32c"


try:
    from google_crc32c import value as _crc32c
except ImportError:  # pragma: no cover - google-crc32c is a dependency
    from crc32c import crc32c as _crc32c


def checksum(raw: bytes) -> int:
    """CRC-32C of *raw* (hardware-accelerated through google-crc32c).

    Parameters
    ----------
    raw : bytes
        The stored (encoded) bytes of a chunk.
    """
    return _crc32c(raw if isinstance(raw, bytes) else bytes(raw))

_EMPTY = np.uint64(2**64 - 1)
_INDEX_CACHE = 4096


class Unsupported(Exception):
    """The array uses a layout this reader does not decode (use zarr instead)."""


def _decoder(codecs: Sequence[dict]):
    if not codecs or codecs[0].get("name") != "bytes":
        raise Unsupported("first codec is not 'bytes'")
    endian = codecs[0].get("configuration", {}).get("endian", "little")
    if endian != "little":
        raise Unsupported("big-endian data")
    rest = codecs[1:]
    if not rest:
        return lambda raw: raw
    if len(rest) > 1:
        raise Unsupported("more than one compressor")
    name = rest[0].get("name")
    if name == "zstd":
        from numcodecs import Zstd

        codec = Zstd()
    elif name == "blosc":
        from numcodecs import Blosc

        codec = Blosc()
    else:
        raise Unsupported(f"compressor {name!r}")
    return codec.decode


def _fill(value, dtype: np.dtype):
    if isinstance(value, str):
        value = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}.get(value, value)
    return np.asarray(value, dtype=dtype)[()]


class DirectReader:
    """Read windows of one slot of a Zarr v3 array written by CubeStore.

    Parameters
    ----------
    location : Location
        The store's location.
    parts : tuple of str
        Path of the array's directory inside the location.
    """

    def __init__(self, location: Location, parts: tuple[str, ...]) -> None:
        self.location = location
        self.parts = parts
        raw_meta = location.read_bytes(*parts, "zarr.json")
        try:
            meta = json.loads(raw_meta)
            self._configure(meta)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            path = location.join(*parts, "zarr.json")
            msg = f"{path}: unreadable array metadata ({exc!r})"
            raise CorruptStoreError(msg) from exc

    def _configure(self, meta: dict) -> None:
        self.shape = tuple(meta["shape"])
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        self.fill = _fill(meta["fill_value"], self.dtype)
        encoding = meta.get("chunk_key_encoding", {})
        if encoding.get("name", "default") != "default":
            raise Unsupported("chunk key encoding")
        self.separator = encoding.get("configuration", {}).get("separator", "/")
        self.outer = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        codecs = meta["codecs"]
        if codecs and codecs[0]["name"] == "sharding_indexed":
            if len(codecs) != 1:
                raise Unsupported("codecs after sharding")
            config = codecs[0]["configuration"]
            index_names = [c["name"] for c in config.get("index_codecs", [])]
            if config.get("index_location", "end") != "end" or index_names != ["bytes", "crc32c"]:
                raise Unsupported("shard index layout")
            self.inner = tuple(config["chunk_shape"])
            self.decode = _decoder(config["codecs"])
            self.sharded = True
            self.per_shard = tuple(o // i for o, i in zip(self.outer, self.inner, strict=True))
            self.n_inner = math.prod(self.per_shard)
        else:
            self.inner = self.outer
            self.decode = _decoder(codecs)
            self.sharded = False
        self._indexes: OrderedDict[str, np.ndarray | None] = OrderedDict()
        self._lock = threading.Lock()

    # -- object access -------------------------------------------------------------------
    def _key(self, outer_index: Sequence[int]) -> tuple[str, ...]:
        if self.separator == "/":
            return (*self.parts, "c", *map(str, outer_index))
        return (*self.parts, self.separator.join(["c", *map(str, outer_index)]))

    def chunk_path(self, chunk: Sequence[int]) -> str:
        """Path of the object holding an inner chunk.

        Parameters
        ----------
        chunk : sequence of int
            The chunk's indices, slot axis first.
        """
        if not self.sharded:
            return self.location.join(*self._key(chunk))
        outer = tuple(i * n // o for i, n, o in zip(chunk, self.inner, self.outer, strict=True))
        return self.location.join(*self._key(outer))

    def chunk_grid(self) -> list[range]:
        """Inner chunk indices along each fixed dimension."""
        return [range(-(-n // c)) for n, c in zip(self.shape[1:], self.inner[1:], strict=True)]

    def chunk_checksums(self, slot: int) -> dict[str, int | None]:
        """CRC-32C of the stored bytes of every inner chunk of *slot* (None: not stored).

        Keys are the fixed-dimension chunk indices joined by ``.`` (``"0.3"``).  Shard
        indexes are read afresh (not from the cache), since the slot was just written.

        Parameters
        ----------
        slot : int
            The slot.
        """
        self._indexes.clear()
        out: dict[str, int | None] = {}
        whole: dict[tuple[int, ...], bytes | None] = {}
        s0 = slot // self.inner[0]
        for index in product(*self.chunk_grid()):
            raw = self._raw((s0, *index), whole, many=True)
            out[".".join(map(str, index))] = None if raw is None else checksum(raw)
        self._indexes.clear()
        return out

    def _read(self, key: tuple[str, ...], start: int | None = None, stop: int | None = None):
        path = self.location.join(*key)
        if self.location.is_local:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                return None
            try:
                if start is None:
                    size = os.fstat(fd).st_size
                    return os.pread(fd, size, 0)
                if start < 0:
                    size = os.fstat(fd).st_size
                    return os.pread(fd, min(-start, size), max(0, size + start))
                return os.pread(fd, stop - start, start)
            finally:
                os.close(fd)
        fs = self.location.fs
        try:
            if start is not None and start < 0:
                size = fs.size(path)
                start, stop = max(0, size + start), size
            return fs.cat_file(path, start=start, end=stop)
        except FileNotFoundError:
            return None

    def _index(self, key: tuple[str, ...]) -> np.ndarray | None:
        cache_key = "/".join(key)
        with self._lock:  # dask threads share one reader
            if cache_key in self._indexes:
                self._indexes.move_to_end(cache_key)
                return self._indexes[cache_key]
        raw = self._read(key, -(self.n_inner * 16 + 4))
        index = None
        if raw is not None:
            body, crc = raw[:-4], raw[-4:]
            if len(raw) != self.n_inner * 16 + 4 or checksum(body) != int.from_bytes(crc, "little"):
                path = self.location.join(*key)
                msg = f"shard index of {path} is damaged (size or CRC-32C mismatch)"
                raise CorruptStoreError(msg)
            index = np.frombuffer(body, dtype="<u8").reshape(*self.per_shard, 2)
        with self._lock:
            self._indexes[cache_key] = index
            if len(self._indexes) > _INDEX_CACHE:
                self._indexes.popitem(last=False)
        return index

    # -- reading -------------------------------------------------------------------------
    def read(
        self,
        slot: int,
        window: Sequence[slice],
        *,
        checksums: dict[str, int | None] | None = None,
        context: str = "",
    ) -> np.ndarray:
        """Values of ``array[slot, *window]``.

        Parameters
        ----------
        slot : int
            The slot.
        window : sequence of slice
            One slice with step 1 per fixed dimension.
        checksums : dict, optional
            The slot's :meth:`chunk_checksums` (recorded when it was written): each chunk
            read is verified first, and a mismatch, a missing chunk or an unexpected one
            raises :class:`~stores.CorruptStoreError` naming *context* and the file.
        context : str
            What is read, for messages.
        """
        bounds = [
            (0 if s.start is None else s.start, n if s.stop is None else s.stop)
            for s, n in zip(window, self.shape[1:], strict=True)
        ]
        out = np.full([b - a for a, b in bounds], self.fill, dtype=self.dtype)
        ranges = [
            range(a // c, (b - 1) // c + 1)
            for (a, b), c in zip(bounds, self.inner[1:], strict=True)
        ]
        whole: dict[tuple[int, ...], bytes | None] = {}
        for chunk in product(range(slot // self.inner[0], slot // self.inner[0] + 1), *ranges):
            try:
                raw = self._raw(chunk, whole, many=math.prod(len(r) for r in ranges) > 4)
            except CorruptStoreError as exc:  # a damaged shard index: say whose it is
                if not context:
                    raise
                raise CorruptStoreError(f"{context}: {exc}") from exc
            if checksums is not None:
                self._check(chunk, raw, checksums, context)
            data = None if raw is None else self._decode(chunk, raw, context)
            if data is None:
                continue
            block = data.reshape(self.inner)[slot - chunk[0] * self.inner[0]]
            src, dst = [], []
            for (a, b), c, i in zip(bounds, self.inner[1:], chunk[1:], strict=True):
                lo, hi = max(a, i * c), min(b, (i + 1) * c)
                src.append(slice(lo - i * c, hi - i * c))
                dst.append(slice(lo - a, hi - a))
            out[tuple(dst)] = block[tuple(src)]
        return out

    def _check(self, chunk, raw, checksums, context: str) -> None:
        key = ".".join(map(str, chunk[1:]))
        if key not in checksums:
            problem = "is not in the committed checksum table"
        else:
            expected = checksums[key]
            if expected is None and raw is None:
                return
            if expected is None:
                problem = "exists although none was committed"
            elif raw is None:
                problem = "is missing (deleted or its shard index is damaged)"
            elif checksum(raw) == expected:
                return
            else:
                problem = "does not match its committed checksum (damaged bytes)"
        where = f"{context}: " if context else ""
        msg = f"{where}chunk {key} in {self.chunk_path(chunk)} {problem}"
        raise CorruptStoreError(msg)

    def _decode(self, chunk, raw: bytes, context: str) -> np.ndarray:
        try:
            data = np.frombuffer(self.decode(raw), dtype=self.dtype)
            if data.size != math.prod(self.inner):
                raise ValueError(f"{data.size} values, expected {math.prod(self.inner)}")
        except Exception as exc:  # codecs raise RuntimeError, ValueError, ...
            where = f"{context}: " if context else ""
            msg = f"{where}chunk in {self.chunk_path(chunk)} cannot be decoded ({exc!r})"
            raise CorruptStoreError(msg) from exc
        return data

    def _raw(self, inner_index: tuple[int, ...], whole: dict, *, many: bool) -> bytes | None:
        """The stored (encoded) bytes of one inner chunk, or None if it is not stored."""
        if not self.sharded:
            return self._read(self._key(inner_index))
        outer = tuple(
            i * n // o for i, n, o in zip(inner_index, self.inner, self.outer, strict=True)
        )
        key = self._key(outer)
        index = self._index(key)
        if index is None:
            return None
        local = tuple(i - o * p for i, o, p in zip(inner_index, outer, self.per_shard, strict=True))
        offset, nbytes = index[local]
        if offset == _EMPTY:
            return None
        if many:  # many chunks of this shard wanted: read the shard object once
            if outer not in whole:
                whole[outer] = self._read(key)
            if whole[outer] is None:
                return None
            return whole[outer][int(offset) : int(offset + nbytes)]
        return self._read(key, int(offset), int(offset + nbytes))
