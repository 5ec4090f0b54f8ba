"""Pixel cube vs the seed's relational layout (issue 4): query, ingest and size figures.

Builds, under a temporary directory (or ``--out``), a :class:`stiscube.PixelDB` cube of
``--periods`` periods of ``--size`` x ``--size`` synthetic properties for each layout of
``--layouts``, and beside it the seed's relational layout in SQLite: one row per pixel
per period in a table with primary key (AnnealNumber, RowNum, ColumnNum), columns
AnnealNumber, RowNum, ColumnNum, Stability, Sci_Mean, Err_Mean, NaN_Count, Readnoise,
clustered on that key (``WITHOUT ROWID``, as MySQL/InnoDB stores the seed's table),
filled for ``--sqlite-periods`` periods with the same values (``executemany``, one
transaction per period).  Then it times, as medians over random pixels, regions and
periods (warm page cache):

- one pixel in one period (``PixelDB.query_pixel`` / one SELECT on the key);
- one pixel's history across all periods (``PixelDB.history`` / SELECT on row, col);
- a 100 x 100 region of one period (``PixelDB.query_pixel_region``);
- one property's whole frame of one period (``db.store.read_arrays(n)``, which reads
  all five properties, and ``db.dataset[prop].sel(anneal=n).values``);
- the DQ array of one period (:func:`stiscube.dq.dq_array`, level rule and 5-sigma
  rule; SQLite: the level rule as a WHERE clause, the 5-sigma rule on the fetched frame);
- ingest of one precomputed period (every ingest of the build is timed);
- bytes on disk, against the raw size (five float32 frames per period; the stored
  dtypes, four float32 and one uint16, are 10% smaller).

Optionally (``--pixel-major``) it also builds an experimental pixel-major companion of
the first layout's cube (per property a Zarr array with chunks spanning all periods and
a few pixels, sharded) and times a history read from it, directly from the chunk files
and through zarr, to show what a second layout would buy for the history query.

Periods are made cheaply from one seeded random frame set: period *p* is the base frames
rolled by ``37 p`` columns plus a per-period offset (``nan_count``: ``(base + p) % 6``),
so every value is known and the queries of both layouts are checked against it.

Run: ``python benchmarks/bench_cube.py`` (300 periods, a few minutes per layout);
``--periods 20 --sqlite-periods 3`` for a quick look.  Numbers depend on the machine and
its load; the load average is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from stiscube import PixelDB
from stiscube.datasets import random_properties
from stiscube.dq import DQRules, dq_array
from stiscube.dq._kernels import clipped_threshold
from stiscube.schema import PROPERTIES

SEED_COLUMNS = [
    "AnnealNumber",
    "RowNum",
    "ColumnNum",
    "Stability",
    "Sci_Mean",
    "Err_Mean",
    "NaN_Count",
    "Readnoise",
]
_PROPERTY_COLUMNS = dict(zip(PROPERTIES, SEED_COLUMNS[3:], strict=True))
START = np.datetime64("1997-04-01T00:00:00", "s")
PERIOD = np.timedelta64(30 * 86400, "s")
HOT_LEVEL = 0.1  # electron / s, the level rule


# -- synthetic periods -------------------------------------------------------------------
class Periods:
    """Seeded property frames of every period, cheap to make and known exactly.

    Period *p*: ``prop_p[r, c] = base[r, (c - 37 p) % n] + offset_p[prop]`` (float32),
    ``nan_count_p = (base + p) % 6``.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.base = {k: v.values for k, v in random_properties((size, size), seed=seed).items()}
        self.scale = {"stability": 0.02, "sci_mean": 2e-4, "err_mean": 2e-5, "readnoise": 0.05}

    def shift(self, p: int) -> int:
        return (37 * p) % self.size

    def offsets(self, p: int) -> dict[str, np.float32]:
        rng = np.random.default_rng([self.seed, p])
        return {k: np.float32(s * rng.normal()) for k, s in self.scale.items()}

    def frames(self, p: int) -> dict[str, np.ndarray]:
        out = {}
        offsets = self.offsets(p)
        for name, base in self.base.items():
            rolled = np.roll(base, self.shift(p), axis=1)
            if name == "nan_count":
                out[name] = ((rolled + p) % 6).astype(np.uint16)
            else:
                out[name] = rolled + offsets[name]
        return out

    def dataset(self, p: int) -> xr.Dataset:
        n = np.arange(self.size)
        return xr.Dataset(
            {k: (("row", "col"), v) for k, v in self.frames(p).items()},
            coords={"row": n, "col": n},
        )

    def value(self, p: int, row: int, col: int, name: str) -> float:
        base = self.base[name][row, (col - self.shift(p)) % self.size]
        if name == "nan_count":
            return float((int(base) + p) % 6)
        return float(base + self.offsets(p)[name])

    def dates(self, p: int) -> tuple[np.datetime64, np.datetime64]:
        return START + p * PERIOD, START + (p + 1) * PERIOD


