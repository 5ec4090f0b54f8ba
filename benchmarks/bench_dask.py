"""dask through the xarray engine, and recompute on a cluster (issue 22), in one run.

1. A cube of ``--periods`` periods of ``--size``\\ ² pixels (default 60 x 1024², about
   1.1 GiB; the issue's 300 periods need about 5.4 GiB of disk and several minutes to
   write: ``--periods 300``).  Each selection is timed through
   ``xr.open_dataset(db, engine="stiscube", chunks={})`` (opening included, then
   ``.load()``/``.compute()`` on dask's threaded scheduler) and through the store's direct
   reader (:meth:`stores.CubeStore.read_arrays`) for the same values:

   - one frame (every property of one period);
   - a 100 x 100 region over every period;
   - the mean over ``anneal`` of ``sci_mean`` (the whole cube of one property), also with
     ``chunks={"anneal": -1}`` (all periods of a stored (row, col) chunk in one task).

   Best of ``--repeat`` wall and CPU (process) seconds, and their ratios to the direct
   reader.  Issue 22 targets: frame and region <= 2x, mean over anneal <= 1.5x.
2. ``recompute`` of 4 periods of ``--frames`` darks of ``--dark-size``\\ ² pixels on a
   LocalCluster of 1, then 2, single-thread worker processes (each cluster warmed by one
   period first: the compiled kernel loads in each worker); wall seconds and the speed-up.
   Target >= 1.7x.  The workers' CPU is not in this process's CPU time, so the load
   average is printed beside it: on the shared 2-core machine the speed-up is only
   meaningful at a load below 1.

Run by hand (prints numbers, asserts nothing)::

    python benchmarks/bench_dask.py [--periods 60] [--size 1024] [--repeat 3]
                                    [--frames 12] [--dark-size 512] [--skip-cube]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
from bench_xarray import _make_db

from stiscube import PixelDB, recompute, simulate_darks


def _best(func, repeat: int) -> tuple[float, float]:
    """Best wall and best CPU seconds of *repeat* calls (after one warm-up call)."""
    func()
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        func()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def cube(root: Path, periods: int, size: int, repeat: int) -> None:
    t0 = time.perf_counter()
    db = _make_db(root / "cube.db", periods, size)
    path = root / "cube.db"
    print(f"cube of {periods} x {size}^2 written in {time.perf_counter() - t0:.0f} s; "
          f"stored chunks {db.store.schema.chunks}")
    store = db.store
    labels = list(store.labels)
    mid = labels[len(labels) // 2]
    r0 = min(200, size - 100)
    window = {"row": slice(r0, r0 + 100), "col": slice(r0, r0 + 100)}

    def engine(chunks):
        return xr.open_dataset(path, engine="stiscube", chunks=chunks)

    cases = {
        "one frame": (lambda: engine({}).sel(anneal=mid).load(),
                      lambda: store.read_arrays(mid)),
        f"100x100 region x {periods} periods": (
            lambda: engine({}).isel(**window).load(),
            lambda: store.read_arrays(labels, **window)),
        "mean over anneal (chunks={})": (
            lambda: engine({})["sci_mean"].mean("anneal").compute(),
            lambda: store.read_arrays(labels, variables=["sci_mean"])["sci_mean"]
            .mean(axis=0)),
        'mean over anneal (chunks={"anneal": -1})': (
            lambda: engine({"anneal": -1})["sci_mean"].mean("anneal").compute(),
            lambda: store.read_arrays(labels, variables=["sci_mean"])["sci_mean"]
            .mean(axis=0)),
    }
    print(f"{'selection':42s} {'engine wall/CPU s':>18s} {'direct wall/CPU s':>18s} "
          f"{'ratio wall':>10s} {'ratio CPU':>9s}")
    for name, (through_engine, direct) in cases.items():
        ew, ec = _best(through_engine, repeat)
        dw, dc = _best(direct, repeat)
        print(f"{name:42s} {ew:8.3f} / {ec:7.3f} {dw:8.3f} / {dc:7.3f} {ew / dw:10.2f} "
              f"{ec / dc:9.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def scaling(root: Path, frames: int, size: int) -> None:
    from dask.distributed import Client, LocalCluster

    sim = simulate_darks(root / "darks", n_periods=5, frames_per_period=frames,
                         shape=(size, size), seed=3)
    numbers = sorted(sim.files)
    warm, timed = numbers[0], numbers[1:5]
    seconds = {}
    for n_workers in (1, 2):
        db = PixelDB.create(root / f"scaling-{n_workers}.db", periods=sim.periods,
                            shape=sim.shape)
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            recompute(db, {warm: sim.files[warm]}, client=client)
            load0 = os.getloadavg()[0]
            t = time.perf_counter()
            recompute(db, {n: sim.files[n] for n in timed}, client=client)
            seconds[n_workers] = time.perf_counter() - t
        print(f"recompute of {len(timed)} periods ({frames} darks of {size}^2) on "
              f"{n_workers} worker(s): {seconds[n_workers]:.2f} s wall "
              f"(load average {load0:.1f} -> {os.getloadavg()[0]:.1f})")
    print(f"speed-up 1 -> 2 workers: {seconds[1] / seconds[2]:.2f}x (target >= 1.7)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, default=60)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--dark-size", type=int, default=512)
    parser.add_argument("--skip-cube", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--keep", help="write the data here and keep it (default: temp dir)")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-dask-"))
    root.mkdir(parents=True, exist_ok=True)
    np.seterr(all="ignore")
    try:
        if not args.skip_cube:
            cube(root, args.periods, args.size, args.repeat)
        if not args.skip_scaling:
            scaling(root, args.frames, args.dark_size)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
