"""Seeded simulated monitor campaigns with a known injected CTE loss.

:func:`simulate_campaign` writes, under one output directory::

    data/<proposal>/<rootname>_flt.fits, _flc.fits   calibrated-like WFC3/UVIS images
    data/bad/...                                     corrupt/truncated/wrong-instrument files
    catalogs/<target>.ecsv                           master catalogs (master_id, ra, dec, flux)
    truth/images.ecsv                                per file: pointing error, background, ...
    truth/<target>.nc                                per image and star: true flux, x, y,
                                                     transfers, injected loss
    truth/lossmodel.json                             the loss coefficients (FLT and FLC)
    truth/campaign.json                              parameters and expected skips
    pam/UVIS1wfc3_map.fits, UVIS2wfc3_map.fits       (with ``pam=True``) pixel-area maps

The observations imitate the real monitor (see :mod:`cte.io._geometry` for the detector
layout and pointing model): for every epoch, target, filter, flash level and exposure
time, one exposure puts the cluster on chip 2 (POSTARG2 = 0) and one on chip 1
(POSTARG2 = one chip height plus the gap), each written as FLT and FLC.  Optional extras
are the 180-degree same-chip set of NGC 6583 (12692 visits 10 and 11, ORIENTAT and
ORIENTAT + 180 on one chip) and images the monitor must skip: a charge-injection
image (12348), the guide-star-failure visit 13 of 12379, the binned visit 05 of 14012,
a failed post-flash and a sub-dither.

Image model, per pixel, in e- (FLT/FLC SCI units)::

    data = B + sum_stars F_obs * PSF + noise + cosmic rays + hot pixels,  clipped at 63000
    B = sky_rate(filter) * EXPTIME + FLASHLVL            (flash only if FLASHSTA succeeded)
    F_true = rate * throughput(filter) * EXPTIME         (rate from the master catalog)
    F_obs = F_true * (1 - L(F_true, MJD, B) * n / 2048) / PAM(x, y)
    n = |y - y_amp|, y_amp = 0 on chip 2, 2051 on chip 1 (true full-chip row y)
    noise = Poisson(expected) - expected + Normal(0, read_noise of the quadrant)

with ``L`` the loss formula of :mod:`cte.analysis.lossmodel` evaluated on the coefficients of a
:class:`~cte.analysis.lossmodel.LossModel` (FLT and FLC coefficients, the FLC ones four times
smaller) and PSF a Moffat (or Gaussian) of the given FWHM, truncated at
+-12 px and normalised so that each star's image sums to ``F_obs``.  FLT and FLC of one
exposure share the noise, cosmic rays and pointing.  The header WCS of every SCI
extension carries a deliberate pointing error: header pixel positions ``p`` relate to
true positions by ``p_true = R(theta) (p - c) + c + d`` (``c`` the image centre, ``d``
a shift in px, ``theta`` a rotation in deg), recorded in ``truth/images.ecsv``.
Cosmic rays are flagged with DQ 4096, hot pixels with 16 and saturation with 256.

Independent truth: the transfer count ``n`` and the injected ``L`` are computed here by
:func:`true_transfers` and :func:`true_loss`, written from the detector layout and the
documented formula, not with :func:`cte.io._geometry.transfers` or
:func:`cte.analysis.lossmodel.basis` that the measurement, the fit and :func:`cte.correct` use,
so tests comparing results with the truth can see an error in either.

Headers follow the archive's FLT/FLC layout (checked against real FLCs in the tests):
exposure keywords, ``CCDGAIN``, the per-amplifier ``ATODGNA..D`` (1.56 e-/DN) and
``READNSEA..D`` (3.0-3.2 e-), ``FLASHLVL/FLASHSTA/FLASHCUR``, ``SHUTRPOS`` in the
primary header; ``CCDCHIP``, ``BINAXIS1/2``, ``ORIENTAT`` in each SCI header; ``LTV``,
``BUNIT``, ``EXPNAME`` and the WCS in SCI, ERR and DQ.  The read noise of each
quadrant (amplifiers A, B on chip 1 and C, D on chip 2, split at x = 2048) is the
``read_noise`` parameter plus the real per-amplifier offsets.

A directory written by :func:`simulate_campaign` holds the marker file
``.cte-simulation.json`` listing what it wrote; ``overwrite=True`` removes only
those entries, and refuses a non-empty directory without the marker.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from cte.analysis.lossmodel import BASIS_TERMS, FLUX_SCALE, FORMULA, MJD_ORIGIN, LossModel
from cte.config import flux_range
from cte.datasets._render import bin2x2, cosmic_rays, render_stars
from cte.io._geometry import (
    CHIP_EXTVER,
    CHIP_GAP,
    CHIP_NX,
    CHIP_NY,
    PIXEL_SCALE,
    chip_origin_y,
    rotation_matrix,
    tan_wcs,
)
from cte.schema import TRUTH_COORDS, TRUTH_VARIABLES, build
from stores.common.provenance import provenance, software
from stores.common.validate import (
    as_float,
    as_int,
    as_sequence_of,
    as_shape2,
    check_fields,
    instance_of,
    one_of,
    subset_of,
)
from stores.storage.fs import atomic_write

__all__ = [
    "DEFAULT_LOSS_MODELS",
    "DEFAULT_SCHEDULE",
    "FULL_WELL",
    "FieldPhysics",
    "SimulatedCampaign",
    "load_campaign",
    "simulate_campaign",
    "true_loss",
    "true_transfers",
]

logger = logging.getLogger(__name__)

#: simulated schedule (proposal, MJD of the epoch): approximate dates of the real
#: programs' visits (seed table), used only to place simulated epochs in time
DEFAULT_SCHEDULE: tuple[tuple[int, float], ...] = (
    (11924, 55120.0),
    (11924, 55270.0),
    (12379, 55510.0),
    (12379, 55640.0),
    (12692, 55850.0),
    (12692, 56000.0),
    (13083, 56240.0),
    (13083, 56500.0),
    (13566, 56680.0),
    (13566, 56850.0),
    (14012, 57060.0),
    (14012, 57190.0),
    (14378, 57400.0),
    (14378, 57600.0),
    (14541, 57770.0),
)

_FLT_COEFFICIENTS = {"1": 0.05, "x": -0.024, "x2": 0.006, "t": 0.017, "xt": -0.0055,
                     "b": -0.022, "bx": 0.008}
#: truth of the injected loss (fraction per 2048 transfers): faint stars lose 15-20 %
#: by 2015-2017 at low background, bright stars ~5 %, growing with time, shrinking
#: with background; the pixel-based correction (FLC) leaves a quarter of it
DEFAULT_LOSS_MODELS: Mapping[str, LossModel] = {
    "FLT": LossModel(_FLT_COEFFICIENTS),
    "FLC": LossModel({k: 0.25 * v for k, v in _FLT_COEFFICIENTS.items()}),
}

#: saturation level of the simulated pixels, e-
FULL_WELL = 63000.0
#: marker file of a simulated campaign directory (lists what the simulator wrote)
MARKER = ".cte-simulation.json"
#: calibrated gain of every amplifier, e-/DN (real FLCs: 1.5599999)
_ATODGAIN = 1.56
#: read noise of each amplifier above the ``read_noise`` parameter, e- (a real FLC of
#: 2011 has 3.03, 3.13, 3.08, 3.18 e-)
_READNOISE_OFFSET = {"A": 0.03, "B": 0.13, "C": 0.08, "D": 0.18}
#: amplifiers of each chip: (x < 2048, x >= 2048)
_CHIP_AMPS = {1: ("A", "B"), 2: ("C", "D")}

# -- independent truth ---------------------------------------------------------------------
#: full-chip row coordinate of each chip's serial register (the amplifiers): chip 2
#: (UVIS2, SCI,1) reads out at the bottom, y = 0; chip 1 (UVIS1, SCI,2) at the top,
#: y = 2051 (the chips are 2051 rows high)
_AMPLIFIER_ROW = {2: 0.0, 1: 2051.0}


def true_transfers(y, chip: int) -> np.ndarray:
    """Parallel transfers of a charge packet at 0-based full-chip row *y* of *chip*.

    Written from the readout geometry (:data:`_AMPLIFIER_ROW`), independently of
    :func:`cte.io._geometry.transfers`: the distance in rows from the packet to the
    chip's amplifiers, ``|y - y_amp|``, i.e. ``y`` on chip 2 and ``2051 - y`` on
    chip 1.  Rows outside ``[0, 2051]`` are clipped to the chip.

    Parameters
    ----------
    y : array-like
        0-based full-chip row.
    chip : int
        1 or 2.
    """
    amplifier_row = _AMPLIFIER_ROW[one_of(chip, "chip", (1, 2))]
    rows = np.clip(np.asarray(y, dtype=float), 0.0, 2051.0)
    return np.abs(rows - amplifier_row)


def true_loss(coefficients: Mapping[str, float], flux, mjd, background) -> np.ndarray:
    """Injected loss ``L`` (fraction lost per 2048 transfers), clipped at 0 from below.

    Written from the formula documented in :mod:`cte.analysis.lossmodel`, independently of its
    ``model_variables`` and ``basis``::

        L = c_1 + c_t T + c_b B + X (c_x + c_x2 X + c_xt T + c_bx B)
        X = log10(flux) - 3       (flux in e-; X = 0 at 1000 e-)
        T = (mjd - 55000) / 365.25 (years since 2009-06-18)
        B = log10(1 + background) (background in e-/px)

    *coefficients* maps the term names ``"1"``, ``"x"``, ``"x2"``, ``"t"``, ``"xt"``,
    ``"b"``, ``"bx"`` to their values (missing terms are zero).

    Parameters
    ----------
    coefficients : mapping of str to float
        Coefficient per term of the loss formula.
    flux : array-like
        Flux, e-.
    mjd : array-like
        Exposure start, MJD.
    background : array-like
        Local background, e-/pixel.
    """
    c = {k: float(coefficients.get(k, 0.0)) for k in ("1", "x", "x2", "t", "xt", "b", "bx")}
    big_x = np.log10(np.asarray(flux, dtype=float)) - 3.0
    big_t = (np.asarray(mjd, dtype=float) - 55000.0) / 365.25
    big_b = np.log10(1.0 + np.asarray(background, dtype=float))
    value = (c["1"] + c["t"] * big_t + c["b"] * big_b
             + big_x * (c["x"] + c["x2"] * big_x + c["xt"] * big_t + c["bx"] * big_b))
    return np.maximum(value, 0.0)
#: stamp half-size of the rendered PSF, px
_STAMP = 12


@dataclass(frozen=True)
class _TargetField:
    targname: str
    ra: float
    dec: float
    orientat: float
    density: float


_FIELDS = {
    "ngc104": _TargetField("NGC-104", 5.9003, -72.1051, 37.0, 1.0),
    "ngc6791": _TargetField("NGC-6791", 290.2440, 37.7525, 108.0, 0.5),
    "ngc6583": _TargetField("NGC-6583", 278.8163, -22.1420, 92.0, 0.6),
}
#: sky rate per filter, e-/s/px, and throughput relative to F502N
_SKY = {"F502N": 0.004, "F606W": 0.12}
_THROUGHPUT = {"F502N": 1.0, "F606W": 4.0}


@dataclass(frozen=True)
class _Exposure:
    proposal: int
    visit: str
    exposure: str
    target: str
    filter: str
    exptime: float
    mjd: float
    flash: int
    postarg1: float
    postarg2: float
    orientat: float
    field_chip: int
    versions: tuple[str, ...]
    chinject: str = "NONE"
    flashsta: str = ""
    binned: bool = False
    expected_skip: str = ""

    @property
    def rootname(self) -> str:
        return f"i{_base36(self.proposal - 11000, 3)}{self.visit}{self.exposure}q"


def _base36(value: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    value = int(value)
    while value:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
    return out.rjust(width, "0")[-width:]


@dataclass(frozen=True)
class SimulatedCampaign:
    """What :func:`simulate_campaign` wrote, and its truth.

    Parameters
    ----------
    root : Path
        The output directory (its ``data_dir``, ``catalogs_dir`` and ``truth_dir`` are
        ``root/data``, ``root/catalogs``, ``root/truth``).
    pam_dir : Path or None
        ``root/pam`` when pixel-area maps were written.
    images : pandas.DataFrame
        One row per written image file (``truth/images.ecsv``): ``image``, ``path``,
        ``rootname``, ``ctecorr``, ``target``, ``proposal``, ``visit``, ``filter``,
        ``flash``, ``exptime``, ``mjd``, ``chip`` (field chip), ``orientat``,
        ``postarg1/2``, ``background`` (true sky + flash, e-/px), ``shift_x/y`` (px),
        ``rotation`` (deg), ``center_x/y`` (px) of the header pointing error,
        ``origin_x/y`` (cut-out origin on the chip), ``expected_skip`` (reason, or "").
    bad_files : dict of str to str
        Deliberately broken files and the exception class name each must raise.
    loss_models : dict of str to LossModel
        Injected loss for ``"FLT"`` and ``"FLC"``.
    seed : int
        The seed of every random draw.
    shape : (int, int)
        Shape of each chip's image (rows, columns).
    parameters : mapping
        The other parameters of the simulation (``truth/campaign.json``).
    """

    root: Path
    images: pd.DataFrame
    bad_files: Mapping[str, str]
    loss_models: Mapping[str, LossModel]
    seed: int
    shape: tuple[int, int]
    pam_dir: Path | None = None
    parameters: Mapping[str, object] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def catalogs_dir(self) -> Path:
        return self.root / "catalogs"

    @property
    def truth_dir(self) -> Path:
        return self.root / "truth"

    @property
    def files(self) -> list[Path]:
        """All image files written (good and deliberately bad)."""
        return [self.root / p for p in self.images["path"]] + [
            self.root / p for p in self.bad_files
        ]

    @property
    def targets(self) -> list[str]:
        return sorted(self.images["target"].unique())

    def truth(self, target: str) -> xr.Dataset:
        """Per image and star truth of *target* (``truth/<target>.nc``), loaded.

        Variables (dims ``image, star``; declared in :data:`cte.schema.TRUTH_VARIABLES`):
        ``x``, ``y`` (px, 0-based full-chip position on the field chip), ``flux_true``
        (e-, before loss), ``transfers``, ``loss`` (injected L, fraction per 2048
        transfers), ``flux_expected`` (e- in the image, after loss and PAM), ``on_image``
        (centre inside the written image).

        Parameters
        ----------
        target : str
            A simulated target.
        """
        path = self.truth_dir / f"{target}.nc"
        return _read_truth(str(path), path.stat().st_mtime_ns).copy(deep=True)

    def catalog(self, target: str) -> Table:
        """The master catalog of *target*.

        Parameters
        ----------
        target : str
            A simulated target.
        """
        return Table.read(self.catalogs_dir / f"{target}.ecsv", format="ascii.ecsv")


@functools.lru_cache(maxsize=16)
def _read_truth(path: str, mtime_ns: int) -> xr.Dataset:
    """A truth file, read once per modification time (callers get deep copies)."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


