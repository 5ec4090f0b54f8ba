"""Seeded synthetic STIS CCD dark frames over a sequence of anneal periods, with their truth.

:func:`simulate_darks` writes, into one directory:

- ``<rootname>_flt.fits`` — one file per dark (or per ``imsets_per_file`` darks, as the
  CR-SPLIT/repeat association files of early periods), shaped like a calibrated STIS CCD FLT with
  each keyword where calstis writes it and with the real file's card comments (both checked
  against a real file in the tests): in the primary header ``INSTRUME='STIS'``,
  ``DETECTOR='CCD'``, ``TARGNAME='DARK'``, a 9-character ``ROOTNAME``, ``TEXPSTRT``/``TEXPEND``
  (MJD), ``TEXPTIME`` (the total of the file's imsets), ``ATODGAIN``, ``READNSE``, ``CCDGAIN``,
  ``CCDAMP``, ``BINAXIS1/2``, ``SUBARRAY``, ``NRPTEXP``, ``CRSPLIT``, ``NEXTEND`` and the
  calibration switches; then per imset ``SCI`` (float32, counts; its header holds
  ``EXPSTART``/``EXPEND``/``EXPTIME``, ``EXPNAME`` and ``OCCDHTAV``), ``ERR`` (float32, counts)
  and ``DQ`` (int16) with ``EXTNAME``/``EXTVER``.  Every file says it is simulated
  (``SIMULATE = T``); frames smaller than the 1024 x 1024 CCD are labelled as simulated
  cut-outs (``SUBARRAY = T``, ``SIZAXIS1/2``, ``CENTERA1/2``, and a comment);
- ``anneal_periods.ecsv`` — the simulated anneal-period table (STScI columns, with
  ``meta: simulated: true``);
- ``truth/period_NNNN.nc`` — the truth of each period (netCDF, see below);
- ``simulation.json`` — the parameters, the seed and the list of files, which
  :func:`~stiscube.datasets.mission.load_simulation` reads back.

Physics (per pixel, per frame ``i`` of exposure time ``t_i`` in seconds)
-----------------------------------------------------------------------
True dark rate of pixel ``(row, col)`` in frame ``i`` at 18 deg C, electrons per second
(the frame's own rate is ``k_i R_i``, ``k_i`` the temperature factor below)::

    R_i = D + H * a_i + F * s_i

- ``D`` — normal dark current, log-normal about ``dark_rate`` (a few 1e-3 e-/s) with
  log-scatter ``dark_rate_scatter``; constant in time.
- ``H`` — hot-pixel excess rate, log-uniform in ``hot_rate_range`` (e-/s).  Hot pixels
  are created at ``hot_per_day`` per day per 1024 x 1024 pixels (Poisson; scaled by area
  for smaller frames), at onset times uniform over the period, and ``a_i`` is the
  fraction of exposure ``i`` after the onset (0 before, 1 after).  A fraction
  ``initial_hot_fraction`` of the pixels is hot from before the first period.  At each
  anneal (period boundary) each hot pixel created since the previous anneal heals
  (``H -> 0``) with probability ``heal_fraction``; one that survives an anneal joins the
  old population, which heals with probability ``old_heal_fraction`` (default 0: hot for
  good) at each later anneal, so, as on the real CCD, an old population grows slowly
  beneath the monthly crop of new hot pixels.
- Side-2 temperature (frames dated from ``side2_start``, 2001-07-23): ``OCCDHTAV`` is
  ``temperature + temperature_drift * sin(2 pi (t - period start) / period length)``
  plus a per-frame normal scatter ``temperature_scatter`` (deg C, written with 3
  decimals) and the whole rate of the frame is multiplied by
  ``k_i = 1 + temperature_coefficient * (OCCDHTAV - 18)``; Side-1 frames have
  ``OCCDHTAV = -1`` and ``k_i = 1``.  ``D``, ``H`` and ``F`` are rates at 18 deg C.  The
  default (18 C, no drift) gives ``k_i = 1``.
- ``F`` — flickering (two-level, random-telegraph) pixels: a fixed fraction
  ``flicker_fraction`` of pixels, never hot, with amplitude ``F`` log-uniform in
  ``flicker_amplitude_range`` (e-/s) and state ``s_i`` = 1 (high) with probability
  ``q`` (the pixel's duty cycle, uniform in ``flicker_duty_range``), independently
  from frame to frame.

Electrons collected, with read noise ``RN`` (e-, per pixel: ``readnoise`` times
``1 + readnoise_scatter * N(0, 1)``) and gain ``g = ATODGAIN`` (e-/count)::

    N_i   = Poisson(k_i * R_i * t_i) + RN * Normal(0, 1) + C_i
    SCI_i = N_i / g                                              [counts, float32]
    ERR_i = sqrt(RN**2 + max(g * SCI_i, 0)) / g                  [counts, float32]

The error model is the calstis one (``sigma = sqrt(signal * gain + readnoise**2)``
electrons) evaluated from the recorded ``SCI`` like the pipeline does, with each
pixel's true ``RN``; so ``ERR**2 = RN**2 + signal`` in electrons holds exactly and the
``readnoise`` property recovers the truth.  (On real data calstis uses one read noise
per amplifier, which is then what the property returns.)

- Cosmic rays ``C_i``: each pixel is hit with probability ``cr_rate * t_i`` per
  exposure; a hit deposits a log-normal number of electrons (median
  ``cr_electrons_median``, log-scatter ``cr_electrons_sigma``, floored at
  ``cr_electrons_min``), in that one pixel only (no charge-spread tails).  Cosmic rays
  are **not** flagged in DQ: a single FLT dark has no CR flags (calstis sets DQ 8192
  only when combining CR-split exposures); they are found by the per-pixel sigma
  clipping of :mod:`stiscube.properties.compute` and recorded in the truth.
- NaN samples: a fraction ``nan_fraction`` of samples has ``SCI = ERR = NaN``.
- Lost-data samples: a fraction ``fill_fraction`` of samples is fill (``SCI = 0``,
  ``ERR = RN/g``) flagged ``DQ = 2``, which the default DQ mask excludes.
- Static blemishes: a fraction ``blemish_fraction`` of pixels carries ``DQ = 1024``
  (small blemish) in every frame; the default mask does *not* exclude it.
- NaN, lost-data and cosmic-ray samples never coincide.

Exposures: ``frames_per_period`` darks per period spread evenly over it (one file per
slot, at a random time inside the slot; the imsets of one file back to back), of
``exptime`` seconds (1100 s, the long darks of the reference files); with
``short_fraction > 0``, ``round(short_fraction * n_files)`` files of ``short_exptime``
seconds (the monitor's 60-s darks), which a period must then select out.

Truth file of one period (``truth/period_NNNN.nc``), dims ``frame, row, col``
------------------------------------------------------------------------------
``dark_rate`` (``D``, e-/s), ``readnoise`` (``RN``, e-), ``hot_rate`` (``H`` of the
pixels hot at any time in the period, else 0, e-/s), ``hot_onset_mjd`` (onset, ``-inf``
for pixels hot from before the simulation, NaN if not hot), ``flicker_amplitude`` (``F``,
e-/s), ``flicker_duty`` (``q``), ``events`` (frame, row, col; bits 1 = cosmic ray, 2 = NaN
sample, 4 = lost-data sample, 8 = flicker high state; the charge of each cosmic ray is
not stored), ``mean_rate`` (the exposure-weighted mean true rate at 18 deg C over all
frames of the period, ``sum_i R_i t_i / sum_i t_i``, e-/s), ``mean_rate_observed`` (the
same at each frame's temperature, ``sum_i k_i R_i t_i / sum_i t_i``), ``n_cosmic_rays``,
``n_nan``, ``n_fill`` (counts per pixel), ``blemish`` (bool), and per-frame coordinates
``rootname`` (the frame identifier: ``rootname`` or ``rootname[k]``), ``exptime`` (s),
``start_mjd``, ``end_mjd``, ``gain``, ``occdhtav`` and ``dark_scale`` (``k_i``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from stiscube.io.anneals import AnnealPeriod, AnnealTable, format_exposure_mix
from stiscube.schema import TRUTH_VARIABLES
from stores.common.dates import describe_mjd, mjd_to_datetime64, to_mjd
from stores.common.validate import (
    as_float,
    as_int,
    as_interval,
    as_shape2,
    check_fields,
    instance_of,
    one_of,
)
from stores.storage.fs import atomic_path, atomic_write

__all__ = [
    "EVENT_COSMIC_RAY",
    "EVENT_FILL",
    "EVENT_FLICKER_HIGH",
    "EVENT_NAN",
    "FULL_SHAPE",
    "DarkPhysics",
    "SimulatedDarks",
    "simulate_darks",
    "simulate_stack",
]

logger = logging.getLogger(__name__)

#: Shape (rows, columns) of a full STIS CCD FLT frame.
FULL_SHAPE: tuple[int, int] = (1024, 1024)
#: Bits of the truth ``events`` array.
EVENT_COSMIC_RAY, EVENT_NAN, EVENT_FILL, EVENT_FLICKER_HIGH = 1, 2, 4, 8

_DQ_FILL = 2
_DQ_SMALL_BLEMISH = 1024
_FULL_PIXELS = FULL_SHAPE[0] * FULL_SHAPE[1]
_MANIFEST = "simulation.json"
_TABLE = "anneal_periods.ecsv"
_TRUTH_DIR = "truth"
_SECONDS_PER_DAY = 86400.0
_MAX_FRAMES = 36**3  # frame numbers of a period: 3 base-36 digits of the rootname
#: The simulator's own date of the switch to STIS Side-2 electronics, 2001-07-23 (MJD; the
#: published date, see /work/shared/real/README.md).  Deliberately not the library's
#: ``stiscube.io.darks.SIDE2_START_MJD``: the tests check the library against this one.
SIDE2_START = 52113.0


@dataclass(frozen=True)
class DarkPhysics:
    """Physical parameters of the simulated darks (the formulas: the module docstring).

    Rates are in e-/s, times in seconds, charges in electrons, fractions in [0, 1].

    Parameters
    ----------
    dark_rate, dark_rate_scatter : float
        Median normal dark rate ``D`` and its log-scatter.
    readnoise, readnoise_scatter : float
        Read noise (e-) and its relative per-pixel scatter.
    ccdgain, atodgain : int, float
        Commanded gain (1, 2, 4, 8) and the gain written as ``ATODGAIN`` (e-/count).
    exptime, short_exptime, short_fraction : float
        Exposure time of the darks, of the short ones, and the fraction of short ones.
    hot_per_day, initial_hot_fraction : float
        Hot pixels created per day per 1024 x 1024 pixels; fraction hot from the start.
    hot_rate_range : (float, float)
        Bounds of the log-uniform hot-pixel excess rate ``H``.
    heal_fraction, old_heal_fraction : float
        Probability that an anneal heals a hot pixel created in the period before it,
        and one that survived an anneal already.
    flicker_fraction : float
        Fraction of flickering (two-level) pixels.
    flicker_amplitude_range, flicker_duty_range : (float, float)
        Bounds of their log-uniform amplitude ``F`` and uniform duty cycle ``q``.
    cr_rate : float
        Cosmic-ray hits per pixel per second.
    cr_electrons_median, cr_electrons_sigma, cr_electrons_min : float
        Log-normal charge of a hit: median, log-scatter, floor.
    nan_fraction, fill_fraction : float
        Fractions of NaN samples and of lost-data (fill) samples.
    blemish_fraction : float
        Fraction of pixels with the static DQ 1024 blemish.
    ccdamp : str
        ``CCDAMP`` written.
    temperature, temperature_drift, temperature_scatter : float
        Side-2 ``OCCDHTAV`` (deg C): mean, drift amplitude over a period, per-frame scatter.
    temperature_coefficient : float
        Fractional dark-rate change per deg C.
    side2_start : float
        MJD from which frames are Side-2.
    imsets_per_file : int
        Frames per FITS file (1 ... 8).
    """

    dark_rate: float = 0.004
    dark_rate_scatter: float = 0.3
    readnoise: float = 6.0
    readnoise_scatter: float = 0.02
    ccdgain: int = 1
    atodgain: float = 1.0
    exptime: float = 1100.0
    short_exptime: float = 60.0
    short_fraction: float = 0.0
    hot_per_day: float = 100.0
    initial_hot_fraction: float = 0.002
    hot_rate_range: tuple[float, float] = (0.1, 10.0)
    heal_fraction: float = 0.8
    flicker_fraction: float = 0.002
    flicker_amplitude_range: tuple[float, float] = (0.05, 1.0)
    flicker_duty_range: tuple[float, float] = (0.3, 0.7)
    cr_rate: float = 2e-5
    cr_electrons_median: float = 1000.0
    cr_electrons_sigma: float = 0.5
    cr_electrons_min: float = 300.0
    nan_fraction: float = 1e-4
    fill_fraction: float = 1e-4
    blemish_fraction: float = 5e-4
    ccdamp: str = "D"
    temperature: float = 18.0
    temperature_drift: float = 0.0
    temperature_coefficient: float = 0.07
    side2_start: float = SIDE2_START
    imsets_per_file: int = 1
    old_heal_fraction: float = 0.0
    temperature_scatter: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self, _PHYSICS_RULES)
        if self.cr_rate * self.exptime > 0.5:
            msg = f"cr_rate * exptime must be <= 0.5 (a hit probability), got {self.cr_rate!r}"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-friendly dict."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def _positive_range(value: Any, name: str, *, max: float | None = None) -> tuple[float, float]:
    """``(low, high)`` with ``0 < low <= high`` (``<= max``)."""
    low, high = as_interval(value, name, strict=False, max=max)
    as_float(low, f"{name}[0]", min=0, strict_min=True)
    return low, high


_POSITIVE = partial(as_float, min=0, strict_min=True)
_NON_NEGATIVE = partial(as_float, min=0)
_FRACTION = partial(as_float, min=0, max=1)
#: The rule of each DarkPhysics field, checked in this order.
_PHYSICS_RULES: dict[str, Any] = {
    **dict.fromkeys(("dark_rate", "readnoise", "atodgain", "exptime", "short_exptime"), _POSITIVE),
    **dict.fromkeys(
        (
            "dark_rate_scatter",
            "readnoise_scatter",
            "hot_per_day",
            "cr_rate",
            "cr_electrons_sigma",
            "cr_electrons_min",
            "cr_electrons_median",
        ),
        _NON_NEGATIVE,
    ),
    **dict.fromkeys(
        (
            "short_fraction",
            "initial_hot_fraction",
            "heal_fraction",
            "flicker_fraction",
            "nan_fraction",
            "fill_fraction",
            "blemish_fraction",
            "old_heal_fraction",
        ),
        _FRACTION,
    ),
    "ccdgain": lambda value, name: one_of(as_int(value, name), name, (1, 2, 4, 8)),
    "hot_rate_range": _positive_range,
    "flicker_amplitude_range": _positive_range,
    "flicker_duty_range": partial(_positive_range, max=1),
    "ccdamp": partial(one_of, choices=("A", "B", "C", "D")),
    "temperature": partial(as_float, min=-20, max=40, units="deg C"),
    "temperature_drift": partial(as_float, min=0, max=10, units="deg C"),
    "temperature_scatter": partial(as_float, min=0, max=5, units="deg C"),
    "temperature_coefficient": partial(
        as_float, min=0, max=0.5, strict_max=True, units="per deg C"
    ),
    "side2_start": as_float,
    "imsets_per_file": partial(as_int, min=1, max=8),
}


@dataclass(frozen=True)
class SimulatedDarks:
    """What :func:`simulate_darks` wrote.

    Parameters
    ----------
    out : pathlib.Path
        The output directory.
    periods : AnnealTable
        The simulated anneal periods (``periods.simulated`` is True).
    files : dict
        Period number -> tuple of FITS paths (in time order).
    truth_paths : dict
        Period number -> path of the period's truth netCDF file.
    shape : tuple of int
        Frame shape (rows, columns).
    seed : int
        The seed of the simulation.
    physics : DarkPhysics
        The physical parameters.
    """

    out: Path
    periods: AnnealTable
    files: dict[int, tuple[Path, ...]]
    truth_paths: dict[int, Path]
    shape: tuple[int, int]
    seed: int
    physics: DarkPhysics = field(default_factory=DarkPhysics)

    @property
    def all_files(self) -> list[Path]:
        """Every FITS file, period by period, in time order."""
        return [f for number in sorted(self.files) for f in self.files[number]]

    def truth(self, number: int) -> xr.Dataset:
        """The truth of one period, loaded in memory (see the module docstring).

        Parameters
        ----------
        number : int
            The period.

        Returns
        -------
        xarray.Dataset
            Its truth.
        """
        if number not in self.truth_paths:
            msg = f"no simulated period {number}; periods are {sorted(self.truth_paths)}"
            raise KeyError(msg)
        with xr.open_dataset(self.truth_paths[number], engine="h5netcdf") as ds:
            return ds.load()


def _rootname(period: int, frame: int) -> str:
    """9-character lowercase rootname ``osm<pp><fff>q`` (``sm`` = simulated; base 36, the
    callers' checks keep ``period < 36**2`` and ``frame < 36**3``)."""
    digits = np.base_repr(period, 36).rjust(2, "0") + np.base_repr(frame, 36).rjust(3, "0")
    return f"osm{digits.lower()}q"


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int) -> np.ndarray:
    low, high = np.log(bounds[0]), np.log(bounds[1])
    return np.exp(rng.uniform(low, high, size))


