"""Benchmark: FLT/FLC files to stored photometry (cte.measure_photometry).

1. One full-size two-chip image (2 x 4096 x 2051 px) with 5 000 stars, three radii:
   seconds from the file to stored photometry (header scan, catalog, alignment,
   recentring, background, aperture sums, store write), best of ``--repeat`` runs, and
   the split of one run over the stages of :func:`cte.photometry._measure.measure_image`.
2. A simulated campaign of >= 100 images (cut-outs): wall time and images per second
   with dask's threaded scheduler and with a 2-worker ``LocalCluster``.

Run by hand (prints numbers, asserts nothing)::

    python benchmarks/bench_photometry.py [--workers 2] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import tempfile
import time
from pathlib import Path

from cte.config import load_config
from cte.datasets.simulate import simulate_campaign
from cte.io.images import read_header
from cte.photometry.photometry import measure_photometry, read_catalog


def full_frame(root: Path, repeat: int) -> None:
    t0 = time.perf_counter()
    camp = simulate_campaign(
        root / "full", seed=1, shape=(2051, 4096), n_stars=5000, targets=("ngc104",),
        n_epochs=1, flashes=(12,), exptimes=(348.0,), ctecorr=("FLT",),
        include_excluded=False, include_180=False,
    )
    print(f"simulated 2 full-frame images with 5000 stars in {time.perf_counter() - t0:.1f} s")
    image = camp.images.iloc[0]
    path = camp.root / image.path
    size = os.path.getsize(path) / 2**20
    times = []
    for i in range(repeat):
        store = root / f"full-store-{i}"
        t = time.perf_counter()
        summary = measure_photometry(path, camp.catalogs_dir, store, num_workers=2)
        times.append(time.perf_counter() - t)
        assert len(summary.measured) == 1, summary
    row = summary.measured.iloc[0]
    print(f"full frame {image.image} ({size:.0f} MB, chip {image.chip}): "
          f"{int(row.n_stars)} stars measured at 3 radii, WCS residual "
          f"{row.wcs_residual_rms:.3f} px")
    print(f"  file -> stored photometry: best {min(times):.2f} s, runs "
          f"{', '.join(f'{t:.2f}' for t in times)} s (target <= 3 s)")
    _profile(path, camp)


def _profile(path: Path, camp) -> None:
    """Where the time of one measure_image call goes (cumulative seconds)."""
    from cte.photometry._measure import measure_image

    config = load_config()
    header = next(r for r in read_header(path, config=config) if r["holds_field"])
    catalog = read_catalog(camp.catalogs_dir / "ngc104.ecsv")
    prof = cProfile.Profile()
    prof.enable()
    measure_image(str(path), header=header, catalog=catalog, config=config)
    prof.disable()
    stats = pstats.Stats(prof).stats
    wanted = {"read_chip": "read FITS", "fill_masked": "fill masked pixels",
              "clipped_stats": "clipped statistics (level + annuli)",
              "align_to_catalog": "alignment", "_recentre": "recentring",
              "annulus_background": "annulus background", "aperture_sums": "aperture sums",
              "_dataset": "build Dataset", "measure_image": "measure_image total"}
    print("  one measure_image call by stage (cumulative s):")
    for (_, _, func), (_, _, _, cum, _) in sorted(stats.items(), key=lambda kv: -kv[1][3]):
        if func in wanted:
            print(f"    {wanted.pop(func):40s} {cum:6.2f}")


def campaign(root: Path, workers: int) -> None:
    t0 = time.perf_counter()
    camp = simulate_campaign(root / "campaign", seed=2, shape=(2051, 128), n_stars=400,
                             n_epochs=4, bad_files=True)
    n_files = len(camp.files)
    print(f"\nsimulated campaign: {n_files} files ({camp.shape[0]} x {camp.shape[1]} px "
          f"cut-outs, both chips) in {time.perf_counter() - t0:.1f} s")
    t = time.perf_counter()
    threaded = measure_photometry(camp.data_dir, camp.catalogs_dir, root / "store-threads",
                                  num_workers=workers)
    dt = time.perf_counter() - t
    n = len(threaded.measured)
    print(f"threaded ({workers} workers): {n} images measured, "
          f"{len(threaded.skipped)} skipped, {dt:.1f} s wall, {n / dt:.1f} images/s")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        t = time.perf_counter()
        dist = measure_photometry(camp.data_dir, camp.catalogs_dir, root / "store-cluster",
                                  client=client)
        dt = time.perf_counter() - t
    print(f"LocalCluster ({workers} processes x 1 thread): {len(dist.measured)} images, "
          f"{dt:.1f} s wall, {len(dist.measured) / dt:.1f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="write the data here and keep it (default: temp dir)")
    parser.add_argument("--skip-campaign", action="store_true")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-phot-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"cores: {os.cpu_count()}, data in {root}")
    try:
        full_frame(root, args.repeat)
        if not args.skip_campaign:
            campaign(root, args.workers)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
