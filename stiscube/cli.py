"""The ``stiscube`` command-line program (``stiscube --help``).

Subcommands (``STORE``: the pixel database, a directory or fsspec URL)::

    stiscube simulate --out DIR [--periods N --frames F --shape R C --seed S --start DATE]
                      [--mission --end DATE] [--overwrite]
    stiscube ingest STORE --simulation DIR | --darks FILE... --anneal N | --csv DIR --anneal N
                    [dark selection, temperature and clipping options] [--overwrite] [--index]
    stiscube query STORE pixel ROW COL (--anneal N | --date D) [--format table|csv|json]
    stiscube query STORE region ROW0 ROW1 COL0 COL1 (--anneal N | --date D)
    stiscube query STORE anneal|darks (--anneal N | --date D)
    stiscube history STORE ROW COL [--format ...]
    stiscube dq STORE [--anneal N | --date D] [--out FILE.fits] [--table FILE.ecsv] [rules]
                [--dark-reference F --bpixtab F --bpixtab-persist K M --last N] [keywords]
    stiscube report STORE --out DIR [rules] [--map-size S --map-periods K ...]
    stiscube plot STORE history ROW COL | map PROPERTY | hot-count  --out FILE.png
    stiscube index STORE [--rebuild]
    stiscube recompute STORE [--anneal N ...] [--scheduler ADDRESS | --workers N] [options]
    stiscube info STORE [--format text|json]
    stiscube repair|upgrade|unlock STORE [--yes];  stiscube prune STORE --keep-last N [--yes]
    stiscube show-versions

The option flags of the library's options dataclasses (:class:`~stiscube.io.darks.DarkSelection`,
:class:`~stiscube.properties.ClipOptions`, :class:`~stiscube.dq.DQRules`,
:class:`~stiscube.report.site.SiteOptions`, :class:`~stiscube.dq.reffiles.ReferenceKeywords`)
are made from the dataclasses (:func:`stores.common.cli.add_options`): one ``--field-name`` per
field, its help and default from the dataclass, so a flag not given keeps the library's
default.

Every output file of every command is replaced if it exists, atomically (written to a
temporary sibling, then renamed over it), as ``cte`` does: a rerun of the monthly
commands exits 0 and leaves a product whose inputs have not changed untouched (saying
so), and a failed write leaves the previous file.
(``simulate --overwrite`` is different: it removes a previous simulation's inputs.)

Bad input ends with a one-line message and exit status 1 (a traceback with
``--verbose``); messages name the command-line flags that fix them.  Long work shows a
progress bar on a terminal, a few log lines otherwise, nothing with ``--quiet``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from stiscube.exceptions import StiscubeError
from stores import StoreError
from stores.common.cli import add_options, base_parser, options_from_args, run_cli

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)


def _emit(table: pd.DataFrame, fmt: str) -> None:
    """Write a DataFrame to stdout as an aligned table, CSV or JSON records."""
    if fmt == "csv":
        table.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        text = table.to_json(orient="records", date_format="iso", date_unit="us", indent=1)
        sys.stdout.write(text + "\n")
    else:
        sys.stdout.write(table.to_string(index=False) + "\n")


def _period_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument("--anneal", type=int, help="anneal period number")
    group.add_argument("--date", help="a date in the period ('YYYY-MM-DD[ HH:MM:SS]' or MJD)")


def _pixel_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("row", type=int, metavar="ROW", help="pixel row (0-based)")
    p.add_argument("col", type=int, metavar="COL", help="pixel column (0-based)")
    return p


def _format_arg(p: argparse.ArgumentParser, choices: Sequence[str]) -> None:
    p.add_argument("--format", choices=choices, default=choices[0],
                   help=f"output format (default: {choices[0]})")


def _store_command(sub, name: str, help: str, func=None) -> argparse.ArgumentParser:
    """A ``stiscube NAME STORE ...`` command run by *func*."""
    p = sub.add_parser(name, help=help)
    p.add_argument("store", metavar="STORE",
                   help="the pixel database (a directory or fsspec URL)")
    if func is not None:
        p.set_defaults(func=func)
    return p


def _kinds(sub, name: str, help: str) -> Any:
    """The KIND subparsers of a ``stiscube NAME STORE KIND ...`` command."""
    p = _store_command(sub, name, help)
    return p.add_subparsers(dest="kind", metavar="KIND", required=True)


def _date_arg(text: str | None):
    if text is None:
        return None
    try:
        return float(text)  # an MJD
    except ValueError:
        return text


def _open(path: str, mode: str = "r"):
    from stiscube.cube.pixeldb import PixelDB

    return PixelDB(path, mode=mode)


# -- simulate -----------------------------------------------------------------------------
def _add_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="write seeded synthetic STIS CCD darks with truth")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--periods", type=int, help="anneal periods (default 3)")
    p.add_argument("--frames", type=int, help="darks per period (default 20)")
    p.add_argument("--shape", type=int, nargs=2, metavar=("ROWS", "COLS"),
                   help="frame shape (default 1024 1024)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--start", help="start of the first period (default 2020-01-01)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous simulation")
    p.add_argument(
        "--mission",
        action="store_true",
        help="the STIS mission 1997-2026 on the published record: the periods overlapping "
        "--start/--end (default all) with 40-60 darks each; --periods/--frames unused",
    )
    p.add_argument("--end", help="with --mission: end of the window of periods written")
    p.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> None:
    from stiscube.datasets import simulate_darks, simulate_mission
    from stiscube.datasets.simulate import SimulatedDarks

    result: SimulatedDarks
    given = {"shape": args.shape and tuple(args.shape), "seed": args.seed, "start": args.start}
    given = {k: v for k, v in given.items() if v is not None}
    if args.mission:
        result = simulate_mission(args.out, end=args.end, overwrite=args.overwrite, **given)
    else:
        if args.end is not None:
            raise ValueError("--end needs --mission (without it, use --periods)")
        counts = {"n_periods": args.periods, "frames_per_period": args.frames}
        given.update({k: v for k, v in counts.items() if v is not None})
        result = simulate_darks(args.out, overwrite=args.overwrite, **given)
    n = sum(len(v) for v in result.files.values())
    sys.stdout.write(
        f"wrote {n} darks in {len(result.files)} simulated periods "
        f"{sorted(result.files)} to {result.out}\n"
    )


# -- ingest -------------------------------------------------------------------------------
def _add_ingest(sub) -> None:
    p = _store_command(
        sub, "ingest",
        "add periods to a database (created if absent) from darks, a seed CSV or a simulation",
        _cmd_ingest,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--simulation", type=Path, help="every period of a `stiscube simulate` run")
    src.add_argument(
        "--darks",
        nargs="+",
        help="dark files (_flt, _crj, _sfl; paths or fsspec URLs) of one period",
    )
    src.add_argument("--csv", type=Path, help="directory holding the seed's anneal_{N}.csv")
    p.add_argument("--anneal", type=int, help="period number (with --darks or --csv)")
    p.add_argument("--start", help="period start (default: period table, or the frames)")
    p.add_argument("--end", help="period end, exclusive")
    p.add_argument(
        "--periods",
        type=Path,
        help="anneal-period table (CSV/ECSV): a new db's table; with --anneal N, the table "
        "must hold period N and gives its dates",
    )
    p.add_argument("--shape", type=int, nargs=2, metavar=("ROWS", "COLS"),
                   help="frame shape of a new database (default: the darks', else 1024 1024)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace periods already present (with --simulation: those whose darks changed)",
    )
    p.add_argument(
        "--index",
        action="store_true",
        help="then bring the history index up to date (incremental; built if absent)",
    )
    _dark_args(p)


def _dark_args(p: argparse.ArgumentParser) -> None:
    """The options of the darks' selection, temperature scaling and clipping."""
    from stiscube.io.darks import DarkSelection
    from stiscube.properties import ClipOptions

    sel = p.add_argument_group("selection of the darks (stiscube.io.darks.DarkSelection)")
    add_options(sel, DarkSelection, exclude=("exptime", "exposure_classes"))
    sel.add_argument(
        "--exptime",
        help="use only this exposure class ('long' = 1000-1200 s) or time in seconds",
    )
    sel.add_argument(
        "--no-temperature-correction",
        action="store_true",
        help="do not scale Side-2 darks to 18 C with 1/(1+0.07*(OCCDHTAV-18))",
    )
    add_options(p.add_argument_group("cosmic-ray clipping (stiscube.properties.ClipOptions)"),
                ClipOptions)


