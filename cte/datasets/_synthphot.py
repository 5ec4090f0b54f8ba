"""Seeded synthetic photometry Datasets with a known CTE loss (no images involved).

This factory writes photometry directly in the store's Dataset layout (dims ``image``,
``star``, ``aperture``; see :mod:`cte.analysis.pairs` for the coordinates used) from a
:class:`cte.analysis.lossmodel.LossModel` truth, so that the analysis half of the monitor
(pairs, loss, model, correction) can be tested and benchmarked without rendering
images.  It is deliberately simple and fully vectorised (no loop over stars):

- every epoch is one visit of one proposal; in it, for each exposure class (short and
  long) and each of FLT/FLC, the cluster is observed once on chip 2 and, a few minutes
  later, on chip 1 after a dither of one chip height (``layout="nominal"``), or twice
  on the same chip with the field rotated by 180 degrees in a second visit
  (``layout="180"``, as the NGC 6583 set of proposal 12692);
- a star's true flux in an aperture of radius ``r`` is ``rate * exptime * ee(r)`` with
  the encircled energy ``ee(r) = 1 - (1 + (r / 1.5 px)^2)^(-1.5)`` (a Moffat profile);
  star rates are log-uniform so that long-exposure fluxes span 100–100 000 e-;
- **injected loss**: in an image with MJD ``m`` and background ``B`` (sky + flash,
  e-/px), a star with true aperture flux ``F`` and ``n`` parallel transfers is
  measured as ``F (1 - L(F, m, B) n / 2048)`` plus noise, where ``L`` is the truth
  model of the image's FLT/FLC kind evaluated at the *aperture* flux (each aperture
  thus has its own, exactly known, loss law of the same family), computed by
  :func:`cte.datasets.simulate.true_loss`, written independently of the library's basis;
- noise: Gaussian with variance ``F_obs + A (B + RN^2)`` (Poisson plus sky and read
  noise over the aperture area ``A = pi r^2``); the FLC of an exposure shares the FLT's
  noise realisation; the per-star local background is ``B`` plus the noise of its
  mean over a 500-pixel annulus;
- cosmic rays: a fraction of (image, star) measurements gets ``U(200, 5000)`` e- added
  to ``flux`` (not to ``flux_masked``); most of them are flagged
  :data:`cte.flags.COSMIC_RAY`, some are left unflagged to exercise sigma clipping;
- stars that a dither moves off the chip get NaN fluxes and :data:`cte.flags.OFF_CHIP`.

The truth (unattenuated aperture flux and injected ``L`` per image, star and
aperture) is returned beside the photometry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import xarray as xr

from cte.analysis.lossmodel import LossModel
from cte.datasets.simulate import true_loss
from cte.flags import COSMIC_RAY, OFF_CHIP
from cte.schema import COORDS, SYNTHETIC_TRUTH, VARIABLES, build, image_coordinates
from stores.common.validate import as_float, as_int, as_sequence_of, instance_of, one_of, subset_of

__all__ = [
    "CHIP_ROWS",
    "DEFAULT_EPOCHS",
    "DEFAULT_TRUTH",
    "SyntheticPhotometry",
    "encircled_energy",
    "make_photometry",
]

#: rows of a UVIS chip; parallel transfers are y on chip 2 and CHIP_ROWS - y on chip 1
CHIP_ROWS = 2051

#: truth of the factory: FLT loss (10–25 % per 2048 transfers for faint stars by 2015,
#: a few % for bright ones, growing with time, smaller with background); FLC 0.3 x FLT.
DEFAULT_TRUTH: dict[str, LossModel] = {
    "FLT": LossModel(
        {"1": 0.10, "x": -0.06, "x2": 0.012, "t": 0.015, "xt": -0.002, "b": -0.03, "bx": 0.014}
    ),
    "FLC": LossModel(
        {
            "1": 0.030,
            "x": -0.018,
            "x2": 0.0036,
            "t": 0.0045,
            "xt": -0.0006,
            "b": -0.009,
            "bx": 0.0042,
        }
    ),
}

#: default epochs as (proposal, MJD of the first exposure)
DEFAULT_EPOCHS: tuple[tuple[int, float], ...] = (
    (11924, 55120.0),
    (12379, 55520.0),
    (12692, 55850.0),
    (13083, 56240.0),
    (13566, 56680.0),
    (14012, 57070.0),
    (14378, 57420.0),
    (14541, 57770.0),
)

_DEFAULT_EXPTIMES = {"short": 30.0, "long": 348.0}
_MIN_FLUX, _MAX_FLUX = 100.0, 100_000.0  # long-exposure aperture-3 flux range, e-


def encircled_energy(radius) -> np.ndarray:
    """Fraction of a star's flux inside ``radius`` px: ``1 - (1 + (r/1.5)^2)^-1.5``."""
    r = np.asarray(radius, dtype=float)
    return 1.0 - (1.0 + (r / 1.5) ** 2) ** -1.5


