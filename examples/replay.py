"""Replay the monthly loop of both monitors through their command lines, checking each
month's products against the simulator's truth.

Every month runs the commands of :data:`COMMANDS`, the README's "Monthly update" section
word for word (``tests/test_replay.py`` checks that the two agree), with the files of a
work directory laid out as the README names them.

STIS CCD: the darks of a window of the simulated mission
(:func:`stiscube.datasets.mission.simulate_mission`, Side-1 then Side-2 electronics from
2001-07) arrive one anneal period at a time; each month runs ``stiscube ingest``,
``stiscube dq`` (DQ array, superdark, BPIXTAB) and ``stiscube report`` and records:

- hot-pixel recall and precision of the DQ array's hot bit against the truth's hot pixels
  (true mean rate above the rule's level, :data:`HOT_LEVEL`);
- the ``NHOT`` of the DQ array file, the superdark and the site's headline, and the
  hot pixels of the superdark's DQ array and of the BPIXTAB.

WFC3/UVIS CTE: the epochs of a simulated campaign (:func:`cte.simulate_campaign`) arrive
one at a time, each followed by the same ``cte run``.

Each month prints the wall and CPU time of each step and the bytes the commands wrote
(also appended to ``<out>/stis-costs.csv`` as each month ends).  Sizes:

- ``--size test``: 36 periods of 64 x 64 darks from 2000-10 (across the Side-2 switch)
  and 3 CTE epochs, as ``tests/test_replay.py`` runs it;
- ``--size benchmark``: every period of the mission (about 330) at 256 x 256;
- ``--size mission``: every period at 1024 x 1024 from
  :func:`stiscube.datasets.random_properties` (no darks, so no ``ingest`` and no truth:
  the store's and the site's costs at full size).

``--months``, ``--shape``, ``--start`` and ``--epochs`` override a size's values::

    python examples/replay.py --out replay-output --size test
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: The monthly commands, the README's "Monthly update" word for word.  ``{name}`` is a
#: file of :data:`PATHS` (or ``{darks}``: the period's files, ``{period}``: its number).
COMMANDS = {
    "ingest": "stiscube ingest {db} --darks {darks} --anneal {period} --periods {periods} "
              "--index",
    "dq": "stiscube dq {db} --out {dq} --table {dq_table} --dark-reference {superdark} "
          "--bpixtab {bpixtab} --bpixtab-persist 3 6",
    "report": "stiscube report {db} --out {site}",
    "cte run": "cte run {photometry} --data {data} --catalogs {catalogs} --out {cte_out}",
}
#: The files of the monthly loop, relative to the work directory, as the README names them.
PATHS = {
    "db": "pixels.db", "periods": "anneal_periods.ecsv", "dq": "dq/dq_newest.fits",
    "dq_table": "dq/dq_newest.ecsv", "superdark": "crds/superdark_drk.fits",
    "bpixtab": "crds/bad_pixels_bpx.fits", "site": "stis-site", "data": "data",
    "catalogs": "catalogs", "photometry": "photometry", "cte_out": "cte-monitor",
}
#: The files each monitor's commands write (a rerun must leave them untouched).
STIS_OUTPUTS = ("db", "dq", "dq_table", "superdark", "bpixtab", "site")
CTE_OUTPUTS = ("photometry", "cte_out")


@dataclasses.dataclass(frozen=True)
class ReplaySize:
    """One size of the replay.

    Parameters
    ----------
    months : int or None
        STIS anneal periods replayed (None: every period of the mission from *start*).
    shape : (int, int)
        Frame shape (rows, columns).
    start : str
        First month of the STIS window (ISO date).
    epochs : int
        CTE epochs added one at a time (0: no CTE replay).
    darks : bool
        Simulated darks ingested through ``stiscube ingest`` (False: each period's
        properties from :func:`stiscube.datasets.random_properties`, stored through the
        library, then the ``dq`` and ``report`` commands).
    """

    months: int | None
    shape: tuple[int, int]
    start: str
    epochs: int
    darks: bool = True


SIZES = {
    "test": ReplaySize(months=36, shape=(64, 64), start="2000-10-01", epochs=3),
    "benchmark": ReplaySize(months=None, shape=(256, 256), start="1997-04-01", epochs=8),
    "mission": ReplaySize(months=330, shape=(1024, 1024), start="1997-04-01", epochs=0,
                          darks=False),
}

#: the hot-pixel level of the commands' rules (``--hot-level``'s default) and of the truth
#: the replay is checked against, e-/s
HOT_LEVEL = 0.1


def command(step: str, work: Path, **values) -> list[str]:
    """The argument list of *step* of :data:`COMMANDS` (program first) in *work*.

    Parameters
    ----------
    step : str
        A key of :data:`COMMANDS`.
    work : Path
        The work directory the files of :data:`PATHS` are in.
    **values
        ``darks`` (a list of paths: one argument each) and ``period``.
    """
    places = {k: str(work / v) for k, v in PATHS.items()} | values
    argv = []
    for word in COMMANDS[step].split():
        name = word[1:-1] if word.startswith("{") else None
        value = places[name] if name else word
        argv += list(map(str, value)) if isinstance(value, list | tuple) else [str(value)]
    return argv


def snapshot(work: Path, names) -> dict[Path, tuple[int, int]]:
    """(size, mtime_ns) of every file under the paths *names* of :data:`PATHS` in *work*."""
    out = {}
    for name in names:
        top = work / PATHS[name]
        for path in ([top] if top.is_file() else top.rglob("*")):
            if path.is_file():
                st = path.stat()
                out[path] = (st.st_size, st.st_mtime_ns)
    return out


def _wchar() -> int:
    """Bytes this process has passed to ``write`` so far (``wchar`` of ``/proc/self/io``)."""
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("wchar")).split()[1])


def run_month(work: Path, steps: list[str], row: dict, **values) -> None:
    """Run *steps* of :data:`COMMANDS`, adding to *row* each one's wall and CPU seconds
    (``<step>_s``, ``<step>_cpu_s``) and the bytes written by all (``written_bytes``;
    the commands run in this process, so this is its ``wchar``, Linux only).

    Raises RuntimeError naming the command, with its output, when one exits nonzero."""
    from cte.cli import main as cte_main
    from stiscube.cli import main as stis_main

    programs = {"stiscube": stis_main, "cte": cte_main}
    row.setdefault("written_bytes", 0)
    for step in steps:
        argv = command(step, work, **values)
        said = io.StringIO()
        wchar, wall, cpu = _wchar(), time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            status = programs[argv[0]](argv[1:])
        row[f"{step}_s"] = time.perf_counter() - wall
        row[f"{step}_cpu_s"] = time.process_time() - cpu
        row["written_bytes"] += _wchar() - wchar
        row.setdefault("said", {})[step] = said.getvalue()
        if status != 0:
            msg = f"`{' '.join(argv)}` exited {status}: {said.getvalue()}"
            raise RuntimeError(msg)


def _hot_counts(work: Path, period: int) -> dict:
    """The hot pixels each STIS product states for *period*: NHOT cards, DQ arrays, BPIXTAB."""
    from astropy.io import fits

    counts = {name: fits.getheader(work / PATHS[name])["NHOT"] for name in ("dq", "superdark")}
    dq = fits.getdata(work / PATHS["superdark"], "DQ")
    counts["superdark_dq"] = int(np.count_nonzero(dq & 16))
    page = (work / PATHS["site"] / "index.html").read_text()
    headline = re.search(r"Hot pixels, period (\d+)</div><div class=\"value\">([\d,]+)<", page)
    if headline is not None and int(headline.group(1)) == period:
        counts["site"] = int(headline.group(2).replace(",", ""))
    return counts


def bpixtab_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The pixels a BPIXTAB flags hot (runs of PIX1/PIX2/LENGTH/AXIS/VALUE expanded)."""
    from astropy.io import fits

    table = fits.getdata(path, "BPIXTAB")
    mask = np.zeros(shape, bool)
    for col, row, length, axis, value in zip(*(table[c] for c in (
            "PIX1", "PIX2", "LENGTH", "AXIS", "VALUE")), strict=True):  # few runs: a loop
        if value & 16:
            if axis == 1:
                mask[row - 1, col - 1: col - 1 + length] = True
            else:
                mask[row - 1: row - 1 + length, col - 1] = True
    return mask


