"""Benchmark: FLT/FLC files to stored photometry (cte.measure_photometry).

1. One full-size two-chip image (2 x 4096 x 2051 px) with 5 000 stars, three radii, in
   one run: photutils' ``aperture_photometry`` (exact, with errors) on the measured
   positions (the reference), the measurement core at the same positions
   (:func:`cte.photometry._measure.measure_at`: annulus background, aperture sums, flags)
   and the file to stored photometry (header scan, catalog, alignment, recentring,
   measurement, store write; synchronous scheduler), best of ``--repeat`` wall and CPU
   seconds and their ratios to the reference; then the split of one
   :func:`cte.photometry._measure.measure_image` call over its stages.
2. A simulated campaign of >= 100 images (cut-outs): wall time and images per second
   with dask's threaded scheduler and with a 2-worker ``LocalCluster``.
3. ``--kernels``: the annulus background of 5 000 stars on one 2051 x 4096 chip with the
   shipped configuration (annulus 14-20 px, 3 sigma, 5 iterations), measured in the same
   run three ways: ours (:func:`cte.photometry._measure.annulus_background`: the ring
   pixels of all stars gathered at once, clipped by :func:`stores.common.stats.clipped_stats`,
   sorted windows),
   astropy's ``sigma_clipped_stats(axis=1)`` on the same gathered pixels, and photutils'
   ``ApertureStats`` with a ``SigmaClip``; prints the CPU seconds, the ratios to ours and
   the largest differences of the results.

Run by hand (prints numbers, asserts nothing)::

    python benchmarks/bench_photometry.py [--workers 2] [--repeat 3] [--keep DIR] [--kernels]
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
from cte.datasets import FieldPhysics
from cte.datasets.simulate import simulate_campaign
from cte.io.images import read_header
from cte.photometry.batch import measure_photometry, read_catalog


def _best(func, repeat: int):
    """Best wall and best CPU (process) seconds of *repeat* calls, and the last result."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = func()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), result


def full_frame(root: Path, repeat: int) -> None:
    """File to store and the measurement core, as ratios to aperture_photometry."""
    import numpy as np
    from photutils.aperture import CircularAperture, aperture_photometry

    from cte.io.images import read_chip
    from cte.photometry._fill import fill_masked
    from cte.photometry._measure import measure_at, measure_image

    t0 = time.perf_counter()
    camp = simulate_campaign(
        root / "full", seed=1, shape=(2051, 4096), targets=("ngc104",), n_epochs=1, flashes=(12,),
        exptimes=(348.0,), ctecorr=("FLT",), include_excluded=False, include_180=False,
        physics=FieldPhysics(n_stars=5000)
    )
    print(f"simulated 2 full-frame images with 5000 stars in {time.perf_counter() - t0:.1f} s")
    image = camp.images.iloc[0]
    path = camp.root / image.path
    config = load_config()
    opts = config.photometry
    header = next(r for r in read_header(path, config=config) if r["holds_field"])
    catalog = read_catalog(camp.catalogs_dir / "ngc104.ecsv")
    ds = measure_image(str(path), header=header, catalog=catalog, config=config)
    img = read_chip(path, int(header["field_chip"]))
    sci, err = img.sci.astype(np.float64), img.err.astype(np.float64)
    mask = (img.dq & opts.dq_mask) != 0
    cleaned = fill_masked(sci, mask, radius=opts.interpolation_radius,
                          fallback=float(ds.background_level[0]))
    x = ds.x.values[0] + img.ltv[0]
    y = ds.y.values[0] + img.ltv[1]
    radii = ds.aperture.values
    positions = np.column_stack([x, y])

    def reference():
        apertures = [CircularAperture(positions, r=float(r)) for r in radii]
        return aperture_photometry(sci, apertures, error=err, method="exact")

    def core():
        return measure_at(sci, err, cleaned, img.dq, mask, x, y, radii, opts,
                          np.zeros(x.size, np.int32))

    runs = iter(range(10**6))

    def file_to_store():
        store = root / f"full-store-{next(runs)}"
        summary = measure_photometry(path, camp.catalogs_dir, store, scheduler="synchronous")
        assert len(summary.measured) == 1, summary
        return summary

    ref = _best(reference, repeat)
    got = _best(core, repeat)
    whole = _best(file_to_store, repeat)
    print(f"full frame {image.image} (chip {image.chip}): {x.size} stars at {len(radii)} radii"
          f" (best of {repeat}; wall and CPU seconds)")
    print(f"  {'photutils aperture_photometry':34s} {ref[0]:6.2f} {ref[1]:6.2f}   (reference)")
    for name, (wall, cpu, _) in (("measurement core (measure_at)", got),
                                 ("file -> store (measure_photometry)", whole)):
        print(f"  {name:34s} {wall:6.2f} {cpu:6.2f}   ratio wall {wall / ref[0]:4.2f}"
              f"  CPU {cpu / ref[1]:4.2f}")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    _profile(path, header, catalog, config)


