"""A simulated STIS CCD mission, 1997-2026, on the published record.

:func:`simulate_mission` runs the simulator of :mod:`stiscube.datasets.simulate` over the
whole mission with time-dependent physics (:class:`MissionPhysics`) and writes the darks
of the periods in a chosen date window, with the truth of every period.  The detector's
state (hot pixels, their healing at each anneal) always evolves from the mission start,
so a window's darks are those of the full mission with the same seed: a test-size
mission (``start="2000-01-01", end="2003-01-01", shape=(64, 64)``) takes seconds.

The published figures each default reproduces (``/work/shared/real/README.md``; STIS
Instrument Handbook and STIS ISRs on the CCD dark and hot-pixel monitor):

=============================  =====================================================
default                        published figure
=============================  =====================================================
``dark_rate`` (median, e-/s)   0.0015 in 1997, about 0.004 by 2001 (after 2001: the
                               same linear slope continued, 0.00058 e-/s per year;
                               no published figure is reproduced there)
``readnoise`` (e-, gain 1)     about 3.8-4.0 early on, about 6.25 by 2014 (linear in
                               between; flat after 2014: no figure)
``heal_fraction_side1/2``      about 81 % (Side-1) and 48 % (Side-2) of the new hot
                               pixels anneal away; Side-2 from 2001-07-23
                               (:data:`~stiscube.datasets.simulate.SIDE2_START`)
``hot_per_day``,               post-anneal pixels above 0.1 e-/s: about
``initial_hot``,               15 000-17 000 in 2001 and 44 741 in October 2009
``old_heal_fraction``          (full frame; these three are chosen to give those
                               counts, they are not themselves published)
``temperature*``               Side-2 dark rate rises 5-10 % per deg C of OCCDHTAV
                               (the simulator uses 7 %, the pipeline's
                               1/(1 + 0.07 (OCCDHTAV - 18)) undoes it); OCCDHTAV
                               varies (a yearly term, a drift over each period and a
                               scatter per frame: not published values); Side-1
                               frames have OCCDHTAV = -1
``frames_per_period``          40-60 long darks per period of about four weeks, at
                               the monitor's 1100 s (gain 1, the reference darks'
                               1000-1200 s class)
=============================  =====================================================

Files written (besides those of :func:`~stiscube.datasets.simulate.simulate_darks`:
FLT files with ``PROPOSID``/``PROPTTL1``, ``anneal_periods.ecsv``, the per-period truth
netCDF files of the written periods, ``simulation.json``): ``truth/anneals.ecsv``, one row
per period from the mission start to the end of the window (see
:data:`ANNEAL_TRUTH_COLUMNS`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from stiscube.datasets import simulate as _sim
from stiscube.io.anneals import AnnealPeriod, AnnealTable, format_exposure_mix
from stores.common.dates import describe_mjd, to_mjd
from stores.common.validate import as_float, as_int, as_shape2, check_fields, instance_of

__all__ = [
    "ANNEAL_TRUTH_COLUMNS",
    "HOT_LEVEL",
    "MissionPhysics",
    "SimulatedMission",
    "load_simulation",
    "simulate_mission",
]

logger = logging.getLogger(__name__)

#: The hot-pixel level of the published counts and of the truth counts, e-/s.
HOT_LEVEL = 0.1
_ANNEALS = "anneals.ecsv"

#: Columns of ``truth/anneals.ecsv`` (one row per period; "the anneal" is the one that
#: opened the period, at its start; the first period has no anneal).
ANNEAL_TRUTH_COLUMNS: dict[str, str] = {
    "number": "period number (0 = the mission's first period)",
    "start_mjd": "period start, MJD (d)",
    "end_mjd": "period end, MJD (d)",
    "side": "electronics side of the anneal and period (1 or 2, by the period start)",
    "written": "whether the period's darks were written",
    "n_frames": "darks in the period",
    "dark_rate": "median normal dark rate D at 18 deg C (e-/s)",
    "readnoise": "nominal read noise RN of the period (e-); pixels scatter about it",
    "heal_fraction": "probability that the anneal heals a new hot pixel (configured)",
    "n_new": "hot pixels created since the previous anneal, before this one",
    "n_new_healed": "of those, healed by this anneal",
    "repair_fraction": "n_new_healed / n_new (NaN without new hot pixels)",
    "n_old": "older hot pixels (survivors of earlier anneals) before this anneal",
    "n_old_healed": "of those, healed by this anneal",
    "old_still_hot_fraction": "1 - n_old_healed / n_old (NaN without old hot pixels)",
    "n_hot_post_anneal": f"pixels whose true mean rate exceeds {HOT_LEVEL} e-/s just after "
    "the anneal, in the simulated frame",
    "n_hot_post_anneal_full": "the same scaled to the full 1024 x 1024 frame",
}


def _knots(value: Any, name: str) -> tuple[tuple[str, float], ...]:
    """A curve as ``((date, value), ...)`` with increasing dates and finite values."""
    try:
        pairs = tuple((str(d), as_float(v, f"{name} value")) for d, v in value)
    except (TypeError, ValueError) as exc:
        msg = f"{name} must be ((date, value), ...) pairs: {exc}"
        raise type(exc)(msg) from exc
    mjd = [float(to_mjd(d)) for d, _ in pairs]
    if not pairs or np.any(np.diff(mjd) <= 0):
        msg = f"{name} must hold at least one (date, value) pair with increasing dates"
        raise ValueError(msg)
    return pairs


def _curve(knots: Sequence[tuple[str, float]], mjd: float) -> float:
    """Linear interpolation of a knot curve at ``mjd``, held constant outside it."""
    x = np.array([float(to_mjd(d)) for d, _ in knots])
    y = np.array([v for _, v in knots])
    return float(np.interp(mjd, x, y))


@dataclass(frozen=True)
class MissionPhysics:
    """Time-dependent physics of the simulated mission (see the module docstring).

    Curves are ``((date, value), ...)`` knots, linear in between, constant outside;
    rates are full-frame (1024 x 1024) numbers, scaled by area for smaller frames.

    Parameters
    ----------
    start, end : str
        The mission's first period start and last period end (dates).
    period_days, period_jitter : float
        Anneal period length (days) and its relative uniform jitter.
    frames_per_period : (int, int)
        Darks per period, uniform in this inclusive range.
    side2_start : float
        MJD of the switch to Side-2 electronics (2001-07-23).
    dark_rate : knots
        Median normal dark rate at 18 deg C, e-/s.
    readnoise : knots
        Read noise, e- (a step is two knots a second apart).
    hot_per_day : knots
        New hot pixels per day on the full frame.
    initial_hot : int
        Hot pixels at the mission start (full frame).
    heal_fraction_side1, heal_fraction_side2 : float
        Probability that an anneal heals a hot pixel created since the previous one.
    old_heal_fraction : float
        Probability that an anneal heals an older hot pixel.
    temperature, temperature_year, temperature_drift, temperature_scatter : float
        Side-2 OCCDHTAV (deg C): mean, amplitude of a yearly term, amplitude of the drift
        over each period, per-frame scatter.
    temperature_coefficient : float
        The true dark rate is ``1 + c (OCCDHTAV - 18)`` times the rate at 18 deg C.
    darks : DarkPhysics
        Everything else (cosmic rays, flickering pixels, exposure time, gain, ...).
    """

    start: str = "1997-02-16 01:04:37"
    end: str = "2026-01-01"
    period_days: float = 28.0
    period_jitter: float = 0.1
    frames_per_period: tuple[int, int] = (40, 60)
    side2_start: float = _sim.SIDE2_START
    dark_rate: tuple[tuple[str, float], ...] = (
        ("1997-02-16", 0.0015),
        ("2001-07-23", 0.004),
        ("2026-01-01", 0.0183),
    )
    readnoise: tuple[tuple[str, float], ...] = (
        ("1997-02-16", 3.9),
        ("2001-07-23", 4.1),
        ("2014-01-01", 6.25),
    )
    hot_per_day: tuple[tuple[str, float], ...] = (
        ("1997-02-16", 66.0),
        ("2001-07-23", 28.0),
        ("2009-10-01", 25.0),
    )
    initial_hot: int = 1500
    heal_fraction_side1: float = 0.81
    heal_fraction_side2: float = 0.48
    old_heal_fraction: float = 0.003
    temperature: float = 18.5
    temperature_year: float = 1.5
    temperature_drift: float = 0.5
    temperature_scatter: float = 0.3
    temperature_coefficient: float = 0.07
    darks: _sim.DarkPhysics = field(
        default_factory=lambda: _sim.DarkPhysics(hot_rate_range=(0.1, 10.0))
    )

    def __post_init__(self) -> None:
        check_fields(self, _MISSION_RULES)

    def at(self, mjd: float) -> _sim.DarkPhysics:
        """The :class:`~stiscube.datasets.simulate.DarkPhysics` of a period starting at *mjd*.

        Parameters
        ----------
        mjd : float
            The period's start (MJD).

        Returns
        -------
        DarkPhysics
            The physics of that period.
        """
        side2 = mjd >= self.side2_start
        year = 2 * np.pi * (mjd - self.side2_start) / 365.25
        return dataclasses.replace(
            self.darks,
            dark_rate=_curve(self.dark_rate, mjd),
            readnoise=_curve(self.readnoise, mjd),
            hot_per_day=_curve(self.hot_per_day, mjd),
            heal_fraction=self.heal_fraction_side2 if side2 else self.heal_fraction_side1,
            old_heal_fraction=self.old_heal_fraction,
            temperature=self.temperature + self.temperature_year * np.sin(year),
            temperature_drift=self.temperature_drift,
            temperature_scatter=self.temperature_scatter,
            temperature_coefficient=self.temperature_coefficient,
            side2_start=self.side2_start,
        )

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-friendly dict."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["darks"] = self.darks.to_dict()
        return json_ready(out)


def json_ready(value: Any) -> Any:
    """Tuples as lists, recursively (for JSON)."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [json_ready(v) for v in value]
    return value