def simulate_darks(
    out: str | os.PathLike[str],
    *,
    n_periods: int = 3,
    frames_per_period: int = 20,
    shape: Sequence[int] = FULL_SHAPE,
    seed: int = 0,
    start: Any = "2020-01-01",
    period_days: float = 30.0,
    period_jitter: float = 0.1,
    first_anneal: int = 1,
    physics: DarkPhysics | None = None,
    overwrite: bool = False,
) -> SimulatedDarks:
    """Write seeded synthetic STIS CCD darks over ``n_periods`` anneal periods, with truth.

    Parameters
    ----------
    out : path
        Output directory; created if needed.  It must be empty or absent unless
        ``overwrite`` is true (then files of a previous simulation are removed first).
    n_periods : int
        Number of anneal periods.
    frames_per_period : int
        Darks per period.
    shape : (int, int)
        Frame shape (rows, columns); 1024 x 1024 is a full frame, smaller shapes are
        simulated cut-outs centred on the CCD (labelled as such in the headers).
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same call gives the same files.
    start : date
        Start of the first period (any form of :func:`stores.common.dates.to_mjd`).  The
        default date is arbitrary: the schedule is simulated and labelled so.
    period_days : float
        Mean period length in days.
    period_jitter : float
        Period lengths are ``period_days * (1 + U(-period_jitter, period_jitter))``,
        rounded to whole seconds.
    first_anneal : int
        Number of the first period (0 <= first_anneal, last number <= 1295).
    physics : DarkPhysics, optional
        Physical parameters (default ``DarkPhysics()``).
    overwrite : bool
        Allow writing into a non-empty directory.

    Returns
    -------
    SimulatedDarks
        Paths of the files, the anneal table and the truth files.

    Raises
    ------
    TypeError, ValueError
        For a parameter of the wrong type or value (the message names the parameter).
    FileExistsError
        If ``out`` is not empty and ``overwrite`` is false.
    """
    n_periods = as_int(n_periods, "n_periods", min=1)
    frames_per_period = as_int(frames_per_period, "frames_per_period", min=1, max=_MAX_FRAMES)
    ny, nx = as_shape2(shape, "shape", max=FULL_SHAPE)
    period_days = as_float(period_days, "period_days", min=0, strict_min=True)
    period_jitter = as_float(period_jitter, "period_jitter", min=0, max=1, strict_max=True)
    # period numbers are two base-36 digits of the rootnames: the last one <= 1295
    first_anneal = as_int(first_anneal, "first_anneal", min=0, max=36**2 - n_periods)
    physics = _physics(physics)
    _check_fit(frames_per_period, period_days * (1 - period_jitter), physics)
    start_mjd = float(to_mjd(start))
    out = Path(out)
    _prepare_out(out, overwrite=overwrite)

    rng = np.random.default_rng(seed)
    sim = _Simulator(rng, physics, (ny, nx))
    durations = np.rint(
        period_days * (1 + rng.uniform(-period_jitter, period_jitter, n_periods)) * _SECONDS_PER_DAY
    )
    edges = start_mjd + np.concatenate([[0.0], np.cumsum(durations)]) / _SECONDS_PER_DAY
    files: dict[int, tuple[Path, ...]] = {}
    truth_paths: dict[int, Path] = {}
    periods: list[AnnealPeriod] = []
    (out / _TRUTH_DIR).mkdir(exist_ok=True)
    for k in range(n_periods):
        number = first_anneal + k
        if k > 0:
            sim.anneal()
        frames = sim.schedule(number, edges[k], edges[k + 1], frames_per_period)
        paths, truth = sim.run_period(number, edges[k], edges[k + 1], frames, out, seed)
        truth_path = out / _TRUTH_DIR / f"period_{number:04d}.nc"
        _write_truth(truth, truth_path)
        files[number] = tuple(paths)
        truth_paths[number] = truth_path
        periods.append(
            AnnealPeriod(
                number=number,
                start_mjd=float(edges[k]),
                end_mjd=float(edges[k + 1]),
                num=len(paths),
                exposure_time=format_exposure_mix(frames["exptime"]),
                darks=tuple(frames["file_rootnames"]),
            )
        )
        logger.info(
            "simulated period %d: %d darks, %s to %s",
            number,
            len(paths),
            describe_mjd(edges[k]),
            describe_mjd(edges[k + 1]),
        )
    meta = {
        "simulated": True,
        "source": "stiscube.simulate.simulate_darks",
        "seed": int(seed),
        "description": "Simulated STIS CCD anneal periods; not a real STScI schedule.",
    }
    table = AnnealTable(periods, meta=meta, source=str(out / _TABLE))
    table.write(out / _TABLE, overwrite=True)
    result = SimulatedDarks(
        out=out,
        periods=table,
        files=files,
        truth_paths=truth_paths,
        shape=(ny, nx),
        seed=int(seed),
        physics=physics,
    )
    _write_manifest(result, out / _MANIFEST)
    return result


