"""Benchmark: one anneal period of full-size STIS CCD darks from disk -> the five properties.

Simulates ``--frames`` full-frame (1024 x 1024) dark FLT files once (kept under
``benchmarks/output/``, git-ignored, reused by later runs with the same parameters),
then times :func:`stiscube.compute_properties` from the files to computed arrays:

- with the threaded scheduler on 2 threads;
- with a 2-worker ``dask.distributed`` LocalCluster (1 thread each), with in-process
  workers and with worker processes (``--cluster``);

and, to show where the time goes, header validation alone and reading all pixel data
alone.  Effective throughput = bytes of the FITS files / wall time.  The files are in the
page cache after the first read (warm cache); the numbers do not include disk reads.

Run:  .venv/bin/python benchmarks/bench_properties.py [--frames 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import dask

from stiscube.datasets.simulate import load_simulation, simulate_darks
from stiscube.io.darks import check_darks, open_darks
from stiscube.properties.compute import compute_properties

DEFAULT_DIR = Path(__file__).resolve().parent / "output" / "bench_properties"


def _simulation(workdir: Path, frames: int, size: int, seed: int):
    try:
        sim = load_simulation(workdir)
        if sim.shape == (size, size) and sim.seed == seed and len(sim.all_files) == frames:
            return sim, 0.0
    except FileNotFoundError:
        pass
    start = time.perf_counter()
    sim = simulate_darks(
        workdir,
        n_periods=1,
        frames_per_period=frames,
        shape=(size, size),
        seed=seed,
        overwrite=True,
    )
    return sim, time.perf_counter() - start


def _timed(label: str, func, repeat: int, nbytes: int) -> list[float]:
    walls = []
    for i in range(repeat):
        load = os.getloadavg()[0]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        func()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        walls.append(wall)
        print(
            f"  {label} run {i + 1}: {wall:6.2f} s wall, {cpu:6.2f} s CPU (this process), "
            f"{nbytes / wall / 1e9:5.2f} GB/s, load average before {load:.1f}"
        )
    print(
        f"  {label}: best {min(walls):.2f} s ({nbytes / min(walls) / 1e9:.2f} GB/s), "
        f"median {statistics.median(walls):.2f} s"
    )
    return walls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="darks in the period (60)")
    parser.add_argument("--size", type=int, default=1024, help="frame size in pixels (1024)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per configuration")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--threads", type=int, default=2, help="threads / workers (2)")
    parser.add_argument(
        "--cluster",
        choices=("none", "threads", "processes", "both"),
        default="both",
        help="LocalCluster runs: in-process workers, worker processes, both (default), none",
    )
    args = parser.parse_args(argv)

    sim, sim_seconds = _simulation(args.workdir, args.frames, args.size, args.seed)
    files = sim.all_files
    nbytes = sum(f.stat().st_size for f in files)
    print(
        f"{len(files)} darks of {args.size} x {args.size} in {args.workdir}: "
        f"{nbytes / 1e6:.0f} MB"
        + (f" (simulated in {sim_seconds:.1f} s)" if sim_seconds else " (reused)")
    )
    print(f"CPUs: {os.cpu_count()}, load average now: {os.getloadavg()}")

    # Warm the page cache, then show where the time goes.
    stack = open_darks(files, chunks={"frame": -1, "row": 64})
    dask.compute(stack.sci.sum(), stack.err.sum(), stack.dq.sum(), scheduler="sync")
    print("components:")
    _timed("header validation (check_darks)", lambda: check_darks(files), args.repeat, nbytes)
    _timed(
        "read all pixels (threads)",
        lambda: dask.compute(
            stack.sci.sum(),
            stack.err.sum(),
            stack.dq.sum(),
            scheduler="threads",
            num_workers=args.threads,
        ),
        args.repeat,
        nbytes,
    )

    print(f"files -> properties, threaded scheduler ({args.threads} threads):")
    threaded = _timed(
        "threaded",
        lambda: compute_properties(files).compute(scheduler="threads", num_workers=args.threads),
        args.repeat,
        nbytes,
    )

    kinds = {"none": (), "threads": (False,), "processes": (True,), "both": (False, True)}
    for processes in kinds[args.cluster]:
        from dask.distributed import Client, LocalCluster

        kind = "worker processes" if processes else "in-process workers"
        start = time.perf_counter()
        with (
            LocalCluster(
                n_workers=args.threads,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=":0",
            ) as cluster,
            Client(cluster) as client,
        ):
            print(
                f"files -> properties, LocalCluster ({args.threads} workers x 1 thread, {kind}; "
                f"started in {time.perf_counter() - start:.1f} s):"
            )
            _timed(
                f"LocalCluster ({kind})",
                lambda client=client: compute_properties(files, client=client).compute(),
                args.repeat,
                nbytes,
            )
    target = 3.0
    verdict = "meets" if min(threaded) <= target else "misses"
    print(f"threaded best {min(threaded):.2f} s {verdict} the {target:.0f} s target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
