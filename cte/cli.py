"""The ``cte`` command-line program (``cte --help``).

Each subcommand is one ``_add_<name>_parser(sub)`` that declares its arguments and one
``_cmd_<name>(args)`` that runs it; :func:`build_parser` lists them.  The store is the
first positional argument ``STORE`` of every subcommand that uses one.  Flags of the
options dataclasses (:class:`cte.io.ImageSelection`, :class:`cte.LossOptions`,
:class:`cte.FitOptions`, :class:`cte.FieldPhysics`) are derived from them with
:func:`stores.common.cli.add_options`, so defaults and help are declared once; a flag of
``[analysis.loss]``/``[analysis.fit]`` given on the command line overrides the
configuration file's value.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from cte.config import FitOptions, LossOptions
from cte.exceptions import CTEError
from cte.io.images import ImageSelection
from stores import StoreError
from stores.common.cli import add_options, base_parser, options_from_args, run_cli

__all__ = ["build_parser", "main"]


# -- shared arguments ----------------------------------------------------------------------
def _add_store(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    p.add_argument("store", metavar="STORE", nargs="?" if optional else None,
                   help="photometry store directory or URL")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="user TOML merged over the default configuration")


def _add_selection(p: argparse.ArgumentParser, *, apertures: str) -> None:
    """The image-selection flags (:class:`ImageSelection`) and ``--apertures``."""
    g = p.add_argument_group("image selection")
    g.add_argument("--proposals", nargs="+", metavar="PROPOSAL", dest="proposal_words",
                   help="all (the whole campaign; images already stored are reused), "
                        "last (the newest configured one present) or proposal IDs "
                        "(default: all)")
    add_options(g, ImageSelection, exclude=("proposals",))
    g.add_argument("--apertures", nargs="+", type=float, metavar="RADIUS", help=apertures)


def _selection(args: argparse.Namespace) -> ImageSelection:
    proposals = args.proposal_words or ["all"]
    if len(proposals) == 1 and proposals[0].lower() in ("all", "last"):
        return options_from_args(args, ImageSelection, proposals=proposals[0])
    try:
        ids = tuple(int(v) for v in proposals)
    except ValueError:
        msg = f"--proposals takes 'last', 'all' or proposal IDs, got {' '.join(proposals)}"
        raise ValueError(msg) from None
    return options_from_args(args, ImageSelection, proposals=ids)


def _add_analysis(p: argparse.ArgumentParser) -> None:
    """The ``[analysis.loss]`` and ``[analysis.fit]`` options as flags, and ``--latex``."""
    add_options(p.add_argument_group("loss measurement ([analysis.loss]; default: the "
                                     "configuration's)"), LossOptions, exclude=("flux_bins",))
    add_options(p.add_argument_group("model fit ([analysis.fit]; default: the "
                                     "configuration's)"), FitOptions)
    p.add_argument("--latex", action="store_true", help="also write coefficients.tex")


def _load_config(args: argparse.Namespace):
    """The configuration of ``--config``, with the analysis flags given merged over it."""
    from cte.config import load_config

    tables = {name: {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                     if getattr(args, f.name, None) is not None}
              for name, cls in (("loss", LossOptions), ("fit", FitOptions))}
    return load_config(args.config, overrides={"analysis": tables})


# -- version -----------------------------------------------------------------------------
def _add_version_parser(sub) -> None:
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_cmd_version)


def _cmd_version(args: argparse.Namespace) -> None:
    from stores import __version__

    print(f"cte {__version__}")


def _add_show_versions_parser(sub) -> None:
    p = sub.add_parser("show-versions",
                       help="versions of cte, Python and its dependencies (bug reports)")
    p.set_defaults(func=_cmd_show_versions)


def _cmd_show_versions(args: argparse.Namespace) -> None:
    from stores.common.environment import show_versions

    show_versions()


# -- simulate ----------------------------------------------------------------------------
def _add_simulate_parser(sub) -> None:
    from cte.datasets.simulate import FieldPhysics

    p = sub.add_parser("simulate", help="write a simulated monitor campaign",
                       description="Write seeded simulated FLT/FLC images, master catalogs "
                                   "and the truth (injected CTE loss) under --out.")
    p.add_argument("--out", required=True, help="output directory (data/, catalogs/, truth/)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--shape", nargs=2, type=int, default=[2051, 128], metavar=("NY", "NX"),
                   help="rows and columns of each chip (default 2051 128; full chips: "
                        "2051 4096)")
    p.add_argument("--epochs", type=int, default=4,
                   help="epochs from the default schedule (default 4)")
    p.add_argument("--targets", nargs="+", default=["ngc104", "ngc6791"],
                   help="fields observed every epoch (default ngc104 ngc6791)")
    p.add_argument("--filters", nargs="+", default=["F502N"], help="filters (default F502N)")
    p.add_argument("--flashes", nargs="+", type=int, default=[0, 12],
                   help="post-flash levels, e-/pixel (default 0 12)")
    p.add_argument("--exptimes", nargs="+", type=float, default=[348.0, 30.0],
                   help="exposure times, s (default 348 30)")
    p.add_argument("--ctecorr", nargs="+", default=["FLT", "FLC"], choices=("FLT", "FLC"),
                   help="versions written of each exposure (default FLT FLC)")
    p.add_argument("--no-excluded", action="store_true",
                   help="leave out the images the monitor must skip")
    p.add_argument("--no-180", action="store_true", help="leave out the 180-degree set")
    p.add_argument("--bad-files", action="store_true",
                   help="add a corrupt, a truncated and a wrong-instrument file")
    p.add_argument("--pam", action="store_true", help="apply and write pixel-area maps")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous simulation in --out: remove only the files it "
                        "wrote (listed in .cte-simulation.json); a non-empty directory "
                        "without that marker is refused")
    add_options(p.add_argument_group("physics of the fields and detector"), FieldPhysics)
    p.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> None:
    from cte.datasets.simulate import FieldPhysics, simulate_campaign

    campaign = simulate_campaign(
        args.out, seed=args.seed, shape=tuple(args.shape), targets=args.targets,
        n_epochs=args.epochs, filters=args.filters, flashes=args.flashes,
        exptimes=args.exptimes, ctecorr=args.ctecorr, include_excluded=not args.no_excluded,
        include_180=not args.no_180, bad_files=args.bad_files, pam=args.pam,
        physics=options_from_args(args, FieldPhysics), overwrite=args.overwrite,
    )
    skips = int((campaign.images["expected_skip"] != "").sum())
    print(f"wrote {len(campaign.images)} images ({skips} to be skipped, "
          f"{len(campaign.bad_files)} broken) of {', '.join(campaign.targets)} to "
          f"{campaign.root}")
    print(f"  data:     {campaign.data_dir}")
    print(f"  catalogs: {campaign.catalogs_dir}")
    print(f"  truth:    {campaign.truth_dir}")


# -- photometry --------------------------------------------------------------------------
def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, nargs="+", help="FLT/FLC files or directories")
    p.add_argument("--catalogs", required=True, help="directory of <target>.ecsv catalogs")
    _add_config(p)
    p.add_argument("--pam-dir", help="directory of the pixel-area maps")
    p.add_argument("--overwrite", action="store_true",
                   help="measure images again even if already stored")


def _add_photometry_parser(sub) -> None:
    p = sub.add_parser("photometry", help="measure FLT/FLC images into a photometry store",
                       description="Align, recentre and measure aperture photometry of the "
                                   "selected images; store it per target/filter/flash.")
    _add_store(p)
    _add_inputs(p)
    _add_selection(p, apertures="aperture radii, pixel (default: the configuration's)")
    p.add_argument("--scheduler", default="threads",
                   choices=("threads", "processes", "synchronous"),
                   help="local dask scheduler (default threads)")
    p.add_argument("--workers", type=int, help="local dask workers (default: dask's)")
    p.add_argument("--address", help="address of a dask.distributed scheduler to use")
    p.set_defaults(func=_cmd_photometry)


def _cmd_photometry(args: argparse.Namespace) -> int:
    from cte.photometry.batch import measure_photometry

    client = None
    if args.address:
        from distributed import Client

        client = Client(args.address)
    from stores.common.progress import dask_progress

    selection = _selection(args)
    try:
        with dask_progress(progress=args.progress and client is None, desc="photometry"):
            summary = measure_photometry(
                args.data, args.catalogs, args.store, config=args.config,
                selection=selection, apertures=args.apertures, pam_dir=args.pam_dir,
                overwrite=args.overwrite, client=client, scheduler=args.scheduler,
                num_workers=args.workers,
            )
    finally:
        if client is not None:
            client.close()
    if not len(summary.measured) and not len(summary.reused):
        from cte.pipeline import _nothing_selected

        raise _nothing_selected(args.data, args.config, dataclasses.asdict(selection))
    print(summary)
    for row in summary.skipped.itertuples():
        # unreadable files' reasons start with their path already
        text = row.reason if row.reason.startswith(row.path) else f"{row.image}: {row.reason}"
        print(f"  skipped ({row.category}) {text}")
    return 0


# -- info --------------------------------------------------------------------------------
def _add_info_parser(sub) -> None:
    p = sub.add_parser("info", help="summarise a photometry store and/or a data directory")
    _add_store(p, optional=True)
    p.add_argument("--data", nargs="+", help="FLT/FLC files or directories")
    _add_config(p)
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text (default) or one JSON document")
    p.set_defaults(func=_cmd_info)


def _info(args: argparse.Namespace) -> dict:
    """What ``cte info`` reports, as plain JSON-ready data."""
    doc: dict = {}
    if args.data:
        from cte.config import load_config
        from cte.io.images import scan_images

        scan = scan_images(args.data, config=load_config(args.config))
        images = scan.records.drop_duplicates("image")
        usable = images[images["usable"]]
        groups = []
        if len(usable):
            table = usable.groupby(["target", "filter", "flash", "ctecorr"]).size()
            groups = [
                {"target": t, "filter": f, "flash": float(fl), "ctecorr": k, "images": int(n)}
                for (t, f, fl, k), n in table.items()
            ]
        doc["data"] = {
            "images": len(images),
            "usable": len(usable),
            "skipped": len(images) - len(usable),
            "unreadable": len(scan.unreadable),
            "groups": groups,
            "skipped_reasons": {
                str(r): int(n)
                for r, n in images[~images["usable"]]["reason"].value_counts().items()
            },
            "unreadable_files": [
                {"error": row.error, "reason": row.reason} for row in scan.unreadable.itertuples()
            ],
        }
    if args.store:
        from cte.photometry.store import PhotometryStore

        store = PhotometryStore(args.store, mode="r")
        images = store.images()
        keys = []
        for key, group in images.groupby("key"):
            keys.append({
                "key": key,
                "images": len(group),
                "ctecorr": {str(k): int(n) for k, n in
                            group["ctecorr"].value_counts().sort_index().items()},
                "max_stars": int(group["n_stars"].max()),
                "mjd": [float(group["mjd"].min()), float(group["mjd"].max())],
                "apertures": sorted({float(r) for rs in group["apertures"] for r in rs}),
            })
        doc["store"] = {"location": store.location, "n_keys": len(store.keys()),
                        "images": len(images), "keys": keys}
    return doc


def _cmd_info(args: argparse.Namespace) -> int:
    if not args.store and not args.data:
        msg = "info needs a STORE and/or --data"
        raise ValueError(msg)
    doc = _info(args)
    if args.format == "json":
        import json

        print(json.dumps(doc, indent=1))
        return 0
    if "data" in doc:
        d = doc["data"]
        print(f"{d['images']} images read, {d['usable']} usable, {d['skipped']} skipped, "
              f"{d['unreadable']} unreadable")
        for g in d["groups"]:
            print(f"  {g['target']:8s} {g['filter']:6s} flash {g['flash']:5.0f}  "
                  f"{g['ctecorr']}: {g['images']} images")
        for reason, n in d["skipped_reasons"].items():
            print(f"  skipped x{n}: {reason}")
        for row in d["unreadable_files"]:
            print(f"  unreadable ({row['error']}): {row['reason']}")
    if "store" in doc:
        st = doc["store"]
        print(f"photometry store {st['location']}: {st['n_keys']} keys, {st['images']} images")
        for k in st["keys"]:
            kinds = ", ".join(f"{n} {c}" for c, n in k["ctecorr"].items())
            radii = ", ".join(f"{r:g}" for r in k["apertures"])
            print(f"  {k['key']}: {k['images']} images ({kinds}), up to {k['max_stars']} "
                  f"stars, MJD {k['mjd'][0]:.1f}-{k['mjd'][1]:.1f}, apertures {radii} px")
    return 0


# -- run / fit / plot / report -------------------------------------------------------------
def _add_run_parser(sub) -> None:
    p = sub.add_parser(
        "run", help="the whole monitor: photometry if needed, pairs, loss, model, plots, site"
    )
    _add_store(p)
    _add_inputs(p)
    p.add_argument("--out", required=True, help="output directory")
    _add_selection(p, apertures="aperture radii, pixel (default: the configuration's)")
    _add_analysis(p)
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from cte.pipeline import run

    result = run(
        args.data, args.catalogs, args.store, args.out, config=_load_config(args),
        selection=_selection(args), apertures=args.apertures, pam_dir=args.pam_dir,
        overwrite=args.overwrite, latex=args.latex, progress=args.progress,
    )
    print(result.photometry)
    print(result)
    return 0


def _add_fit_parser(sub) -> None:
    p = sub.add_parser("fit", help="fit the correction model to a loss.nc")
    p.add_argument("--loss", required=True, help="loss.nc written by `cte run`")
    p.add_argument("--out", required=True, help="coefficient table to write (.ecsv)")
    p.add_argument("--latex", help="also write the coefficients as a LaTeX table here")
    _add_config(p)
    add_options(p.add_argument_group("model fit ([analysis.fit]; default: the "
                                     "configuration's)"), FitOptions)
    p.set_defaults(func=_cmd_fit)


def _open_loss(path: str):
    import xarray as xr

    if not Path(path).is_file():
        msg = (f"--loss {path}: no such file; give the loss.nc that `cte run --out DIR` "
               "writes in DIR")
        raise FileNotFoundError(msg)
    try:
        return xr.load_dataset(path, engine="h5netcdf")
    except (OSError, ValueError) as exc:
        msg = f"{path}: not a readable loss.nc ({exc})"
        raise ValueError(msg) from exc


def _cmd_fit(args: argparse.Namespace) -> int:
    from cte.analysis.model import fit_model

    model = fit_model(_open_loss(args.loss), fit=_load_config(args).fit)
    model.write(args.out)
    if args.latex:
        model.write(args.latex, format="latex")
    print(f"{len(model)} configurations fitted -> {args.out}")
    return 0


def _add_plot_parser(sub) -> None:
    p = sub.add_parser("plot", help="loss vs flux and vs time plots from loss.nc + coefficients")
    p.add_argument("--loss", required=True, help="loss.nc written by `cte run`")
    p.add_argument("--coefficients", help="coefficients.ecsv (model curves are drawn)")
    p.add_argument("--out", required=True, help="directory for the PNG files")
    p.add_argument("--aperture", type=float,
                   help="aperture radius, pixel (default: the smallest in loss.nc)")
    p.set_defaults(func=_cmd_plot)


def _cmd_plot(args: argparse.Namespace) -> int:
    import pandas as pd

    from cte.analysis.model import CTEModel
    from cte.report.plots import plot_loss_vs_flux, plot_loss_vs_time

    loss = _open_loss(args.loss)
    model = None if args.coefficients is None else CTEModel.read(args.coefficients)
    aperture = float(loss["aperture"].min()) if args.aperture is None else args.aperture
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = ("target", "filter", "exptime_class", "ctecorr")
    table = pd.DataFrame({k: loss[k].values.astype(str) for k in keys}).drop_duplicates()
    n = 0
    for values in table.itertuples(index=False):
        config = dict(zip(keys, values, strict=True))
        stem = "_".join(values) + f"_ap{aperture:g}"
        # the whole model: a configuration it could not fit is drawn as data with the reason
        plot_loss_vs_flux(loss, model, aperture=aperture, path=out / f"loss_vs_flux_{stem}.png",
                          **config)
        plot_loss_vs_time(loss, model, aperture=aperture, path=out / f"loss_vs_time_{stem}.png",
                          **config)
        n += 2
    print(f"wrote {n} plots to {out}")
    return 0


def _add_report_parser(sub) -> None:
    p = sub.add_parser(
        "report", help="re-analyse a photometry store (no photometry) and write index.html"
    )
    _add_store(p)
    p.add_argument("--out", required=True, help="output directory")
    _add_config(p)
    p.add_argument("--apertures", nargs="+", type=float, metavar="RADIUS",
                   help="aperture radii, pixel, to analyse (default: those every key holds)")
    _add_analysis(p)
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from cte.pipeline import analyse_store

    result = analyse_store(args.store, args.out, config=_load_config(args), latex=args.latex,
                           apertures=args.apertures, progress=args.progress)
    print(result)
    return 0


# -- the program -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cte`` with all its subcommands."""
    parser, sub = base_parser("cte", "WFC3/UVIS external CTE monitor.")
    parser.allow_abbrev = False  # a subcommand's flag is never an abbreviation of ours
    for add in (_add_version_parser, _add_show_versions_parser, _add_simulate_parser,
                _add_photometry_parser,
                _add_run_parser, _add_fit_parser, _add_plot_parser, _add_report_parser,
                _add_info_parser):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cte`` program; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).
    """
    return run_cli(build_parser(), argv, (CTEError, StoreError, OSError, ValueError),
                   hints=HINTS)


#: library advice -> command-line advice in error messages (see stores.common.cli.cli_message)
HINTS = (
    (r"pass apertures=\.\.\.", "choose the radii with --apertures"),
    (r"create one with mode='a'", "write one with `cte photometry STORE ...`"),
    (r"open it with mode='a'", "write to it with `cte photometry STORE ...`"),
    (r"pass overwrite=True", "use --overwrite"),
)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