def _start_afresh(work: Path, names) -> None:
    """Remove the files *names* of :data:`PATHS` a previous replay left in *work*."""
    for name in names:
        path = work / PATHS[name]
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def replay_stis(work: Path, size: ReplaySize, *, seed: int = 0,
                on_month: Callable[[dict, Path], None] | None = None,
                report: Callable[[dict], None] | None = None) -> list[dict]:
    """Replay the STIS monitor's months of *size* in *work*; one row per month.

    Parameters
    ----------
    work : Path
        Work directory (its ``darks/`` holds the simulation).
    size : ReplaySize
        Months, frame shape and first month.
    seed : int
        Seed of the simulated mission.
    on_month : callable, optional
        Called after each month as ``on_month(row, work)`` (the tests certify that
        month's reference files with it).
    report : callable, optional
        Called with each month's row as soon as it is done (the command prints it).

    Returns
    -------
    list of dict
        Per month: ``period``, ``darks`` (its files), ``side``, ``said`` (each
        command's output), ``<step>_s`` and ``<step>_cpu_s`` (wall and CPU
        seconds of each command), ``written_bytes``, and with darks ``true_hot``,
        ``recall``, ``precision``, ``nhot`` (see :func:`_hot_counts`) and
        ``bpixtab_hot``/``bpixtab_expected`` (the BPIXTAB's hot pixels, and the pixels
        hot in >= K of the last M months' DQ arrays).
    """
    _start_afresh(work, STIS_OUTPUTS)
    if not size.darks:
        return _replay_properties(work, size, report=report)
    import xarray as xr
    from astropy.io import fits

    from stiscube.datasets.mission import MissionPhysics, simulate_mission

    physics = dataclasses.replace(MissionPhysics(), frames_per_period=(3, 4))
    end = (np.datetime64(physics.end) if size.months is None else
           np.datetime64(size.start) + np.timedelta64(int(size.months * 28.5), "D"))
    mission = simulate_mission(work / "darks", start=size.start, end=str(end),
                               shape=size.shape, seed=seed, physics=physics, overwrite=True)
    numbers = sorted(mission.files)[: size.months]
    mission.periods.write(work / PATHS["periods"], overwrite=True)
    for name in ("dq", "superdark"):
        (work / PATHS[name]).parent.mkdir(exist_ok=True)
    k, m = (int(v) for v in COMMANDS["dq"].split("--bpixtab-persist")[1].split()[:2])
    rows, history = [], []
    for number in numbers:
        row = {"period": number, "darks": list(mission.files[number])}
        run_month(work, ["ingest", "dq", "report"], row, darks=row["darks"], period=number)
        truth = xr.load_dataset(mission.out / "truth" / f"period_{number:04d}.nc")
        true_hot = truth["mean_rate"].values > HOT_LEVEL
        found = (fits.getdata(work / PATHS["dq"], "DQ") & 16) != 0
        history.append(found)
        window = history[-m:]
        row |= {
            "side": int(truth.attrs["side"]),
            "true_hot": int(true_hot.sum()),
            "recall": float((found & true_hot).sum() / max(true_hot.sum(), 1)),
            "precision": float((found & true_hot).sum() / max(found.sum(), 1)),
            "nhot": _hot_counts(work, number),
            "bpixtab_hot": bpixtab_mask(work / PATHS["bpixtab"], size.shape),
            "bpixtab_expected": np.sum(window, axis=0) >= k,
        }
        rows.append(row)
        if on_month is not None:
            on_month(row, work)
        if report is not None:
            report(row)
    return rows