# -- timing helpers ------------------------------------------------------------------------
@dataclass
class Timing:
    """Wall-clock times of one measurement, in seconds."""

    times: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.times) if self.times else math.nan

    @property
    def p90_ms(self) -> float:
        if not self.times:
            return math.nan
        return 1e3 * float(np.percentile(self.times, 90))


def timed(fn: Callable, calls: Sequence[tuple], *, warmup: int = 2) -> Timing:
    """Time ``fn(*args)`` for each ``args`` of *calls* (after *warmup* untimed calls)."""
    for args in list(calls)[:warmup]:
        fn(*args)
    out = Timing()
    for args in calls:
        t0 = time.perf_counter()
        fn(*args)
        out.times.append(time.perf_counter() - t0)
    return out


def du(path: Path) -> int:
    """Bytes on disk under *path* (allocated blocks, as ``du``)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def log(text: str) -> None:
    print(text, flush=True)


# -- the cube side ---------------------------------------------------------------------------
def parse_layout(spec: str) -> tuple[dict, dict | None]:
    """``"128"`` -> chunks (1, 128, 128); ``"64s1024"`` -> + shards (1, 1024, 1024)."""
    chunk, _, shard = spec.partition("s")
    chunks = {"anneal": 1, "row": int(chunk), "col": int(chunk)}
    shards = {"anneal": 1, "row": int(shard), "col": int(shard)} if shard else None
    return chunks, shards


def build_cube(path: Path, spec: str, periods: Periods, n_periods: int) -> tuple[PixelDB, Timing]:
    chunks, shards = parse_layout(spec)
    size = periods.size
    db = PixelDB.create(path, shape=(size, size), chunks=chunks, shards=shards)
    ingest = Timing()
    t_start = time.perf_counter()
    for p in range(n_periods):
        data = periods.dataset(p)  # precomputed: not timed
        start, end = periods.dates(p)
        t0 = time.perf_counter()
        db.ingest_properties(data, p, start=start, end=end, source="benchmark")
        ingest.times.append(time.perf_counter() - t0)
        if (p + 1) % 50 == 0 or p + 1 == n_periods:
            log(
                f"  [{spec}] ingested {p + 1}/{n_periods} periods "
                f"({time.perf_counter() - t_start:.0f} s)"
            )
    return db, ingest


def check_cube_answers(db: PixelDB, periods: Periods, rng: np.random.Generator) -> None:
    """The cube's answers equal the known values (else the timings mean nothing)."""
    n_periods = len(db.anneal_numbers)
    for _ in range(5):
        p, r, c = int(rng.integers(n_periods)), *map(int, rng.integers(periods.size, size=2))
        row = db.query_pixel(r, c, anneal_num=p).iloc[0]
        for name, column in _PROPERTY_COLUMNS.items():
            assert row[column] == np.float32(periods.value(p, r, c, name)), (p, r, c, name)
        hist = db.history(r, c)
        want = [periods.value(q, r, c, "sci_mean") for q in range(n_periods)]
        np.testing.assert_array_equal(hist["sci_mean"].values, np.float32(want))