# -- catalogs ----------------------------------------------------------------------------
def make_catalog(
    target: str, n_stars: int, *, shape: tuple[int, int], seed: int = 0, pad: float = 8.0,
    flux_range: tuple[float, float] = (100.0, 100000.0), reference_exptime: float = 348.0,
) -> Table:
    """A seeded master catalog of a simulated cluster field.

    Stars are uniform over the ``shape`` (rows, columns) footprint of an image centred
    on the target, enlarged by *pad* px on every side (so a few fall just off the
    image), projected to the sky with the target's nominal orientation.  Their
    reference count rates follow ``dN/dlog F ~ F^-0.3`` between ``flux_range`` (e-)
    reached in *reference_exptime* seconds.

    Returns
    -------
    astropy.table.Table
        Columns ``master_id`` (int64), ``ra``, ``dec`` (deg), ``flux`` (e-/s through
        F502N).
    """
    target = one_of(target, "target", sorted(_FIELDS))
    n_stars = as_int(n_stars, "n_stars", min=1)
    fld = _FIELDS[target]
    rng = np.random.default_rng([seed, sorted(_FIELDS).index(target), 7])
    ny, nx = shape
    dx = rng.uniform(-nx / 2 - pad, nx / 2 + pad, n_stars)
    dy = rng.uniform(-ny / 2 - pad, ny / 2 + pad, n_stars)
    # log-flux from the truncated power law by inverse transform sampling
    lo, hi = np.log10(flux_range[0]), np.log10(flux_range[1])
    a = -0.3 * np.log(10.0)
    u = rng.uniform(0, 1, n_stars)
    logf = np.log(np.exp(a * lo) + u * (np.exp(a * hi) - np.exp(a * lo))) / a
    wcs = tan_wcs((fld.ra, fld.dec), (0.0, 0.0), orientat=fld.orientat)
    ra, dec = wcs.all_pix2world(dx, dy, 0)
    table = Table()
    table["master_id"] = np.arange(1, n_stars + 1, dtype=np.int64) + 100000 * (
        sorted(_FIELDS).index(target) + 1
    )
    table["ra"] = ra
    table["ra"].unit = "deg"
    table["dec"] = dec
    table["dec"].unit = "deg"
    table["flux"] = 10.0**logf / reference_exptime
    table["flux"].unit = "electron / s"
    table.meta["target"] = target
    table.meta["description"] = "simulated master catalog; flux is the F502N count rate"
    table.meta["seed"] = int(seed)
    return table


