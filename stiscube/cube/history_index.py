"""An optional pixel-major copy of the cube, for fast pixel histories, updated incrementally.

The cube is stored frame-major (one chunk row per anneal period), so one pixel's history
across N periods costs N chunk reads.  The history index is a second, pixel-major copy
of every property, laid out so that one pixel's history is *one* contiguous read per
property and so that a new period is written in place, without rewriting the rest.

Layout, inside the database directory::

    history/index.json                   the published state (checksummed, see below)
    history/<generation>/<name>.bin      per property: blocks (tiles, capacity / G)
    history/.lock                        the writer lock of the index

The frame is cut into tiles of ``T x T = 8 x 8`` pixels.  Each period the index holds
occupies a *position* (0, 1, 2, ...).  A block holds ``G = 16`` positions of one tile:
their values (G x 64, C order) followed by one uint64 checksum per position.  The
blocks of one tile are contiguous, so a history over N periods is ``ceil(N / 16)``
blocks read in one ``pread`` per property; writing one new position touches one block
per tile (about 16 x the frame's bytes of page cache, 290 MB for the five properties
of a 1024 x 1024 period).

Positions work like the cube's slots: a new or replaced period is written at a *fresh*
position, never referenced by the published state, and ``index.json`` (a SHA-256 of its
own body, replaced atomically) is published last.  Published positions are never written
again, so a reader holding an older ``index.json`` still reads the values it describes.
A writer killed at any moment therefore leaves the previous state, which is either still
current for the periods it lists or, for periods committed since, ignored (their slice
checksums differ).  When the capacity (sparse files, 512 positions or twice the periods
held) is exhausted, or on request, the index is rebuilt into a new generation directory
and the old one removed after the swap.  Generations left by a killed run are removed by
the next update before it writes anything.

It is a cache, never the truth:

- every period's entry records a digest of the cube slice's SHA-256 checksums, and a
  reader uses the index only for periods whose digest equals that of the cube state it
  reads (any version; a replaced period is read from the cube);
- every read re-checks ``index.json`` (one ``stat``): a state published by another
  process is re-read and re-verified before use, so cached positions never outlive it;
- every value read is verified against a per-(tile, position) checksum; a damaged,
  missing or truncated index file, or an unreadable ``index.json``, makes the reader
  log a warning and fall back to the cube.

Cost: about the cube's disk again (sparse files: only written blocks are allocated; 8
bytes of checksum per tile and position), one block write per tile and period on an
update.  Data blocks are not ``fsync``-ed (as for the cube's chunks); after a power
loss, unwritten blocks fail their checksums and the reader uses the cube.  Opt-in:
``stiscube index STORE`` or ``stiscube ingest --index``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stores.common.provenance import slice_digest
from stores.storage.fs import Location, atomic_write
from stores.storage.locks import WriterLock

__all__ = [
    "HistoryIndex",
    "HistoryIndexError",
    "update_history_index",
]

logger = logging.getLogger(__name__)

_DIR = "history"
_META = "index.json"
_LOCK = ".lock"
_FORMAT = "stiscube.HistoryIndex"
_FORMAT_VERSION = 2
TILE = 8
GROUP = 16
_MIN_CAPACITY = 512
# odd 64-bit weights of the per-(tile, position) checksum (fixed: part of the format)
_WEIGHTS = np.random.default_rng(0x5715C0BE).integers(1, 2**63, TILE * TILE, dtype=np.uint64) | 1
_SALT = np.uint64(0x9E3779B97F4A7C15)


class HistoryIndexError(Exception):
    """The history index is unusable (damaged, missing or stale); callers use the cube."""


def _checksums(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Checksums of *values* (..., n, T*T) at *positions* (n,): uint64 per (…, position).

    A weighted sum of the raw bits modulo 2**64, salted with the position so that a
    block at the wrong position, or zeros (a sparse hole), never verify.
    """
    bits = values.view(f"<u{values.dtype.itemsize}").astype(np.uint64)
    with np.errstate(over="ignore"):
        return bits @ _WEIGHTS + (positions.astype(np.uint64) + np.uint64(1)) * _SALT