def bench_cube(db: PixelDB, periods: Periods, args, rng) -> dict[str, Timing]:
    size, n_periods = periods.size, len(db.anneal_numbers)
    region = min(100, size)

    def pixels(n):
        return [
            (int(r), int(c), int(p))
            for r, c, p in zip(
                rng.integers(size, size=n),
                rng.integers(size, size=n),
                rng.integers(n_periods, size=n),
                strict=True,
            )
        ]

    def regions(n):
        return [
            (int(r), int(c), int(p))
            for r, c, p in zip(
                rng.integers(size - region + 1, size=n),
                rng.integers(size - region + 1, size=n),
                rng.integers(n_periods, size=n),
                strict=True,
            )
        ]

    out = {}
    out["point"] = timed(lambda r, c, p: db.query_pixel(r, c, anneal_num=p), pixels(args.queries))
    out["history"] = timed(lambda r, c, p: db.history(r, c), pixels(args.history_queries))
    out["region"] = timed(
        lambda r, c, p: db.query_pixel_region(
            [r, r + region - 1], [c, c + region - 1], anneal_num=p
        ),
        regions(args.region_queries),
    )
    frames = [(int(p),) for p in rng.integers(n_periods, size=args.frame_queries)]
    out["frame_read_arrays"] = timed(lambda p: db.store.read_arrays(p), frames)
    ds = db.dataset
    out["frame_dataset"] = timed(lambda p: ds["sci_mean"].sel(anneal=p).values, frames)
    level = DQRules(hot_level=HOT_LEVEL, hot_nsigma=None)
    sigma = DQRules(hot_level=None)
    out["dq_level"] = timed(lambda p: dq_array(ds, rules=level, anneal_num=p), frames)
    out["dq_sigma"] = timed(lambda p: dq_array(ds, rules=sigma, anneal_num=p), frames)
    out["dq_level_db"] = timed(lambda p: dq_array(db, rules=level, anneal_num=p), frames)
    out["dq_sigma_db"] = timed(lambda p: dq_array(db, rules=sigma, anneal_num=p), frames)
    # for the store's owner: one zarr call per frame (what a dask chunk per frame would
    # cost) vs the dask graph of one task per zarr chunk that db.dataset holds
    array = db.store._slots.group(read_only=True)["sci_mean"]
    slots = {p: db.store.slice_info(p)["slot"] for (p,) in frames}
    out["frame_zarr_one_call"] = timed(lambda p: array[slots[p]], frames)
    sci = {p: ds["sci_mean"].sel(anneal=p).values for (p,) in frames}
    out["sigma_kernel"] = timed(
        lambda p: clipped_threshold(sci[p], 5.0, axis=(0, 1)), frames, warmup=1
    )
    # the DQ arrays agree with numpy on the known values
    p = frames[0][0]
    truth = periods.frames(p)["sci_mean"].astype(np.float64)
    np.testing.assert_array_equal(
        dq_array(ds, rules=level, anneal_num=p).values, np.where(truth > HOT_LEVEL, 16, 0)
    )
    return out


# -- the seed's relational layout in SQLite ------------------------------------------------------
_SCHEMA = """
CREATE TABLE HAS_PROPERTIES_IN (
    AnnealNumber INTEGER NOT NULL,
    RowNum INTEGER NOT NULL,
    ColumnNum INTEGER NOT NULL,
    Stability REAL,
    Sci_Mean REAL,
    Err_Mean REAL,
    NaN_Count INTEGER,
    Readnoise REAL,
    PRIMARY KEY (AnnealNumber, RowNum, ColumnNum)
) WITHOUT ROWID
"""
_INSERT = "INSERT INTO HAS_PROPERTIES_IN VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def sqlite_insert_period(conn: sqlite3.Connection, periods: Periods, p: int) -> None:
    """One period as one transaction of executemany over its rows (row-major order)."""
    frames = periods.frames(p)
    size = periods.size
    rows, cols = np.divmod(np.arange(size * size), size)
    columns = [frames[name].ravel().tolist() for name in PROPERTIES]
    with conn:
        conn.executemany(
            _INSERT,
            zip(
                [p] * (size * size),
                rows.tolist(),
                cols.tolist(),
                *columns,
                strict=True,
            ),
        )


def build_sqlite(path: Path, periods: Periods, n_periods: int) -> tuple[sqlite3.Connection, Timing]:
    conn = sqlite3.connect(path)
    conn.execute(_SCHEMA)
    ingest = Timing()
    for p in range(n_periods):
        t0 = time.perf_counter()
        sqlite_insert_period(conn, periods, p)
        ingest.times.append(time.perf_counter() - t0)
        log(f"  [sqlite] inserted period {p + 1}/{n_periods} ({ingest.times[-1]:.1f} s)")
    conn.execute("ANALYZE")  # statistics, so the planner may use a skip-scan
    conn.commit()
    return conn, ingest