# -- planning ----------------------------------------------------------------------------
def _plan(
    *, targets, epochs, filters, flashes, exptimes, versions, dither, include_excluded,
    include_180, rng,
) -> list[_Exposure]:
    plan: list[_Exposure] = []
    visit_counter: dict[int, int] = {}

    def next_visit(proposal: int) -> str:
        visit_counter[proposal] = visit_counter.get(proposal, 0) + 1
        return f"{visit_counter[proposal]:02d}"

    for proposal, mjd in epochs:
        for target in targets:
            visit = next_visit(proposal)
            fld = _FIELDS[target]
            n = 0
            postarg1 = float(np.round(rng.uniform(-1.0, 1.0), 2))  # per visit
            for filt in filters:
                for flash in flashes:
                    for exptime in exptimes:
                        for chip, postarg2 in ((2, 0.0), (1, dither)):
                            n += 1
                            plan.append(
                                _Exposure(
                                    proposal=proposal, visit=visit, exposure=_base36(n, 2),
                                    target=target, filter=filt, exptime=float(exptime),
                                    mjd=mjd + 0.004 * n, flash=int(flash),
                                    postarg1=postarg1, postarg2=postarg2,
                                    orientat=fld.orientat, field_chip=chip,
                                    versions=versions,
                                    flashsta="SUCCESSFUL" if flash else "NOT PERFORMED",
                                )
                            )
    first = targets[0]
    filt = filters[0]
    exptime = float(max(exptimes))
    if include_180:
        fld = _FIELDS["ngc6583"]
        for visit, chip, postarg2 in (("10", 2, 0.0), ("11", 1, dither)):
            n = 0
            for exptime_180 in exptimes:
                for turn in (0.0, 180.0):
                    n += 1
                    plan.append(
                        _Exposure(
                            proposal=12692, visit=visit, exposure=_base36(n, 2),
                            target="ngc6583", filter=filt, exptime=float(exptime_180),
                            mjd=56010.0 + (0.3 if visit == "11" else 0.0) + 0.004 * n,
                            flash=0, postarg1=0.0, postarg2=postarg2,
                            orientat=(fld.orientat + turn) % 360.0, field_chip=chip,
                            versions=versions, flashsta="NOT PERFORMED",
                        )
                    )
    if include_excluded:
        flash = int(max(flashes))
        base = dict(target=first, filter=filt, exptime=exptime, postarg1=0.0,
                    orientat=_FIELDS[first].orientat, versions=versions[:1], flash=flash,
                    flashsta="SUCCESSFUL" if flash else "NOT PERFORMED")
        plan += [
            _Exposure(proposal=12348, visit="02", exposure="01", mjd=55450.0, postarg2=0.0,
                      field_chip=2, chinject="CONT",
                      expected_skip="charge injection (CHINJECT=CONT)", **base),
            _Exposure(proposal=12379, visit="13", exposure="01", mjd=55650.0, postarg2=0.0,
                      field_chip=2, chinject="LINE17",
                      expected_skip="charge injection and guide-star failure", **base),
            _Exposure(proposal=14012, visit="05", exposure="01", mjd=57065.0, postarg2=dither,
                      field_chip=1, binned=True, expected_skip="binned data", **base),
            _Exposure(proposal=epochs[0][0], visit="x1", exposure="01",
                      mjd=epochs[0][1] + 1.0, postarg2=0.0, field_chip=2,
                      expected_skip="post-flash failed (FLASHSTA=ABORTED)",
                      **{**base, "flash": 12, "flashsta": "ABORTED"}),
            _Exposure(proposal=epochs[0][0], visit="x2", exposure="01",
                      mjd=epochs[0][1] + 1.1, postarg2=2.5, field_chip=2,
                      expected_skip="sub-dither (POSTARG2=2.5)", **base),
        ]
    return plan