def simulate_stack(
    *,
    n_frames: int = 24,
    shape: Sequence[int] = (64, 64),
    seed: int = 0,
    start: Any = "2020-01-01",
    period_days: float = 30.0,
    physics: DarkPhysics | None = None,
) -> tuple[xr.Dataset, xr.Dataset]:
    """One simulated anneal period in memory: the stack of darks and its truth.

    The same physics as :func:`simulate_darks` (first period, numbered 1), without
    files; convenient for tests and for the numpy kernels.

    Parameters
    ----------
    n_frames : int
        Darks in the period.
    shape, seed, start, period_days, physics
        As for :func:`simulate_darks`.

    Returns
    -------
    stack : xarray.Dataset
        ``sci`` (float32, count), ``err`` (float32, count), ``dq`` (int16) with dims
        ``(frame, row, col)`` and frame coordinates ``rootname``, ``exptime`` (s),
        ``start_mjd``, ``end_mjd`` (d), ``gain`` (e-/count): the layout of
        :func:`stiscube.io.darks.open_darks`, with numpy instead of dask arrays.
    truth : xarray.Dataset
        The truth of the period (see the module docstring).
    """
    n_frames = as_int(n_frames, "n_frames", min=1, max=_MAX_FRAMES)
    ny, nx = as_shape2(shape, "shape", max=FULL_SHAPE)
    period_days = as_float(period_days, "period_days", min=0, strict_min=True)
    physics = _physics(physics)
    _check_fit(n_frames, period_days, physics)
    start_mjd = float(to_mjd(start))
    end_mjd = start_mjd + float(np.rint(period_days * _SECONDS_PER_DAY)) / _SECONDS_PER_DAY
    rng = np.random.default_rng(seed)
    sim = _Simulator(rng, physics, (ny, nx))
    frames = sim.schedule(1, start_mjd, end_mjd, n_frames)
    sci = np.empty((n_frames, ny, nx), dtype=np.float32)
    err = np.empty_like(sci)
    dq = np.empty((n_frames, ny, nx), dtype=np.int16)

    def keep(i: int, s: np.ndarray, e: np.ndarray, d: np.ndarray) -> None:
        sci[i], err[i], dq[i] = s, e, d

    truth = sim.generate_period(1, start_mjd, end_mjd, frames, keep)
    dims = ("frame", "row", "col")
    stack = xr.Dataset(
        {
            "sci": (dims, sci, {"units": "count"}),
            "err": (dims, err, {"units": "count"}),
            "dq": (dims, dq, {"units": "1"}),
        },
        coords={
            "frame": np.arange(n_frames),
            "row": np.arange(ny),
            "col": np.arange(nx),
            "rootname": ("frame", np.asarray(frames["rootname"], dtype=str)),
            "exptime": ("frame", np.asarray(frames["exptime"], dtype=np.float64), {"units": "s"}),
            "start_mjd": ("frame", np.asarray(frames["start_mjd"]), {"units": "d"}),
            "end_mjd": ("frame", np.asarray(frames["end_mjd"]), {"units": "d"}),
            "gain": ("frame", np.full(n_frames, physics.atodgain), {"units": "electron / count"}),
            "occdhtav": ("frame", np.where(frames["occdhtav"] == -1, np.nan, frames["occdhtav"])),
            "dark_scale": ("frame", np.asarray(frames["dark_scale"], dtype=np.float64)),
        },
        attrs={"title": "simulated stack of STIS CCD darks (in memory)", "simulated": 1},
    )
    return stack, truth