def _replay_properties(work: Path, size: ReplaySize, *, report=None) -> list[dict]:
    """The mission size: random properties stored per period, then ``dq`` and ``report``."""
    from stiscube import PixelDB
    from stiscube.datasets import random_properties

    db = PixelDB.create(work / PATHS["db"], shape=size.shape)
    for name in ("dq", "superdark"):
        (work / PATHS[name]).parent.mkdir(exist_ok=True)
    rows = []
    for period in range(1, size.months + 1):
        start = np.datetime64(size.start) + np.timedelta64(30 * (period - 1), "D")
        row = {"period": period}
        wchar, wall, cpu = _wchar(), time.perf_counter(), time.process_time()
        db.ingest_properties(random_properties(size.shape, seed=period), period, start=start,
                             end=start + np.timedelta64(30, "D"))
        db.update_history_index()
        row["ingest_s"], row["ingest_cpu_s"] = (time.perf_counter() - wall,
                                                time.process_time() - cpu)
        row["written_bytes"] = _wchar() - wchar
        run_month(work, ["report"], row)  # no darks: no superdark, so no `dq`
        rows.append(row)
        if report is not None:
            report(row)
    return rows


def replay_cte(work: Path, *, epochs: int, seed: int = 0,
               on_epoch: Callable[[dict, Path], None] | None = None,
               report: Callable[[dict], None] | None = None):
    """Add the epochs of a simulated campaign one at a time, each followed by ``cte run``.

    Parameters
    ----------
    work : Path
        Work directory (``campaign/`` holds the simulation, ``data/`` what has arrived).
    epochs : int
        Epochs of the campaign (one proposal each).
    seed : int
        Seed of the simulated campaign.
    on_epoch : callable, optional
        Called after each epoch as ``on_epoch(row, work)``.
    report : callable, optional
        Called with each epoch's row as soon as it is done.

    Returns
    -------
    rows : list of dict
        Per epoch: ``epoch`` (proposal), ``cte run_s``, ``cte run_cpu_s``,
        ``written_bytes`` and ``epochs_in_loss``.
    campaign : cte.datasets.simulate.SimulatedCampaign
        The simulation and its truth.
    """
    import xarray as xr

    from cte.datasets.simulate import FieldPhysics, simulate_campaign

    sim = simulate_campaign(
        work / "campaign", seed=seed, shape=(2051, 96), targets=("ngc104",), n_epochs=epochs,
        flashes=(12,), exptimes=(348.0,), include_180=False, include_excluded=False,
        overwrite=True, physics=FieldPhysics(n_stars=1500),
    )
    _start_afresh(work, ("data", "catalogs", *CTE_OUTPUTS))
    shutil.copytree(sim.catalogs_dir, work / PATHS["catalogs"])
    data = work / PATHS["data"]
    data.mkdir()
    rows = []
    for proposal in sorted(p.name for p in sim.data_dir.iterdir()):
        shutil.copytree(sim.data_dir / proposal, data / proposal)  # the new epoch arrives
        row = {"epoch": proposal}
        run_month(work, ["cte run"], row)
        loss = xr.load_dataset(work / PATHS["cte_out"] / "loss.nc", engine="h5netcdf")
        row |= {"epochs_in_loss": int(np.unique(np.round(loss["mjd"].values)).size)}
        rows.append(row)
        if on_epoch is not None:
            on_epoch(row, work)
        if report is not None:
            report(row)
    return rows, sim