# -- rendering ---------------------------------------------------------------------------
@dataclass
class _Scene:
    """Everything rendered for one exposure: per version the field chip data."""

    hdus: dict[str, fits.HDUList]
    truth: dict[str, dict[str, np.ndarray]]
    info: dict[str, float]


def _hot_pixels(seed: int, chip: int, origin, shape, exptime: float):
    rng = np.random.default_rng([seed, chip, 11])
    n = int(2e-4 * CHIP_NX * CHIP_NY)
    hx = rng.integers(0, CHIP_NX, n) - origin[0]
    hy = rng.integers(0, CHIP_NY, n) - origin[1]
    rate = rng.uniform(0.02, 0.5, n)  # e-/s
    keep = (hx >= 0) & (hx < shape[1]) & (hy >= 0) & (hy < shape[0])
    return hy[keep], hx[keep], rate[keep] * exptime


def _pam_value(chip: int, x, y):
    """Smooth synthetic pixel-area map: 1 at the chip centre, +-~2 % at the corners."""
    u = (np.asarray(x, float) - (CHIP_NX - 1) / 2) / CHIP_NX
    v = (np.asarray(y, float) - (CHIP_NY - 1) / 2) / CHIP_NY
    sign = 1.0 if chip == 1 else -1.0
    return 1.0 + 0.03 * u + sign * 0.02 * v - 0.02 * (u * u + v * v)


def _render(exp: _Exposure, catalog: Table, p: dict, seed: int, index: int) -> _Scene:
    rng = np.random.default_rng([seed, index, 3])
    ny, nx = p["shape"]
    fld = _FIELDS[exp.target]
    center = (fld.ra, fld.dec)
    # true reference pixel (0-based full chip) of each chip: target + POS TARG
    crpix_full = {
        c: np.array([(CHIP_NX - 1) / 2 + exp.postarg1 / PIXEL_SCALE,
                     (CHIP_NY - 1) / 2 + exp.postarg2 / PIXEL_SCALE - chip_origin_y(c)])
        for c in (1, 2)
    }
    fc = exp.field_chip
    origin = np.clip(np.rint(crpix_full[fc] - (np.array([nx, ny]) - 1) / 2),
                     0, [CHIP_NX - nx, CHIP_NY - ny]).astype(int)
    # deliberate pointing error of the header WCS (px, deg), about the image centre
    shift = rng.normal(0.0, p["pointing_error"], 2)
    theta = float(rng.normal(0.0, p["rotation_error"]))
    c0 = (np.array([nx, ny]) - 1) / 2
    rot_inv = rotation_matrix(-theta)
    wcs_true, wcs_head = {}, {}
    for c in (1, 2):
        crpix_t = crpix_full[c] - origin
        crpix_h = rot_inv @ (crpix_t - c0 - shift) + c0
        wcs_true[c] = tan_wcs(center, crpix_t, orientat=exp.orientat)
        wcs_head[c] = tan_wcs(center, crpix_h, orientat=exp.orientat, rotation=theta)
    # star positions and fluxes on the field chip
    x, y = wcs_true[fc].all_world2pix(catalog["ra"], catalog["dec"], 0)
    x_full, y_full = x + origin[0], y + origin[1]
    on_image = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    sky = _SKY[exp.filter] * exp.exptime
    flash = exp.flash if exp.flashsta == "SUCCESSFUL" else 0.0
    background = sky + flash
    flux_true = np.asarray(catalog["flux"], float) * _THROUGHPUT[exp.filter] * exp.exptime
    n_transfers = true_transfers(y_full, fc)
    pam = _pam_value(fc, x_full, y_full) if p["pam"] else np.ones_like(x)
    stars, truth = {}, {}
    for version in exp.versions:
        loss = true_loss(p["loss_models"][version].coefficients, flux_true, exp.mjd,
                         background)
        flux_obs = flux_true * (1.0 - loss * n_transfers / 2048.0) / pam
        stars[version] = render_stars((ny, nx), x, y, flux_obs, psf=p["psf"], fwhm=p["fwhm"],
                                      beta=p["beta"], half_size=_STAMP)
        truth[version] = {"x": x_full, "y": y_full, "on_image": on_image,
                          "flux_true": flux_true, "transfers": n_transfers, "loss": loss,
                          "flux_expected": flux_obs}
    # noise, cosmic rays and hot pixels shared by all versions; per chip
    chips, read_noise = {}, {}
    for c in (2, 1):
        read_noise[c] = _read_noise_map(c, origin[0], (ny, nx), p["read_noise"])
        ref = stars[exp.versions[0]] if c == fc else 0.0
        expected = background + ref
        noise = (rng.poisson(np.clip(expected, 0, None)) - expected
                 + rng.normal(0.0, 1.0, (ny, nx)) * read_noise[c])
        cr_charge, cr_hit = cosmic_rays((ny, nx), rng,
                                        expected=p["cr_rate"] * exp.exptime * ny * nx)
        hy, hx, hot = _hot_pixels(seed, c, origin, (ny, nx), exp.exptime)
        chips[c] = (noise, cr_charge, cr_hit, (hy, hx, hot))
    hdus = {}
    for version in exp.versions:
        primary = fits.PrimaryHDU()
        primary.header["EXTEND"] = True
        primary.header.extend(_primary_header(exp, version, p).cards)
        hdul = fits.HDUList([primary])
        for c in (2, 1):
            noise, cr_charge, cr_hit, (hy, hx, hot) = chips[c]
            model = background + (stars[version] if c == fc else 0.0)
            data = model + noise + cr_charge
            data[hy, hx] += hot
            dq = np.zeros((ny, nx), np.int16)
            dq[cr_hit] |= 4096
            dq[hy, hx] |= 16
            saturated = data >= FULL_WELL
            data[saturated] = FULL_WELL
            dq[saturated] |= 256
            var = read_noise[c] ** 2 + np.clip(model + cr_charge, 0, None)
            var[hy, hx] += hot
            err = np.sqrt(var)
            wcs = wcs_head[c]
            ltv = -origin.astype(float)
            if exp.binned:
                data, err, dq = bin2x2(data, err, dq)
                wcs = _binned_wcs(wcs)
                ltv = ltv / 2.0
            hdul += _chip_hdus(c, data.astype(np.float32), err.astype(np.float32), dq, wcs,
                               ltv, exp)
        hdus[version] = hdul
    info = {"background": background, "shift_x": shift[0], "shift_y": shift[1],
            "rotation": theta, "center_x": c0[0], "center_y": c0[1],
            "origin_x": float(origin[0]), "origin_y": float(origin[1])}
    return _Scene(hdus=hdus, truth=truth, info=info)