def _check_fit(n: int, shortest_days: float, physics: DarkPhysics) -> None:
    """Refuse schedules whose darks cannot fit in the (shortest possible) period."""
    longest = max(physics.exptime, physics.short_exptime) / _SECONDS_PER_DAY
    if longest >= 0.8 * shortest_days / n:
        msg = (
            f"{n} darks of up to {longest * _SECONDS_PER_DAY:g} s do not fit in a period of "
            f"{shortest_days:.3f} days; use fewer frames_per_period or longer periods"
        )
        raise ValueError(msg)


def _physics(physics: DarkPhysics | None) -> DarkPhysics:
    """*physics*, or ``DarkPhysics()`` for None (TypeError for anything else)."""
    if physics is None:
        return DarkPhysics()
    return instance_of(physics, "physics", DarkPhysics, what="a DarkPhysics")


def _prepare_out(out: Path, *, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        msg = f"out {out} exists and is not a directory"
        raise NotADirectoryError(msg)
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            msg = f"out {out} is not empty; pass overwrite=True to replace a previous simulation"
            raise FileExistsError(msg)
        for path in out.glob("*_flt.fits"):
            path.unlink()
        for name in (_MANIFEST, _TABLE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / _TRUTH_DIR, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _write_manifest(
    result: SimulatedDarks, path: Path, *, mission: dict[str, Any] | None = None
) -> None:
    from stores.common.provenance import provenance

    record = {
        "format": "stiscube.simulate",
        **provenance(),  # software, software_versions, created
        "simulated": True,
        "seed": result.seed,
        "shape": list(result.shape),
        "physics": result.physics.to_dict(),
        **({} if mission is None else {"mission": mission}),
        "files": {str(k): [p.name for p in v] for k, v in sorted(result.files.items())},
        "truth": {
            str(k): str(p.relative_to(result.out)) for k, p in sorted(result.truth_paths.items())
        },
    }
    atomic_write(path, json.dumps(record, indent=2))


def _write_truth(truth: xr.Dataset, path: Path) -> None:
    encoding = {
        name: {"zlib": True, "complevel": 1}
        for name, var in truth.data_vars.items()
        if var.ndim >= 2
    }
    with atomic_path(path) as tmp:
        truth.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)


class _Simulator:
    """State of the detector (static pixel maps, hot-pixel population) across periods."""

    def __init__(self, rng: np.random.Generator, physics: DarkPhysics, shape: tuple[int, int]):
        self.rng = rng
        self.physics = p = physics
        self.shape = shape
        self.npix = npix = shape[0] * shape[1]
        self.area = npix / _FULL_PIXELS
        # pixel maps relative to the median dark rate and the nominal read noise, so that a
        # mission can change both over time (set_physics)
        self.dark_shape = np.exp(p.dark_rate_scatter * rng.standard_normal(npix))
        self.readnoise_shape = np.maximum(1 + p.readnoise_scatter * rng.standard_normal(npix), 0.1)
        self.blemish = rng.random(npix) < p.blemish_fraction
        n_flicker = rng.binomial(npix, p.flicker_fraction)
        self.flicker_idx = np.sort(rng.choice(npix, n_flicker, replace=False))
        self.flicker_amp = _log_uniform(rng, p.flicker_amplitude_range, n_flicker)
        self.flicker_duty = rng.uniform(*p.flicker_duty_range, n_flicker)
        self.eligible = np.ones(npix, dtype=bool)  # may become hot: not flickering, not hot
        self.eligible[self.flicker_idx] = False
        self.hot_rate = np.zeros(npix)
        self.permanent = np.zeros(npix, dtype=bool)  # survived an anneal: never heals
        self.hot_onset = np.full(npix, np.nan)
        n_initial = min(rng.binomial(npix, p.initial_hot_fraction), int(self.eligible.sum()))
        self._make_hot(n_initial, onset=lambda n: np.full(n, -np.inf))

    @property
    def dark(self) -> np.ndarray:
        """Normal dark rate ``D`` of each pixel (e-/s, at 18 deg C)."""
        return self.physics.dark_rate * self.dark_shape

    @property
    def readnoise(self) -> np.ndarray:
        """Read noise ``RN`` of each pixel (e-)."""
        return self.physics.readnoise * self.readnoise_shape

    def _make_hot(self, n: int, onset: Any) -> None:
        if n == 0:
            return
        candidates = np.flatnonzero(self.eligible)
        n = min(n, candidates.size)
        idx = np.sort(self.rng.choice(candidates, n, replace=False))
        self.hot_rate[idx] = _log_uniform(self.rng, self.physics.hot_rate_range, n)
        self.hot_onset[idx] = onset(n)
        self.eligible[idx] = False

    def anneal(self) -> dict[str, int]:
        """Heal each hot pixel made since the last anneal with probability
        ``heal_fraction`` (the survivors join the old population) and each old hot pixel
        with probability ``old_heal_fraction``.

        Returns the counts ``n_new``, ``n_new_healed``, ``n_old``, ``n_old_healed``.
        """
        p = self.physics
        new = np.flatnonzero((self.hot_rate > 0) & ~self.permanent)
        heals = self.rng.random(new.size) < p.heal_fraction
        old = np.flatnonzero(self.permanent)
        old_heals = np.zeros(old.size, dtype=bool)
        if p.old_heal_fraction > 0:
            old_heals = self.rng.random(old.size) < p.old_heal_fraction
        self.permanent[new[~heals]] = True
        healed = np.concatenate([new[heals], old[old_heals]])
        self.permanent[healed] = False
        self.hot_rate[healed] = 0.0
        self.hot_onset[healed] = np.nan
        self.eligible[healed] = True
        return {
            "n_new": int(new.size),
            "n_new_healed": int(heals.sum()),
            "n_old": int(old.size),
            "n_old_healed": int(old_heals.sum()),
        }

    def create_hot(self, start: float, end: float) -> None:
        """Create the hot pixels of a period from ``start`` to ``end`` (MJD): Poisson in
        number, onsets uniform over the period."""
        n_new = self.rng.poisson(self.physics.hot_per_day * self.area * (end - start))
        self._make_hot(n_new, onset=lambda n: self.rng.uniform(start, end, n))

    def schedule(
        self,
        number: int,
        start: float,
        end: float,
        n: int,
        rng: np.random.Generator | None = None,
    ) -> dict[str, Any]:
        """Exposure times, start/end MJD, files, imsets, names and temperatures of one
        period's darks (drawn from ``rng``, by default the simulator's own).

        With ``imsets_per_file = k`` the darks are written ``k`` per file, back to back
        (as CR-SPLIT/repeat exposures: one association rootname ``osm<pp><fff>0``, each
        imset with its own ``EXPNAME``); the files are spread over the period.
        """
        p, rng = self.physics, rng or self.rng
        k = p.imsets_per_file
        n_files = -(-n // k)
        file_exptime = np.full(n_files, p.exptime)
        n_short = round(p.short_fraction * n_files)
        file_exptime[rng.choice(n_files, n_short, replace=False)] = p.short_exptime
        file_of = np.arange(n) // k
        imset = np.arange(n) % k + 1
        exptime = file_exptime[file_of]
        gap = 30.0 / _SECONDS_PER_DAY  # between the imsets of one file
        file_length = k * (exptime.max() / _SECONDS_PER_DAY + gap)
        slot = (end - start) / n_files
        if file_length >= 0.8 * slot:
            msg = (
                f"{n} darks of up to {exptime.max():g} s do not fit in a period of "
                f"{end - start:.3f} days; use fewer frames_per_period"
            )
            raise ValueError(msg)
        offset = rng.uniform(0.05, 0.95 - file_length / slot, n_files)
        file_start = start + (np.arange(n_files) + offset) * slot
        begin = file_start[file_of] + (imset - 1) * (exptime / _SECONDS_PER_DAY + gap)
        if k == 1:
            file_root = [_rootname(number, j) for j in range(n_files)]
            frame_id = list(file_root)
        else:
            file_root = [_rootname(number, j)[:-1] + "0" for j in range(n_files)]
            frame_id = [f"{file_root[j]}[{m}]" for j, m in zip(file_of, imset, strict=True)]
        # Side-2 housing temperature: a drift of +-temperature_drift over the period.
        side2 = begin >= p.side2_start
        phase = 2 * np.pi * (begin - start) / (end - start)
        temp = p.temperature + p.temperature_drift * np.sin(phase)
        if p.temperature_scatter > 0:
            temp = temp + p.temperature_scatter * rng.standard_normal(n)
        occdhtav = np.where(side2, np.round(temp, 3), -1.0)
        scale = np.where(side2, 1 + p.temperature_coefficient * (occdhtav - 18.0), 1.0)
        return {
            "exptime": exptime,
            "start_mjd": begin,
            "end_mjd": begin + exptime / _SECONDS_PER_DAY,
            "rootname": frame_id,
            "file_rootname": [file_root[j] for j in file_of],
            "file_index": file_of,
            "imset": imset,
            "n_imsets": np.bincount(file_of)[file_of],
            "expname": [_rootname(number, i) for i in range(n)],
            "occdhtav": occdhtav,
            "dark_scale": scale,
            "file_rootnames": file_root,
        }

    def generate_period(
        self,
        number: int,
        start: float,
        end: float,
        frames: Mapping[str, Any],
        sink: Any,
        rng: np.random.Generator | None = None,
        *,
        create_hot: bool = True,
    ) -> xr.Dataset:
        """Create the period's new hot pixels (unless ``create_hot`` is false: already
        done by :meth:`create_hot`), then simulate each frame (random numbers from
        ``rng``, by default the simulator's own).

        Each frame's ``(i, sci, err, dq)`` (2-D arrays) is handed to ``sink``; the
        period's truth Dataset is returned.
        """
        p = self.physics
        if create_hot:
            self.create_hot(start, end)
        rng = rng or self.rng
        dark, readnoise = self.dark, self.readnoise
        hot_idx = np.flatnonzero(self.hot_rate > 0)
        ny, nx = self.shape
        n = len(frames["exptime"])
        gain = p.atodgain
        events = np.zeros((n, self.npix), dtype=np.uint8)
        rate_time = np.zeros(self.npix)  # sum_i R_i t_i (18 deg C)
        observed_time = np.zeros(self.npix)  # the same at each frame's temperature
        for i in range(n):
            t = float(frames["exptime"][i])
            t0, t1 = float(frames["start_mjd"][i]), float(frames["end_mjd"][i])
            rate = dark.copy()
            after = np.clip((t1 - self.hot_onset[hot_idx]) / (t1 - t0), 0.0, 1.0)
            rate[hot_idx] += self.hot_rate[hot_idx] * after
            high = rng.random(self.flicker_idx.size) < self.flicker_duty
            rate[self.flicker_idx[high]] += self.flicker_amp[high]
            events[i, self.flicker_idx[high]] |= EVENT_FLICKER_HIGH
            rate_time += rate * t  # at the reference temperature (18 deg C)
            scale = float(frames["dark_scale"][i]) if "dark_scale" in frames else 1.0
            rate *= scale  # Side-2: the rate at the frame's OCCDHTAV
            observed_time += rate * t
            electrons = rng.poisson(rate * t).astype(np.float64)
            electrons += readnoise * rng.standard_normal(self.npix)
            n_cr = rng.binomial(self.npix, p.cr_rate * t)
            n_nan = rng.binomial(self.npix, p.nan_fraction)
            n_fill = rng.binomial(self.npix, p.fill_fraction)
            chosen = rng.choice(self.npix, n_cr + n_nan + n_fill, replace=False)
            cr, nan, fill = np.split(chosen, [n_cr, n_cr + n_nan])
            deposit = p.cr_electrons_median * np.exp(
                p.cr_electrons_sigma * rng.standard_normal(n_cr)
            )
            electrons[cr] += np.maximum(deposit, p.cr_electrons_min)
            events[i, cr] |= EVENT_COSMIC_RAY
            events[i, nan] |= EVENT_NAN
            events[i, fill] |= EVENT_FILL
            sci = (electrons / gain).astype(np.float32)
            sci[fill] = 0.0
            signal = np.maximum(sci.astype(np.float64) * gain, 0.0)
            err = (np.sqrt(readnoise**2 + signal) / gain).astype(np.float32)
            sci[nan] = np.nan
            err[nan] = np.nan
            dq = np.zeros(self.npix, dtype=np.int16)
            dq[self.blemish] |= _DQ_SMALL_BLEMISH
            dq[fill] |= _DQ_FILL
            sink(i, sci.reshape(ny, nx), err.reshape(ny, nx), dq.reshape(ny, nx))
        return self._truth(number, start, end, frames, events, rate_time, hot_idx, observed_time)

    def run_period(
        self,
        number: int,
        start: float,
        end: float,
        frames: Mapping[str, Any],
        out: Path,
        seed: int,
        rng: np.random.Generator | None = None,
        *,
        create_hot: bool = True,
    ) -> tuple[list[Path], xr.Dataset]:
        """Simulate one period and write its frames as FLT files (``imsets_per_file`` each)."""
        paths: list[Path] = []
        pending: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        n = len(frames["exptime"])

        def write(i: int, sci: np.ndarray, err: np.ndarray, dq: np.ndarray) -> None:
            pending.append((i, sci, err, dq))
            last_of_file = i == n - 1 or frames["file_index"][i + 1] != frames["file_index"][i]
            if not last_of_file:
                return
            rootname = frames["file_rootname"][i]
            path = out / f"{rootname}_flt.fits"
            _write_flt(
                path,
                [
                    _ImsetData(
                        sci=s_,
                        err=e_,
                        dq=d_,
                        exptime=float(frames["exptime"][j]),
                        start_mjd=float(frames["start_mjd"][j]),
                        end_mjd=float(frames["end_mjd"][j]),
                        expname=frames["expname"][j],
                        occdhtav=float(frames["occdhtav"][j]),
                    )
                    for j, s_, e_, d_ in pending
                ],
                rootname=rootname,
                physics=self.physics,
                period=number,
                seed=seed,
                nominal_readnoise=self.physics.readnoise,
            )
            pending.clear()
            paths.append(path)

        truth = self.generate_period(number, start, end, frames, write, rng, create_hot=create_hot)
        return paths, truth

    def _truth(
        self,
        number: int,
        start: float,
        end: float,
        frames: Mapping[str, Any],
        events: np.ndarray,
        rate_time: np.ndarray,
        hot_idx: np.ndarray,
        observed_time: np.ndarray | None = None,
    ) -> xr.Dataset:
        ny, nx = self.shape
        n = events.shape[0]
        grid = (ny, nx)
        hot_rate = np.zeros(self.npix)
        hot_rate[hot_idx] = self.hot_rate[hot_idx]
        onset = np.full(self.npix, np.nan)
        onset[hot_idx] = self.hot_onset[hot_idx]
        flick_amp = np.zeros(self.npix)
        flick_amp[self.flicker_idx] = self.flicker_amp
        duty = np.zeros(self.npix)
        duty[self.flicker_idx] = self.flicker_duty
        exptime = np.asarray(frames["exptime"], dtype=np.float64)

        def img(values: np.ndarray) -> np.ndarray:
            return values.reshape(grid)

        dims = ("row", "col")
        ds = xr.Dataset(
            {
                "dark_rate": (dims, img(self.dark)),
                "readnoise": (dims, img(self.readnoise)),
                "hot_rate": (dims, img(hot_rate)),
                "hot_onset_mjd": (dims, img(onset)),
                "flicker_amplitude": (dims, img(flick_amp)),
                "flicker_duty": (dims, img(duty)),
                "blemish": (dims, img(self.blemish)),
                "mean_rate": (
                    dims,
                    img(rate_time / exptime.sum()),
                    {
                        "definition": (
                            "sum_i R_i t_i / sum_i t_i over all frames of the period, R_i at "
                            "the reference temperature 18 deg C"
                        ),
                    },
                ),
                "mean_rate_observed": (
                    dims,
                    img((rate_time if observed_time is None else observed_time) / exptime.sum()),
                    {
                        "definition": (
                            "sum_i k_i R_i t_i / sum_i t_i: the mean rate at each frame's "
                            "OCCDHTAV (k_i = dark_scale; 1 for Side-1 frames)"
                        ),
                    },
                ),
                "events": (
                    ("frame", *dims),
                    events.reshape(n, ny, nx),
                    {
                        "flag_masks": np.array(
                            [EVENT_COSMIC_RAY, EVENT_NAN, EVENT_FILL, EVENT_FLICKER_HIGH],
                            dtype=np.uint8,
                        ),
                        "flag_meanings": "cosmic_ray nan_sample lost_data flicker_high",
                    },
                ),
                "n_cosmic_rays": (dims, img((events & EVENT_COSMIC_RAY).astype(bool).sum(0))),
                "n_nan": (dims, img((events & EVENT_NAN).astype(bool).sum(0))),
                "n_fill": (dims, img((events & EVENT_FILL).astype(bool).sum(0))),
            },
            coords={
                "rootname": ("frame", np.asarray(frames["rootname"], dtype=str)),
                "exptime": ("frame", exptime, {"units": "s"}),
                "start_mjd": ("frame", np.asarray(frames["start_mjd"]), {"units": "d"}),
                "end_mjd": ("frame", np.asarray(frames["end_mjd"]), {"units": "d"}),
                "gain": ("frame", np.full(n, self.physics.atodgain), {"units": "electron / count"}),
                "occdhtav": (
                    "frame",
                    np.asarray(frames.get("occdhtav", np.full(n, -1.0)), dtype=float),
                    {"units": "deg_C", "long_name": "OCCDHTAV written (-1: Side-1)"},
                ),
                "dark_scale": (
                    "frame",
                    np.asarray(frames.get("dark_scale", np.ones(n)), dtype=float),
                    {
                        "units": "1",
                        "definition": "true rate factor 1 + c (OCCDHTAV - 18), 1 on Side-1",
                    },
                ),
            },
            attrs={
                "title": "truth of a simulated STIS CCD anneal period (stiscube.simulate)",
                "simulated": 1,
                "anneal_number": int(number),
                "start_mjd": float(start),
                "end_mjd": float(end),
                "start": str(mjd_to_datetime64(start)),
                "end": str(mjd_to_datetime64(end)),
            },
        )
        for name, (dtype, units) in TRUTH_VARIABLES.items():  # the one declaration
            ds[name] = ds[name].astype(dtype).assign_attrs(units=units)
        return ds


#: The primary-header keywords of a simulated FLT, in the order and with the comments of a
#: real calibrated STIS CCD FLT (``o4k19a010_flt.fits``); ORIGIN's comment and SIMULATE,
#: SIMSEED, SIMPER are the simulator's own.  Values: :data:`_STATIC_PRIMARY`, and per
#: file in :func:`_write_flt`.
_PRIMARY_COMMENTS = {
    "ORIGIN": "SIMULATED FILE: not an HST observation",
    "SIMULATE": "synthetic frame made by stiscube.simulate",
    "SIMSEED": "seed of the simulation",
    "SIMPER": "simulated anneal period number",
    "NEXTEND": "Number of standard extensions",
    "FILENAME": "name of file",
    "FILETYPE": "type of data found in data file",
    "TELESCOP": "telescope used to acquire data",
    "INSTRUME": "identifier for instrument used to acquire data",
    "ROOTNAME": "rootname of the observation set",
    "TARGNAME": "proposer's target name",
    "PROPOSID": "PEP proposal identifier",
    "PROPTTL1": "",
    "TEXPSTRT": "start time (MJD) of 1st exposure in file",
    "TEXPEND": "end time (MJD) of last exposure in the file",
    "TEXPTIME": "total exposure time (seconds)",
    "OBSTYPE": "observation type - imaging or spectroscopic",
    "OBSMODE": "operating mode",
    "NRPTEXP": "number of repeat exposures in set: default 1",
    "SUBARRAY": "data from a subarray (T) or full frame (F)",
    "DETECTOR": "detector in use: NUV-MAMA, FUV-MAMA, or CCD",
    "OPT_ELEM": "optical element in use",
    "APERTURE": "aperture name",
    "CRSPLIT": "number of cosmic ray split exposures",
    "CCDAMP": "CCD amplifier read out (A,B,C,D)",
    "CCDGAIN": "commanded gain of CCD",
    "CCDOFFST": "commanded CCD bias offset",
    "CENTERA1": "subarray axis1 center pt in unbinned dect. pix",
    "CENTERA2": "subarray axis2 center pt in unbinned dect. pix",
    "SIZAXIS1": "subarray axis1 size in unbinned detector pixels",
    "SIZAXIS2": "subarray axis2 size in unbinned detector pixels",
    "BINAXIS1": "axis1 data bin size in unbinned detector pixels",
    "BINAXIS2": "axis2 data bin size in unbinned detector pixels",
    "DQICORR": "data quality initialization",
    "BLEVCORR": "subtract bias level computed from overscan img",
    "BIASCORR": "Subtract bias image",
    "CRCORR": "combine observations to reject cosmic rays",
    "DARKCORR": "Subtract dark image",
    "FLATCORR": "flat field data",
    "ATODGAIN": "calibrated CCD amplifier gain value",
    "READNSE": "calibrated CCD read noise value",
}
#: The primary-header values that are the same in every simulated file (a dark: no
#: cosmic-ray combination, dark or flat correction; cut-outs centred on the CCD).
_STATIC_PRIMARY = {
    "ORIGIN": "stiscube.simulate",
    "SIMULATE": True,
    "FILETYPE": "SCI",
    "TELESCOP": "HST",
    "INSTRUME": "STIS",
    "TARGNAME": "DARK",
    "OBSTYPE": "IMAGING",
    "OBSMODE": "ACCUM",
    "DETECTOR": "CCD",
    "OPT_ELEM": "MIRVIS",
    "APERTURE": "50CCD",
    "CRSPLIT": 1,
    "CCDOFFST": 3,
    "CENTERA1": 513,
    "CENTERA2": 513,
    "BINAXIS1": 1,
    "BINAXIS2": 1,
    "DQICORR": "COMPLETE",
    "BLEVCORR": "COMPLETE",
    "BIASCORR": "COMPLETE",
    "CRCORR": "OMIT",
    "DARKCORR": "OMIT",
    "FLATCORR": "OMIT",
}
#: The keywords of each imset header (SCI, ERR, DQ; the exposure ones in SCI only), with
#: the comments of the real file.
_IMSET_COMMENTS = {
    "EXTNAME": "extension name",
    "EXTVER": "extension version number",
    "ROOTNAME": "rootname of the observation set",
    "EXPNAME": "exposure identifier",
    "BUNIT": "brightness units",
    "DATE-OBS": "UT date of start of observation (yyyy-mm-dd)",
    "TIME-OBS": "UT time of start of observation (hh:mm:ss)",
    "EXPSTART": "exposure start time (Modified Julian Date)",
    "EXPEND": "exposure end time (Modified Julian Date)",
    "EXPTIME": "exposure duration (seconds)--calculated",
    "OCCDHTAV": "average CCD housing temperature (degC)",
    "NCOMBINE": "number of image sets combined during CR rejecti",
}


def _proposal(mjd: float) -> dict[str, Any]:
    """``PROPOSID``/``PROPTTL1`` of a simulated dark-monitor program: one per HST cycle
    (cycle = calendar year - 1990, as Cycle 7 began in 1997), numbered 90000 + cycle, a
    range no real proposal uses, and titled as simulated."""
    cycle = int(str(mjd_to_datetime64(mjd))[:4]) - 1990
    return {
        "PROPOSID": 90000 + cycle,
        "PROPTTL1": f"SIMULATED STIS CCD Dark Monitor, Cycle {cycle}",
    }


@dataclass(frozen=True)
class _ImsetData:
    """One imset (exposure) to write: images and its SCI-header exposure keywords."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    exptime: float
    start_mjd: float
    end_mjd: float
    expname: str
    occdhtav: float


def _write_flt(
    path: Path,
    imsets: Sequence[_ImsetData],
    *,
    rootname: str,
    physics: DarkPhysics,
    period: int,
    seed: int,
    nominal_readnoise: float,
) -> None:
    """Write one FLT file with the keywords where calstis puts them.

    As in a real calibrated STIS CCD file (``o4k19a010_flt.fits``): ATODGAIN, READNSE,
    TEXPSTRT/TEXPEND/TEXPTIME (the total of all imsets), CCDGAIN, CCDAMP, BINAXIS1/2,
    NRPTEXP, CRSPLIT and the calibration switches in the primary header; EXPSTART, EXPEND,
    EXPTIME, EXPNAME and OCCDHTAV in each imset's SCI header.
    """
    from astropy.io import fits

    ny, nx = imsets[0].sci.shape
    full = (ny, nx) == FULL_SHAPE
    first, last = imsets[0], imsets[-1]
    stamp = str(mjd_to_datetime64(first.start_mjd).astype("datetime64[s]"))
    values = {
        **_STATIC_PRIMARY,
        "NEXTEND": 3 * len(imsets),
        "SIMSEED": int(seed),
        "SIMPER": int(period),
        "FILENAME": path.name,
        "ROOTNAME": rootname,
        "TEXPSTRT": float(first.start_mjd),
        "TEXPEND": float(last.end_mjd),
        "TEXPTIME": float(sum(im.exptime for im in imsets)),
        "NRPTEXP": len(imsets),
        "SUBARRAY": not full,
        "CCDAMP": physics.ccdamp,
        "CCDGAIN": int(physics.ccdgain),
        "SIZAXIS1": nx,
        "SIZAXIS2": ny,
        "ATODGAIN": float(physics.atodgain),
        "READNSE": float(nominal_readnoise),
        **_proposal(first.start_mjd),
    }
    primary = fits.Header([(key, values[key], text) for key, text in _PRIMARY_COMMENTS.items()])
    if not full:
        primary.add_comment(
            f"SIMULATED CUT-OUT: {ny} x {nx} pixels centred on the 1024 x 1024 STIS CCD;"
            " not a real STIS subarray readout."
        )
    primary.add_comment("Simulated by stiscube.simulate; physics and truth: see simulation.json.")

    def ext_header(name: str, bunit: str, extver: int, im: _ImsetData) -> Any:
        values = {
            "EXTNAME": name,
            "EXTVER": extver,
            "ROOTNAME": rootname,
            "EXPNAME": im.expname,
            "BUNIT": bunit,
        }
        if name == "SCI":
            start = str(mjd_to_datetime64(im.start_mjd).astype("datetime64[s]"))
            values |= {
                "DATE-OBS": start[:10],
                "TIME-OBS": start[11:],
                "EXPSTART": float(im.start_mjd),
                "EXPEND": float(im.end_mjd),
                "EXPTIME": float(im.exptime),
                "OCCDHTAV": float(im.occdhtav),
                "NCOMBINE": 1,
            }
        return fits.Header([(key, value, _IMSET_COMMENTS[key]) for key, value in values.items()])

    hdus: list[Any] = [fits.PrimaryHDU(header=primary)]
    for k, im in enumerate(imsets, 1):
        hdus.append(fits.ImageHDU(im.sci, header=ext_header("SCI", "COUNTS", k, im)))
        hdus.append(fits.ImageHDU(im.err, header=ext_header("ERR", "COUNTS", k, im)))
        hdus.append(fits.ImageHDU(im.dq, header=ext_header("DQ", "UNITLESS", k, im)))
    primary.add_history(f"simulated observation date {stamp}")
    fits.HDUList(hdus).writeto(path, overwrite=True)