def _frames_range(value: Any, name: str) -> tuple[int, int]:
    if not isinstance(value, Sequence) or len(value) != 2:
        msg = f"{name} must be a (low, high) pair of integers, got {value!r}"
        raise TypeError(msg)
    low = as_int(value[0], f"{name}[0]", min=1)
    high = as_int(value[1], f"{name}[1]", min=low, max=_sim._MAX_FRAMES)
    return low, high


def _date(value: Any, name: str) -> str:
    to_mjd(value)
    return str(value)


_FRACTION = partial(as_float, min=0, max=1)
_MISSION_RULES: dict[str, Any] = {
    "start": _date,
    "end": _date,
    "period_days": partial(as_float, min=1, max=120),
    "period_jitter": partial(as_float, min=0, max=1, strict_max=True),
    "frames_per_period": _frames_range,
    "side2_start": as_float,
    "dark_rate": _knots,
    "readnoise": _knots,
    "hot_per_day": _knots,
    "initial_hot": partial(as_int, min=0, max=_sim._FULL_PIXELS),
    "heal_fraction_side1": _FRACTION,
    "heal_fraction_side2": _FRACTION,
    "old_heal_fraction": _FRACTION,
    "temperature": partial(as_float, min=-20, max=40, units="deg C"),
    "temperature_year": partial(as_float, min=0, max=10, units="deg C"),
    "temperature_drift": partial(as_float, min=0, max=10, units="deg C"),
    "temperature_scatter": partial(as_float, min=0, max=5, units="deg C"),
    "temperature_coefficient": partial(
        as_float, min=0, max=0.5, strict_max=True, units="per deg C"
    ),
    "darks": partial(instance_of, cls=_sim.DarkPhysics),
}