def _read_noise_map(chip: int, x0: int, shape, base: float) -> np.ndarray:
    """Read noise (e-) of each pixel of a cut-out at chip column *x0*: its amplifier's."""
    left, right = _CHIP_AMPS[chip]
    columns = np.arange(shape[1]) + x0
    per_column = np.where(columns < CHIP_NX // 2, base + _READNOISE_OFFSET[left],
                          base + _READNOISE_OFFSET[right])
    return np.broadcast_to(per_column, shape)


def _binned_wcs(wcs):
    """WCS of a 2x2-binned image: binned pixel b covers unbinned 2b and 2b + 1."""
    out = wcs.deepcopy()
    out.wcs.cd = wcs.wcs.cd * 2.0
    crpix0 = wcs.wcs.crpix - 1.0
    out.wcs.crpix = (crpix0 - 0.5) / 2.0 + 1.0
    return out


def _primary_header(exp: _Exposure, version: str, p: dict) -> fits.Header:
    t = Time(exp.mjd, format="mjd", scale="utc")
    date, time = t.isot.split("T")
    h = fits.Header()
    cards = [
        ("ORIGIN", "stiscube.cte.simulate", "SIMULATED DATA, not an HST observation"),
        ("DATE", Time.now().isot[:19], "date this file was written"),
        ("FILENAME", f"{exp.rootname}_{version.lower()}.fits", "name of this file"),
        ("FILETYPE", "SCI", "type of data found in data file"),
        ("TELESCOP", "HST", "telescope used to acquire data"),
        ("INSTRUME", "WFC3", "identifier for instrument used to acquire data"),
        ("DETECTOR", "UVIS", "detector in use: UVIS or IR"),
        ("ROOTNAME", exp.rootname, "rootname of the observation set"),
        ("PROPOSID", exp.proposal, "PEP proposal identifier"),
        ("LINENUM", f"{exp.visit}.{int(exp.exposure, 36):03d}", "proposal logsheet line"),
        ("TARGNAME", _FIELDS[exp.target].targname, "proposer's target name"),
        ("RA_TARG", _FIELDS[exp.target].ra, "right ascension of the target (deg) (J2000)"),
        ("DEC_TARG", _FIELDS[exp.target].dec, "declination of the target (deg) (J2000)"),
        ("OBSTYPE", "IMAGING", "observation type"),
        ("APERTURE", "UVIS", "aperture name"),
        ("FILTER", exp.filter, "element selected from filter wheel"),
        ("EXPTIME", exp.exptime, "exposure duration (seconds)--calculated"),
        ("EXPSTART", exp.mjd, "exposure start time (Modified Julian Date)"),
        ("EXPEND", exp.mjd + exp.exptime / 86400.0, "exposure end time (MJD)"),
        ("DATE-OBS", date, "UT date of start of observation (yyyy-mm-dd)"),
        ("TIME-OBS", time[:8], "UT time of start of observation (hh:mm:ss)"),
        ("POSTARG1", exp.postarg1, "POSTARG in axis 1 direction (arcsec)"),
        ("POSTARG2", exp.postarg2, "POSTARG in axis 2 direction (arcsec)"),
        ("PA_V3", (exp.orientat + 45.0) % 360.0, "position angle of V3-axis of HST (deg)"),
        ("NRPTEXP", 1, "number of repeat exposures in set: default 1"),
        ("SUBARRAY", tuple(p["shape"]) != (CHIP_NY, CHIP_NX), "data from a subarray"),
        ("CRSPLIT", 1, "number of cosmic ray split exposures"),
        ("PCTECORR", "COMPLETE" if version == "FLC" else "OMIT", "pixel-based CTE correction"),
        ("FLASHDUR", 0.1 * exp.flash, "exposure time of the post-flash (s)"),
        ("FLASHCUR", _flash_current(exp.flash), "post flash current (zero, low, medium, high)"),
        ("FLASHLVL", exp.flash, "post flash requested flash level"),
        ("FLASHSTA", exp.flashsta, "status: SUCCESSFUL, ABORTED, NOT PERFORMED"),
        ("SHUTRPOS", "AB"[int(exp.exposure, 36) % 2], "shutter position: A or B"),
        ("CHINJECT", exp.chinject, "charge injection mode"),
        ("CCDAMP", "ABCD", "CCD amplifier read out configuration"),
        ("CCDGAIN", 1.5, "commanded gain of CCD"),
        *((f"ATODGN{a}", _ATODGAIN, f"calibrated gain for amplifier {a}") for a in "ABCD"),
        *((f"READNSE{a}", round(p["read_noise"] + _READNOISE_OFFSET[a], 4),
           f"calibrated read noise for amplifier {a}") for a in "ABCD"),
    ]
    for key, value, comment in cards:
        h[key] = (value, comment)
    return h


def _flash_current(flash: int) -> str:
    """FLASHCUR of a post-flash level (e-/px): the lamp current the monitor would use."""
    if flash <= 0:
        return "ZERO"
    return "LOW" if flash <= 33 else "MED"