def _dark_options(args: argparse.Namespace) -> dict:
    """``selection``, ``temperature`` and ``clip`` of the dark options (validated)."""
    from stiscube.io.darks import DarkSelection, TemperatureCorrection
    from stiscube.properties import ClipOptions

    exptime = args.exptime
    if exptime is not None:
        try:
            exptime = float(exptime)
        except ValueError:
            exptime = exptime.strip()
    return {
        "selection": options_from_args(args, DarkSelection, exptime=exptime),
        "temperature": TemperatureCorrection(enabled=not args.no_temperature_correction),
        "clip": options_from_args(args, ClipOptions),
    }


def _open_or_create(args: argparse.Namespace, *, periods=None, shape=None):
    """The database of *args.store*, created if absent; returns (db, created)."""
    from stiscube.cube.pixeldb import PixelDB
    from stiscube.io.anneals import AnnealTable
    from stores.storage.fs import Location

    loc = Location.parse(args.store)
    if loc.exists("cube"):
        return PixelDB(args.store, mode="r+"), None
    if args.periods is not None:
        periods = AnnealTable.read(args.periods)
    shape = tuple(args.shape) if args.shape else shape
    if shape is None:
        shape = (1024, 1024)
    existed = loc.exists()
    logger.info("creating a new pixel database at %s (shape %s)", args.store, shape)
    db = PixelDB.create(args.store, periods=periods, shape=shape)
    return db, "inside" if existed else "whole"