@dataclass(frozen=True)
class SyntheticPhotometry:
    """A synthetic photometry Dataset and its truth.

    Parameters
    ----------
    photometry : xarray.Dataset
        Photometry in the store layout (dims ``image``, ``star``, ``aperture``).
    truth : xarray.Dataset
        ``true_flux`` (image, star, aperture) in e-, the unattenuated aperture flux,
        and ``loss`` (image, star, aperture), the injected fraction lost per 2048
        transfers, on the same coordinates.
    model : dict of str to LossModel
        The truth model per ``ctecorr`` (``"FLT"``, ``"FLC"``).
    """

    photometry: xr.Dataset
    truth: xr.Dataset
    model: Mapping[str, LossModel]


def _exptimes(value) -> dict[str, float]:
    """Exposure time (s, > 0) of each class ``"short"``/``"long"``, in the order given."""
    instance_of(value, "exptimes", Mapping, what="a mapping of 'short'/'long' to seconds")
    classes = subset_of(list(value), "exptimes", ("short", "long"))
    return {c: as_float(value[c], f"exptimes[{c!r}]", min=0, strict_min=True, units="s")
            for c in classes}


def _image_table(epochs, exptimes, ctecorr, flash, layout, sky_rate) -> dict[str, np.ndarray]:
    """One row per image; loops over epochs/classes/kinds only (a few dozen images)."""
    rows: dict[str, list] = {k: [] for k in _IMAGE_COORDS}
    rows["_pair_slot"] = []  # 0 = first image of its pair (chip 2 / first orientation)
    rows["_epoch"] = []
    for e, (proposal, mjd0) in enumerate(epochs):
        for c, (cls, exptime) in enumerate(exptimes.items()):
            for slot in (0, 1):
                if layout == "nominal":
                    visit, chip = f"{e + 1:02d}", (2, 1)[slot]
                    mjd = mjd0 + 0.01 * c + 0.003 * slot
                    postarg2 = (0.0, 80.0)[slot]
                else:
                    visit, chip = ("10", "11")[slot], 2
                    mjd = mjd0 + 0.01 * c + 1.5 * slot
                    postarg2 = 0.0
                rootname = f"s{e:02d}{c}{slot}f{int(flash):03d}"
                background = float(flash) + sky_rate * exptime
                for kind in ctecorr:
                    rows["image"].append(f"{rootname}_{kind.lower()}")
                    rows["rootname"].append(rootname)
                    rows["ctecorr"].append(kind)
                    rows["proposal"].append(int(proposal))
                    rows["visit"].append(visit)
                    rows["mjd"].append(mjd)
                    rows["exptime"].append(float(exptime))
                    rows["exptime_class"].append(cls)
                    rows["postarg1"].append(0.0)
                    rows["postarg2"].append(postarg2)
                    rows["chip"].append(chip)
                    rows["flash"].append(float(flash))
                    rows["background_level"].append(background)
                    rows["wcs_shift_x"].append(0.0)
                    rows["wcs_shift_y"].append(0.0)
                    rows["wcs_rotation"].append(0.0)
                    rows["wcs_residual_rms"].append(0.02)
                    rows["orientat"].append((0.0, 180.0)[slot] if layout == "180" else 0.0)
                    rows["pam_corrected"].append(1)
                    rows["_pair_slot"].append(slot)
                    rows["_epoch"].append(e)
    out = {k: np.asarray(v) for k, v in rows.items()}
    out["proposal"] = out["proposal"].astype(np.int64)
    out["chip"] = out["chip"].astype(np.int8)
    out["pam_corrected"] = out["pam_corrected"].astype(np.int8)
    return out