def _profile(path: Path, header: dict, catalog, config) -> None:
    """Where the time of one measure_image call goes (cumulative CPU seconds)."""
    from cte.photometry._measure import measure_image

    prof = cProfile.Profile(time.process_time)
    prof.enable()
    measure_image(str(path), header=header, catalog=catalog, config=config)
    prof.disable()
    stats = pstats.Stats(prof).stats
    wanted = {"read_chip": "read FITS", "fill_masked": "fill masked pixels",
              "clipped_stats": "clipped statistics (level + annuli)",
              "align_to_catalog": "alignment", "_recentre": "recentring",
              "annulus_background": "annulus background", "aperture_sums": "aperture sums",
              "measure_at": "measurement core", "_dataset": "build Dataset",
              "measure_image": "measure_image total"}
    print("  one measure_image call by stage (cumulative CPU s):")
    for (_, _, func), (_, _, _, cum, _) in sorted(stats.items(), key=lambda kv: -kv[1][3]):
        if func in wanted:
            print(f"    {wanted.pop(func):40s} {cum:6.2f}")


def campaign(root: Path, workers: int) -> None:
    t0 = time.perf_counter()
    camp = simulate_campaign(
        root / "campaign", seed=2, shape=(2051, 128), n_epochs=4, bad_files=True,
        physics=FieldPhysics(n_stars=400)
    )
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


def kernels(repeat: int) -> None:
    """Ours vs astropy SigmaClip vs photutils ApertureStats for the annulus background."""
    import warnings

    import numpy as np
    from astropy.stats import SigmaClip, sigma_clipped_stats
    from photutils.aperture import ApertureStats, CircularAnnulus

    from cte.photometry import _measure

    cfg = load_config().photometry
    r_in, r_out = cfg.annulus
    rng = np.random.default_rng(5)
    ny, nx, n = 2051, 4096, 5000
    image = rng.normal(60.0, 8.0, (ny, nx))
    image[rng.random((ny, nx)) < 0.02] += 3000.0  # cosmic rays / neighbours to clip
    mask = rng.random((ny, nx)) < 0.005
    x, y = rng.uniform(0, nx - 1, n), rng.uniform(0, ny - 1, n)
    opts = {"sigma": cfg.background_sigma, "maxiters": cfg.background_maxiters}

    def ours():
        return _measure.annulus_background(image, mask, x, y, r_in=r_in, r_out=r_out, **opts)

    def astropy_clip():
        window = _measure._Window(image.shape, x, y, *_measure._ring_offsets(r_in, r_out))
        values = window.take(image, np.nan)
        values[window.take(mask, True) | (window.d2 < r_in**2) | (window.d2 >= r_out**2)] = np.nan
        _, med, std = sigma_clipped_stats(values, axis=1, **opts)
        return med, std

    def photutils_stats():
        aper = CircularAnnulus(np.column_stack([x, y]), r_in, r_out)
        stats = ApertureStats(image, aper, mask=mask, sigma_clip=SigmaClip(**opts))
        return stats.median, stats.std

    results, best = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN slices of stars at the corners
        for name, func in (("ours", ours), ("astropy sigma_clipped_stats", astropy_clip),
                           ("photutils ApertureStats", photutils_stats)):
            _, best[name], results[name] = _best(func, repeat)  # CPU seconds
    med0, std0 = results["ours"][:2]
    print(f"annulus background, {n} stars on a {ny} x {nx} chip (best of {repeat}, CPU s; "
          f"load {os.getloadavg()[0]:.1f}):")
    for name, seconds in best.items():
        med, std = results[name][:2]
        both = np.isfinite(med0) & np.isfinite(med)
        print(f"  {name:28s} {seconds:6.2f} s  ratio to ours {seconds / best['ours']:5.2f}  "
              f"max |d median| {np.max(np.abs(med[both] - med0[both])):.2e}  "
              f"max |d std| {np.max(np.abs(std[both] - std0[both])):.2e} e-/px")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="write the data here and keep it (default: temp dir)")
    parser.add_argument("--skip-campaign", action="store_true")
    parser.add_argument("--kernels", action="store_true",
                        help="only compare the annulus background with astropy/photutils")
    args = parser.parse_args()
    if args.kernels:
        kernels(args.repeat)
        return
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
