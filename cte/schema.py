"""The data products of the monitor, each declared once with concrete dtypes and
astropy-parseable units: the photometry Dataset, the pairs Dataset, the loss Dataset, the
coefficient table, and the truth of a simulated campaign and of synthetic photometry.

Every Dataset is a mapping name -> :class:`Field` (dims, numpy dtype, units, long name)
for its variables and one for its coordinates; :func:`build` makes a Dataset from
values and a declaration (casting to the declared dtype and writing ``units`` and
``long_name``), and is the one writer of each product: the photometry of an image
(:mod:`cte.photometry._measure`) and the synthetic photometry
(:mod:`cte.datasets._synthphot`), the pairs (:func:`cte.analysis.pairs.pair_images`),
the loss (:func:`cte.measure_loss`) and the truth files (:mod:`cte.datasets.simulate`).
:func:`validate` checks a photometry Dataset against its declaration (the store's check;
the analysis' is :func:`cte.analysis.pairs.validate_photometry`).

One photometry Dataset per key ``(target, filter, flash<N>)`` with dims ``image``,
``star``, ``aperture``; besides the positions, fluxes and flags it carries ``orientat``
(deg, the position angle of the image y axis, which distinguishes the 180-degree set's
orientations) and ``pam_corrected`` (1 when the pixel-area map was applied).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

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
    "LOSS_COORDS",
    "LOSS_DIMS",
    "LOSS_VARIABLES",
    "MODEL_CONFIG_KEYS",
    "PAIR_COORDS",
    "SYNTHETIC_TRUTH",
    "TRUTH_COORDS",
    "TRUTH_VARIABLES",
    "VARIABLES",
    "Field",
    "build",
    "coefficient_columns",
    "image_coordinates",
    "key_for",
    "validate",
]


class Field(NamedTuple):
    """One declared variable or coordinate of a data product.

    Parameters
    ----------
    dims : tuple of str
        Its dimensions.
    dtype : str
        The numpy dtype it is written with (``"object"`` and ``"str"`` hold text).
    units : str
        Its ``units`` attribute (parsed by :class:`astropy.units.Unit`).
    long_name : str
        Its ``long_name`` attribute.
    """

    dims: tuple[str, ...]
    dtype: str
    units: str
    long_name: str


def _fields(dims: tuple[str, ...], table: dict[str, tuple[str, str, str]]) -> dict[str, Field]:
    return {name: Field(dims, *spec) for name, spec in table.items()}


# -- the photometry Dataset (PhotometryStore; one per target, filter and flash) -------------
DIMS = ("image", "star", "aperture")
_STAR = ("image", "star")

VARIABLES: dict[str, Field] = {
    **_fields(DIMS, {
        "flux": ("float64", "electron", "background-subtracted aperture sum, no pixel masking"),
        "flux_masked": ("float64", "electron",
                        "background-subtracted aperture sum with DQ-masked pixels replaced by "
                        "the Gaussian-weighted mean of their good neighbours"),
        "flux_err": ("float64", "electron", "1-sigma uncertainty of flux: "
                     "sqrt(sum(ERR^2 w) + area^2 sigma_bkg^2 / n_bkg)"),
    }),
    **_fields(_STAR, {
        "background": ("float64", "electron / pixel",
                       "sigma-clipped median of the background annulus, per pixel"),
        "x": ("float64", "pixel", "0-based centroid x on the full chip"),
        "y": ("float64", "pixel", "0-based centroid y on the full chip"),
        "transfers": ("float64", "1", "parallel transfers: y on chip 2, 2051 - y on chip 1"),
        "flags": ("int32", "1", "photometry quality flags (cte.flags.STAR_FLAGS)"),
    }),
}

COORDS: dict[str, Field] = {
    **_fields(("image",), {
        "image": ("object", "1", "image id <rootname>_<flt|flc>"),
        "rootname": ("object", "1", "rootname of the exposure"),
        "ctecorr": ("object", "1", "FLT (no pixel-based CTE correction) or FLC"),
        "proposal": ("int64", "1", "proposal ID (PROPOSID)"),
        "visit": ("object", "1", "visit (characters 5-6 of the rootname)"),
        "mjd": ("float64", "d", "exposure start (EXPSTART), MJD"),
        "exptime": ("float64", "s", "exposure time (EXPTIME)"),
        "exptime_class": ("object", "1", "short or long exposure"),
        "postarg1": ("float64", "arcsec", "POSTARG1"),
        "postarg2": ("float64", "arcsec", "POSTARG2"),
        "chip": ("int8", "1", "chip (1 or 2) holding the cluster field"),
        "flash": ("float64", "electron / pixel", "post-flash level (FLASHLVL)"),
        "background_level": ("float64", "electron / pixel",
                             "sigma-clipped median of the image (sky + flash)"),
        "wcs_shift_x": ("float64", "pixel", "fitted WCS correction: x shift at image centre"),
        "wcs_shift_y": ("float64", "pixel", "fitted WCS correction: y shift at image centre"),
        "wcs_rotation": ("float64", "deg", "fitted WCS correction: rotation"),
        "wcs_residual_rms": ("float64", "pixel", "RMS residual of the WCS alignment"),
        "orientat": ("float64", "deg", "position angle of the image y axis (ORIENTAT)"),
        "pam_corrected": ("int8", "1", "1 if the pixel-area map was applied"),
    }),
    "star": Field(("star",), "int64", "1", "master catalog id"),
    "aperture": Field(("aperture",), "float64", "pixel", "aperture radius"),
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


# -- the pairs Dataset (cte.analysis.pairs.pair_images) -------------------------------------
_UNPAIRED: dict[str, Field] = _fields(("unpaired",), {
    "unpaired_image": ("str", "1", "image left without a partner"),
    "unpaired_reason": ("str", "1", "why it has no partner"),
})

#: coordinates along ``pair`` (and the unpaired images along ``unpaired``)
PAIR_COORDS: dict[str, Field] = {
    **_fields(("pair",), {
        "pair": ("str", "1", "numerator image | denominator image"),
        "image_num": ("str", "1", "numerator image (chip 1 if nominal)"),
        "image_den": ("str", "1", "denominator image (chip 2 if nominal)"),
        "kind": ("str", "1", "nominal (chip 1 / chip 2) or 180 (same chip, rotated)"),
        "proposal": ("int64", "1", "proposal ID"),
        "visit": ("str", "1", "visit of the denominator image"),
        "mjd": ("float64", "d", "mean EXPSTART of the two images"),
        "exptime": ("float64", "s", "exposure time"),
        "exptime_class": ("str", "1", "short or long exposure"),
        "ctecorr": ("str", "1", "FLT or FLC"),
        "flash": ("float64", "electron / pixel", "post-flash level"),
        "postarg1": ("float64", "arcsec", "POSTARG1"),
        "chip_num": ("int8", "1", "chip of the numerator image"),
        "chip_den": ("int8", "1", "chip of the denominator image"),
    }),
    **_UNPAIRED,
}


# -- the loss Dataset (cte.measure_loss, loss.nc) --------------------------------------------
#: dims of every per-cell variable of the loss Dataset
LOSS_DIMS = ("pair", "flux_bin", "aperture")

LOSS_VARIABLES: dict[str, Field] = _fields(LOSS_DIMS, {
    "loss": ("float64", "1", "fraction of flux lost per 2048 transfers (exact ratio model)"),
    "loss_err": ("float64", "1", "1-sigma uncertainty of loss"),
    "n_stars": ("int64", "1", "stars used in the fit (after clipping)"),
    "n_clipped": ("int64", "1", "stars removed by sigma clipping"),
    "loss_linear": ("float64", "1", "slope * 2048 / 2 (seed's first-order loss)"),
    "slope": ("float64", "1", "slope of flux ratio vs denominator transfers (chip-2 y), "
              "per transfer"),
    "slope_err": ("float64", "1", "1-sigma uncertainty of slope"),
    "intercept": ("float64", "1", "flux ratio at zero denominator transfers"),
    "intercept_err": ("float64", "1", "1-sigma uncertainty of intercept"),
    "rms": ("float64", "1", "rms of the ratio about the fit"),
    "transfers_mean": ("float64", "1", "mean denominator transfers of the stars used"),
    "flux": ("float64", "electron",
             "leverage-weighted geometric mean unattenuated flux of the stars used"),
    "log_flux_var": ("float64", "dex2", "leverage-weighted variance of log10 unattenuated flux"),
    "background": ("float64", "electron / pixel",
                   "leverage-weighted mean local background (both images)"),
    "flux_min": ("float64", "electron", "lowest mean observed flux (F_num + F_den) / 2 used"),
    "flux_max": ("float64", "electron", "highest mean observed flux (F_num + F_den) / 2 used"),
    "slope_fixed": ("float64", "1", "slope of the fit forced through ratio 1 at "
                    "pivot_transfers, per transfer"),
    "loss_fixed": ("float64", "1", "loss from the fit forced through ratio 1 at "
                   "pivot_transfers"),
    "loss_fixed_err": ("float64", "1", "1-sigma uncertainty of loss_fixed"),
    "loss_fixed_effect": ("float64", "1",
                          "loss_fixed - loss: systematic uncertainty of the crossing point"),
})

LOSS_COORDS: dict[str, Field] = {
    **PAIR_COORDS,
    **_fields(("pair",), {"target": ("str", "1", "target of the pair"),
                          "filter": ("str", "1", "filter of the pair")}),
    **_fields(("flux_bin",), {
        "flux_bin": ("int64", "1", "flux bin index"),
        "flux_bin_lo": ("float64", "electron", "lower flux of the bin (included)"),
        "flux_bin_hi": ("float64", "electron", "upper flux of the bin (excluded)"),
    }),
    "aperture": Field(("aperture",), "float64", "pixel", "aperture radius"),
}


# -- the coefficient table (cte.fit_model, CTEModel.write) -----------------------------------
#: columns naming the configuration a model was fitted for
MODEL_CONFIG_KEYS: tuple[str, ...] = ("target", "filter", "exptime_class", "ctecorr", "aperture")


def coefficient_columns(terms: tuple[str, ...]) -> dict[str, tuple[str | None, str | None, bool]]:
    """Columns of the coefficient table for the model *terms*, in table order.

    Parameters
    ----------
    terms : tuple of str
        Terms of :data:`cte.analysis.lossmodel.BASIS_TERMS`.

    Returns
    -------
    dict
        name -> (unit or None, description or None, required when reading).
    """
    cols: dict[str, tuple[str | None, str | None, bool]] = {
        key: ("pixel" if key == "aperture" else None, None, True) for key in MODEL_CONFIG_KEYS
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
    for name, unit in (("flux", "electron"), ("mjd", "d"), ("background", "electron / pixel")):
        cols[f"{name}_min"] = (unit, None, True)
        cols[f"{name}_max"] = (unit, None, True)
    return cols


# -- the truth of a simulated campaign (truth/<target>.nc) and of synthetic photometry -------
TRUTH_VARIABLES: dict[str, Field] = _fields(_STAR, {
    "x": ("float64", "pixel", "true 0-based x on the field chip (full-chip coordinates)"),
    "y": ("float64", "pixel", "true 0-based y on the field chip (full-chip coordinates)"),
    "flux_true": ("float64", "electron", "true flux before CTE loss"),
    "transfers": ("float64", *VARIABLES["transfers"][2:]),
    "loss": ("float64", "1", "injected loss L: fraction of flux lost per 2048 transfers"),
    "flux_expected": ("float64", "electron", "flux_true * (1 - loss * transfers / 2048) / PAM"),
    "on_image": ("int8", "1", "star centre inside the written image"),
})

TRUTH_COORDS: dict[str, Field] = {name: COORDS[name] for name in ("image", "star")}

#: the truth beside synthetic photometry (cte.datasets.make_photometry)
SYNTHETIC_TRUTH: dict[str, Field] = _fields(DIMS, {
    "true_flux": ("float64", "electron", "unattenuated aperture flux"),
    "loss": ("float64", "1", "injected fraction lost per 2048 transfers"),
})


def build(variables: Mapping[str, Field], coords: Mapping[str, Field],
          values: Mapping[str, object], attrs: Mapping[str, object] | None = None
          ) -> xr.Dataset:
    """A Dataset of *values* as a declaration says: declared dims, dtype, units and name.

    Parameters
    ----------
    variables, coords : mapping of str to Field
        The declaration (e.g. :data:`VARIABLES` and :data:`COORDS`).
    values : mapping of str to array-like
        Every declared variable, and the declared coordinates to write (a coordinate
        not given is left out).
    attrs : mapping, optional
        The Dataset's attributes.

    Returns
    -------
    xarray.Dataset
    """
    def item(name: str, field: Field) -> tuple:
        dtype = str if field.dtype == "str" else field.dtype
        return (field.dims, np.asarray(values[name]).astype(dtype),
                {"units": field.units, "long_name": field.long_name})

    ds = xr.Dataset({name: item(name, f) for name, f in variables.items()},
                    coords={name: item(name, f) for name, f in coords.items() if name in values},
                    attrs=dict(attrs or {}))
    if "flags" in ds and variables is VARIABLES:
        ds["flags"].attrs.update(cf_flag_attrs())
    return ds


def image_coordinates() -> tuple[str, ...]:
    """Names of the coordinates along ``image`` (``image`` first), in declaration order."""
    return tuple(name for name, (dims, *_) in COORDS.items() if dims == ("image",))


def key_for(target: str, filter: str, flash: float) -> str:
    """Store key ``"<target>/<filter>/flash<N>"``.

    Parameters
    ----------
    target, filter : str
        The configuration target name and the filter.
    flash : float
        The post-flash level, e-/pixel (an integral value).

    Returns
    -------
    str
    """
    return f"{target}/{filter}/flash{as_int(flash, 'flash', allow_integral_float=True)}"


def _dtype_ok(declared: str, dtype: np.dtype) -> bool:
    if declared in ("object", "str"):
        return dtype.kind in "UOT"  # text, however a store reads it back
    return dtype == np.dtype(declared)


def validate(ds: xr.Dataset, *, where: str = "dataset") -> None:
    """Raise :class:`InvalidPhotometryError` unless *ds* is a photometry Dataset as declared.

    Parameters
    ----------
    ds : xarray.Dataset
        The Dataset to check.
    where : str
        What to call it in the message.
    """
    if not isinstance(ds, xr.Dataset):
        msg = f"{where}: expected an xarray.Dataset, got {type(ds).__name__}"
        raise InvalidPhotometryError(msg)
    problems = []
    for table, label in ((VARIABLES, "variable"), (COORDS, "coordinate")):
        for name, (dims, dtype, _, _) in table.items():
            if name not in ds.variables:
                problems.append(f"missing {label} {name!r}")
                continue
            var = ds[name]
            if var.dims != dims:
                problems.append(f"{label} {name!r} has dims {var.dims}, expected {dims}")
            if not _dtype_ok(dtype, var.dtype):
                problems.append(f"{label} {name!r} has dtype {var.dtype}, expected {dtype}")
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