#: the image coordinates of a stored photometry Dataset (declared in cte.schema)
_IMAGE_COORDS = image_coordinates()


def make_photometry(
    *,
    target: str = "ngc104",
    filter: str = "F502N",
    flash: float = 12.0,
    n_stars: int = 1000,
    epochs: Sequence[tuple[int, float]] = DEFAULT_EPOCHS,
    exptimes: Mapping[str, float] | None = None,
    ctecorr: Sequence[str] = ("FLT", "FLC"),
    apertures: Sequence[float] = (3.0, 5.0, 10.0),
    layout: str = "nominal",
    truth: Mapping[str, LossModel] | None = None,
    read_noise: float = 3.0,
    sky_rate: float = 0.005,
    cr_rate: float = 0.02,
    unflagged_cr_fraction: float = 0.25,
    seed: int | None = 0,
) -> SyntheticPhotometry:
    """Build one photometry Dataset (one target, filter and flash level) with known loss.

    Parameters
    ----------
    target, filter : str
        Stored as the Dataset's attrs.
    flash : float
        Post-flash level in e-/px (also the ``flash`` coordinate of every image).
    n_stars : int
        Number of catalogue stars (master ids ``0 .. n_stars - 1``).
    epochs : sequence of (proposal, mjd)
        One visit per epoch.
    exptimes : mapping of {"short", "long"} to s
        Exposure time of each class; default ``{"short": 30, "long": 348}``.
    ctecorr : sequence of {"FLT", "FLC"}
        Kinds of image written for every exposure.
    apertures : sequence of float
        Aperture radii in px.
    layout : {"nominal", "180"}
        Chip-2/chip-1 pairs in one visit, or same-chip pairs rotated by 180 degrees in
        two visits.
    truth : mapping of str to LossModel
        Injected loss per ``ctecorr``; default :data:`DEFAULT_TRUTH`.
    read_noise : float
        e- per pixel.
    sky_rate : float
        Sky background in e-/px/s, added to the flash.
    cr_rate : float
        Fraction of (image, star) measurements hit by a cosmic ray.
    unflagged_cr_fraction : float
        Fraction of those hits that are not flagged.
    seed : int or None
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    SyntheticPhotometry

    Raises
    ------
    TypeError, ValueError
        An option of the wrong type or out of range (the message names it): *n_stars*
        below 1, a radius <= 0, an unknown *layout*, a *ctecorr* kind the truth does not
        model, an *exptimes* class other than ``"short"``/``"long"`` or a time <= 0 s.
    """
    truth = dict(DEFAULT_TRUTH if truth is None else truth)
    exptimes = _exptimes(_DEFAULT_EXPTIMES if exptimes is None else exptimes)
    n_stars = as_int(n_stars, "n_stars", min=1, allow_integral_float=True)
    apertures = as_sequence_of(apertures, "apertures",
                               partial(as_float, min=0, strict_min=True, units="pixel"))
    layout = one_of(layout, "layout", ("nominal", "180"))
    ctecorr = subset_of(ctecorr, "ctecorr", [k for k in ("FLT", "FLC") if k in truth])
    rng = np.random.default_rng(seed)

    img = _image_table(epochs, exptimes, ctecorr, flash, layout, sky_rate)
    n_img, n_ap = img["image"].size, len(apertures)
    radii = np.asarray(apertures)

    # --- stars: rates, positions (fixed per star), per-epoch dither/rotation ---------
    long_exptime = max(exptimes.values())
    log_flux = rng.uniform(np.log10(_MIN_FLUX), np.log10(_MAX_FLUX), n_stars)
    rate = 10.0**log_flux / long_exptime / encircled_energy(3.0)  # e-/s, total
    x0 = rng.uniform(20.0, 4076.0, n_stars)
    y0 = rng.uniform(10.0, CHIP_ROWS - 10.0, n_stars)
    n_epochs = len(epochs)
    offset = rng.normal(0.0, 15.0, (n_epochs, 2))  # (epoch, slot) pointing offset, px
    jitter = rng.normal(0.0, 0.3, (n_epochs, 2, n_stars))  # distortion residuals, px

    epoch, slot = img["_epoch"], img["_pair_slot"]
    if layout == "nominal":
        y = y0[None, :] + offset[epoch, slot][:, None] + jitter[epoch, slot]
    else:  # second orientation rotated by 180 degrees about the chip centre
        y_first = y0[None, :] + offset[epoch, 0][:, None] + jitter[epoch, 0]
        y_rot = (CHIP_ROWS - 1.0) - y0[None, :] + offset[epoch, 1][:, None] + jitter[epoch, 1]
        y = np.where((slot == 0)[:, None], y_first, y_rot)
    x = np.broadcast_to(x0, (n_img, n_stars)).copy()
    chip = img["chip"].astype(float)[:, None]
    transfers = np.where(chip == 2, y, CHIP_ROWS - y)  # independent of cte.io._geometry
    off_chip = (y < 0) | (y > CHIP_ROWS - 1)

    # --- true fluxes and injected loss -------------------------------------------
    ee = encircled_energy(radii)
    true_flux = rate[None, :, None] * img["exptime"][:, None, None] * ee[None, None, :]
    mjd = np.broadcast_to(img["mjd"][:, None, None], true_flux.shape)
    bkg = np.broadcast_to(img["background_level"][:, None, None], true_flux.shape)
    loss = np.empty_like(true_flux)
    for kind, model in truth.items():  # loop over FLT/FLC only
        sel = img["ctecorr"] == kind
        loss[sel] = true_loss(model.coefficients, true_flux[sel], mjd[sel], bkg[sel])
    kept = true_flux * (1.0 - loss * transfers[:, :, None] / 2048.0)

    # --- noise: shared between the FLT and FLC of one exposure --------------------
    area = np.pi * radii**2
    sky_var = area[None, None, :] * (bkg + read_noise**2)
    exposure_key = np.unique(img["rootname"], return_inverse=True)[1]
    n_exp = exposure_key.max() + 1
    unit_noise = rng.standard_normal((n_exp, n_stars, n_ap))[exposure_key]
    sigma = np.sqrt(np.clip(kept, 0.0, None) + sky_var)
    flux_masked = kept + sigma * unit_noise
    flux_err = np.sqrt(np.clip(flux_masked, 0.0, None) + sky_var)
    ann_noise = rng.standard_normal((n_exp, n_stars))[exposure_key]
    background = img["background_level"][:, None] + ann_noise * np.sqrt(
        (img["background_level"][:, None] + read_noise**2) / 500.0
    )

    hit = rng.random((n_exp, n_stars))[exposure_key] < cr_rate
    cr_energy = rng.uniform(200.0, 5000.0, (n_exp, n_stars))[exposure_key]
    unflagged = rng.random((n_exp, n_stars))[exposure_key] < unflagged_cr_fraction
    flux = flux_masked + np.where(hit, cr_energy, 0.0)[:, :, None]
    flags = np.where(hit & ~unflagged, COSMIC_RAY, 0) | np.where(off_chip, OFF_CHIP, 0)

    nan3 = off_chip[:, :, None]
    flux = np.where(nan3, np.nan, flux)
    flux_masked = np.where(nan3, np.nan, flux_masked)
    flux_err = np.where(nan3, np.nan, flux_err)
    background = np.where(off_chip, np.nan, background)

    ds = _assemble(img, radii, n_stars, flux, flux_masked, flux_err, background, x, y,
                   transfers, flags.astype(np.int32))
    ds.attrs.update({"target": target, "filter": filter, "flash": round(float(flash))})
    truth_ds = build(SYNTHETIC_TRUTH, COORDS, {
        "true_flux": true_flux, "loss": loss,
        **{name: ds[name].values for name in ("image", "star", "aperture")}})
    return SyntheticPhotometry(photometry=ds, truth=truth_ds, model=truth)


def _assemble(img, radii, n_stars, flux, flux_masked, flux_err, background, x, y,
              transfers, flags) -> xr.Dataset:
    """The photometry Dataset, built from its declaration (:mod:`cte.schema`)."""
    return build(VARIABLES, COORDS, {
        **{name: img[name] for name in _IMAGE_COORDS}, "star": np.arange(n_stars),
        "aperture": radii, "flux": flux, "flux_masked": flux_masked, "flux_err": flux_err,
        "background": background, "x": x, "y": y, "transfers": transfers, "flags": flags,
    })
