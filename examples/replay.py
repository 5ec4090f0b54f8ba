"""Replay the monthly loop of both monitors through their command lines, checking each
month's products against the simulator's truth.

STIS CCD: the darks of a window of the simulated mission
(:func:`stiscube.datasets.mission.simulate_mission`, Side-1 then Side-2 electronics) come
in one anneal period at a time; each month runs exactly the README's "Monthly update"
commands (``stiscube ingest``, ``stiscube dq`` with the superdark and the BPIXTAB,
``stiscube report``) and checks:

- hot-pixel recall and precision of the DQ array's hot bit against the truth's hot pixels
  (true mean rate above the rule's level, 0.1 e-/s);
- ``NHOT`` equal in the DQ array file, the superdark and the site's headline.

WFC3/UVIS CTE: the epochs of a simulated campaign (:func:`cte.simulate_campaign`) arrive
one at a time, each followed by the same ``cte run``; checked: the run succeeds and its
loss covers every epoch so far.

Each month prints the wall time of each step and the disk written (bytes of the database
and the products, after minus before).  Sizes: ``--months 12 --shape 64 64`` is the test
size (``tests/test_replay.py``); ``--months 330 --shape 256 256`` the benchmark size.

    python examples/replay.py --out replay-output --months 12 --shape 64 64 --epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

#: the hot-pixel level of the replay's rules and of the truth it is checked against, e-/s
HOT_LEVEL = 0.1


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _step(timings: dict, name: str, main, argv: list[str]) -> None:
    t0 = time.perf_counter()
    status = main(["--quiet", *argv])
    timings[name] = time.perf_counter() - t0
    if status != 0:
        msg = f"`{name} {' '.join(argv)}` exited {status}"
        raise RuntimeError(msg)


def replay_stis(work: Path, *, months: int, shape: tuple[int, int], start: str = "2009-01-01",
                seed: int = 0, frames: tuple[int, int] = (3, 4), on_month=None) -> list[dict]:
    """Replay *months* anneal periods of the STIS monitor from *start*; one row per month.

    *on_month*, if given, is called after each month as ``on_month(row, work)`` (the
    tests certify that month's reference files with it)."""
    import xarray as xr
    from astropy.io import fits

    from stiscube.cli import main
    from stiscube.datasets.mission import MissionPhysics, simulate_mission

    physics = dataclasses.replace(MissionPhysics(), frames_per_period=frames)
    end = np.datetime64(start) + np.timedelta64(int(months * 28.5), "D")
    mission = simulate_mission(work / "darks", start=start, end=str(end), shape=shape,
                               seed=seed, physics=physics, overwrite=True)
    numbers = sorted(mission.files)[:months]
    mission.periods.write(work / "anneal_periods.ecsv", overwrite=True)
    for name in ("dq", "crds"):
        (work / name).mkdir(exist_ok=True)
    db, products = work / "pixels.db", [work / "dq", work / "crds", work / "stis-site"]
    rows = []
    for number in numbers:
        before = _disk(db) + sum(_disk(p) for p in products)
        timings: dict[str, float] = {}
        _step(timings, "ingest", main, ["ingest", str(db), "--darks",
                                        *map(str, mission.files[number]), "--anneal",
                                        str(number), "--periods",
                                        str(work / "anneal_periods.ecsv")])
        _step(timings, "dq", main, [
            "dq", str(db), "--out", str(work / "dq" / "dq_newest.fits"),
            "--dark-reference", str(work / "crds" / "superdark_drk.fits"),
            "--bpixtab", str(work / "crds" / "bad_pixels_bpx.fits"), "--bpixtab-persist", "2",
            "3"])
        _step(timings, "report", main, ["report", str(db), "--out", str(work / "stis-site"),
                                         "--map-size", "32"])
        truth = xr.load_dataset(mission.outdir / "truth" / f"period_{number:04d}.nc")
        true_hot = truth["mean_rate"].values > HOT_LEVEL
        dq = fits.getdata(work / "dq" / "dq_newest.fits", "DQ")
        found = (dq & 16) != 0
        n_hot = {
            "dq": fits.getheader(work / "dq" / "dq_newest.fits")["NHOT"],
            "superdark": fits.getheader(work / "crds" / "superdark_drk.fits")["NHOT"],
        }
        page = (work / "stis-site" / "index.html").read_text()
        headline = re.search(r"Hot pixels, period (\d+)</div><div class=\"value\">([\d,]+)<", page)
        if headline is not None and int(headline.group(1)) == number:
            n_hot["site"] = int(headline.group(2).replace(",", ""))
        rows.append({
            "period": number,
            "side": int(truth.attrs["side"]),
            **{f"{k}_s": v for k, v in timings.items()},
            "disk_written_bytes": _disk(db) + sum(_disk(p) for p in products) - before,
            "true_hot": int(true_hot.sum()),
            "recall": float((found & true_hot).sum() / max(true_hot.sum(), 1)),
            "precision": float((found & true_hot).sum() / max(found.sum(), 1)),
            "nhot": n_hot,
        })
        if on_month is not None:
            on_month(rows[-1], work)
    return rows


def replay_cte(work: Path, *, epochs: int, seed: int = 0) -> list[dict]:
    """Add the epochs of a simulated campaign one at a time, each followed by `cte run`."""
    import xarray as xr

    from cte.cli import main
    from cte.datasets.simulate import FieldPhysics, simulate_campaign

    sim = simulate_campaign(
        work / "campaign", seed=seed, shape=(2051, 96), targets=("ngc104",), n_epochs=epochs,
        flashes=(12,), exptimes=(348.0,), include_180=False, include_excluded=False,
        overwrite=True, physics=FieldPhysics(n_stars=1500)
    )
    data, out = work / "cte-data", work / "cte-monitor"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    rows = []
    for proposal in sorted(p.name for p in sim.data_dir.iterdir()):
        before = _disk(work / "photometry") + _disk(out)
        shutil.copytree(sim.data_dir / proposal, data / proposal)  # the new epoch arrives
        timings: dict[str, float] = {}
        _step(timings, "cte run", main, ["run", str(work / "photometry"), "--data", str(data),
                                         "--catalogs", str(sim.catalogs_dir), "--out",
                                         str(out)])
        loss = xr.load_dataset(out / "loss.nc", engine="h5netcdf")
        rows.append({
            "epoch": proposal,
            "run_s": timings["cte run"],
            "disk_written_bytes": _disk(work / "photometry") + _disk(out) - before,
            "epochs_in_loss": int(np.unique(np.round(loss["mjd"].values)).size),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("replay-output"))
    parser.add_argument("--months", type=int, default=12, help="STIS anneal periods")
    parser.add_argument("--shape", type=int, nargs=2, default=(64, 64))
    parser.add_argument("--start", default="2009-01-01", help="first month of the STIS window")
    parser.add_argument("--epochs", type=int, default=3, help="CTE epochs (0: no CTE replay)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print("STIS: period side ingest_s dq_s report_s disk_written_MB recall precision NHOT")
    for r in replay_stis(args.out, months=args.months, shape=tuple(args.shape),
                         start=args.start, seed=args.seed):
        print(f"  {r['period']:4d} {r['side']} {r['ingest_s']:6.2f} {r['dq_s']:5.2f} "
              f"{r['report_s']:6.2f} {r['disk_written_bytes'] / 1e6:8.2f} "
              f"{r['recall']:.3f} {r['precision']:.3f} {r['nhot']}")
    if args.epochs:
        print("CTE: epoch run_s disk_written_MB epochs_in_loss")
        for r in replay_cte(args.out, epochs=args.epochs, seed=args.seed):
            print(f"  {r['epoch']} {r['run_s']:6.2f} {r['disk_written_bytes'] / 1e6:8.2f} "
                  f"{r['epochs_in_loss']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