def _mission_from_dict(values: dict[str, Any]) -> MissionPhysics:
    """The inverse of :meth:`MissionPhysics.to_dict`."""
    values = dict(values)
    darks: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in values.pop("darks").items()
    }
    fields: dict[str, Any] = {
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in values.items()
    }
    return MissionPhysics(darks=_sim.DarkPhysics(**darks), **fields)


@dataclass(frozen=True)
class SimulatedMission(_sim.SimulatedDarks):
    """What :func:`simulate_mission` wrote: a :class:`~stiscube.datasets.simulate.SimulatedDarks`
    of the written periods, plus the mission's physics and per-period truth.

    Parameters
    ----------
    out, periods, files, truth_paths, shape, seed, physics
        As for :class:`~stiscube.datasets.simulate.SimulatedDarks`.
    mission : MissionPhysics
        The time-dependent physics.
    """

    mission: MissionPhysics = field(default_factory=MissionPhysics)

    @property
    def anneals(self) -> Any:
        """The per-period truth from the mission start to the window's end
        (:class:`astropy.table.Table`, columns :data:`ANNEAL_TRUTH_COLUMNS`)."""
        from astropy.table import Table

        return Table.read(self.out / _sim._TRUTH_DIR / _ANNEALS, format="ascii.ecsv")