def _remove_new_db(args: argparse.Namespace, created: str) -> None:
    """Remove the database this command created before it failed (nothing left behind):
    the whole directory, or only the cube and period table made inside an existing one."""
    from stores.storage.fs import Location

    loc = Location.parse(args.store)
    logger.info("removing the database created in %s by this command before it failed", loc.url)
    if created == "whole":
        loc.fs.rm(loc.root, recursive=True)
        return
    for name in ("cube", "periods.ecsv"):  # PixelDB.create refuses an existing periods.ecsv
        if loc.exists(name):
            loc.fs.rm(loc.join(name), recursive=True)


def _cmd_ingest(args: argparse.Namespace) -> None:
    from stiscube.cube.pixeldb import _check_anneal_num

    if args.simulation is None:
        if args.anneal is None:
            msg = "--anneal is required with --darks or --csv"
            raise ValueError(msg)
        _check_anneal_num(args.anneal)  # before anything is created
    args.dark_options = _dark_options(args)  # validated before anything is created
    args.period_row = _period_row(args)
    shape = None
    if args.darks is not None:
        from stiscube.io.darks import check_darks, select_darks

        frames = check_darks(args.darks)  # validates every header; a new db's shape
        select_darks(frames, args.dark_options["selection"])  # homogeneous, enough frames
        shape = frames[0].shape
    sim = None
    if args.simulation is not None:
        from stiscube.datasets import load_simulation

        sim = load_simulation(args.simulation)
        db, created = _open_or_create(args, periods=sim.periods, shape=sim.shape)
    else:
        db, created = _open_or_create(args, shape=shape)
    try:
        _ingest_into(db, args, sim)
    except BaseException as exc:
        if created is not None:
            _remove_new_db(args, created)
            if isinstance(exc, KeyboardInterrupt):
                exc.__notes__ = [f"nothing was written: the database {args.store} this run "
                                 "created was removed"]
        raise
    if args.index:
        _update_index(db, args.store, rebuild=False)


def _period_row(args: argparse.Namespace):
    """The --periods table's row of --anneal N; refuses an N the table does not hold."""
    if args.periods is None or args.anneal is None:
        return None
    from stiscube.exceptions import AnnealPeriodError
    from stiscube.io.anneals import AnnealTable

    table = AnnealTable.read(args.periods)
    if args.anneal not in table:
        numbers = [period.number for period in table]
        held = f"{numbers[0]}..{numbers[-1]}" if numbers else "none"
        msg = (
            f"{args.periods}: the anneal-period table holds no period {args.anneal} "
            f"(periods {held}); give a period of the table, or --start/--end without --periods"
        )
        raise AnnealPeriodError(msg)
    return table[args.anneal]


@contextlib.contextmanager
def _unwritten_on_interrupt(number: int, done: list[int]):
    """On Ctrl-C, note on the exception that period *number* was not written (and which
    periods were); :func:`stores.common.cli.run_cli` prints the note as one line."""
    try:
        yield
    except KeyboardInterrupt as exc:
        kept = f" (periods {done} were ingested)" if done else ""
        exc.add_note(f"nothing was written for period {number}{kept}")
        raise