def _chip_hdus(chip, data, err, dq, wcs, ltv, exp: _Exposure) -> list[fits.ImageHDU]:
    """SCI, ERR, DQ of one chip with the keywords where calwf3 writes them."""
    extver = CHIP_EXTVER[chip]
    binning = 2 if exp.binned else 1
    hdus = []
    for name, arr, bunit in (("SCI", data, "ELECTRONS"), ("ERR", err, "ELECTRONS"),
                             ("DQ", dq, "UNITLESS")):
        h = fits.Header()
        h["INHERIT"] = (True, "inherit the primary header")
        h["EXTNAME"] = (name, "extension name")
        h["EXTVER"] = (extver, "extension version number")
        h["ROOTNAME"] = (exp.rootname, "rootname of the observation set")
        h["EXPNAME"] = (exp.rootname, "exposure identifier")
        h["BUNIT"] = (bunit, "brightness units")
        if name == "SCI":
            h["CCDCHIP"] = (chip, "CCD chip (1 or 2)")
        h["LTV1"] = (float(ltv[0]), "offset in X to subsection start")
        h["LTV2"] = (float(ltv[1]), "offset in Y to subsection start")
        h["LTM1_1"] = (1.0 / binning, "reciprocal of sampling rate in X")
        h["LTM2_2"] = (1.0 / binning, "reciprocal of sampling rate in Y")
        if name == "SCI":
            h["ORIENTAT"] = (exp.orientat, "position angle of image y axis (deg E of N)")
            h["BINAXIS1"] = (binning, "axis1 data bin size in unbinned detector pixels")
            h["BINAXIS2"] = (binning, "axis2 data bin size in unbinned detector pixels")
        h["RADESYS"] = ("ICRS", "Equatorial coordinate system")
        h["WCSNAME"] = ("SIMULATED", "header WCS with a deliberate pointing error")
        h["CTYPE1"], h["CTYPE2"] = wcs.wcs.ctype
        h["CRVAL1"], h["CRVAL2"] = (float(v) for v in wcs.wcs.crval)
        h["CRPIX1"], h["CRPIX2"] = (float(v) for v in wcs.wcs.crpix)
        cd = wcs.wcs.cd
        h["CD1_1"], h["CD1_2"] = float(cd[0, 0]), float(cd[0, 1])
        h["CD2_1"], h["CD2_2"] = float(cd[1, 0]), float(cd[1, 1])
        hdus.append(fits.ImageHDU(data=arr, header=h))
    return hdus


# -- the campaign ------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldPhysics:
    """Physics of the simulated fields and detector, validated once (like
    :class:`stiscube.datasets.simulate.DarkPhysics`).

    Parameters
    ----------
    n_stars : int
        Stars in the densest field (NGC 104); sparser fields get fewer.
    flux_range : (float, float)
        Range of the stars' F502N fluxes in the longest exposure, e- (``dN/dlog F ~
        F^-0.3`` within it), ``0 < low < high``.
    pointing_error : float
        Standard deviation of the header WCS shift per axis, px (>= 0).
    rotation_error : float
        Standard deviation of the header WCS rotation, deg (>= 0).
    psf : str
        PSF shape: moffat or gaussian.
    fwhm : float
        PSF FWHM, px (> 0).
    beta : float
        Moffat index (> 0).
    read_noise : float
        e- per pixel (>= 0).
    cr_rate : float
        Cosmic-ray events per pixel per second (>= 0).
    chip_dither_postarg2 : float
        POSTARG2 (arcsec) of the chip-1 pointing.
    """

    n_stars: int = 400
    flux_range: tuple[float, float] = (100.0, 100000.0)
    pointing_error: float = 2.0
    rotation_error: float = 0.02
    psf: str = "moffat"
    fwhm: float = 1.8
    beta: float = 3.5
    read_noise: float = 3.0
    cr_rate: float = 2.5e-6
    chip_dither_postarg2: float = (CHIP_NY + CHIP_GAP) * PIXEL_SCALE

    def __post_init__(self) -> None:
        non_negative = partial(as_float, min=0)
        check_fields(self, {
            "n_stars": partial(as_int, min=1),
            "flux_range": flux_range,
            "pointing_error": non_negative,
            "rotation_error": non_negative,
            "psf": partial(one_of, choices=("moffat", "gaussian")),
            "fwhm": partial(as_float, min=0, strict_min=True, units="pixel"),
            "beta": partial(as_float, min=0, strict_min=True),
            "read_noise": non_negative,
            "cr_rate": non_negative,
            "chip_dither_postarg2": as_float,
        })


