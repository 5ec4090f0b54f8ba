"""The natural xarray paths to the cube beside their floors (issue 10), in one run.

Two databases are made in a temporary directory:

- *history cube*: ``--periods`` periods (default 300) of ``--size``\\ ² pixels (default
  256², 1.1 MiB per period: a 300-period cube of 1024² needs 5.4 GiB of disk).  Point
  and history reads touch one chunk per period and property whatever the frame size,
  so their times hold for 1024² frames (the chunk is 128 x 128 in both cases);
- *frame cube*: ``--frame-periods`` periods (default 3) of 1024², for whole-frame and
  whole-period reads and the cost of one incremental history-index update.

For each selection it prints the median time of the xarray path and the references
measured in the same run:

- *floor*: the same selection on an in-memory Dataset with the same variables and
  coordinates (8 x 8 frames: xarray's own cost, independent of the frame size);
- *direct*: :meth:`stores.CubeStore.read_arrays` for the same values;
- *index*: the history index's read of the same values;
- *raw*: ``os.pread`` of exactly the bytes needed (no decoding): the read limit.

and the ratio against the issue's target (``target`` column: the xarray path divided by
the reference sum named there).

    python benchmarks/bench_xarray.py                   # 300 x 256², 3 x 1024²
    python benchmarks/bench_xarray.py --periods 50 --size 128 --frame-periods 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from stiscube import PixelDB
from stiscube.cube.backend import source_of
from stiscube.datasets import random_properties
from stiscube.schema import PROPERTIES


def _medians(funcs: dict, *, repeat: int, min_time: float = 0.5) -> dict:
    """Median seconds of each function, timed round-robin (a shared machine's load
    changes then affect all of them alike, so their ratios hold)."""
    for func in funcs.values():
        func()  # warm up (page cache, readers)
    times: dict = {k: [] for k in funcs}
    order = list(funcs)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    n = 0
    while n < repeat or (time.perf_counter() - start < min_time and n < 2000):
        rng.shuffle(order)  # no function always runs after the same one
        for key in order:
            func = funcs[key]
            t0 = time.perf_counter()
            func()
            times[key].append(time.perf_counter() - t0)
        n += 1
    return {k: float(np.median(v)) for k, v in times.items()}


def _make_db(path: Path, periods: int, size: int) -> PixelDB:
    db = PixelDB.create(path, shape=(size, size))
    base = random_properties((size, size), seed=1)
    day = np.timedelta64(30, "D")
    for n in range(periods):
        frame = base.copy()
        frame["sci_mean"] = base["sci_mean"] + np.float32(1e-4 * n)  # distinct periods
        t0 = np.datetime64("2000-01-01") + n * day
        db.ingest_properties(frame, n, start=t0, end=t0 + day)
    return db


def _floor_dataset(ds: xr.Dataset, n: int = 8) -> xr.Dataset:
    """In-memory Dataset with the variables and coords of *ds* on n x n frames."""
    small = {}
    for name, var in ds.data_vars.items():
        small[name] = (var.dims, np.zeros((ds.sizes["anneal"], n, n), var.dtype), var.attrs)
    coords = {k: (v.dims, v.values) for k, v in ds.coords.items() if "anneal" in v.dims}
    coords.update(row=np.arange(n), col=np.arange(n))
    return xr.Dataset(small, coords=coords, attrs=ds.attrs)


def _floor_cube(mem: xr.Dataset) -> xr.DataArray:
    return mem.to_dataarray("property").astype("float32").transpose(
        "anneal", "row", "col", "property"
    ).load()


def _raw_reader(db: PixelDB):
    """``raw(slot_rows)``: pread exactly the bytes of pixel windows from the chunk files."""
    store = db.store
    root = Path(db.location.root) / "cube" / "data"
    chunk_r = store.schema.chunks["row"]
    chunk_c = store.schema.chunks["col"]

    def read(labels, r0, r1, c0, c1) -> int:
        total = 0
        for name in PROPERTIES:
            item = np.dtype(store.schema.variables[name].dtype).itemsize
            for label in labels:
                slot = store.slice_info(label)["slot"]
                for r in range(r0, r1):
                    path = root / name / "c" / str(slot) / str(r // chunk_r) / str(c0 // chunk_c)
                    fd = os.open(path, os.O_RDONLY)
                    offset = ((r % chunk_r) * chunk_c + c0 % chunk_c) * item
                    total += len(os.pread(fd, (c1 - c0) * item, offset))
                    os.close(fd)
        return total

    return read


def _row(table, what, xr_s, refs: dict, target: tuple[str, float] | None):
    ref_text = ", ".join(f"{k} {v * 1e3:.3f}" for k, v in refs.items())
    ratio = ""
    if target is not None:
        keys, limit = target
        denominator = sum(refs[k] for k in keys.split("+"))
        ratio = f"{xr_s / denominator:5.2f}x {keys} (target <= {limit})"
    table.append((what, f"{xr_s * 1e3:9.3f}", ref_text, ratio))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--periods", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frame-periods", type=int, default=3)
    parser.add_argument("--frame-size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--dir", default=None, help="work directory (default a temporary one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_xarray_", dir=args.dir))
    rep = args.repeat
    table: list[tuple] = []
    try:
        t0 = time.perf_counter()
        db = _make_db(work / "hist.db", args.periods, args.size)
        print(f"history cube: {args.periods} periods of {args.size}^2 made in "
              f"{time.perf_counter() - t0:.0f} s")
        ds = db.dataset
        mem = _floor_dataset(ds)
        memcube = _floor_cube(mem)
        store = db.store
        labels = store.labels
        rng = np.random.default_rng(0)
        r, c = (int(v) for v in rng.integers(0, args.size, 2))
        a = labels[len(labels) // 2]
        raw = _raw_reader(db)

        # -- point: one pixel, one period, 5 properties ---------------------------------
        t = _medians(
            {
                "xr": lambda: ds.sel(anneal=a, row=r, col=c).load(),
                "floor": lambda: mem.sel(anneal=a, row=3, col=4).load(),
                "direct": lambda: store.read_arrays(a, row=r, col=c),
                "raw": lambda: raw([a], r, r + 1, c, c + 1),
                "cube": lambda: db.cube.sel(anneal=a, row=r, col=c).values,
                "cube floor": lambda: memcube.sel(anneal=a, row=3, col=4).values,
            },
            repeat=rep,
        )
        _row(table, "point ds.sel(anneal,row,col).load()", t["xr"],
             {k: t[k] for k in ("floor", "direct", "raw")}, ("floor+direct", 2))
        _row(table, "point db.cube.sel(anneal,row,col).values", t["cube"],
             {"dataset": t["xr"], "floor": t["cube floor"]}, ("dataset", 1.5))

        # -- history without the index ----------------------------------------------------
        t = _medians(
            {
                "xr": lambda: ds.sel(row=r, col=c).load(),
                "floor": lambda: mem.sel(row=3, col=4).load(),
                "read_arrays": lambda: store.read_arrays(labels, row=r, col=c),
                "raw": lambda: raw(labels, r, r + 1, c, c + 1),
                "cube": lambda: db.cube.sel(row=r, col=c).values,
            },
            repeat=5, min_time=0,
        )
        _row(table, f"history ({len(labels)} periods) ds.sel(row,col).load(), no index",
             t["xr"], {k: t[k] for k in ("floor", "read_arrays", "raw")}, ("read_arrays", 1.5))
        _row(table, "history db.cube.sel(row,col).values, no index", t["cube"],
             {"dataset": t["xr"]}, ("dataset", 1.5))

        # -- history with the index -------------------------------------------------------
        t0 = time.perf_counter()
        db.update_history_index(rebuild=True)
        build_s = time.perf_counter() - t0
        ds = db.dataset  # the same object; the index is checked on every read
        src = source_of(ds)
        assert src._index_positions(labels) is not None, "index not current"
        index = src.index
        digests = src._digests

        def index_read():  # what reading the index costs: check the state, 5 reads
            state, positions = index.lookup(labels, digests, token="bench")
            window = (slice(r, r + 1), slice(c, c + 1))
            return [index.read(state, n, positions, *window) for n in PROPERTIES]

        t = _medians(
            {
                "xr": lambda: ds.sel(row=r, col=c).load(),
                "accessor": lambda: ds.pixels.history(r, c).load(),
                "cube": lambda: db.cube.sel(row=r, col=c).values,
                "one": lambda: ds["sci_mean"].sel(row=r, col=c).values,
                "floor": lambda: mem.sel(row=3, col=4).load(),
                "floor one": lambda: mem["sci_mean"].sel(row=3, col=4).values,
                "index": index_read,
                "history_values": lambda: db.history_values(r, c),
            },
            repeat=rep,
        )
        refs = {k: t[k] for k in ("floor", "index", "history_values")}
        _row(table, "history ds.sel(row,col).load(), index current", t["xr"], refs,
             ("floor+index", 2))
        _row(table, "history ds.pixels.history(r,c).load(), index", t["accessor"], refs,
             ("floor+index", 2))
        _row(table, "history db.cube.sel(row,col).values, index", t["cube"],
             {"dataset": t["xr"]}, ("dataset", 1.5))
        _row(table, "history ds['sci_mean'].sel(row,col).values, index", t["one"],
             {"floor": t["floor one"], "index": t["index"] / len(PROPERTIES)},
             ("floor+index", 2))
        index_dir = work / "hist.db" / "history"
        index_bytes = sum(p.stat().st_blocks * 512 for p in index_dir.rglob("*") if p.is_file())
        cube_bytes = sum(p.stat().st_size for p in (work / "hist.db" / "cube").rglob("*")
                         if p.is_file())
        shutil.rmtree(work / "hist.db")

        # -- frames and periods at full size ----------------------------------------------
        t0 = time.perf_counter()
        fdb = _make_db(work / "frame.db", args.frame_periods, args.frame_size)
        print(f"frame cube: {args.frame_periods} periods of {args.frame_size}^2 made in "
              f"{time.perf_counter() - t0:.0f} s")
        fds = fdb.dataset
        fstore = fdb.store
        fa = fstore.labels[-1]
        t = _medians(
            {
                "frame": lambda: fds["sci_mean"].sel(anneal=fa).values,
                "frame direct": lambda: fstore.read_arrays(fa, variables=["sci_mean"]),
                "frame cube": lambda: fdb.cube.sel(anneal=fa, property="sci_mean").values,
            },
            repeat=10, min_time=5,
        )
        _row(table, f"frame ds['sci_mean'].sel(anneal).values ({args.frame_size}^2)",
             t["frame"], {"direct": t["frame direct"]}, ("direct", 1.5))
        _row(table, "frame db.cube.sel(anneal, property).values", t["frame cube"],
             {"dataset": t["frame"]}, ("dataset", 1.5))
        t = _medians(
            {
                "period": lambda: fds.sel(anneal=fa).load(),
                "period direct": lambda: fstore.read_arrays(fa),
                "period cube": lambda: fdb.cube.sel(anneal=fa).values,
            },
            repeat=5, min_time=10,
        )
        _row(table, "period ds.sel(anneal).load() (5 properties)", t["period"],
             {"direct": t["period direct"]}, ("direct", 1.5))
        _row(table, "period db.cube.sel(anneal).values", t["period cube"],
             {"dataset": t["period"]}, ("dataset", 1.5))

        # -- incremental index update for one full-size period ------------------------------
        fdb.update_history_index()
        day = np.timedelta64(30, "D")
        n = args.frame_periods
        t0 = np.datetime64("2000-01-01") + n * day
        fdb.ingest_properties(random_properties((args.frame_size,) * 2, seed=7), n,
                              start=t0, end=t0 + day)
        t1 = time.perf_counter()
        done = fdb.update_history_index()
        update_s = time.perf_counter() - t1
        assert done["written"] == [n] and not done["rebuilt"], done
        fdb.ingest_properties(random_properties((args.frame_size,) * 2, seed=8), n,
                              start=t0, end=t0 + day, overwrite=True)
        t1 = time.perf_counter()
        fdb.update_history_index()
        replace_s = time.perf_counter() - t1
    finally:
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(t[0]) for t in table)
    print(f"\n{'selection':<{width}}  {'xarray ms':>9}  references (ms)  ratio")
    for what, ms, refs, ratio in table:
        print(f"{what:<{width}}  {ms}  {refs}  {ratio}")
    print(f"\nhistory index: rebuilt for {args.periods} periods of {args.size}^2 in "
          f"{build_s:.1f} s; {index_bytes / 2**20:.0f} MiB allocated beside a "
          f"{cube_bytes / 2**20:.0f} MiB cube")
    print(f"incremental index update, one {args.frame_size}^2 period: append {update_s:.2f} s, "
          f"replace {replace_s:.2f} s (no rebuild; independent of the periods held)")


if __name__ == "__main__":
    main()