def _ingest_into(db, args: argparse.Namespace, sim) -> None:
    from stiscube.exceptions import PeriodExistsError
    from stores.common.progress import dask_progress, steps

    if sim is not None:
        numbers = sorted(sim.files)
        done: list[int] = []
        skipped: list[int] = []
        for number in steps(numbers, progress=args.progress, desc="ingest periods"):
            with _unwritten_on_interrupt(number, done):
                files = sim.files[number]
                if number in db.store:
                    if db.same_inputs(number, files):
                        logger.warning("period %d is already stored from the same %d darks; "
                                       "skipped", number, len(files))
                        skipped.append(number)
                        continue
                    if not args.overwrite:
                        msg = (
                            f"anneal period {number} is already in {args.store} but was computed "
                            "from other darks (or stored without their checksums); use "
                            "--overwrite to recompute it"
                        )
                        raise PeriodExistsError(msg)
                with dask_progress(progress=args.progress, desc=f"period {number}"):
                    db.ingest_darks(files, number, overwrite=args.overwrite, **args.dark_options)
                done.append(number)
        kept = f" ({skipped} already stored from the same darks)" if skipped else ""
        sys.stdout.write(f"ingested periods {done} into {args.store}{kept}\n")
        return
    start, end = args.start, args.end
    if start is None and end is None and args.period_row is not None:
        start, end = args.period_row.start, args.period_row.end  # the --periods table's dates
    if args.darks is not None:
        if not args.overwrite and db.same_inputs(args.anneal, args.darks):
            # the monthly rerun: nothing to do, and said so (exit 0)
            sys.stdout.write(
                f"period {args.anneal} is already in {args.store} from the same "
                f"{len(set(args.darks))} darks (sizes and SHA-256): nothing to do\n"
            )
            return
        with (_unwritten_on_interrupt(args.anneal, []),
              dask_progress(progress=args.progress, desc=f"period {args.anneal}")):
            db.ingest_darks(
                args.darks,
                args.anneal,
                start=start,
                end=end,
                overwrite=args.overwrite,
                **args.dark_options,
            )
    else:
        db.insert_anneal(
            args.anneal, csv_loc=args.csv, start=start, end=end, overwrite=args.overwrite
        )
    sys.stdout.write(f"ingested period {args.anneal} into {args.store}\n")


# -- recompute ---------------------------------------------------------------------------
def _add_recompute(sub) -> None:
    p = _store_command(sub, "recompute", "recompute stored periods from the darks they were "
                       "computed from, on a dask.distributed cluster", _cmd_recompute)
    p.add_argument("--anneal", type=int, nargs="+", help="these periods (default all)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running dask scheduler "
                       "(tcp://host:8786); default a LocalCluster")
    where.add_argument("--workers", type=int,
                       help="LocalCluster worker processes, one thread each (default 2)")
    _dark_args(p)


def _cmd_recompute(args: argparse.Namespace) -> None:
    from stiscube.cube.recompute import recompute

    workers = {} if args.workers is None else {"n_workers": args.workers}
    done = recompute(_open(args.store, mode="r+"), anneals=args.anneal, scheduler=args.scheduler,
                     progress=args.progress, **workers, **_dark_options(args))
    sys.stdout.write(f"recomputed periods {done} in {args.store}\n")


# -- query / history ------------------------------------------------------------------------
def _add_query(sub) -> None:
    kinds = _kinds(sub, "query", "the seed's queries: pixel, region, anneal, darks")
    pixel = _pixel_args(kinds.add_parser("pixel", help="one pixel in one period"))
    region = kinds.add_parser("region", help="an inclusive row and column range in one period")
    # four positionals (argparse cannot show a tuple metavar of an nargs=2 positional)
    region.add_argument("row0", type=int, metavar="ROW0", help="first row")
    region.add_argument("row1", type=int, metavar="ROW1", help="last row (inclusive)")
    region.add_argument("col0", type=int, metavar="COL0", help="first column")
    region.add_argument("col1", type=int, metavar="COL1", help="last column (inclusive)")
    anneal = kinds.add_parser("anneal", help="a period's dates and number of darks")
    darks = kinds.add_parser("darks", help="a period's darks")
    for q in (pixel, region, anneal, darks):
        _period_args(q)
        _format_arg(q, ("table", "csv", "json"))
        q.set_defaults(func=_cmd_query)


def _cmd_query(args: argparse.Namespace) -> None:
    db = _open(args.store)
    when = {"anneal_num": args.anneal, "date": _date_arg(args.date)}
    if args.kind == "pixel":
        table = db.query_pixel(args.row, args.col, **when)
    elif args.kind == "region":
        table = db.query_pixel_region([args.row0, args.row1], [args.col0, args.col1], **when)
    elif args.kind == "anneal":
        table = db.query_anneal(**when)
    else:
        table = db.query_anneal_darks(**when)
    _emit(table, args.format)


def _add_history(sub) -> None:
    p = _store_command(sub, "history", "one pixel's properties across all periods", _cmd_history)
    _pixel_args(p)
    _format_arg(p, ("table", "csv", "json"))


def _cmd_history(args: argparse.Namespace) -> None:
    db = _open(args.store)
    hist = db.history(args.row, args.col)
    table = hist.drop_vars(["row", "col"]).to_dataframe().reset_index()
    _emit(table, args.format)