def simulate_campaign(
    out: str | os.PathLike,
    *,
    seed: int = 0,
    shape: tuple[int, int] = (CHIP_NY, 128),
    targets: Sequence[str] = ("ngc104", "ngc6791"),
    n_epochs: int = 4,
    epochs: Sequence[tuple[int, float]] | None = None,
    filters: Sequence[str] = ("F502N",),
    flashes: Sequence[int] = (0, 12),
    exptimes: Sequence[float] = (348.0, 30.0),
    ctecorr: Sequence[str] = ("FLT", "FLC"),
    include_excluded: bool = True,
    include_180: bool = True,
    bad_files: bool = False,
    pam: bool = False,
    physics: FieldPhysics | None = None,
    loss_models: Mapping[str, LossModel] | None = None,
    overwrite: bool = False,
) -> SimulatedCampaign:
    """Write a seeded simulated monitor campaign (see the module docstring for the model).

    Parameters
    ----------
    out : path-like
        Output directory; must be empty or absent unless *overwrite*.
    seed : int
        Seed of every random draw; equal seeds give identical files.
    shape : (int, int)
        Rows and columns of each chip's image: ``(2051, 4096)`` for full chips, smaller
        for cut-outs centred on the field (their chip origin is kept in LTV1/LTV2).  The
        default full-height strip keeps the whole range of transfers (0-2051) at a
        sixteenth of the pixels; small squares such as ``(256, 256)`` suit unit tests.
    targets : sequence of str
        Fields observed every epoch (``ngc104``, ``ngc6791``).
    n_epochs : int
        Epochs taken evenly from :data:`DEFAULT_SCHEDULE` (ignored if *epochs* given).
    epochs : sequence of (proposal, MJD), optional
        Explicit epochs.
    filters, flashes, exptimes : sequences
        Filters, post-flash levels (e-/px) and exposure times (s) of every epoch.
    ctecorr : sequence of {"FLT", "FLC"}
        Versions written of each exposure.
    include_excluded : bool
        Add the images the monitor must skip (charge injection, guide-star failure
        visit, binned visit, failed flash, sub-dither).
    include_180 : bool
        Add the NGC 6583 180-degree same-chip set.
    bad_files : bool
        Add a corrupt, a truncated and a wrong-instrument file under ``data/bad``.
    pam : bool
        Scale star fluxes by a synthetic pixel-area map and write it under ``pam/``.
    physics : FieldPhysics, optional
        Stars, PSF, noise, cosmic rays and pointing errors (default :class:`FieldPhysics`).
    loss_models : mapping, optional
        ``{"FLT": LossModel, "FLC": LossModel}``; default :data:`DEFAULT_LOSS_MODELS`.
    overwrite : bool
        Replace a previous simulation in *out*: remove only the files and
        directories it wrote (listed in its marker file ``.cte-simulation.json``).  A
        non-empty *out* without that marker is refused and left untouched.

    Returns
    -------
    SimulatedCampaign

    Raises
    ------
    TypeError, ValueError
        A parameter of the wrong type or an invalid value (nothing is written).
    FileExistsError
        *out* is not empty and *overwrite* is false, or it is not empty and holds no
        simulation marker (nothing is removed).
    """
    ny, nx = as_shape2(shape, "shape", min=16, max=(CHIP_NY, CHIP_NX))
    phys = FieldPhysics() if physics is None else instance_of(
        physics, "physics", FieldPhysics, what="a FieldPhysics")
    targets = subset_of(targets, "targets", ("ngc104", "ngc6583", "ngc6791"))
    filters = subset_of(filters, "filters", sorted(_SKY))
    versions = subset_of(ctecorr, "ctecorr", ("FLC", "FLT"))
    flashes = as_sequence_of(flashes, "flashes", partial(as_int, min=0,
                                                         allow_integral_float=True))
    exptimes = as_sequence_of(exptimes, "exptimes", partial(as_float, min=0, strict_min=True,
                                                            units="s"))
    if epochs is None:
        n_epochs = as_int(n_epochs, "n_epochs", min=1, max=len(DEFAULT_SCHEDULE))
        idx = np.unique(np.rint(np.linspace(0, len(DEFAULT_SCHEDULE) - 1, n_epochs)).astype(int))
        epochs = [DEFAULT_SCHEDULE[i] for i in idx]
    epochs = [(int(pr), float(mjd)) for pr, mjd in epochs]
    models = dict(DEFAULT_LOSS_MODELS if loss_models is None else loss_models)
    missing = [v for v in versions if v not in models]
    if missing:
        msg = f"loss_models must give a LossModel for {missing}"
        raise ValueError(msg)
    root = Path(out)
    _prepare_outdir(root, overwrite)
    created = [sub for sub in ("data", "catalogs", "truth", "pam")
               if sub != "pam" or pam]
    foreign = {p for p in root.rglob("*")} if root.exists() else set()  # kept user files
    _write_marker(root, created, None)
    for sub in ("data", "catalogs", "truth"):
        (root / sub).mkdir(parents=True, exist_ok=True)

    params = {"shape": (ny, nx), "pointing_error": phys.pointing_error,
              "rotation_error": phys.rotation_error, "psf": phys.psf, "fwhm": phys.fwhm,
              "beta": phys.beta, "read_noise": phys.read_noise, "cr_rate": phys.cr_rate,
              "pam": bool(pam), "loss_models": models}
    rng = np.random.default_rng([seed, 1])
    plan = _plan(targets=targets, epochs=epochs, filters=filters, flashes=flashes,
                 exptimes=exptimes, versions=versions, dither=phys.chip_dither_postarg2,
                 include_excluded=include_excluded, include_180=include_180, rng=rng)
    all_targets = sorted({e.target for e in plan})
    reference_exptime = float(max(exptimes))
    catalogs = {}
    for t in all_targets:
        n = max(1, round(phys.n_stars * _FIELDS[t].density))
        catalogs[t] = make_catalog(t, n, shape=(ny, nx), seed=seed,
                                   flux_range=phys.flux_range,
                                   reference_exptime=reference_exptime)
        catalogs[t].write(root / "catalogs" / f"{t}.ecsv", format="ascii.ecsv", overwrite=True)

    rows: list[dict] = []
    truth_parts: dict[str, list] = {t: [] for t in all_targets}
    for index, exp in enumerate(plan):  # loop over exposures (files), not pixels or stars
        scene = _render(exp, catalogs[exp.target], params, seed, index)
        folder = root / "data" / str(exp.proposal)
        folder.mkdir(exist_ok=True)
        for version, hdul in scene.hdus.items():
            name = f"{exp.rootname}_{version.lower()}"
            path = folder / f"{name}.fits"
            hdul.writeto(path, overwrite=True)
            rows.append({
                "image": name, "path": str(path.relative_to(root)), "rootname": exp.rootname,
                "ctecorr": version, "target": exp.target, "proposal": exp.proposal,
                "visit": exp.visit, "filter": exp.filter, "flash": exp.flash,
                "flashsta": exp.flashsta, "exptime": exp.exptime, "mjd": exp.mjd,
                "chip": exp.field_chip, "orientat": exp.orientat, "postarg1": exp.postarg1,
                "postarg2": exp.postarg2, **scene.info, "expected_skip": exp.expected_skip,
            })
            truth_parts[exp.target].append((name, scene.truth[version]))
        logger.info("simulated %s (%s)", exp.rootname, ", ".join(scene.hdus))

    images = pd.DataFrame(rows)
    Table.from_pandas(images).write(root / "truth" / "images.ecsv", format="ascii.ecsv",
                                    overwrite=True)
    for t, parts in truth_parts.items():
        _write_truth(root / "truth" / f"{t}.nc", t, catalogs[t], parts)
    bad = _write_bad_files(root, plan, seed) if bad_files else {}
    pam_dir = _write_pams(root / "pam") if pam else None
    _write_lossmodel(root / "truth" / "lossmodel.json", models)
    parameters = {k: v for k, v in params.items() if k != "loss_models"}
    parameters.update(seed=int(seed), n_stars=phys.n_stars,
                      flux_range=list(phys.flux_range),
                      targets=list(targets),
                      epochs=epochs, filters=list(filters), flashes=list(flashes),
                      exptimes=list(exptimes), ctecorr=list(versions),
                      include_excluded=include_excluded, include_180=include_180,
                      chip_dither_postarg2=phys.chip_dither_postarg2)
    parameters["shape"] = [ny, nx]
    summary = {**provenance(), "parameters": parameters, "bad_files": bad,
               "expected_skips": {r["path"]: r["expected_skip"] for r in rows
                                  if r["expected_skip"]}}
    (root / "truth" / "campaign.json").write_text(json.dumps(summary, indent=2))
    _write_marker(root, created, _written_files(root, created, foreign))
    logger.info("simulated campaign: %d image files in %s", len(rows), root)
    return SimulatedCampaign(root=root, images=images, bad_files=bad, loss_models=models,
                             seed=int(seed), shape=(ny, nx), pam_dir=pam_dir,
                             parameters=parameters)