def _frame_sql(conn, p: int, size: int, column: str = "Sci_Mean") -> np.ndarray:
    cur = conn.execute(
        f"SELECT {column} FROM HAS_PROPERTIES_IN WHERE AnnealNumber = ? ORDER BY RowNum, ColumnNum",
        (p,),
    )
    return np.fromiter((r[0] for r in cur), dtype=np.float32, count=size * size).reshape(size, size)


def bench_sqlite(conn, periods: Periods, n_periods: int, args, rng) -> dict[str, Timing]:
    size = periods.size
    region = min(100, size)
    table = "HAS_PROPERTIES_IN"

    def frame(sql, params):
        return pd.DataFrame(conn.execute(sql, params).fetchall(), columns=SEED_COLUMNS)

    def point(r, c, p):
        return frame(
            f"SELECT * FROM {table} WHERE AnnealNumber = ? AND RowNum = ? AND ColumnNum = ?",
            (p, r, c),
        )

    def history(r, c, p):
        return frame(
            f"SELECT * FROM {table} WHERE RowNum = ? AND ColumnNum = ? ORDER BY AnnealNumber",
            (r, c),
        )

    def region_q(r, c, p):
        return frame(
            f"SELECT * FROM {table} WHERE AnnealNumber = ? AND RowNum BETWEEN ? AND ? "
            "AND ColumnNum BETWEEN ? AND ? ORDER BY RowNum, ColumnNum",
            (p, r, r + region - 1, c, c + region - 1),
        )

    def dq_level(p):
        dq = np.zeros((size, size), dtype=np.uint16)
        hits = np.array(
            conn.execute(
                f"SELECT RowNum, ColumnNum FROM {table} WHERE AnnealNumber = ? AND Sci_Mean > ?",
                (p, HOT_LEVEL),
            ).fetchall(),
            dtype=np.int64,
        ).reshape(-1, 2)
        dq[hits[:, 0], hits[:, 1]] = 16
        return dq

    def dq_sigma(p):
        sci = _frame_sql(conn, p, size).astype(np.float64)
        _, _, threshold = clipped_threshold(sci, 5.0, axis=(0, 1))
        return np.where(sci > threshold, np.uint16(16), np.uint16(0))

    def pick(n, hi):
        return [
            (int(r), int(c), int(p))
            for r, c, p in zip(
                rng.integers(hi, size=n),
                rng.integers(hi, size=n),
                rng.integers(n_periods, size=n),
                strict=True,
            )
        ]

    plan = conn.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM {table} WHERE RowNum = 5 AND ColumnNum = 7"
    ).fetchall()
    log(f"  [sqlite] history query plan: {[row[-1] for row in plan]}")
    out = {}
    out["point"] = timed(point, pick(args.queries, size))
    out["history"] = timed(history, pick(args.sqlite_history_queries, size), warmup=1)
    out["region"] = timed(region_q, pick(args.region_queries, size - region + 1))
    frames = [(int(p),) for p in rng.integers(n_periods, size=max(3, args.frame_queries // 3))]
    out["frame"] = timed(lambda p: _frame_sql(conn, p, size), frames, warmup=1)
    out["dq_level"] = timed(dq_level, frames, warmup=1)
    out["dq_sigma"] = timed(dq_sigma, frames, warmup=1)
    # answers agree with the known values
    r, c, p = pick(1, size)[0]
    got = point(r, c, p).iloc[0]
    for name, column in _PROPERTY_COLUMNS.items():
        assert np.float32(got[column]) == np.float32(periods.value(p, r, c, name)), name
    hist = history(r, c, p)
    assert hist["AnnealNumber"].tolist() == list(range(n_periods))
    truth = periods.frames(p)["sci_mean"].astype(np.float64)
    np.testing.assert_array_equal(dq_level(p), np.where(truth > HOT_LEVEL, 16, 0))
    return out


# -- an experimental pixel-major companion ------------------------------------------------------
class PixelMajor:
    """Per property a Zarr v3 array (anneal, row, col) whose chunks span every period.

    Chunks ``(P, c, c)`` inside shards ``(P, s, s)`` (zstd, as the cube).  A history is
    one inner chunk per property, read directly from the shard file (cached shard
    index, one ``pread``, one zstd decode), or through zarr for comparison.
    """

    def __init__(self, root: Path, n_periods: int, chunk: int, shard: int) -> None:
        self.root = root
        self.n = n_periods
        self.chunk = chunk
        self.shard = shard
        self.per_shard = shard // chunk
        self._index: dict[tuple[str, int, int], np.ndarray] = {}
        from numcodecs import Zstd

        self._zstd = Zstd()
        self.dtypes: dict[str, np.dtype] = {}

    def build(self, db: PixelDB) -> float:
        import zarr
        from zarr.codecs import ZstdCodec

        t0 = time.perf_counter()
        ds = db.dataset
        for name in PROPERTIES:
            values = ds[name].values  # (P, row, col): the whole property, from the cube
            arr = zarr.create_array(
                store=str(self.root / name),
                shape=values.shape,
                dtype=values.dtype,
                chunks=(self.n, self.chunk, self.chunk),
                shards=(self.n, self.shard, self.shard),
                compressors=ZstdCodec(level=3),
                zarr_format=3,
            )
            arr[...] = values
            self.dtypes[name] = values.dtype
            meta = json.loads((self.root / name / "zarr.json").read_text())
            codec = meta["codecs"][0]
            assert codec["name"] == "sharding_indexed", codec
            index_codecs = [c["name"] for c in codec["configuration"]["index_codecs"]]
            assert index_codecs == ["bytes", "crc32c"], index_codecs
            del values, arr
            gc.collect()
        return time.perf_counter() - t0

    def _shard_index(self, name: str, sr: int, sc: int) -> np.ndarray:
        key = (name, sr, sc)
        index = self._index.get(key)
        if index is None:
            path = self.root / name / "c" / "0" / str(sr) / str(sc)
            n_inner = self.per_shard * self.per_shard
            with path.open("rb") as fh:
                fh.seek(-(n_inner * 16 + 4), os.SEEK_END)
                raw = fh.read(n_inner * 16)
            index = np.frombuffer(raw, dtype="<u8").reshape(self.per_shard, self.per_shard, 2)
            self._index[key] = index
        return index

    def history(self, row: int, col: int) -> dict[str, np.ndarray]:
        """Every property of pixel (row, col) across all periods, read directly."""
        sr, sc = row // self.shard, col // self.shard
        ir, ic = (row % self.shard) // self.chunk, (col % self.shard) // self.chunk
        out = {}
        for name in PROPERTIES:
            offset, nbytes = self._shard_index(name, sr, sc)[ir, ic]
            fd = os.open(self.root / name / "c" / "0" / str(sr) / str(sc), os.O_RDONLY)
            try:
                raw = os.pread(fd, int(nbytes), int(offset))
            finally:
                os.close(fd)
            block = np.frombuffer(self._zstd.decode(raw), dtype=self.dtypes[name])
            block = block.reshape(self.n, self.chunk, self.chunk)
            out[name] = block[:, row % self.chunk, col % self.chunk].copy()
        return out

    def history_zarr(self, row: int, col: int) -> dict[str, np.ndarray]:
        import zarr

        arrays = self.__dict__.setdefault(
            "_arrays", {n: zarr.open_array(str(self.root / n), mode="r") for n in PROPERTIES}
        )
        return {n: a[:, row, col] for n, a in arrays.items()}


def bench_pixel_major(db: PixelDB, periods: Periods, root: Path, args, rng) -> dict:
    n_periods = len(db.anneal_numbers)
    pm = PixelMajor(root, n_periods, args.pm_chunk, args.pm_shard)
    build = pm.build(db)
    size = periods.size
    pix = [(int(r), int(c)) for r, c in rng.integers(size, size=(args.queries, 2))]
    r, c = pix[0]
    got = pm.history(r, c)
    want = [periods.value(q, r, c, "readnoise") for q in range(n_periods)]
    np.testing.assert_array_equal(got["readnoise"], np.float32(want))
    np.testing.assert_array_equal(pm.history_zarr(r, c)["readnoise"], np.float32(want))
    return {
        "build_s": build,
        "bytes": du(root),
        "history_direct": timed(pm.history, pix),
        "history_zarr": timed(pm.history_zarr, pix[: args.history_queries]),
    }


# -- report -------------------------------------------------------------------------------
ROWS = [
    # key, label, target (ms or text)
    ("point", "one pixel, one period [ms]", "<= 0.5"),
    ("history", "one pixel's history, all periods [ms]", "<= 0.5"),
    ("region", "100x100 region, one period [ms]", "<= 5"),
    ("frame_dataset", "whole frame, 1 property: dataset[p].sel().values [ms]", "<= 20"),
    ("frame_read_arrays", "whole frame, 5 properties: store.read_arrays [ms]", "<= 20"),
    ("frame_zarr_one_call", "  whole frame, 1 property, one zarr call (private) [ms]", "-"),
    ("dq_level", "DQ array, level rule: dq_array(db.dataset) [ms]", "<= 50"),
    ("dq_sigma", "DQ array, 5-sigma rule: dq_array(db.dataset) [ms]", "<= 50"),
    ("dq_level_db", "DQ array, level rule: dq_array(db) [ms]", "<= 50"),
    ("dq_sigma_db", "DQ array, 5-sigma rule: dq_array(db) [ms]", "<= 50"),
    ("sigma_kernel", "  of which the 5-sigma clip on a frame in memory [ms]", "-"),
    ("ingest", "ingest one precomputed period [ms]", "<= 500"),
    ("ingest_first", "  ingest, first 10 periods [ms]", "-"),
    ("ingest_last", "  ingest, last 10 periods [ms]", "-"),
]


def fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def report(results: dict, sqlite: dict | None, args, raw_per_period: int, stored_per_period: int):
    names = list(results)
    header = ["measure", "target", *[f"cube {n}" for n in names]]
    if sqlite:
        header.append(f"SQLite ({args.sqlite_periods} x {args.sqlite_size}^2)")
    lines = []
    for key, label, target in ROWS:
        cells = [label, target]
        for name in names:
            cells.append(fmt(results[name]["timings"].get(key, Timing()).median_ms))
        if sqlite:
            skey = {
                "frame_dataset": "frame",
                "frame_read_arrays": None,
                "frame_zarr_one_call": None,
                "dq_level_db": None,
                "dq_sigma_db": None,
            }.get(key, key)
            t = sqlite["timings"].get(skey) if skey else None
            cells.append(fmt(t.median_ms) if t else "-")
        lines.append(cells)
    mib = 2**20
    size_cells = ["bytes on disk per period [MiB]", f"<= {raw_per_period / mib:.1f} (raw)"]
    total_cells = [f"bytes on disk, {args.periods} periods [GiB]", ""]
    for name in names:
        b = results[name]["bytes"]
        size_cells.append(f"{b / len(results[name]['labels']) / mib:.1f}")
        total_cells.append(f"{b / 2**30:.2f}")
    if sqlite:
        per = sqlite["bytes"] / args.sqlite_periods * (args.size / args.sqlite_size) ** 2
        size_cells.append(f"{per / mib:.1f}")
        total_cells.append(f"{per * args.periods / 2**30:.2f} (extrapolated)")
    lines += [size_cells, total_cells]
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    for row in lines:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    log("\n".join(out))
    log(
        f"raw float32 size: {raw_per_period / mib:.1f} MiB per period (5 x float32); stored "
        f"dtypes (4 x float32 + uint16): {stored_per_period / mib:.1f} MiB"
    )
    log("\np90 [ms] of the query timings:")
    for name in names:
        t = results[name]["timings"]
        log(f"  cube {name}: " + ", ".join(f"{k} {fmt(v.p90_ms)}" for k, v in t.items()))
    if sqlite:
        log("  SQLite: " + ", ".join(f"{k} {fmt(v.p90_ms)}" for k, v in sqlite["timings"].items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--periods", type=int, default=300, help="periods in the cube (300)")
    parser.add_argument("--sqlite-periods", type=int, default=12, help="periods in SQLite (12)")
    parser.add_argument("--size", type=int, default=1024, help="frame size (1024)")
    parser.add_argument(
        "--layouts",
        default="128,256,64s1024",
        help="comma-separated cube layouts: CHUNK or CHUNKsSHARD over (row, col), "
        "anneal chunk 1 (default 128,256,64s1024; 128 is the package default)",
    )
    parser.add_argument("--queries", type=int, default=300, help="random point queries (300)")
    parser.add_argument("--history-queries", type=int, default=40)
    parser.add_argument("--sqlite-history-queries", type=int, default=5)
    parser.add_argument("--region-queries", type=int, default=60)
    parser.add_argument("--frame-queries", type=int, default=15)
    parser.add_argument(
        "--sqlite-size",
        type=int,
        help="frame size on the SQLite side (default --size); e.g. 256 with "
        "--sqlite-periods 300 to see how the history query grows with the periods",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite layout")
    parser.add_argument(
        "--pixel-major",
        action="store_true",
        help="also build and time an experimental pixel-major companion of the first layout",
    )
    parser.add_argument("--pm-chunk", type=int, default=4, help="pixel-major chunk (4 px)")
    parser.add_argument("--pm-shard", type=int, default=256, help="pixel-major shard (256 px)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, help="work directory (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the data written")
    args = parser.parse_args(argv)
    args.sqlite_size = args.sqlite_size or args.size
    if args.periods < 1 or args.sqlite_periods < 0 or min(args.size, args.sqlite_size) < 100:
        parser.error("need --periods >= 1, --sqlite-periods >= 0, sizes >= 100")

    layouts = [s.strip() for s in args.layouts.split(",") if s.strip()]
    for spec in layouts:
        parse_layout(spec)
    work_ctx = (
        contextlib.nullcontext(args.out)
        if args.out
        else tempfile.TemporaryDirectory(prefix="bench_cube_", dir=os.environ.get("TMPDIR"))
    )
    periods = Periods(args.size, args.seed)
    rng = np.random.default_rng(args.seed)
    raw = 5 * 4 * args.size**2
    stored = (4 * 4 + 2) * args.size**2
    log(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, xarray {xr.__version__}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()}"
    )
    log(
        f"cube: {args.periods} periods of {args.size}x{args.size}; SQLite: "
        f"{args.sqlite_periods} periods of {args.sqlite_size}x{args.sqlite_size}; "
        f"layouts {layouts}"
    )
    with work_ctx as work:
        work = Path(work)
        work.mkdir(parents=True, exist_ok=True)
        results = {}
        for i, spec in enumerate(layouts):
            path = work / f"cube_{spec}"
            if path.exists():
                shutil.rmtree(path)
            log(f"building cube {spec} in {path}")
            db, ingest = build_cube(path, spec, periods, args.periods)
            check_cube_answers(db, periods, rng)
            log(f"  [{spec}] answers checked against the known values; timing queries")
            timings = bench_cube(db, periods, args, rng)
            timings["ingest"] = ingest
            timings["ingest_first"] = Timing(ingest.times[:10])
            timings["ingest_last"] = Timing(ingest.times[-10:])
            results[spec] = {"timings": timings, "bytes": du(path), "labels": db.anneal_numbers}
            if args.pixel_major and i == 0:
                log(f"  [{spec}] building the pixel-major companion")
                results[spec]["pixel_major"] = bench_pixel_major(
                    db, periods, work / "pixel_major", args, rng
                )
            del db
            gc.collect()
            if not args.keep:
                shutil.rmtree(path)
                shutil.rmtree(work / "pixel_major", ignore_errors=True)
            log(f"  [{spec}] done; load average {os.getloadavg()}")
        sqlite = None
        if args.sqlite_periods and not args.no_sqlite:
            path = work / "seed_layout.sqlite"
            path.unlink(missing_ok=True)
            log(f"building the seed's relational layout in {path}")
            side = (
                periods if args.sqlite_size == args.size else Periods(args.sqlite_size, args.seed)
            )
            conn, ingest = build_sqlite(path, side, args.sqlite_periods)
            timings = bench_sqlite(conn, side, args.sqlite_periods, args, rng)
            timings["ingest"] = ingest
            conn.close()
            sqlite = {"timings": timings, "bytes": du(path)}
            if not args.keep:
                path.unlink()
        log(f"\nload average at the end {os.getloadavg()}\n")
        report(results, sqlite, args, raw, stored)
        for spec, res in results.items():
            pm = res.get("pixel_major")
            if pm:
                log(
                    f"\npixel-major companion of cube {spec} (chunks {args.periods}x"
                    f"{args.pm_chunk}x{args.pm_chunk}, shards {args.pm_shard}): build "
                    f"{pm['build_s']:.1f} s, {pm['bytes'] / 2**20:.0f} MiB; history of one "
                    f"pixel, all properties: direct {fmt(pm['history_direct'].median_ms)} ms "
                    f"(p90 {fmt(pm['history_direct'].p90_ms)}), through zarr "
                    f"{fmt(pm['history_zarr'].median_ms)} ms"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