# -- dq ---------------------------------------------------------------------------------------
def _number_or_word(*words: str):
    """An argparse type: a float, or one of *words*."""
    def parse(text: str):
        return text.lower() if text.lower() in words else float(text)

    return parse


def _rule_args(p: argparse.ArgumentParser) -> None:
    """The options of the one DQ rule object (stiscube.dq.DQRules), shared by every
    command that decides hot pixels, with the library's defaults, so that counts agree."""
    from stiscube.dq.rules import DQRules

    g = p.add_argument_group("hot-pixel rules (stiscube.dq.DQRules; the same in `dq` and `report`)")
    g.add_argument("--hot-level", type=_number_or_word("none"),
                   help="hot if sci_mean > this (electron / s; default 0.1, as the STIS "
                   "superdarks' DQ 16; 'none': no absolute level)")
    g.add_argument("--hot-nsigma", type=_number_or_word("auto", "none"),
                   help="hot if sci_mean > clipped median + N clipped std ('auto', the "
                   "default: 5 with --hot-level none, else no relative rule)")
    add_options(g, DQRules, exclude=("hot_level", "hot_nsigma"))


def _rules(args: argparse.Namespace):
    """The DQRules of the rule options (validated)."""
    from stiscube.dq.rules import DQRules

    given = {k: getattr(args, k) for k in ("hot_level", "hot_nsigma")}
    words = {k: None if v == "none" else v for k, v in given.items() if v is not None}
    return options_from_args(argparse.Namespace(**{**vars(args), **dict.fromkeys(words)}),
                             DQRules, **words)


def _add_dq(sub) -> None:
    from stiscube.dq.reffiles import ReferenceKeywords

    p = _store_command(sub, "dq", "write a DQ reference array (FITS), flagged-pixel table and "
                       "reference files", _cmd_dq)
    _period_args(p, required=False)  # default: the newest period held
    p.add_argument("--out", type=Path, help="the period's DQ array as FITS (int16)")
    p.add_argument("--table", type=Path, help="also write the flagged pixels as ECSV here")
    _rule_args(p)
    ref = p.add_argument_group(
        "reference files (CRDS selection keywords; stiscube.dq.reffiles)",
        "CCDAMP/CCDGAIN are ANY/-1 (as the STScI superdarks) unless restricted",
    )
    ref.add_argument("--dark-reference", type=Path, help="write the superdark (SCI/ERR/DQ) here")
    ref.add_argument(
        "--bpixtab",
        type=Path,
        help="write the BPIXTAB of persistent bad pixels here (with --bpixtab-persist K M)",
    )
    ref.add_argument(
        "--bpixtab-persist",
        type=int,
        nargs=2,
        metavar=("K", "M"),
        help="the BPIXTAB lists pixels the rules flag in K of the last M periods (the same "
        "rules with this persistence, on purpose: static bad pixels, while the DQ array and "
        "superdark flag the period's own)",
    )
    ref.add_argument(
        "--last",
        type=int,
        default=1,
        metavar="N",
        help="the superdark averages the last N held periods up to the chosen one (default 1, "
        "one per anneal period); its DQ and USEAFTER are the chosen period's",
    )
    ref.add_argument(
        "--useafter", help="USEAFTER date (default: the chosen period's first dark exposure)"
    )
    add_options(ref, ReferenceKeywords, exclude=("useafter",))


