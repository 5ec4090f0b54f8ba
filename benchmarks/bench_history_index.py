"""Pixel histories with and without the optional history index (issues 4 and 10).

Builds a cube of ``--periods`` synthetic 1024 x 1024 periods (package default layout),
times ``PixelDB.history`` on random pixels from the cube, builds the pixel-major index
(:mod:`stiscube.cube.history_index`), and times the same queries again; then appends one
period and times the incremental index update.  Prints medians, the build and update
times and the disk allocated by both (the index files are sparse).

    python benchmarks/bench_history_index.py --periods 300
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from stiscube import PixelDB
from stiscube.datasets import random_properties


def _du(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def _median_ms(func, n: int) -> float:
    times = []
    for i in range(n):
        start = time.perf_counter()
        func(i)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--periods", type=int, default=300)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_history_"))
    try:
        db = PixelDB.create(work / "db", shape=(args.size, args.size))
        base = random_properties((args.size, args.size), seed=1)
        day = np.timedelta64(30, "D")
        start = time.perf_counter()
        for n in range(args.periods):
            frame = base.copy()
            frame["sci_mean"] = base["sci_mean"] + np.float32(1e-4 * n)  # distinct periods
            t0 = np.datetime64("2000-01-01") + n * day
            db.ingest_properties(frame, n, start=t0, end=t0 + day)
        print(f"cube: {args.periods} periods of {args.size}^2 ingested in "
              f"{time.perf_counter() - start:.1f} s, {_du(work / 'db' / 'cube') / 2**30:.2f} GiB")
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, args.size, (args.queries, 2))
        expected = {i: db.history(*map(int, pixels[i])) for i in range(5)}
        cube_ms = _median_ms(lambda i: db.history(*map(int, pixels[i])), min(args.queries, 50))
        start = time.perf_counter()
        db.update_history_index(rebuild=True)
        build_s = time.perf_counter() - start
        for i, ds in expected.items():  # the index answers exactly what the cube does
            assert ds.identical(db.history(*map(int, pixels[i])))
        index_ms = _median_ms(lambda i: db.history(*map(int, pixels[i])), args.queries)
        raw_ms = _median_ms(lambda i: db.history_values(*map(int, pixels[i])), args.queries)
        print(f"history index built in {build_s:.1f} s, "
              f"{_du(work / 'db' / 'history') / 2**30:.2f} GiB")
        print(f"one pixel's history over {args.periods} periods (target <= 0.5 ms): "
              f"cube {cube_ms:.2f} ms, with the index {index_ms:.3f} ms as an xarray Dataset, "
              f"{raw_ms:.3f} ms as numpy arrays (history_values; medians)")
        t0 = np.datetime64("2000-01-01") + args.periods * day
        db.ingest_properties(random_properties((args.size, args.size), seed=2), args.periods,
                             start=t0, end=t0 + day)
        start = time.perf_counter()
        done = db.update_history_index()
        print(f"incremental update after appending one {args.size}^2 period: "
              f"{time.perf_counter() - start:.2f} s (rebuilt: {done['rebuilt']})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