# ---------------------------------------------------------------------------------------
# published state
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Meta:
    generation: str
    shape: tuple[int, int]
    variables: dict  # name -> dtype
    capacity: int
    n_positions: int
    periods: dict  # label -> {"position": int, "digest": str}

    @property
    def tiles(self) -> tuple[int, int]:
        return (math.ceil(self.shape[0] / TILE), math.ceil(self.shape[1] / TILE))

    def body(self) -> dict:
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "generation": self.generation,
            "shape": list(self.shape),
            "tile": TILE,
            "group": GROUP,
            "variables": dict(self.variables),
            "capacity": self.capacity,
            "n_positions": self.n_positions,
            "periods": [{"label": k, **v} for k, v in self.periods.items()],
        }

    @classmethod
    def from_body(cls, body: Mapping) -> _Meta:
        if body.get("format") != _FORMAT or body.get("version") != _FORMAT_VERSION:
            msg = f"not a version-{_FORMAT_VERSION} history index"
            raise ValueError(msg)
        if body["tile"] != TILE or body["group"] != GROUP:
            raise ValueError("unsupported tile or group size")
        periods = {}
        for p in body["periods"]:
            position = int(p["position"])
            if not 0 <= position < int(body["n_positions"]):
                raise ValueError(f"position {position} out of range")
            periods[p["label"]] = {"position": position, "digest": str(p["digest"])}
        meta = cls(
            generation=str(body["generation"]),
            shape=(int(body["shape"][0]), int(body["shape"][1])),
            variables={str(k): str(v) for k, v in body["variables"].items()},
            capacity=int(body["capacity"]),
            n_positions=int(body["n_positions"]),
            periods=periods,
        )
        if not meta.n_positions <= meta.capacity or meta.capacity % GROUP:
            raise ValueError("capacity inconsistent with positions")
        if not meta.generation.isalnum():
            raise ValueError("bad generation name")
        return meta


def _digest(body: Mapping) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _parse_meta(raw: bytes) -> _Meta:
    doc = json.loads(raw)
    body = doc["body"]
    if doc["sha256"] != _digest(body):
        raise ValueError("index.json does not match its checksum")
    return _Meta.from_body(body)


def _load_meta(root: Path) -> _Meta | None:
    """The published state, or None (missing or damaged: logged)."""
    try:
        raw = (root / _DIR / _META).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return _parse_meta(raw)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        logger.warning("%s: ignoring the damaged history index (%s)", root / _DIR / _META, exc)
        return None


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
def _to_tiles(frames: np.ndarray, tiles: tuple[int, int]) -> np.ndarray:
    """(n, rows, cols) -> (n_tiles, n, T*T), padding the edges with zeros."""
    n, rows, cols = frames.shape
    tr, tc = tiles
    if (rows, cols) != (tr * TILE, tc * TILE):
        padded = np.zeros((n, tr * TILE, tc * TILE), dtype=frames.dtype)
        padded[:, :rows, :cols] = frames
        frames = padded
    blocks = frames.reshape(n, tr, TILE, tc, TILE).transpose(1, 3, 0, 2, 4)
    return blocks.reshape(tr * tc, n, TILE * TILE)


def _path(root: Path, generation: str, name: str) -> Path:
    return root / _DIR / generation / f"{name}.bin"


def _block_bytes(dtype) -> tuple[int, int]:
    """(bytes of a block's values, bytes of a whole block)."""
    values = GROUP * TILE * TILE * np.dtype(dtype).itemsize
    return values, values + GROUP * 8