def _cmd_dq(args: argparse.Namespace) -> None:
    from stiscube.dq import dq_array

    rules = _rules(args)
    if args.out is None and args.dark_reference is None and args.bpixtab is None:
        msg = "nothing to write: give --out, --dark-reference and/or --bpixtab"
        raise ValueError(msg)
    if args.last < 1:
        msg = f"--last must be >= 1, got {args.last}"
        raise ValueError(msg)
    if (args.bpixtab is None) != (args.bpixtab_persist is None):
        msg = "--bpixtab and --bpixtab-persist K M go together (bad in K of the last M periods)"
        raise ValueError(msg)
    bpixtab_rules = None
    if args.bpixtab is not None:
        import dataclasses

        k, m = args.bpixtab_persist
        bpixtab_rules = dataclasses.replace(  # validated: the same rules, persistent
            rules, persist_k=k, persist_m=m, partial_window="available"
        )
    keywords = None
    if args.dark_reference is not None or args.bpixtab is not None:
        from stiscube.dq.reffiles import ReferenceKeywords

        keywords = options_from_args(args, ReferenceKeywords, useafter=args.useafter)
    db = _open(args.store)
    anneal = args.anneal
    if anneal is None and args.date is None:
        if not db.anneal_numbers:
            msg = f"{args.store} holds no anneal periods"
            raise ValueError(msg)
        anneal = db.anneal_numbers[-1]  # the newest: the same command every month
    dq = dq_array(db, rules=rules, anneal_num=anneal, date=_date_arg(args.date))  # fast reads
    finals = [p for p in (args.out, args.table, args.dark_reference, args.bpixtab) if p]
    staged = {p: p.parent / f".{p.stem}.staged{p.suffix}" for p in finals}
    try:  # every product is written to a staged sibling; all renamed once all are written
        outputs = _write_dq_products(args, db, dq, rules, bpixtab_rules, keywords, staged)
        kept = [final for final, path in staged.items() if _same_content(path, final)]
        for final, path in staged.items():
            if final not in kept:
                path.replace(final)
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)
    both = dq.attrs.get("n_both", 0)
    sys.stdout.write(
        f"period {dq.attrs['anneal']}: {dq.attrs['n_flagged']} flagged pixels = "
        f"{dq.attrs['n_hot']} hot + {dq.attrs['n_unstable']} unstable - {both} both "
        f"-> {', '.join(outputs)}\n"
    )
    if kept:
        sys.stdout.write(f"unchanged, left untouched (the same content but its date): "
                         f"{', '.join(map(str, kept))}\n")


def _same_content(new: Path, old: Path) -> bool:
    """Whether *old* holds what *new* holds but for its creation dates (``DATE``,
    ``DQDATE``; the ECSV's ``created``, ``dq_date``): a rerun on the same inputs leaves
    it untouched."""
    if not old.is_file():
        return False
    if new.suffix == ".fits":
        from astropy.io import fits

        return fits.FITSDiff(str(new), str(old), ignore_keywords=["DATE", "DQDATE"]).identical
    created = re.compile(r"^# - \{(created|dq_date): .*\}$", flags=re.M)
    return created.sub("", new.read_text()) == created.sub("", old.read_text())


def _write_dq_products(args, db, dq, rules, bpixtab_rules, keywords, staged) -> list[str]:
    """Write the products of ``stiscube dq`` to their *staged* paths; their descriptions."""
    from stiscube.dq import write_dq_fits, write_flagged_table

    outputs = []
    if args.out is not None:
        write_dq_fits(dq, staged[args.out], overwrite=True)
        outputs.append(str(args.out))
    if args.table is not None:
        write_flagged_table(dq, db.dataset, staged[args.table], overwrite=True)
    if keywords is not None:
        from astropy.io import fits

        from stiscube.dq.reffiles import write_reference

        chosen = int(dq.attrs["anneal"])
        held = [n for n in db.anneal_numbers if n <= chosen]
        for path, kind, anneals, kind_rules in (
            (args.dark_reference, "dark", held[-args.last :], rules),
            (args.bpixtab, "bpixtab", [chosen], bpixtab_rules),
        ):
            if path is not None:
                write_reference(db, staged[path], kind, rules=kind_rules, anneals=anneals,
                                keywords=keywords, overwrite=True)
                hdr = fits.getheader(staged[path])  # the counts as the file states them
                no_data = f", {hdr['NNODATA']} without data" if hdr.get("NNODATA") else ""
                outputs.append(
                    f"{path} (periods {anneals[0]}-{anneals[-1]}: {hdr['NFLAGGED']} flagged = "
                    f"{hdr['NHOT']} hot + {hdr['NUNSTAB']} unstable - {hdr['NBOTH']} both"
                    f"{no_data})"
                )
    return outputs


# -- report -----------------------------------------------------------------------------------
def _add_report(sub) -> None:
    from stiscube.report.site import SiteOptions

    p = _store_command(sub, "report", "write the monitoring site (DIR/index.html, "
                       "self-contained, offline)", _cmd_report)
    p.add_argument("--out", type=Path, required=True, help="output directory")
    _rule_args(p)
    add_options(p.add_argument_group("the page (stiscube.report.site.SiteOptions)"),
                SiteOptions, exclude=("rules",))


def _cmd_report(args: argparse.Namespace) -> None:
    from stiscube.report.site import SiteOptions, write_site

    site = options_from_args(args, SiteOptions, rules=_rules(args))
    index = args.out / "index.html"
    before = index.stat().st_mtime_ns if index.is_file() else None
    path = write_site(_open(args.store), args.out, site=site)
    if path.stat().st_mtime_ns == before:
        sys.stdout.write(f"{path} unchanged, left untouched (the same inputs)\n")
    else:
        sys.stdout.write(f"wrote {path}\n")