def load_simulation(out: str | os.PathLike[str]) -> _sim.SimulatedDarks:
    """Read back what :func:`~stiscube.datasets.simulate.simulate_darks` (or
    :func:`simulate_mission`) wrote into ``out``.

    Parameters
    ----------
    out : path-like
        The simulation's folder.

    Returns
    -------
    ~stiscube.datasets.simulate.SimulatedDarks
        Its files and truth (a :class:`SimulatedMission` for a mission).

    Raises
    ------
    FileNotFoundError
        If ``out`` holds no ``simulation.json``.
    """
    out = Path(out)
    manifest = out / _sim._MANIFEST
    if not manifest.is_file():
        msg = f"{out} holds no simulation (no {_sim._MANIFEST}); run simulate_darks first"
        raise FileNotFoundError(msg)
    record = json.loads(manifest.read_text())
    values: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in record["physics"].items()
    }
    physics = _sim.DarkPhysics(**values)
    fields: dict[str, Any] = {
        "out": out,
        "periods": AnnealTable.read(out / _sim._TABLE),
        "files": {int(k): tuple(out / f for f in v) for k, v in record["files"].items()},
        "truth_paths": {int(k): out / v for k, v in record["truth"].items()},
        "shape": tuple(record["shape"]),
        "seed": int(record["seed"]),
        "physics": physics,
    }
    if "mission" in record:  # written by simulate_mission
        return SimulatedMission(**fields, mission=_mission_from_dict(record["mission"]))
    return _sim.SimulatedDarks(**fields)


def _true_mean_rate(sim: Any) -> np.ndarray:
    """Each pixel's true mean rate at 18 deg C (e-/s) between two periods (after an anneal,
    before the next period's hot pixels): dark, hot pixels, mean flicker level."""
    rate = sim.dark + sim.hot_rate
    rate[sim.flicker_idx] += sim.flicker_amp * sim.flicker_duty
    return rate


def _period_edges(mission: MissionPhysics, seed: int) -> np.ndarray:
    """Start and end MJD of every period of the mission (whole seconds, seeded lengths)."""
    first, last = float(to_mjd(mission.start)), float(to_mjd(mission.end))
    rng = np.random.default_rng([seed, 1])
    n_max = int((last - first) / (mission.period_days * (1 - mission.period_jitter))) + 2
    jitter = rng.uniform(-mission.period_jitter, mission.period_jitter, n_max)
    seconds = np.rint(mission.period_days * (1 + jitter) * 86400.0)
    edges = first + np.concatenate([[0.0], np.cumsum(seconds)]) / 86400.0
    edges = np.append(edges[edges < last], last)
    if edges[-1] - edges[-2] < 0.5 * mission.period_days:  # no stub at the end
        edges = np.delete(edges, -2)
    return edges


