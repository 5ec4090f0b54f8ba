"""The data products of the monitor, each declared once: the photometry Dataset (dims,
variables, coordinates, units), the loss Dataset, the coefficient table and the truth of a
simulated campaign.

This module is the one declaration of the photometry data product: the store's
validator (:func:`validate`), the analysis' check (:func:`cte.analysis.pairs.validate_photometry`
uses :data:`DIMS`, :data:`IMAGE_COORDS` and :data:`ALLOWED_VALUES`), the writer
(:func:`annotate`) and the synthetic photometry of :mod:`cte.datasets._synthphot` (its image
coordinates are :func:`image_coordinates`) all derive from it.

One Dataset per key ``(target, filter, flash<N>)`` with dims ``image``, ``star``,
``aperture``.  :data:`VARIABLES` and :data:`COORDS` give, for every name, its dims,
dtype kind, units and long name; :func:`annotate` writes the attributes and
:func:`validate` checks a Dataset against the contract.

Beyond the shared contract, two image coordinates are added: ``orientat`` (deg, the
position angle of the image y axis, which distinguishes the 180-degree set's
orientations) and ``pam_corrected`` (int8, 1 when the pixel-area map was applied).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from cte.exceptions import InvalidPhotometryError
from cte.flags import cf_flag_attrs
from stores.common.validate import as_int

__all__ = [
    "ALLOWED_VALUES",
    "COORDS",
    "DIMS",
    "IMAGE_COORDS",
    "LOSS_COORD_UNITS",
    "LOSS_DIMS",
    "LOSS_VARIABLES",
    "MODEL_CONFIG_KEYS",
    "TRUTH_DIMS",
    "TRUTH_VARIABLES",
    "VARIABLES",
    "annotate",
    "coefficient_columns",
    "image_coordinates",
    "key_for",
    "validate",
]

DIMS = ("image", "star", "aperture")

#: name -> (dims, dtype kind, units, long_name); kinds: f float, i int, U/O string
VARIABLES: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "flux": (DIMS, "f", "electron",
             "background-subtracted aperture sum, no pixel masking"),
    "flux_masked": (DIMS, "f", "electron",
                    "background-subtracted aperture sum with DQ-masked pixels replaced by "
                    "the Gaussian-weighted mean of their good neighbours"),
    "flux_err": (DIMS, "f", "electron",
                 "1-sigma uncertainty of flux: sqrt(sum(ERR^2 w) + area^2 sigma_bkg^2 / n_bkg)"),
    "background": (("image", "star"), "f", "electron / pixel",
                   "sigma-clipped median of the background annulus, per pixel"),
    "x": (("image", "star"), "f", "pixel", "0-based centroid x on the full chip"),
    "y": (("image", "star"), "f", "pixel", "0-based centroid y on the full chip"),
    "transfers": (("image", "star"), "f", "1",
                  "parallel transfers: y on chip 2, 2051 - y on chip 1"),
    "flags": (("image", "star"), "i", "1", "photometry quality flags (cte.flags.STAR_FLAGS)"),
}

#: coordinate name -> (dims, dtype kind, units, long_name)
COORDS: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "image": (("image",), "U", "1", "image id <rootname>_<flt|flc>"),
    "rootname": (("image",), "U", "1", "rootname of the exposure"),
    "ctecorr": (("image",), "U", "1", "FLT (no pixel-based CTE correction) or FLC"),
    "proposal": (("image",), "i", "1", "proposal ID (PROPOSID)"),
    "visit": (("image",), "U", "1", "visit (characters 5-6 of the rootname)"),
    "mjd": (("image",), "f", "d", "exposure start (EXPSTART), MJD"),
    "exptime": (("image",), "f", "s", "exposure time (EXPTIME)"),
    "exptime_class": (("image",), "U", "1", "short or long exposure"),
    "postarg1": (("image",), "f", "arcsec", "POSTARG1"),
    "postarg2": (("image",), "f", "arcsec", "POSTARG2"),
    "chip": (("image",), "i", "1", "chip (1 or 2) holding the cluster field"),
    "flash": (("image",), "f", "electron / pixel", "post-flash level (FLASHLVL)"),
    "background_level": (("image",), "f", "electron / pixel",
                         "sigma-clipped median of the image (sky + flash)"),
    "wcs_shift_x": (("image",), "f", "pixel", "fitted WCS correction: x shift at image centre"),
    "wcs_shift_y": (("image",), "f", "pixel", "fitted WCS correction: y shift at image centre"),
    "wcs_rotation": (("image",), "f", "deg", "fitted WCS correction: rotation"),
    "wcs_residual_rms": (("image",), "f", "pixel", "RMS residual of the WCS alignment"),
    "orientat": (("image",), "f", "deg", "position angle of the image y axis (ORIENTAT)"),
    "pam_corrected": (("image",), "i", "1", "1 if the pixel-area map was applied"),
    "star": (("star",), "i", "1", "master catalog id"),
    "aperture": (("aperture",), "f", "pixel", "aperture radius"),
}

#: image coordinates the analysis needs (pairing, loss, model)
IMAGE_COORDS: tuple[str, ...] = (
    "ctecorr",
    "proposal",
    "visit",
    "mjd",
    "exptime",
    "exptime_class",
    "postarg1",
    "chip",
    "flash",
)

#: coordinate -> the values it may take
ALLOWED_VALUES: dict[str, frozenset] = {
    "chip": frozenset({1, 2}),
    "ctecorr": frozenset({"FLT", "FLC"}),
    "exptime_class": frozenset({"short", "long"}),
}


# -- the loss Dataset (cte.measure_loss) ----------------------------------------------------
#: dims of every per-cell variable of the loss Dataset
LOSS_DIMS = ("pair", "flux_bin", "aperture")

#: per-cell variable -> (units, long_name); further per-cell statistics and the pivot
#: variables are documented where they are computed (cte.analysis.loss)
LOSS_VARIABLES: dict[str, tuple[str, str]] = {
    "loss": ("1", "fraction of flux lost per 2048 transfers (exact ratio model)"),
    "loss_err": ("1", "1-sigma uncertainty of loss"),
    "n_stars": ("1", "stars used in the fit (after clipping)"),
    "n_clipped": ("1", "stars removed by sigma clipping"),
    "loss_linear": ("1", "slope * 2048 / 2 (seed's first-order loss)"),
    "slope": ("1 / transfer", "slope of flux ratio vs denominator transfers (chip-2 y)"),
    "slope_err": ("1 / transfer", "1-sigma uncertainty of slope"),
    "intercept": ("1", "flux ratio at zero denominator transfers"),
    "intercept_err": ("1", "1-sigma uncertainty of intercept"),
    "rms": ("1", "rms of the ratio about the fit"),
    "transfers_mean": ("1", "mean denominator transfers of the stars used"),
}

#: coordinate of the loss Dataset -> units (the others are labels)
LOSS_COORD_UNITS: dict[str, str] = {
    "mjd": "d",
    "exptime": "s",
    "flash": "electron / pixel",
    "postarg1": "arcsec",
    "flux_bin_lo": "electron",
    "flux_bin_hi": "electron",
    "aperture": "pixel",
}


# -- the coefficient table (cte.fit_model, CTEModel.write) -----------------------------------
#: columns naming the configuration a model was fitted for
MODEL_CONFIG_KEYS: tuple[str, ...] = ("target", "filter", "exptime_class", "ctecorr", "aperture")


def coefficient_columns(terms: tuple[str, ...]) -> dict[str, tuple[str | None, str | None, bool]]:
    """Columns of the coefficient table for the model *terms*
    (:data:`cte.analysis.lossmodel.BASIS_TERMS`), in table order.

    Returns
    -------
    dict
        name -> (unit or None, description or None, required when reading).
    """
    cols: dict[str, tuple[str | None, str | None, bool]] = {
        key: ("pix" if key == "aperture" else None, None, True) for key in MODEL_CONFIG_KEYS
    }
    cols["terms"] = (None, "terms fitted (the others are fixed at 0, their errors are NaN)",
                     True)
    cols["dropped"] = (None, "terms not fitted, with the reason", False)
    for term in terms:
        cols[f"fitted_{term}"] = (None, f"True if term {term} was fitted", False)
    for term in terms:
        cols[f"c_{term}"] = (None, f"coefficient of term {term}", True)
        cols[f"e_{term}"] = (None, f"1-sigma uncertainty of c_{term} (NaN: not fitted)", False)
    cols["covariance"] = (None, "coefficient covariance, order " + " ".join(terms), True)
    cols["chi2_red"] = (None, "reduced chi-square of the fit", True)
    cols["covariance_scale"] = (None, "factor applied to the covariance (max(1, chi2_red))",
                                True)
    cols["dof"] = (None, None, True)
    cols["n_cells"] = (None, "cells (pair x flux bin) fitted", True)
    cols["n_stars"] = (None, "star measurements in those cells", True)
    cols["n_epochs"] = (None, "distinct epochs among the cells fitted", False)
    cols["n_flux_bins"] = (None, "distinct flux bins among the cells fitted", False)
    for name, unit in (("flux", "electron"), ("mjd", "d"), ("background", "electron / pix")):
        cols[f"{name}_min"] = (unit, None, True)
        cols[f"{name}_max"] = (unit, None, True)
    return cols


# -- the truth of a simulated campaign (cte.datasets.simulate: truth/<target>.nc) -----------
#: dims of every truth variable; coordinates ``image`` (image id) and ``star`` (master id)
TRUTH_DIMS = ("image", "star")

#: truth variable -> (numpy dtype, units, long_name), in file order
TRUTH_VARIABLES: dict[str, tuple[str, str, str]] = {
    "x": ("float64", "px", "true 0-based x on the field chip (full-chip coordinates)"),
    "y": ("float64", "px", "true 0-based y on the field chip (full-chip coordinates)"),
    "flux_true": ("float64", "electron", "true flux before CTE loss"),
    "transfers": ("float64", *VARIABLES["transfers"][2:]),
    "loss": ("float64", "1", "injected loss L: fraction of flux lost per 2048 transfers"),
    "flux_expected": ("float64", "electron", "flux_true * (1 - loss * transfers / 2048) / PAM"),
    "on_image": ("int8", "1", "star centre inside the written image"),
}


def image_coordinates() -> tuple[str, ...]:
    """Names of the coordinates along ``image`` (``image`` first), in declaration order."""
    return tuple(name for name, (dims, *_) in COORDS.items() if dims == ("image",))


def key_for(target: str, filter: str, flash: float) -> str:
    """Store key ``"<target>/<filter>/flash<N>"`` (N the integer flash level, e-/px)."""
    return f"{target}/{filter}/flash{as_int(flash, 'flash', allow_integral_float=True)}"


def annotate(ds: xr.Dataset) -> xr.Dataset:
    """Write ``units`` and ``long_name`` (and CF flag attributes) on every known name."""
    for table in (VARIABLES, COORDS):
        for name, (_, _, units, long_name) in table.items():
            if name in ds.variables:
                ds[name].attrs.update(units=units, long_name=long_name)
    if "flags" in ds:
        ds["flags"].attrs.update(cf_flag_attrs())
    return ds


def _kind_ok(kind: str, dtype: np.dtype) -> bool:
    if kind in "UO":
        return dtype.kind in "UOT"
    return dtype.kind == kind


def validate(ds: xr.Dataset, *, where: str = "dataset") -> None:
    """Raise :class:`InvalidPhotometryError` unless *ds* follows the contract."""
    if not isinstance(ds, xr.Dataset):
        msg = f"{where}: expected an xarray.Dataset, got {type(ds).__name__}"
        raise InvalidPhotometryError(msg)
    problems = []
    for table, label in ((VARIABLES, "variable"), (COORDS, "coordinate")):
        for name, (dims, kind, _, _) in table.items():
            if name not in ds.variables:
                problems.append(f"missing {label} {name!r}")
                continue
            var = ds[name]
            if var.dims != dims:
                problems.append(f"{label} {name!r} has dims {var.dims}, expected {dims}")
            if not _kind_ok(kind, var.dtype):
                problems.append(f"{label} {name!r} has dtype {var.dtype}, expected kind {kind}")
            for attr in ("units", "long_name"):
                if attr not in var.attrs:
                    problems.append(f"{label} {name!r} lacks the {attr!r} attribute")
    for attr in ("target", "filter", "flash"):
        if attr not in ds.attrs:
            problems.append(f"missing attribute {attr!r}")
    if "image" in ds.indexes and ds.indexes["image"].has_duplicates:
        problems.append("duplicate image ids")
    if problems:
        msg = f"{where}: not a photometry Dataset: " + "; ".join(problems)
        raise InvalidPhotometryError(msg)