# -- plot -------------------------------------------------------------------------------------
def _add_plot(sub) -> None:
    kinds = _kinds(sub, "plot", "plots: a pixel's history, a property map, hot-pixel counts")
    hist = _pixel_args(kinds.add_parser("history", help="one pixel's properties over time"))
    pmap = kinds.add_parser("map", help="a property map of one period")
    from stiscube.dq.rules import DEFAULT_HOT_LEVEL
    from stiscube.schema import PROPERTIES

    pmap.add_argument("property", choices=PROPERTIES, metavar="PROPERTY",
                      help=f"one of {', '.join(PROPERTIES)}")
    _period_args(pmap)
    hot = kinds.add_parser("hot-count", help="hot pixels per period over time")
    hot.add_argument("--level", type=float, default=DEFAULT_HOT_LEVEL,
                     help=f"hot level in electron / s (default: {DEFAULT_HOT_LEVEL})")
    for q in (hist, pmap, hot):
        q.add_argument("--out", type=Path, required=True, help="image file (.png, .pdf, ...)")
        q.set_defaults(func=_cmd_plot)


def _cmd_plot(args: argparse.Namespace) -> None:
    from stiscube.report import plots

    ds = _open(args.store).dataset
    if args.kind == "history":
        plots.plot_pixel_history(ds, args.row, args.col, path=args.out)
    elif args.kind == "map":
        plots.plot_property_map(
            ds, args.property, anneal_num=args.anneal, date=_date_arg(args.date), path=args.out
        )
    else:
        plots.plot_hot_pixel_counts(ds, args.level, path=args.out)
    sys.stdout.write(f"wrote {args.out}\n")


# -- index ------------------------------------------------------------------------------------
def _add_index(sub) -> None:
    p = _store_command(sub, "index", "update (or build) the optional pixel-major copy that "
                       "makes histories fast", _cmd_index)
    p.add_argument("--rebuild", action="store_true", help="rebuild it from scratch")


def _update_index(db, path: str, *, rebuild: bool) -> None:
    if not rebuild and db.history_index_current:  # nothing to write: no lock taken either
        sys.stdout.write(f"history index of {path} already current\n")
        return
    done = db.update_history_index(rebuild=rebuild)
    if done["rebuilt"]:
        text = f"built for {len(db.anneal_numbers)} periods"
    elif done["written"]:
        text = f"updated: periods {done['written']} written"
    else:
        text = "already current"
    sys.stdout.write(f"history index of {path} {text}\n")


def _cmd_index(args: argparse.Namespace) -> None:
    _update_index(_open(args.store, mode="r+"), args.store, rebuild=args.rebuild)


# -- repair / prune ---------------------------------------------------------------------------
def _add_maintenance(sub) -> None:
    p = _store_command(sub, "repair", "report (and with --yes repair) damage that makes the "
                    "database refuse writes", _cmd_repair)
    p.add_argument("--yes", action="store_true", help="carry the repair out (default: only report)")
    p = _store_command(sub, "upgrade", "report (and with --yes carry out) the conversion of a "
                    "database written in an older store format", _cmd_upgrade)
    p.add_argument("--yes", action="store_true", help="convert it (default: only report)")
    p = _store_command(sub, "unlock", "report who holds the writer lock (and with --yes remove "
                    "it if its holder died: not renewed for a whole lease)", _cmd_unlock)
    p.add_argument("--yes", action="store_true", help="remove a stale lock (default: report)")
    p = _store_command(sub, "prune", "remove old versions (never done implicitly); reports what it "
                    "removes", _cmd_prune)
    p.add_argument(
        "--keep-last", type=int, required=True, metavar="N", help="newest versions to keep"
    )
    p.add_argument("--yes", action="store_true", help="remove them (default: only report)")


def _cube_store(path: str):
    """The database's cube store opened for writing, even when damage blocks writes."""
    from stiscube.cube.backend import cube_location
    from stores import CubeStore
    from stores.storage.fs import Location

    return CubeStore(cube_location(Location.parse(path)), mode="r+")


def _cmd_repair(args: argparse.Namespace, action: str = "repair") -> None:
    report = getattr(_cube_store(args.store), action)(dry_run=not args.yes)
    sys.stdout.write(f"{report}\n")
    if not args.yes and report.actions:
        sys.stdout.write("run again with --yes to carry this out\n")


def _cmd_upgrade(args: argparse.Namespace) -> None:
    _cmd_repair(args, "upgrade")


