"""Timings of the DQ path on a full-size cube: the sigma clip, DQ arrays, files (by hand).

Builds a small cube of ``--periods`` periods of ``--size`` x ``--size`` synthetic
properties (:func:`stiscube.datasets.random_properties`) under a temporary directory
and prints medians of ``--repeat`` runs of:

- the 5-sigma clip of one ``sci_mean`` frame in memory:
  :func:`stiscube.dq._kernels.clipped_threshold` against
  :func:`astropy.stats.sigma_clipped_stats` (the same numbers; the difference is
  printed);
- :func:`stiscube.dq.dq_array` for several rule sets, given the lazy Dataset
  (``db.dataset``) and given the :class:`~stiscube.PixelDB` (eager store reads);
- :func:`~stiscube.dq.write_dq_fits` and :func:`~stiscube.dq.write_flagged_table`.

Run: ``python benchmarks/bench_dq.py [--size 1024] [--periods 6] [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of *fn* over *repeat* runs (after one untimed run), in ms."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="frame size (1024)")
    parser.add_argument("--periods", type=int, default=6, help="periods in the cube (6)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure (7)")
    args = parser.parse_args(argv)
    if args.periods < 3:
        parser.error("--periods must be >= 3 (the persistence rules look at 3)")

    import warnings

    from astropy.stats import sigma_clipped_stats

    from stiscube import PixelDB
    from stiscube.datasets import random_properties
    from stiscube.dq import DQRules, dq_array, write_dq_fits, write_flagged_table
    from stiscube.dq._kernels import clipped_threshold

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench_dq_") as tmp:
        tmp = Path(tmp)
        shape = (args.size, args.size)
        db = PixelDB.create(tmp / "db", shape=shape)
        for i in range(args.periods):
            start = np.datetime64("2020-01-01") + np.timedelta64(30 * i, "D")
            db.ingest_properties(
                random_properties(shape, seed=i),
                i,
                start=start,
                end=start + np.timedelta64(30, "D"),
            )
        ds = db.dataset
        last = args.periods - 1

        sci = ds["sci_mean"].sel(anneal=last).values.astype(np.float64)
        sci[:3, :5] = np.nan

        def astropy_clip():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return sigma_clipped_stats(
                    sci[None], sigma=3.0, maxiters=40, stdfunc="std", axis=(1, 2)
                )

        fast = clipped_threshold(sci, 5.0, axis=(0, 1))
        _, med, std = astropy_clip()
        rel = max(abs(fast[0] / float(med[0]) - 1), abs(fast[1] / float(std[0]) - 1))
        print(f"cube: {args.periods} periods of {args.size}x{args.size}; median of {args.repeat}")
        print(
            f"5-sigma clip of one frame in memory: clipped_threshold "
            f"{median_ms(lambda: clipped_threshold(sci, 5.0, axis=(0, 1)), args.repeat):.1f} ms, "
            f"astropy sigma_clipped_stats {median_ms(astropy_clip, args.repeat):.1f} ms "
            f"(max relative difference of median/std {rel:.1e})"
        )
        cases = {
            "level 0.1 e-/s": DQRules(hot_level=0.1, hot_nsigma=None),
            "5 sigma (clip 3, 40 iters)": DQRules(hot_level=None),
            "level or 5 sigma + unstable": DQRules(hot_level=0.1, hot_nsigma=5, unstable_level=3.0),
            "level + unstable, 2 of last 3": DQRules(
                hot_level=0.1, hot_nsigma=None, unstable_level=3.0, persist_k=2, persist_m=3
            ),
            "5 sigma + unstable, 2 of last 3": DQRules(
                unstable_level=3.0, persist_k=2, persist_m=3
            ),
        }
        for name, rules in cases.items():
            lazy = median_ms(lambda r=rules: dq_array(ds, rules=r, anneal_num=last), args.repeat)
            eager = median_ms(lambda r=rules: dq_array(db, rules=r, anneal_num=last), args.repeat)
            print(f"dq_array [{name}]: db.dataset {lazy:.1f} ms, PixelDB {eager:.1f} ms")
        dq = dq_array(db, rules=DQRules(hot_level=0.1, unstable_level=3.0), anneal_num=last)
        print(f"  flagged pixels: {dq.attrs['n_flagged']}")
        fits_path, table_path = tmp / "dq.fits", tmp / "flagged.ecsv"
        t = median_ms(lambda: write_dq_fits(dq, fits_path, overwrite=True), args.repeat)
        print(f"write_dq_fits: {t:.1f} ms ({fits_path.stat().st_size} bytes)")
        t = median_ms(lambda: write_flagged_table(dq, ds, table_path, overwrite=True), args.repeat)
        print(f"write_flagged_table: {t:.1f} ms ({table_path.stat().st_size} bytes)")
    print(f"load average at the end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