def _read_marker(root: Path) -> dict | None:
    path = root / MARKER
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        msg = f"{path}: unreadable simulation marker ({exc}); remove the directory by hand"
        raise FileExistsError(msg) from exc
    if not isinstance(doc, dict) or doc.get("writer") != "cte.simulate":
        msg = f"{path}: not a marker written by cte.simulate; refusing to delete anything"
        raise FileExistsError(msg)
    return doc


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` when *relative* is a plain relative path inside *root*."""
    rel = Path(str(relative))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    return root / rel


def _prepare_outdir(root: Path, overwrite: bool) -> None:
    """Refuse a non-empty *root*, or remove what a previous simulation wrote there."""
    if root.exists() and not root.is_dir():
        msg = f"{root} exists and is not a directory"
        raise FileExistsError(msg)
    if not root.exists() or not any(root.iterdir()):
        return
    if not overwrite:
        msg = f"{root} exists and is not empty; pass overwrite=True to replace it"
        raise FileExistsError(msg)
    doc = _read_marker(root)
    if doc is None:
        msg = (f"{root} is not empty and holds no simulation marker ({MARKER}): it was not "
               "written by cte simulate, so --overwrite refuses to delete anything in it")
        raise FileExistsError(msg)
    directories = [d for d in (_inside(root, d) for d in doc.get("directories", [])) if d]
    if doc.get("files") is None:  # an interrupted simulation: its directories are its own
        for folder in directories:
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)
    else:
        for name in doc["files"]:
            path = _inside(root, name)
            if path is not None and (path.is_file() or path.is_symlink()):
                path.unlink()
        # directories the simulation created, deepest first, if nothing else is left
        made = {p for p in (_inside(root, d) for d in doc.get("made", [])) if p}
        for folder in sorted(made | set(directories), key=lambda p: len(p.parts),
                             reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    (root / MARKER).unlink()
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    if left:
        logger.warning("%s: kept %d file(s) the previous simulation did not write: %s",
                       root, len(left), left[:5])
    logger.info("removed the previous simulation in %s", root)


def _written_files(root: Path, created: Sequence[str], foreign: set[Path]
                   ) -> dict[str, list[str]]:
    """Files and directories under *created* that this simulation wrote (not *foreign*)."""
    files: list[str] = []
    made: list[str] = []
    for sub in created:
        base = root / sub
        if not base.exists():
            continue
        if base not in foreign:
            made.append(sub)
        for path in sorted(base.rglob("*")):
            if path in foreign:
                continue
            rel = str(path.relative_to(root))
            (made if path.is_dir() else files).append(rel)
    return {"files": files, "made": made}


def _write_marker(root: Path, created: Sequence[str], written: dict | None) -> None:
    """The marker file listing what this simulation wrote (``files`` None while running)."""
    root.mkdir(parents=True, exist_ok=True)
    doc = {"writer": "cte.simulate", "software": software(), "directories": list(created),
           "files": None if written is None else written["files"],
           "made": [] if written is None else written["made"]}
    atomic_write(root / MARKER, json.dumps(doc, indent=1))


def _write_truth(path: Path, target: str, catalog: Table, parts) -> None:
    """The truth file of *target*, built from its declaration (:mod:`cte.schema`)."""
    ds = build(TRUTH_VARIABLES, TRUTH_COORDS, {
        **{name: np.stack([t[name] for _, t in parts]) for name in TRUTH_VARIABLES},
        "image": [name for name, _ in parts], "star": catalog["master_id"],
    }, attrs={"target": target, "description": "truth of the simulated campaign"})
    ds.to_netcdf(path, engine="h5netcdf")


def _write_lossmodel(path: Path, models: Mapping[str, LossModel]) -> None:
    doc = {
        "formula": FORMULA,
        "basis_terms": list(BASIS_TERMS),
        "mjd_origin": MJD_ORIGIN,
        "flux_scale": FLUX_SCALE,
        "coefficients": {v: {t: float(m.coefficients.get(t, 0.0)) for t in BASIS_TERMS}
                         for v, m in models.items()},
    }
    path.write_text(json.dumps(doc, indent=2))


def _write_pams(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:CHIP_NY, 0:CHIP_NX]
    for chip in (1, 2):
        hdu = fits.PrimaryHDU(_pam_value(chip, xx, yy).astype(np.float32))
        hdu.header["ORIGIN"] = ("stiscube.cte.simulate", "SIMULATED pixel-area map")
        hdu.header["CCDCHIP"] = chip
        hdu.writeto(folder / f"UVIS{chip}wfc3_map.fits", overwrite=True)
    return folder


def _write_bad_files(root: Path, plan: list[_Exposure], seed: int) -> dict[str, str]:
    folder = root / "data" / "bad"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 99])
    out = {}
    corrupt = folder / "ibadcorrq_flt.fits"
    corrupt.write_bytes(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    out[str(corrupt.relative_to(root))] = "InvalidImageError"
    good = next(e for e in plan if not e.expected_skip)
    source = root / "data" / str(good.proposal) / f"{good.rootname}_flt.fits"
    if not source.exists():
        source = source.with_name(f"{good.rootname}_flc.fits")
    truncated = folder / "ibadtrunq_flt.fits"
    raw = source.read_bytes()
    truncated.write_bytes(raw[: int(len(raw) * 0.6)])
    out[str(truncated.relative_to(root))] = "InvalidImageError"
    wrong = folder / "ibadinstq_flt.fits"
    with fits.open(source) as hdul:
        hdul[0].header["INSTRUME"] = "ACS"
        hdul[0].header["DETECTOR"] = "WFC"
        hdul[0].header["ROOTNAME"] = "ibadinstq"
        hdul.writeto(wrong, overwrite=True)
    out[str(wrong.relative_to(root))] = "WrongInstrumentError"
    return out


def load_campaign(root: str | os.PathLike) -> SimulatedCampaign:
    """Re-open a campaign written by :func:`simulate_campaign` (its truth and summary).

    Parameters
    ----------
    root : path-like
        The directory :func:`simulate_campaign` wrote.
    """
    root = Path(root)
    summary_path = root / "truth" / "campaign.json"
    if not summary_path.exists():
        msg = f"{root} does not hold a simulated campaign (no truth/campaign.json)"
        raise FileNotFoundError(msg)
    summary = json.loads(summary_path.read_text())
    images = Table.read(root / "truth" / "images.ecsv", format="ascii.ecsv").to_pandas()
    images["expected_skip"] = images["expected_skip"].fillna("").astype(str)
    doc = json.loads((root / "truth" / "lossmodel.json").read_text())
    models = {v: LossModel(c) for v, c in doc["coefficients"].items()}
    pam_dir = root / "pam"
    params = summary["parameters"]
    return SimulatedCampaign(root=root, images=images, bad_files=summary["bad_files"],
                             loss_models=models, seed=int(params["seed"]),
                             shape=tuple(params["shape"]),
                             pam_dir=pam_dir if pam_dir.exists() else None,
                             parameters=params)