def _cmd_unlock(args: argparse.Namespace) -> None:
    store = _cube_store(args.store)
    holder = store.lock_holder()
    if holder is None:
        sys.stdout.write(f"{args.store} is not locked\n")
        return
    sys.stdout.write(f"locked by {holder.describe()}: {'stale' if holder.stale else 'live'}\n")
    if args.yes:
        store.break_lock()  # refuses a live lock
        sys.stdout.write("lock removed\n")
    elif holder.stale:
        sys.stdout.write("run again with --yes to remove it\n")


def _cmd_prune(args: argparse.Namespace) -> None:
    report = _cube_store(args.store).prune(keep_last=args.keep_last, dry_run=not args.yes)
    sys.stdout.write(f"{report}\n")
    if not args.yes:
        sys.stdout.write("run again with --yes to carry this out\n")


# -- info -------------------------------------------------------------------------------------
def _add_info(sub) -> None:
    p = _store_command(sub, "info", "periods held, units, size on disk, versions", _cmd_info)
    _format_arg(p, ("text", "json"))


def _cmd_info(args: argparse.Namespace) -> None:
    from stiscube.schema import PROPERTIES, UNIT_SYSTEMS

    info = _open(args.store).info()
    dates = {}  # text: to the second (2020-01-29T18:16:20)
    for key in ("first_start", "last_end"):  # json: ISO 8601 without trailing nanoseconds
        if info.get(key) is not None:
            dates[key] = pd.Timestamp(info[key]).floor("s").isoformat()
            info[key] = pd.Timestamp(info[key]).isoformat()
    if args.format == "json":
        sys.stdout.write(json.dumps(info, indent=1, default=str) + "\n")
        return
    systems = sorted(set(info["unit_systems"].values()))
    periods = info["periods"]
    lines = [
        f"pixel database {info['path']}",
        f"  frame shape      {info['shape'][0]} x {info['shape'][1]}",
        f"  periods held     {len(periods)}"
        + (f" ({periods[0]} .. {periods[-1]})" if periods else ""),
        f"  dates            {dates.get('first_start', '-')} to {dates.get('last_end', '-')}",
        f"  unit systems     {', '.join(systems) or '-'}",
    ]
    for system in systems:
        units = ", ".join(f"{p} [{UNIT_SYSTEMS[system][p]}]" for p in PROPERTIES)
        lines.append(f"    {system}: {units}")
    lines.append(f"  size on disk     {info['bytes_on_disk'] / 1e6:.1f} MB "
                 f"({info['bytes_apparent'] / 1e6:.1f} MB apparent: sparse files in full)")
    lines.append(f"  period table     {info['period_table'] or 'none'}")
    index = "current" if info["history_index"] else "none or stale (`stiscube index STORE`)"
    lines.append(f"  history index    {index}")
    versions = info.get("versions") or []
    if versions:
        lines.append(f"  version          {info['version']} (of {len(versions)} kept)")
        lines.append("  versions         number  committed (UTC)       change")
        for v in versions:
            what = v["action"] or "?"
            if v.get("label") is not None:
                what += f" of period {v['label']}"
            lines.append(f"  {v['version']:>23}  {v['time'] or '-':<20}  {what}")
    sys.stdout.write("\n".join(lines) + "\n")


def _cmd_version(args: argparse.Namespace) -> None:
    from stores import __version__

    print(f"stiscube {__version__}")


def _cmd_show_versions(args: argparse.Namespace) -> None:
    from stores.common.environment import show_versions

    show_versions()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``stiscube`` with all its subcommands."""
    parser, sub = base_parser("stiscube", "STIS CCD pixel property cube.")
    _add_simulate(sub)
    _add_ingest(sub)
    _add_query(sub)
    _add_history(sub)
    _add_dq(sub)
    _add_report(sub)
    _add_plot(sub)
    _add_index(sub)
    _add_recompute(sub)
    _add_maintenance(sub)
    _add_info(sub)
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_cmd_version)
    p = sub.add_parser(
        "show-versions", help="versions of stiscube, Python and its dependencies (bug reports)"
    )
    p.set_defaults(func=_cmd_show_versions)
    return parser


#: library advice -> command-line advice in error messages (see stores.common.cli.cli_message)
HINTS = (
    (r"create one with CubeStore\.create", "create one with `stiscube ingest STORE ...`"),
    (r"with CubeStore\.break_lock\(\)", "with `stiscube unlock STORE --yes`"),
    (r"pass start= and end=", "give --start and --end"),
    (r"give both start and end", "give both --start and --end"),
    (r"anneal_num must be", "--anneal must be"),
    (r"pass overwrite=True", "use --overwrite"),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stiscube`` program.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    return run_cli(
        build_parser(), argv, (StiscubeError, StoreError, OSError, ValueError), hints=HINTS
    )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
