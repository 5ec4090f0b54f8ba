"""Benchmark of the CTE analysis: loss for >= 10 000 (pair x bin x aperture) cells + model fit.

Writes synthetic photometry (cte.datasets.make_photometry: 2 targets x 7 flash levels x 8 epochs x
short/long x FLT/FLC, 3 apertures, N stars) into a stores.DatasetStore under a
temporary directory, then times, from the stored photometry:

1. reading every Dataset (h5netcdf, eager);
2. cte.analysis.loss.measure_loss over all of them at once (pairs, bins, apertures);
3. cte.analysis.model.fit_model (joint weighted fit per configuration);

and prints the numbers (best of --repeat runs).  Run by hand:

    .venv/bin/python benchmarks/bench_analysis.py [--n-stars 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cte.analysis.loss import measure_loss
from cte.analysis.model import fit_model
from cte.datasets import make_photometry
from stores import DatasetStore

FLASHES = (0, 6, 12, 18, 33, 55, 116)
TARGETS = ("ngc104", "ngc6791")


def build_store(root: Path, n_stars: int, seed: int) -> DatasetStore:
    store = DatasetStore(root / "photometry")
    for t, target in enumerate(TARGETS):
        for f, flash in enumerate(FLASHES):
            synth = make_photometry(target=target, flash=float(flash), n_stars=n_stars,
                                    seed=seed + 100 * t + f)
            ds = synth.photometry
            # image ids unique across targets (real rootnames are)
            ds = ds.assign_coords(image=[f"{target}_{i}" for i in ds["image"].values])
            store.write((target, "F502N", f"flash{flash}"), ds)
    return store


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-stars", type=int, default=2000, help="stars per field")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="directory for the store (default: a temporary directory)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        store = build_store(Path(tmp), args.n_stars, args.seed)
        t_build = time.perf_counter() - t0
        best = {"read": np.inf, "loss": np.inf, "fit": np.inf}
        cpu = {"read": np.inf, "loss": np.inf, "fit": np.inf}
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            datasets = list(DatasetStore(store.location.url, mode="r").read_all().values())
            t1, c1 = time.perf_counter(), time.process_time()
            loss = measure_loss(datasets)
            t2, c2 = time.perf_counter(), time.process_time()
            model = fit_model(loss)
            t3, c3 = time.perf_counter(), time.process_time()
            for name, wall, proc in (("read", t1 - t0, c1 - c0), ("loss", t2 - t1, c2 - c1),
                                     ("fit", t3 - t2, c3 - c2)):
                best[name] = min(best[name], wall)
                cpu[name] = min(cpu[name], proc)
        n_cells = loss.sizes["pair"] * loss.sizes["flux_bin"] * loss.sizes["aperture"]
        n_images = sum(d.sizes["image"] for d in datasets)
        measured = int(np.isfinite(loss["loss"].values).sum())
        print(f"datasets: {len(datasets)}, images: {n_images}, stars per field: {args.n_stars}")
        print(f"cells (pair x flux bin x aperture): {n_cells} ({measured} with a loss), "
              f"star memberships used: {int(loss['n_stars'].sum())}")
        print(f"configurations fitted: {len(model)}, cells per fit: "
              f"{min(f.n_cells for f in model)}-{max(f.n_cells for f in model)}")
        print(f"building the store (not timed below): {t_build:.2f} s")
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs")
        print("                                wall s   CPU s (this process)")
        for label, key in (("read photometry from the store", "read"),
                           ("measure_loss", "loss"), ("fit_model", "fit")):
            print(f"{label:32s}{best[key]:7.3f}  {cpu[key]:7.3f}")
        print(f"{'loss + fit (target <= 1 s)':32s}{best['loss'] + best['fit']:7.3f}  "
              f"{cpu['loss'] + cpu['fit']:7.3f}")
        total = best["read"] + best["loss"] + best["fit"]
        print(f"{'read + loss + fit':32s}{total:7.3f}  "
              f"{cpu['read'] + cpu['loss'] + cpu['fit']:7.3f}")


if __name__ == "__main__":
    main()
