"""The main job on simulated data with local stores (run by ``make demo``).

Writes everything under ``--out`` (default ``./demo-output``).  Each stage uses only
public entry points, so this file is also a worked example of the library.

By default the simulated inputs are small (256x256 STIS darks, 10 per period; UVIS
chips cut to 2051x64 columns, full height so every transfer count occurs) and are
deleted once used, so the run takes a few minutes and leaves well under 150 MB;
``--full`` runs the same pipelines on full 1024x1024 STIS frames (20 darks per
period) and wider UVIS cut-outs (2051x128, 800 stars), ``--keep-inputs`` keeps the
simulated FITS files.  The end of the output says where to look.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import stiscube
from stiscube.datasets.simulate import simulate_darks
from stiscube.dq import DQRules, dq_array, write_dq_fits, write_flagged_table
from stiscube.report import plots
from stores import CubeStore
from stores.common.testing import example_coords, example_schema, example_slice

logger = logging.getLogger("demo")

#: marker file of an output folder made by this demo: only such a folder is emptied on a rerun
MARKER = ".stiscube-demo"


def demo_stores(out: Path) -> list[str]:
    """A small cube store: append periods out of order, replace one, read it back."""
    schema = example_schema(shape=(64, 64), chunks=(32, 32))
    store = CubeStore.create(out / "stores-demo.zarr", schema)
    for label in (3, 1, 2):
        store.append(example_slice(schema, label), label, coords=example_coords(label))
    store.replace(example_slice(schema, 2, seed=1), 2, coords=example_coords(2))
    ds = CubeStore(out / "stores-demo.zarr").to_dataset(lazy=False)
    store.verify()
    med = np.nanmedian(ds["signal"].values, axis=(1, 2))
    return [
        f"cube store {store.location.url}: periods {ds['period'].values.tolist()}",
        "median signal per period (e-/s): " + ", ".join(f"{m:.5f}" for m in med),
    ]


def demo_pixel_cube(
    out: Path, *, shape: tuple[int, int], frames: int, periods: int, keep_inputs: bool = False
) -> list[str]:
    """A simulated year of STIS darks -> the pixel property cube -> queries, DQ, plots."""
    sim = simulate_darks(
        out / "stis-darks", n_periods=periods, frames_per_period=frames, shape=shape, seed=2026
    )
    db = stiscube.PixelDB.create(out / "stis-pixels.db", periods=sim.periods, shape=sim.shape)
    for number in sorted(sim.files):
        logger.info("period %d: computing properties of %d darks", number, len(sim.files[number]))
        db.ingest_darks(sim.files[number], number)
    if not keep_inputs:  # the cube holds what the rest uses; the darks are the bulk
        shutil.rmtree(out / "stis-darks")
    ds = db.dataset
    last = db.anneal_numbers[-1]
    rules = DQRules(unstable_level=3.0)  # hot: sci_mean > 0.1 e-/s (the default)
    dq = dq_array(db, rules=rules, anneal_num=last)
    write_dq_fits(dq, out / f"dq_anneal{last}.fits")
    write_flagged_table(dq, ds, out / f"dq_anneal{last}_flagged.ecsv")
    # the reference files of the newest period (a superdark per anneal period, as STScI
    # delivers them; a BPIXTAB of pixels bad in 2 of the last 3 periods) and the
    # monitoring site, all with the same rule object: their hot-pixel counts agree
    from stiscube.dq.reffiles import write_reference
    from stiscube.report.site import SiteOptions, write_site

    write_reference(db, out / "stis_superdark_drk.fits", "dark", rules=rules, anneals=last)
    persistent = dataclasses.replace(rules, persist_k=2, persist_m=3, partial_window="available")
    write_reference(db, out / "stis_bad_pixels_bpx.fits", "bpixtab", rules=persistent,
                    anneals=last)
    site = write_site(db, out / "stis-site", site=SiteOptions(rules=rules))
    hot = ds.pixels.hot(0.1, k=3).values
    row, col = (int(v[0]) for v in np.nonzero(hot)) if hot.any() else (0, 0)
    hist = db.history(row, col)
    plots.plot_pixel_history(ds, row, col, path=out / f"pixel_{row}_{col}_history.png")
    plots.plot_property_map(ds, "sci_mean", anneal_num=last, path=out / f"sci_mean_{last}.png")
    plots.plot_hot_pixel_counts(ds, 0.1, path=out / "hot_pixels_per_period.png")
    lines = [
        f"pixel database {db.location.url}: {len(db.anneal_numbers)} simulated periods "
        f"({str(ds.anneal_start.values[0])[:10]} to {str(ds.anneal_end.values[-1])[:10]}), "
        f"frames {shape[0]}x{shape[1]}, {frames} darks each",
        "median dark rate per period (e-/s): "
        + ", ".join(f"{v:.4f}" for v in ds.sci_mean.median(["row", "col"]).values),
        "hot pixels (> 0.1 e-/s) per period: "
        + ", ".join(str(int(v)) for v in (ds.sci_mean > 0.1).sum(["row", "col"]).values),
        f"pixels above 0.1 e-/s in >= 3 consecutive periods: {int(hot.sum())}",
        f"history of pixel ({row}, {col}) sci_mean (e-/s): "
        + ", ".join(f"{v:.3f}" for v in hist.sci_mean.values),
        f"DQ array of period {last}: {int(dq.attrs['n_flagged'])} flagged pixels = "
        f"{int(dq.attrs['n_hot'])} hot (bit 16) + {int(dq.attrs['n_unstable'])} unstable "
        f"(bit 4) - {int(dq.attrs['n_both'])} both -> dq_anneal{last}.fits",
        f"reference files of period {last}: stis_superdark_drk.fits (superdark), "
        "stis_bad_pixels_bpx.fits (BPIXTAB); crds certify passes on both (tested)",
        f"STIS monitoring site: {site.relative_to(out)}",
        "seed-style query: " + db.query_pixel(row, col, anneal_num=last).to_string(index=False),
    ]
    return lines


def demo_cte_monitor(
    out: Path,
    *,
    shape: tuple[int, int],
    epochs: int,
    stars: int,
    exptimes: tuple[float, ...] = (348.0, 30.0),
    keep_inputs: bool = False,
) -> list[str]:
    """A simulated CTE-monitor campaign -> photometry store -> loss, model, report."""
    import cte

    campaign = cte.simulate_campaign(
        out / "uvis-campaign", seed=2026, shape=shape, n_epochs=epochs, flashes=(0, 12),
        exptimes=exptimes, physics=cte.FieldPhysics(n_stars=stars),
    )
    result = cte.run(
        campaign.data_dir, campaign.catalogs_dir, out / "uvis-photometry", out / "cte-monitor",
        latex=True,
    )
    if not keep_inputs:  # the photometry store and the report hold what is used later
        shutil.rmtree(campaign.data_dir)
    summary = result.photometry
    loss = result.loss.sel(aperture=3.0)
    lines = [
        f"CTE monitor: {len(campaign.images)} simulated images "
        f"({', '.join(campaign.targets)}; {epochs} epochs; chips cut to {shape[0]}x{shape[1]})",
        f"photometry: {summary}",
        "skipped with reasons: "
        + "; ".join(f"{r.image or r.path}: {r.reason}" for r in summary.skipped.itertuples()),
        f"loss cells with >= 20 stars (aperture 3 px): {int((loss.n_stars >= 20).sum())} "
        f"over {result.loss.sizes['pair']} pairs",
        f"model: {len(result.model)} configurations fitted -> cte-monitor/coefficients.ecsv",
        f"report: {result.outputs['report'].relative_to(out)}",
    ]
    return lines


def _disk_usage(path: Path) -> int:
    """Bytes of the files under *path* (as ``du``, without directory entries)."""
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _dirs, files in os.walk(path)
        for name in files
    )


#: --full: the same pipelines on full-size STIS frames and wider UVIS cut-outs
FULL = {"stis_shape": (1024, 1024), "stis_frames": 20, "uvis_shape": (2051, 128),
        "uvis_stars": 800, "uvis_exptimes": (348.0, 30.0)}


def where_to_look(out: Path) -> list[str]:
    """The outputs to open first: the monitoring sites and the DQ reference file."""
    look = []
    sites = [
        ("STIS pixel monitoring site", out / "stis-site" / "index.html"),
        ("CTE monitor site", out / "cte-monitor" / "index.html"),
    ]
    for label, path in sites:
        if path.exists():
            look.append(f"{label}: {path.resolve()}")
    for dq in sorted(out.glob("dq_anneal*.fits")):
        look.append(f"DQ array (FITS): {dq.resolve()}")
    if (out / "stis_superdark_drk.fits").exists():
        look.append(f"superdark reference file: {(out / 'stis_superdark_drk.fits').resolve()}")
    look.append(f"summary of this run: {(out / 'summary.txt').resolve()}")
    return look


def prepare_out(out: Path) -> None:
    """Make *out* an empty folder owned by the demo (with :data:`MARKER`).

    A missing or empty folder is used; a folder holding the marker (made by an earlier
    run) is deleted and made again.  Anything else is refused before anything is written.

    Raises
    ------
    FileExistsError
        *out* is a file, or a non-empty folder without the marker (left untouched).
    """
    if out.exists() and not out.is_dir():
        msg = f"--out {out} is a file, not a folder; choose a new folder"
        raise FileExistsError(msg)
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            msg = (f"--out {out} is not empty and was not made by this demo (no {MARKER} "
                   "marker); choose a new or empty folder")
            raise FileExistsError(msg)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by examples/demo.py; a rerun deletes this folder\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=Path("demo-output"),
        help=f"output folder (default demo-output): new or empty, or made by an earlier run "
             f"(marker {MARKER}), which is then deleted first; any other folder is refused",
    )
    parser.add_argument(
        "--full", action="store_true",
        help="full 1024x1024 STIS frames with 20 darks per period, 2051x128 UVIS cut-outs "
             "with 800 stars (the explicit size options below still win)",
    )
    parser.add_argument(
        "--stis-shape", type=int, nargs=2, metavar=("ROWS", "COLS"),
        help="STIS frame shape (default 256 256; --full: 1024 1024)",
    )
    parser.add_argument("--stis-frames", type=int, help="darks per period (10; --full: 20)")
    parser.add_argument("--stis-periods", type=int, default=12, help="anneal periods (a year)")
    parser.add_argument(
        "--uvis-shape", type=int, nargs=2, metavar=("ROWS", "COLS"),
        help="UVIS chip cut-out (default 2051 64; --full: 2051 128; full height keeps every "
             "transfer count; 2051 4096 is a full chip)",
    )
    parser.add_argument("--uvis-epochs", type=int, default=4, help="monitor epochs")
    parser.add_argument("--uvis-stars", type=int, help="stars in the NGC 104 field (800)")
    parser.add_argument(
        "--uvis-exptimes", type=float, nargs="+",
        help="exposure times in s (default 348, long only; --full: 348 30)",
    )
    parser.add_argument(
        "--keep-inputs", action="store_true",
        help="keep the simulated darks and UVIS images (deleted once used by default)",
    )
    args = parser.parse_args(argv)
    small = {"stis_shape": (256, 256), "stis_frames": 10, "uvis_shape": (2051, 64),
             "uvis_stars": 800, "uvis_exptimes": (348.0,)}
    for name, value in (FULL if args.full else small).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # configurations with too few cells are reported in the summary, not line by line
    logging.getLogger("cte.analysis.model").setLevel(logging.ERROR)
    try:
        prepare_out(args.out)
    except FileExistsError as exc:
        parser.exit(2, f"demo.py: error: {exc}\n")
    start = time.perf_counter()
    lines = ["stiscube demo", "============="]
    lines += demo_stores(args.out)
    lines.append("")
    lines += demo_pixel_cube(
        args.out,
        shape=tuple(args.stis_shape),
        frames=args.stis_frames,
        periods=args.stis_periods,
        keep_inputs=args.keep_inputs,
    )
    lines.append("")
    lines += demo_cte_monitor(
        args.out, shape=tuple(args.uvis_shape), epochs=args.uvis_epochs, stars=args.uvis_stars,
        exptimes=tuple(args.uvis_exptimes), keep_inputs=args.keep_inputs,
    )
    lines.append("")
    lines.append(
        f"done in {time.perf_counter() - start:.1f} s; "
        f"{_disk_usage(args.out) / 1e6:.0f} MB in {args.out}"
    )
    lines += ["", "Where to look:"] + [f"  {text}" for text in where_to_look(args.out)]
    (args.out / "summary.txt").write_text("\n".join(lines) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
