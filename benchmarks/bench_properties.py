"""Benchmark: one anneal period of full-size STIS CCD darks, files -> the five properties,
against the read limit.

Simulates ``--frames`` full-frame (1024 x 1024) dark FLT files once (kept under
``benchmarks/output/``, git-ignored, reused by later runs with the same parameters), then
times, in the same run and each ``--repeat`` times (CPU = process time of all threads):

- the *read limit*: every SCI, ERR and DQ pixel of the same files read into memory with
  astropy (``fits.open(memmap=False)``, ``hdu.data``), one file after another;
- the header check alone (:func:`stiscube.io.darks.check_darks`), to show its share;
- :func:`stiscube.compute_properties` from the files to computed arrays, threaded
  scheduler on ``--threads`` threads (headers, read, compiled kernel);

and prints the CPU and wall ratios of the properties to the read limit (best of the runs
of each).  Targets (issue 22): CPU <= 2x, wall <= 2.5x the read limit.  The files are in
the page cache after the first read (warm cache); the numbers do not include disk reads.

Run:  .venv/bin/python benchmarks/bench_properties.py [--frames 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from astropy.io import fits

from stiscube.datasets import load_simulation, simulate_darks
from stiscube.io.darks import check_darks
from stiscube.properties.compute import compute_properties

DEFAULT_DIR = Path(__file__).resolve().parent / "output" / "bench_properties"
TARGETS = {"CPU": 2.0, "wall": 2.5}


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


def _read_with_astropy(files) -> int:
    """Every SCI/ERR/DQ pixel of the files into memory with astropy; bytes read."""
    nbytes = 0
    for path in files:
        with fits.open(path, memmap=False) as hdul:
            for ext in ("SCI", "ERR", "DQ"):
                nbytes += hdul[ext].data.nbytes
    return nbytes


def _timed(label: str, func, repeat: int) -> tuple[float, float]:
    """Best CPU and best wall time (s) of *repeat* runs, each printed."""
    cpus, walls = [], []
    for i in range(repeat):
        load = os.getloadavg()[0]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        func()
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
        print(
            f"  {label} run {i + 1}: {walls[-1]:6.2f} s wall, {cpus[-1]:6.2f} s CPU "
            f"(load average before {load:.1f})"
        )
    return min(cpus), min(walls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="darks in the period (60)")
    parser.add_argument("--size", type=int, default=1024, help="frame size in pixels (1024)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per configuration")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--threads", type=int, default=2, help="dask threads (2)")
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

    def properties():
        compute_properties(files).compute(scheduler="threads", num_workers=args.threads)

    # Warm the page cache and the compiled kernel's cache, then time.
    pixels = _read_with_astropy(files)
    compute_properties(files[:3]).compute(scheduler="threads", num_workers=args.threads)
    print(f"read limit: {pixels / 1e6:.0f} MB of SCI/ERR/DQ pixels read with astropy")
    read = _timed("read limit (astropy)", lambda: _read_with_astropy(files), args.repeat)
    header = _timed("header check (check_darks)", lambda: check_darks(files), args.repeat)
    props = _timed(f"compute_properties ({args.threads} threads)", properties, args.repeat)

    print("best of the runs, ratio to the read limit of this run:")
    for (kind, target), ref, hdr, got in zip(TARGETS.items(), read, header, props, strict=True):
        verdict = "meets" if got / ref <= target else "misses"
        print(
            f"  {kind:4}: read limit {ref:5.2f} s, header check {hdr:5.2f} s "
            f"({hdr / ref:4.2f}x), properties {got:5.2f} s = {got / ref:4.2f}x "
            f"({verdict} the {target:g}x target)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