#: the columns of ``<out>/stis-costs.csv`` (one row per month, written as it ends;
#: ``benchmarks/plot_replay.py`` plots it)
COST_COLUMNS = ("period", "ingest_s", "ingest_cpu_s", "dq_s", "dq_cpu_s", "report_s",
                "report_cpu_s", "written_bytes", "load_average")


def _cost_writer(path: Path) -> Callable[[dict], None]:
    """A function appending a month's row to the CSV *path* (its header written now)."""
    path.write_text(",".join(COST_COLUMNS) + "\n")

    def write(row: dict) -> None:
        values = {**row, "load_average": os.getloadavg()[0]}
        with path.open("a") as fh:
            fh.write(",".join(str(values.get(c, "")) for c in COST_COLUMNS) + "\n")

    return write


def _print_stis(row: dict) -> None:
    checks = ""
    if "recall" in row:
        checks = (f" {row['side']:4d} {row['recall']:6.3f} {row['precision']:9.3f} "
                  f"{' '.join(map(str, row['nhot'].values()))}")
    steps = " ".join(f"{row.get(f'{s}_s', float('nan')):7.2f} "
                     f"{row.get(f'{s}_cpu_s', float('nan')):7.2f}"
                     for s in ("ingest", "dq", "report"))
    print(f"{row['period']:6d} {steps} {row['written_bytes'] / 1e6:10.2f}{checks}", flush=True)


def _print_cte(row: dict) -> None:
    print(f"{row['epoch']:>6} {row['cte run_s']:7.2f} {row['cte run_cpu_s']:7.2f} "
          f"{row['written_bytes'] / 1e6:10.2f} {row['epochs_in_loss']:6d}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the replay (``python examples/replay.py --help``); exit status 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("replay-output"))
    parser.add_argument("--size", choices=sorted(SIZES), default="test")
    parser.add_argument("--months", type=int, help="STIS anneal periods")
    parser.add_argument("--shape", type=int, nargs=2, help="frame rows and columns")
    parser.add_argument("--start", help="first month of the STIS window")
    parser.add_argument("--epochs", type=int, help="CTE epochs (0: no CTE replay)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    size = dataclasses.replace(size, **{k: tuple(v) if k == "shape" else v for k, v in (
        ("months", args.months), ("shape", args.shape), ("start", args.start),
        ("epochs", args.epochs)) if v is not None})
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"# {args.size} size: {size}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print("STIS: period, wall and CPU s of ingest, dq, report, MB written"
          + (", side, recall, precision, NHOT of dq superdark superdark-DQ site"
             if size.darks else ""))
    costs = _cost_writer(args.out / "stis-costs.csv")

    def report(row: dict) -> None:
        _print_stis(row)
        costs(row)

    replay_stis(args.out, size, seed=args.seed, report=report)
    if size.epochs:
        print("CTE: epoch, wall and CPU s of cte run, MB written, epochs in the loss")
        replay_cte(args.out, epochs=size.epochs, seed=args.seed, report=_print_cte)
    return 0


if __name__ == "__main__":
    sys.exit(main())