def _allocate(root: Path, meta: _Meta) -> None:
    n_tiles = meta.tiles[0] * meta.tiles[1]
    (root / _DIR / meta.generation).mkdir(parents=True, exist_ok=True)
    for name, dtype in meta.variables.items():
        size = n_tiles * (meta.capacity // GROUP) * _block_bytes(dtype)[1]
        with open(_path(root, meta.generation, name), "ab") as fh:
            fh.truncate(size)  # sparse: blocks are allocated when written


def _write_positions(root: Path, meta: _Meta, store, labels: list, positions: list[int]) -> None:
    """Write the slices *labels* of *store* at *positions* (fresh ones)."""
    n_tiles = meta.tiles[0] * meta.tiles[1]
    groups = meta.capacity // GROUP
    for name, dtype in meta.variables.items():
        vb, bb = _block_bytes(dtype)
        blocks = np.memmap(_path(root, meta.generation, name), dtype=np.uint8, mode="r+",
                           shape=(n_tiles, groups, bb))
        for start in range(0, len(labels), GROUP):
            batch = labels[start : start + GROUP]
            where = np.asarray(positions[start : start + GROUP])
            frames = store.read_arrays(batch, variables=[name])[name]
            tiles = _to_tiles(np.asarray(frames, dtype=dtype), meta.tiles)
            sums = _checksums(tiles, where)
            for j, p in enumerate(where):
                block = blocks[:, p // GROUP, :]
                block[:, :vb].view(dtype).reshape(n_tiles, GROUP, -1)[:, p % GROUP] = tiles[:, j]
                block[:, vb:].view("<u8")[:, p % GROUP] = sums[:, j]
            logger.debug("history index: %s positions %s written", name, where.tolist())
        del blocks  # dirty pages reach the file through the page cache, even if we die now


def _publish(root: Path, meta: _Meta) -> None:
    """Replace the index's metadata in one atomic step (:func:`stores.storage.fs.atomic_write`:
    temporary file, fsync, rename, directory fsync)."""
    body = meta.body()
    doc = json.dumps({"sha256": _digest(body), "body": body}).encode()
    atomic_write(root / _DIR / _META, doc)


def _clean(root: Path, keep: str | None) -> None:
    """Remove generations other than *keep*, temporaries, and the version-1 layout."""
    directory = root / _DIR
    for path in directory.iterdir() if directory.is_dir() else ():
        if path.name in (_META, _LOCK) or path.name == keep:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    for stale in root.glob(f".{_DIR}.*"):  # left by the version-1 builder
        shutil.rmtree(stale, ignore_errors=True)


def _reader_store(db):
    from stores import CubeStore

    return CubeStore(db.store.location, mode="r")


def update_history_index(db, *, rebuild: bool = False) -> dict:
    """Bring the history index of *db* up to date with its newest committed cube.

    Periods appended or replaced since the last update are written at fresh positions
    (no rebuild); a missing, damaged or full index, or ``rebuild=True``, is rebuilt.

    Parameters
    ----------
    db : stiscube.PixelDB
        The database (local).
    rebuild : bool
        Build it anew.

    Returns
    -------
    dict
        ``{"rebuilt": bool, "written": [labels], "dropped": [labels]}``.

    Raises
    ------
    NotImplementedError
        The database is not on the local filesystem.
    ValueError
        The cube holds no period.
    stores.StoreLockedError
        Another process is updating the index.
    """
    loc: Location = db.location
    if not loc.is_local:
        msg = f"the history index needs a local database, not {loc.url}"
        raise NotImplementedError(msg)
    root = Path(loc.root)
    (root / _DIR).mkdir(exist_ok=True)
    with WriterLock(loc, f"{_DIR}/{_LOCK}", timeout=db.store.lock_timeout,
                    purpose="history index"):
        published = _load_meta(root)  # a killed run's generation is removed first
        _clean(root, keep=None if published is None else published.generation)
        store = _reader_store(db)
        labels = store.labels
        if not labels:
            msg = f"{loc.url}: the cube holds no period to index"
            raise ValueError(msg)
        wanted = {label: slice_digest(store.slice_info(label)) for label in labels}
        variables = {name: spec.dtype for name, spec in store.schema.variables.items()}
        shape = (int(store.schema.sizes["row"]), int(store.schema.sizes["col"]))
        meta = None if rebuild else _load_meta(root)
        if meta is not None and (meta.shape != shape or meta.variables != variables):
            meta = None
        stale = [] if meta is None else [
            k for k, d in wanted.items() if meta.periods.get(k, {}).get("digest") != d
        ]
        if meta is not None and meta.n_positions + len(stale) > meta.capacity:
            logger.info("history index of %s is full; rebuilding it", loc.url)
            meta = None
        if meta is None:
            capacity = max(_MIN_CAPACITY, 2 * len(labels))
            capacity += -capacity % GROUP
            base = _Meta(uuid.uuid4().hex, shape, variables, capacity, 0, {})
            stale, dropped, rebuilt = list(labels), [], True
        else:
            base = meta
            dropped = [k for k in meta.periods if k not in wanted]
            rebuilt = False
        if not stale and not dropped:
            _clean(root, keep=base.generation)
            return {"rebuilt": False, "written": [], "dropped": []}
        positions = list(range(base.n_positions, base.n_positions + len(stale)))
        if rebuilt:
            _allocate(root, base)
        _write_positions(root, base, store, stale, positions)
        periods = {k: v for k, v in base.periods.items() if k in wanted}
        for label, position in zip(stale, positions, strict=True):
            periods[label] = {"position": position, "digest": wanted[label]}
        new = _Meta(
            base.generation, shape, variables, base.capacity,
            base.n_positions + len(stale), periods,
        )
        _publish(root, new)
        _clean(root, keep=new.generation)
    logger.info(
        "history index of %s: %s %d period(s)", loc.url,
        "rebuilt with" if rebuilt else "updated", len(stale),
    )
    return {"rebuilt": rebuilt, "written": stale, "dropped": dropped}


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------
class HistoryIndex:
    """Reader of a database's history index (see the module docstring).

    The published state is re-checked on every call (one ``stat`` of ``index.json``), so
    a long-lived reader follows updates and rebuilds made by other processes.

    Parameters
    ----------
    location : stores.storage.fs.Location or path
        The database directory.
    """

    def __init__(self, location) -> None:
        loc = Location.parse(location) if not isinstance(location, Location) else location
        self.root = Path(loc.root) if loc.is_local else None
        self._meta_path = None if self.root is None else os.fspath(self.root / _DIR / _META)
        self._key: tuple | None = None
        self._meta: _Meta | None = None
        self._paths: dict[str, str] = {}
        self._views: dict = {}

    def _current(self) -> _Meta | None:
        """The published state, re-read whenever ``index.json`` was replaced."""
        if self._meta_path is None:
            return None
        try:
            st = os.stat(self._meta_path)
        except FileNotFoundError:
            self._key, self._meta, self._views = None, None, {}
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)
        if key != self._key:
            self._key, self._meta, self._views = key, _load_meta(self.root), {}
            if self._meta is not None:
                self._paths = {
                    n: os.fspath(_path(self.root, self._meta.generation, n))
                    for n in self._meta.variables
                }
        return self._meta

    def lookup(self, labels: Sequence, digests: Sequence[str], token=None):
        """``(state, positions)`` of the periods *labels* with slice *digests*, or None.

        None when there is no usable index or one of the periods is not indexed with
        the same values.

        Parameters
        ----------
        labels : sequence
            The periods.
        digests : sequence of str
            Their slice digests (:func:`stores.common.provenance.slice_digest`).
        token : hashable, optional
            Identifies (labels, digests) for caching.

        Returns
        -------
        tuple or None
            The published state and the positions (int64), or None.
        """
        meta = self._current()
        if meta is None:
            return None
        token = (tuple(labels), tuple(digests)) if token is None else token
        if token not in self._views:
            out = np.empty(len(labels), dtype=np.int64)
            result: np.ndarray | None = out
            for i, (label, digest) in enumerate(zip(labels, digests, strict=True)):
                entry = meta.periods.get(label)
                if entry is None or entry["digest"] != digest:
                    result = None
                    break
                out[i] = entry["position"]
            self._views[token] = result
        positions = self._views[token]
        return None if positions is None else (meta, positions)

    def read(
        self, state: _Meta, name: str, positions: np.ndarray, rows: slice, cols: slice
    ) -> np.ndarray:
        """Values of *name* at *positions* over the window: array (n, n_rows, n_cols).

        Parameters
        ----------
        state, positions
            From :meth:`lookup`.
        name : str
            The property.
        rows, cols : slice
            The window.

        Returns
        -------
        numpy.ndarray
            The values.

        Raises
        ------
        HistoryIndexError
            The index is missing, truncated or damaged (the caller reads the cube).
        """
        meta = state
        if name not in meta.variables or positions.size == 0:
            raise HistoryIndexError(f"no {name!r} in the history index")
        dtype = np.dtype(meta.variables[name])
        vb, bb = _block_bytes(dtype)
        n_groups = int(positions.max()) // GROUP + 1
        path = self._paths.get(name) or os.fspath(_path(self.root, meta.generation, name))
        _, n_tc = meta.tiles
        out = np.empty((positions.size, rows.stop - rows.start, cols.stop - cols.start), dtype)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise HistoryIndexError(f"{path} is missing") from exc
        try:
            for tr in range(rows.start // TILE, (rows.stop - 1) // TILE + 1):
                for tc in range(cols.start // TILE, (cols.stop - 1) // TILE + 1):
                    tile = tr * n_tc + tc
                    raw = os.pread(fd, n_groups * bb, tile * (meta.capacity // GROUP) * bb)
                    if len(raw) != n_groups * bb:
                        raise HistoryIndexError(f"{path} is truncated")
                    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(n_groups, bb)
                    values = blocks[:, :vb].view(dtype).reshape(-1, TILE * TILE)[positions]
                    expected = blocks[:, vb:].view("<u8").reshape(-1)[positions]
                    if not np.array_equal(_checksums(values, positions), expected):
                        msg = f"{path}: tile {tile} does not match its checksums"
                        raise HistoryIndexError(msg)
                    r0, r1 = max(rows.start, tr * TILE), min(rows.stop, (tr + 1) * TILE)
                    c0, c1 = max(cols.start, tc * TILE), min(cols.stop, (tc + 1) * TILE)
                    values = values.reshape(-1, TILE, TILE)
                    out[:, r0 - rows.start : r1 - rows.start, c0 - cols.start : c1 - cols.start] = (
                        values[:, r0 - tr * TILE : r1 - tr * TILE, c0 - tc * TILE : c1 - tc * TILE]
                    )
        finally:
            os.close(fd)
        return out

    @staticmethod
    def tiles_touched(rows: slice, cols: slice) -> int:
        """How many tiles a window touches (reads cost one per tile and property).

        Parameters
        ----------
        rows, cols : slice
            The window.

        Returns
        -------
        int
            The tiles.
        """
        if rows.stop <= rows.start or cols.stop <= cols.start:
            return 0
        return ((rows.stop - 1) // TILE - rows.start // TILE + 1) * (
            (cols.stop - 1) // TILE - cols.start // TILE + 1
        )