def simulate_mission(
    out: str | os.PathLike[str],
    *,
    start: Any = None,
    end: Any = None,
    shape: Sequence[int] = _sim.FULL_SHAPE,
    seed: int = 0,
    physics: MissionPhysics | None = None,
    overwrite: bool = False,
) -> SimulatedMission:
    """Simulate the STIS CCD mission and write the darks of the periods in a date window.

    Parameters
    ----------
    out : path
        Output directory (empty or absent unless ``overwrite``).
    start, end : date, optional
        The window: the darks of every period overlapping ``[start, end)`` are written
        (default: the whole mission, ``physics.start`` to ``physics.end``; about 380
        periods of 40-60 darks, 8 MB each at full size, so choose a window).  The
        detector always evolves from the mission start: a period's darks and truth do
        not depend on the window.
    shape : (int, int)
        Frame shape; smaller than 1024 x 1024 is a simulated cut-out whose hot-pixel
        counts scale with its area.
    seed : int
        Seed; the detector's evolution, the period edges and each period's darks come from
        separate streams derived from it.
    physics : MissionPhysics, optional
        The time-dependent physics (default: the published record).
    overwrite : bool
        Replace a previous simulation in ``out``.

    Returns
    -------
    SimulatedMission
        The files and truth of the written periods (numbered from 0 at the mission
        start), and ``anneals``, the truth of every period from the mission start to
        the window's end.

    Raises
    ------
    TypeError, ValueError
        For a parameter of the wrong type or value, or a window holding no period.
    FileExistsError
        If ``out`` is not empty and ``overwrite`` is false.
    """
    from astropy.table import Table

    mission = physics or MissionPhysics()
    instance_of(mission, "physics", MissionPhysics)
    ny, nx = as_shape2(shape, "shape", max=_sim.FULL_SHAPE)
    seed = as_int(seed, "seed", min=0)
    first, last = float(to_mjd(mission.start)), float(to_mjd(mission.end))
    lo = first if start is None else float(to_mjd(start))
    hi = last if end is None else float(to_mjd(end))
    if not (lo < hi and lo < last and hi > first):
        msg = (
            f"the window start={start!r}, end={end!r} holds no period of the mission "
            f"({mission.start} to {mission.end})"
        )
        raise ValueError(msg)
    edges = _period_edges(mission, seed)
    _sim._check_fit(mission.frames_per_period[1], float(np.diff(edges).min()), mission.darks)
    out = Path(out)
    _sim._prepare_out(out, overwrite=overwrite)
    (out / _sim._TRUTH_DIR).mkdir(exist_ok=True)

    area = ny * nx / _sim._FULL_PIXELS
    physics0 = dataclasses.replace(
        mission.at(first), initial_hot_fraction=mission.initial_hot / _sim._FULL_PIXELS
    )
    sim = _sim._Simulator(np.random.default_rng([seed, 0]), physics0, (ny, nx))
    sim.permanent |= sim.hot_rate > 0  # the hot pixels of the mission start are old ones
    rows: list[dict[str, Any]] = []
    files: dict[int, tuple[Path, ...]] = {}
    truth_paths: dict[int, Path] = {}
    periods: list[AnnealPeriod] = []
    for number, (a, b) in enumerate(itertools.pairwise(edges)):
        a, b = float(a), float(b)
        if a >= hi:  # the truth table ends with the window
            break
        sim.physics = mission.at(a)
        nan = float("nan")
        counts = (
            sim.anneal()
            if number > 0
            else {"n_new": 0, "n_new_healed": 0, "n_old": 0, "n_old_healed": 0}
        )
        n_hot = int((_true_mean_rate(sim) > HOT_LEVEL).sum())
        sim.create_hot(a, b)
        written = a < hi and b > lo
        n_frames = 0
        if written:
            rng = np.random.default_rng([seed, 2, number])
            n_frames = int(
                rng.integers(mission.frames_per_period[0], mission.frames_per_period[1] + 1)
            )
            frames = sim.schedule(number, a, b, n_frames, rng)
            paths, truth = sim.run_period(number, a, b, frames, out, seed, rng, create_hot=False)
            truth.attrs["side"] = 2 if a >= mission.side2_start else 1
            truth_paths[number] = out / _sim._TRUTH_DIR / f"period_{number:04d}.nc"
            _sim._write_truth(truth, truth_paths[number])
            files[number] = tuple(paths)
            periods.append(
                AnnealPeriod(
                    number=number,
                    start_mjd=a,
                    end_mjd=b,
                    num=len(paths),
                    exposure_time=format_exposure_mix(frames["exptime"]),
                    darks=tuple(frames["file_rootnames"]),
                )
            )
            logger.info(
                "simulated mission period %d: %d darks, %s to %s",
                number,
                len(paths),
                describe_mjd(a),
                describe_mjd(b),
            )
        rows.append(
            {
                "number": number,
                "start_mjd": a,
                "end_mjd": b,
                "side": 2 if a >= mission.side2_start else 1,
                "written": written,
                "n_frames": n_frames,
                "dark_rate": sim.physics.dark_rate,
                "readnoise": sim.physics.readnoise,
                "heal_fraction": sim.physics.heal_fraction if number > 0 else nan,
                **counts,
                "repair_fraction": counts["n_new_healed"] / counts["n_new"]
                if counts["n_new"]
                else nan,
                "old_still_hot_fraction": 1 - counts["n_old_healed"] / counts["n_old"]
                if counts["n_old"]
                else nan,
                "n_hot_post_anneal": n_hot,
                "n_hot_post_anneal_full": n_hot / area,
            }
        )
    table = Table(rows=rows, names=list(ANNEAL_TRUTH_COLUMNS))
    for name, text in ANNEAL_TRUTH_COLUMNS.items():
        table[name].description = text
    table.meta = {
        "simulated": True,
        "seed": seed,
        "shape": [ny, nx],
        "hot_level": HOT_LEVEL,
        "source": "stiscube.datasets.simulate_mission",
    }
    table.write(out / _sim._TRUTH_DIR / _ANNEALS, format="ascii.ecsv", overwrite=True)
    meta = {
        "simulated": True,
        "source": "stiscube.datasets.simulate_mission",
        "seed": seed,
        "description": "Simulated STIS CCD mission periods; not a real STScI schedule.",
    }
    anneal_table = AnnealTable(periods, meta=meta, source=str(out / _sim._TABLE))
    anneal_table.write(out / _sim._TABLE, overwrite=True)
    result = SimulatedMission(
        out=out,
        periods=anneal_table,
        files=files,
        truth_paths=truth_paths,
        shape=(ny, nx),
        seed=seed,
        physics=mission.darks,
        mission=mission,
    )
    _sim._write_manifest(result, out / _sim._MANIFEST, mission=mission.to_dict())
    return result
