"""An optional pixel-major copy of the cube, for fast pixel histories.

The cube is stored frame-major (one chunk row per anneal period), so one pixel's history
across N periods costs N chunk reads (about 70 ms for 300 periods).  The history index
is a second, pixel-major copy: per property a Zarr v3 array on (row, col, anneal) whose
4 x 4-pixel chunks hold every period (in 256 x 256-pixel shards), so a history is one
small read per property (well under a millisecond).

It is a cache, never the truth:

- it is (re)built on request, :meth:`stiscube.PixelDB.build_history_index` or
  ``stiscube index DB``, from the committed cube, in a temporary directory swapped in
  at the end (a crash leaves the previous index or none);
- it records the periods and the SHA-256 checksums of the cube slices it was built
  from, and is used only while they equal the cube's committed ones; after an ingest
  or a replacement, queries fall back to the cube until the index is rebuilt.

Cost: the index roughly doubles the disk used by the cube (it is stored uncompressed
like the cube), and a rebuild reads the whole cube.  It is therefore opt-in.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from stores._direct import DirectReader
from stores._fs import Location

__all__ = ["HistoryIndex", "build_history_index"]

logger = logging.getLogger(__name__)

_DIR = "history"
_META = "index.json"
_CHUNK = 4
_SHARD = 256


def _signature(store) -> dict:
    """Periods and slice checksums of the cube's committed state."""
    return {str(label): store.slice_info(label)["sha256"] for label in store.labels}


def build_history_index(db) -> Path:
    """Build (or rebuild) the pixel-major history index of *db*; returns its directory.

    Raises
    ------
    NotImplementedError
        For a database that is not on the local filesystem.
    ValueError
        When the cube holds no period.
    """
    import zarr

    loc: Location = db.location
    if not loc.is_local:
        msg = f"the history index needs a local database, not {loc.url}"
        raise NotImplementedError(msg)
    store = db.store
    labels = store.labels
    if not labels:
        msg = f"{loc.url}: the cube holds no period to index"
        raise ValueError(msg)
    signature = _signature(store)
    rows, cols = db.shape
    root = Path(loc.root)
    tmp = root / f".{_DIR}.{uuid.uuid4().hex}.tmp"
    group = zarr.open_group(tmp / "data", mode="w", zarr_format=3)
    n = len(labels)
    chunk = (min(_CHUNK, rows), min(_CHUNK, cols), n)
    shard = (min(_SHARD, rows), min(_SHARD, cols), n)
    shard = tuple(s - s % c for s, c in zip(shard, chunk, strict=True))
    try:
        for name, spec in store.schema.variables.items():
            array = group.create_array(
                name,
                shape=(rows, cols, n),
                chunks=chunk,
                shards=shard,
                dtype=spec.dtype,
                compressors=None,
                fill_value=spec.resolved_fill_value(),
                dimension_names=("row", "col", "anneal"),
            )
            for r0 in range(0, rows, shard[0]):
                r1 = min(r0 + shard[0], rows)
                block = store.read_arrays(labels, variables=[name], row=slice(r0, r1))[name]
                array[r0:r1] = np.moveaxis(block, 0, -1)
            logger.info("history index: %s done", name)
        meta = {"labels": labels, "sha256": signature, "chunks": list(chunk)}
        (tmp / _META).write_text(json.dumps(meta))
        final = root / _DIR
        old = root / f".{_DIR}.{uuid.uuid4().hex}.old"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built the history index of %s (%d periods)", loc.url, n)
    return root / _DIR


class HistoryIndex:
    """Reader of a database's history index (see the module docstring)."""

    def __init__(self, db) -> None:
        self.db = db
        self._state: tuple[int, bool] | None = None  # (manifest sequence, usable)
        self._readers: dict[str, DirectReader] = {}
        self._labels: list[int] = []

    def usable(self) -> bool:
        """Whether an index exists and matches the cube's committed state."""
        store = self.db.store
        sequence = store._manifest.sequence
        if self._state is not None and self._state[0] == sequence:
            return self._state[1]
        ok = False
        loc = self.db.location
        if loc.is_local and loc.exists(_DIR, _META):
            meta = json.loads(loc.read_bytes(_DIR, _META))
            ok = meta.get("labels") == store.labels and meta.get("sha256") == _signature(store)
            if ok:
                self._labels = meta["labels"]
                self._readers = {
                    name: DirectReader(loc, (_DIR, "data", name)) for name in store.schema.variables
                }
            else:
                logger.info("history index of %s is stale; reading the cube", loc.url)
        self._state = (sequence, ok)
        return ok

    def read(self, row: int, col: int) -> dict[str, np.ndarray]:
        """Every property of pixel (row, col) over the indexed periods (in label order)."""
        n = len(self._labels)
        return {
            name: reader.read(row, [slice(col, col + 1), slice(0, n)])[0]
            for name, reader in self._readers.items()
        }
