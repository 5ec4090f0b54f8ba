"""CTE loss per image pair, flux bin and aperture, from the chip-1 / chip-2 flux ratio.

For each pair (see :mod:`cte.analysis.pairs`), each flux bin ``[lo, hi)`` in e- and each
aperture, the stars of the bin are taken (see *bin_by* below), their
flux ratio ``r = F_num / F_den`` (chip 1 / chip 2 for nominal pairs) is fitted against
the number of parallel transfers ``x`` of the star in the denominator image (the
chip-2 y position for nominal pairs) with an ordinary least-squares straight line,
sigma-clipped (:mod:`cte.analysis._linefit`).  Stars flagged in either image (``flags &
reject_flags``) or without finite fluxes never enter.

Bin membership (``bin_by``):

- ``"mean"`` (default): the star's mean flux ``(F_num + F_den) / 2`` lies in the bin.
  The noise of this mean is uncorrelated with that of the ratio (for equal errors), so
  the selection does not bias the slope;
- ``"both"``: the seed's rule, both ``F_num`` and ``F_den`` lie in the bin.  Selecting
  on the two noisy fluxes that form the ratio truncates the ratio distribution towards
  1 at both ends of the chip and flattens the slope: on simulated photometry the loss
  comes out low by 0.5–1.5 sigma per cell (worst in the narrow faint bins), a bias
  that grows with the number of stars.  Kept for comparison with the seed's results.

From the slope ``b`` the loss is reported as the fraction of flux lost per 2048
transfers:

- ``loss_linear = b * 2048 / 2`` — the seed's first-order definition (the ratio
  doubles the gradient because the star moves towards the amplifier on one chip while
  moving away on the other);
- ``loss = 2048 a``, where ``a`` is the per-transfer loss for which the exact ratio
  curve ``r(x) = (1 - a (N - x)) / (1 - a x)`` of the stars used (``N`` = total
  transfers of the star in both images, about 2051) has least-squares slope ``b``
  (:func:`cte.analysis._linefit.invert_ratio_slope`).  This removes the first-order bias of
  ``loss_linear`` (relative ``~ L / 2``, 12 % at L = 0.25) and is the quantity that
  :mod:`cte.analysis.lossmodel` describes (a star crossing ``n`` transfers keeps
  ``1 - L n / 2048``).  ``loss_err = err(b) * 2048 * da/db``.

Optionally (by default for the 180-degree set, seed item 5) the ratio is also fitted
with the line forced through ``r = 1`` at ``x = pivot_transfers`` (default 1025.5,
where both images have the same number of transfers; the seed wrote 1024), using the
stars kept by the free fit; it is reported as ``loss_fixed`` / ``loss_fixed_err``, and
its difference from the free fit as ``loss_fixed_effect`` = ``loss_fixed - loss``, an
extra (systematic) uncertainty of the measurement rather than a correction.

Per cell, the stars' unattenuated flux is estimated as
``F = (F_num + F_den) / (2 - a N)`` (exact for the ratio model).  The slope weighs
each star by its leverage ``w = (x - xbar) (2 x - N)`` (to first order the measured
loss is the ``w``-weighted mean of the stars' losses), so ``flux`` (e-) is the
``w``-weighted geometric mean, ``log_flux_var`` (dex^2) the ``w``-weighted variance
of ``log10 F`` and ``background`` (e-/px) the ``w``-weighted mean local background
of both images; :mod:`cte.analysis.model` evaluates the loss model with them.

Everything is computed at once for all pairs, bins and apertures (and all Datasets
given): the memberships (pair, star, bin, aperture) are found with one boolean
broadcast and :func:`numpy.nonzero`, and every per-cell sum is a
:func:`numpy.bincount` (no Python loop over pairs or bins).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from cte.analysis._linefit import (
    invert_ratio_slope,
    segment_sum,
    segmented_line_fit,
    segmented_pivot_fit,
)
from cte.analysis.pairs import dataset_name, default_config, pair_images, validate_photometry
from cte.config import LossOptions
from cte.flags import BAD_PIXEL, COSMIC_RAY, CROWDED
from cte.schema import LOSS_COORDS, LOSS_VARIABLES, PAIR_COORDS, build
from stores.common.provenance import provenance, to_attrs
from stores.common.validate import instance_of

__all__ = ["measure_loss", "ratio_points"]

logger = logging.getLogger(__name__)

def _as_datasets(photometry) -> list[xr.Dataset]:
    if isinstance(photometry, xr.Dataset):
        return [photometry]
    if hasattr(photometry, "read_all") and hasattr(photometry, "keys"):  # DatasetStore
        return list(photometry.read_all().values())
    if isinstance(photometry, Mapping):
        return list(photometry.values())
    if isinstance(photometry, Iterable) and not isinstance(photometry, str | bytes):
        datasets = list(photometry)
        bad = [type(d).__name__ for d in datasets if not isinstance(d, xr.Dataset)]
        if not bad:
            return datasets
    msg = (
        "photometry must be an xarray.Dataset, a sequence or mapping of Datasets, or a "
        f"stores.DatasetStore, got {type(photometry).__name__}"
    )
    raise TypeError(msg)


def _select_apertures(ds: xr.Dataset, apertures) -> xr.Dataset:
    if apertures is None:
        return ds
    have = np.asarray(ds["aperture"].values, float)
    want = np.atleast_1d(np.asarray(apertures, float))
    missing = [float(r) for r in want if not np.any(np.isclose(have, r))]
    if missing:
        msg = (
            f"photometry {dataset_name(ds)}: aperture radii {missing} px not measured "
            f"(available: {have.tolist()})"
        )
        raise ValueError(msg)
    idx = [int(np.argmin(np.abs(have - r))) for r in want]
    return ds.isel(aperture=idx)


def _memberships(ds, pairs, bins, flux_var, reject_flags, bin_by, min_snr,
                 with_errors=False):
    """Flat arrays of (pair, bin, aperture, star) memberships of one Dataset.

    With *with_errors*, also ``ratio_err``: the 1-sigma error of each star's flux ratio
    from the photometric errors, ``ratio * hypot(e_num / f_num, e_den / f_den)`` (NaN
    when the Dataset has no ``flux_err``).
    """
    index = {name: i for i, name in enumerate(ds["image"].values.astype(str))}
    num = np.array([index[i] for i in pairs["image_num"].values.astype(str)], dtype=int)
    den = np.array([index[i] for i in pairs["image_den"].values.astype(str)], dtype=int)
    # Variable-level access (no coordinate bookkeeping); layout (image, aperture, star)
    # so that the memberships come out grouped by cell
    def values(name, dims):
        return np.asarray(ds.variables[name].transpose(*dims).values)

    flux = values(flux_var, ("image", "aperture", "star")).astype(float, copy=False)
    transfers = values("transfers", ("image", "star")).astype(float, copy=False)
    flags = values("flags", ("image", "star")).astype(np.int64)
    background = values("background", ("image", "star")).astype(float, copy=False)
    f_num, f_den = flux[num], flux[den]  # (pair, aperture, star)
    mask = -1 if reject_flags is None else int(reject_flags)
    good = ((flags[num] | flags[den]) & mask) == 0
    good &= np.isfinite(transfers[num]) & np.isfinite(transfers[den])
    lo, hi = bins[:, 0], bins[:, 1]
    with np.errstate(invalid="ignore"):
        positive = (f_num > 0) & (f_den > 0) & good[:, None, :]
        if min_snr is not None:
            err = values("flux_err", ("image", "aperture", "star")).astype(float, copy=False)
            snr = (f_num + f_den) / np.hypot(err[num], err[den])
            positive &= snr >= min_snr
        lo = lo[None, :, None, None]  # (pair, bin, aperture, star)
        hi = hi[None, :, None, None]
        if bin_by == "mean":
            mean = (0.5 * (f_num + f_den))[:, None]
            in_bin = (mean >= lo) & (mean < hi)
        else:
            in_bin = (
                (f_num[:, None] >= lo) & (f_num[:, None] < hi)
                & (f_den[:, None] >= lo) & (f_den[:, None] < hi)
            )
        in_bin &= positive[:, None]
    p, b, a, s = np.nonzero(in_bin)
    # per (pair, aperture, star) and per (pair, star) quantities on the dense grid, then
    # one flat gather each (cheaper than 2-d fancy indexing of every variable)
    n_ap, n_star = f_num.shape[1], f_num.shape[2]
    ias = (p * n_ap + a) * n_star + s
    ps = p * n_star + s
    t_den = transfers[den].ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (f_num / f_den).ravel()
    out = {}
    if with_errors:
        if "flux_err" in ds.variables:
            err = values("flux_err", ("image", "aperture", "star")).astype(float, copy=False)
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = np.hypot(err[num] / f_num, err[den] / f_den)
            out["ratio_err"] = (np.abs(f_num / f_den) * rel).ravel()[ias]
        else:
            out["ratio_err"] = np.full(p.size, np.nan)
    return out | {
        "pair": p,
        "bin": b,
        "aperture": a,
        "x": t_den[ps],
        "total": (transfers[num].ravel() + t_den)[ps],
        "ratio": ratio[ias],
        "sum": (f_num + f_den).ravel()[ias],
        "background": (0.5 * (background[num] + background[den])).ravel()[ps],
    }


def measure_loss(
    photometry,
    *,
    apertures: Sequence[float] | None = None,
    loss: LossOptions | None = None,
) -> xr.Dataset:
    """Measure the CTE loss per (pair, flux bin, aperture).

    Parameters
    ----------
    photometry : xarray.Dataset, sequence or mapping of Datasets, or DatasetStore
        Photometry Datasets (one per target, filter, flash) in the store layout.
    apertures : sequence of float, optional
        Aperture radii (pixel) to use; default all (identical in every Dataset).
    loss : LossOptions, optional
        How to measure (default ``LossOptions()``; see there and the module docstring).

    Returns
    -------
    xarray.Dataset
        The loss Dataset declared in :mod:`cte.schema` (``LOSS_VARIABLES``): dims
        ``pair``, ``flux_bin``, ``aperture``, NaN where not measurable; the unpaired
        images are listed on dimension ``unpaired``; the options are in its attrs.
    """
    options = LossOptions() if loss is None else instance_of(loss, "loss", LossOptions)
    bins = np.array(default_config().flux_bins if options.flux_bins is None
                    else options.flux_bins, dtype=float)
    flux_var, min_snr, bin_by = options.flux_var, options.min_snr, options.bin_by
    reject_flags = options.reject_flags
    if reject_flags is None:
        reject_flags = ~CROWDED
        if flux_var == "flux_masked":
            reject_flags &= ~(COSMIC_RAY | BAD_PIXEL)
    datasets = _as_datasets(photometry)
    if not datasets:
        msg = "photometry holds no Datasets"
        raise ValueError(msg)
    needed: tuple[str, ...] = (flux_var, "transfers", "flags", "background")
    if min_snr is not None:
        needed = (*needed, "flux_err")
    for ds in datasets:  # validate everything before computing anything
        validate_photometry(ds, variables=needed)
    datasets = [_select_apertures(ds, apertures) for ds in datasets]
    radii = np.asarray(datasets[0]["aperture"].values, float)
    for ds in datasets[1:]:
        other = np.asarray(ds["aperture"].values, float)
        if other.shape != radii.shape or not np.allclose(other, radii):
            msg = (
                f"photometry {dataset_name(ds)}: apertures {other.tolist()} px differ from "
                f"{radii.tolist()} px of {dataset_name(datasets[0])}; pass apertures=..."
            )
            raise ValueError(msg)

    pair_sets = [pair_images(ds, layout=options.layout) for ds in datasets]
    n_bins, n_ap = len(bins), len(radii)
    parts, offset = [], 0
    for ds, pairs in zip(datasets, pair_sets, strict=True):  # loop over Datasets (files)
        m = _memberships(ds, pairs, bins, flux_var, reject_flags, bin_by, min_snr)
        m["pair"] = m["pair"] + offset
        parts.append(m)
        offset += pairs.sizes["pair"]
    n_pairs = offset
    flat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n_cells = n_pairs * n_bins * n_ap
    cell = (flat["pair"] * n_bins + flat["bin"]) * n_ap + flat["aperture"]

    fit = segmented_line_fit(cell, flat["x"], flat["ratio"], n_cells, sigma=options.sigma,
                             maxiters=options.maxiters)
    keep, n = fit.keep, fit.n
    enough = n >= options.min_stars
    a, dadb = invert_ratio_slope(cell, flat["x"], flat["total"], keep, fit.slope,
                                 fit.x_mean, n_cells)
    loss_values = np.where(enough, 2048.0 * a, np.nan)
    loss_err = np.where(enough, 2048.0 * np.abs(dadb) * fit.slope_err, np.nan)

    stats = _cell_stats(cell, flat, keep, a, n, fit.x_mean, n_cells)
    kinds = np.concatenate([p["kind"].values.astype(str) for p in pair_sets])
    use = {"all": np.ones(n_pairs, bool), "180": kinds == "180",
           "none": np.zeros(n_pairs, bool)}[options.pivot]
    use_cell = np.repeat(use, n_bins * n_ap)
    pivot_vars = _pivot_loss(cell, flat, keep & use_cell[cell], n_cells, options.pivot_transfers,
                             enough & use_cell)
    pivot_vars["loss_fixed_effect"] = pivot_vars["loss_fixed"] - loss_values

    shape = (n_pairs, n_bins, n_ap)
    n_in = segment_sum(cell, np.ones(cell.size), n_cells)
    values = {
        "loss": loss_values,
        "loss_err": loss_err,
        "n_stars": n.astype(np.int64),
        "n_clipped": (n_in - n).astype(np.int64),
        "loss_linear": np.where(enough, 1024.0 * fit.slope, np.nan),
        "slope": np.where(enough, fit.slope, np.nan),
        "slope_err": np.where(enough, fit.slope_err, np.nan),
        "intercept": np.where(enough, fit.intercept, np.nan),
        "intercept_err": np.where(enough, fit.intercept_err, np.nan),
        "rms": np.where(enough, fit.rms, np.nan),
        "transfers_mean": fit.x_mean,
    }
    values.update(stats, **pivot_vars)
    return _assemble({name: np.reshape(values[name], shape) for name in LOSS_VARIABLES},
                     datasets, pair_sets, bins, radii,
                     dataclasses.replace(options, reject_flags=reject_flags))


def _cell_stats(cell, flat, keep, a, n, x_mean, n_cells):
    """Leverage-weighted means of the stars' flux and background per cell.

    To first order in the loss the least-squares slope is
    ``sum(w_i a_i) / sum(w_i)`` times that of a star with unit loss, with the leverage
    ``w_i = (x_i - xbar) (2 x_i - N_i)`` (``x`` denominator transfers, ``N`` total):
    stars near the chip ends count most.  So the measured loss is the ``w``-weighted
    mean of the stars' loss, and the cell's flux and background are averaged with the
    same weights (``flux`` = 10^(weighted mean log10 F), ``log_flux_var`` = weighted
    variance of log10 F) for the model fit to be consistent with the measurement.
    """
    idx = np.flatnonzero(keep)  # the stars used, compressed once
    seg = cell[idx]
    x, total, both = flat["x"][idx], flat["total"][idx], flat["sum"][idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        lever = (x - x_mean[seg]) * (2.0 * x - total)
        w_sum = np.bincount(seg, lever, n_cells)
        true_flux = both / (2.0 - a[seg] * total)
        logf = np.log10(np.where(true_flux > 0, true_flux, np.nan))
        lever_f = np.where(np.isfinite(logf), lever, 0.0)
        logf = np.nan_to_num(logf)
        mean = np.bincount(seg, lever_f * logf, n_cells) / w_sum
        var = np.bincount(seg, lever_f * (logf - mean[seg]) ** 2, n_cells) / w_sum
        bkg = np.bincount(seg, lever * np.nan_to_num(flat["background"][idx]), n_cells) / w_sum
        mean_obs = 0.5 * both
        f_min = np.full(n_cells, np.inf)
        f_max = np.full(n_cells, -np.inf)
        np.minimum.at(f_min, seg, mean_obs)
        np.maximum.at(f_max, seg, mean_obs)
        f_min = np.where(np.isfinite(f_min), f_min, np.nan)
        f_max = np.where(np.isfinite(f_max), f_max, np.nan)
    ok = (n >= 3) & (w_sum > 0)
    return {"flux": np.where(ok, 10.0**mean, np.nan),
            "log_flux_var": np.where(ok, np.maximum(var, 0.0), np.nan),
            "background": np.where(ok, bkg, np.nan), "flux_min": f_min, "flux_max": f_max}


def _pivot_loss(cell, flat, keep, n_cells, pivot_transfers, enough):
    idx = np.flatnonzero(keep)  # only the cells asked for
    cell, x, ratio, total = cell[idx], flat["x"][idx], flat["ratio"][idx], flat["total"][idx]
    every = np.ones(idx.size, dtype=bool)
    slope, slope_err = segmented_pivot_fit(cell, x, ratio, n_cells, every,
                                           x_pivot=pivot_transfers)
    center = np.full(n_cells, float(pivot_transfers))
    a, dadb = invert_ratio_slope(cell, x, total, every, slope, center, n_cells)
    return {
        "slope_fixed": np.where(enough, slope, np.nan),
        "loss_fixed": np.where(enough, 2048.0 * a, np.nan),
        "loss_fixed_err": np.where(enough, 2048.0 * np.abs(dadb) * slope_err, np.nan),
    }


def _assemble(variables, datasets, pair_sets, bins, radii, options: LossOptions) -> xr.Dataset:
    """The loss Dataset, built from its declaration (:data:`cte.schema.LOSS_VARIABLES`)."""
    coords = {name: np.concatenate([p[name].values for p in pair_sets])
              for name in PAIR_COORDS}
    for name in ("target", "filter"):
        coords[name] = np.concatenate([np.full(p.sizes["pair"], str(ds.attrs.get(name, "")))
                                       for ds, p in zip(datasets, pair_sets, strict=True)])
    ids, counts = np.unique(coords["pair"], return_counts=True)
    if np.any(counts > 1):
        msg = f"pair ids are not unique across the Datasets given: {ids[counts > 1][:5].tolist()}"
        raise ValueError(msg)
    coords.update(flux_bin=np.arange(len(bins)), flux_bin_lo=bins[:, 0], flux_bin_hi=bins[:, 1],
                  aperture=radii)
    attrs = {
        "title": "CTE loss per image pair, flux bin and aperture",
        **{k: "none" if v is None else v for k, v in dataclasses.asdict(options).items()
           if k not in ("flux_bins", "layout")},
        **to_attrs(provenance(libraries=("numpy", "xarray"))),
    }
    return build(LOSS_VARIABLES, LOSS_COORDS, {**variables, **coords}, attrs)


def ratio_points(photometry: xr.Dataset, loss_ds: xr.Dataset, pair: str, *,
                 aperture: float, errors: bool = False) -> list[tuple[np.ndarray, ...]]:
    """The (transfers, flux ratio) points of every flux bin of one pair and aperture.

    Stars are selected with the options recorded in *loss_ds*'s attrs (``flux_var``,
    ``bin_by``, ``reject_flags``, ``min_snr``), i.e. as :func:`measure_loss` selected
    them before sigma clipping.  Returns one ``(x, ratio)`` tuple per flux bin, or
    ``(x, ratio, ratio_err)`` with *errors* (the ratio's 1-sigma photometric error,
    NaN where the photometry has no ``flux_err``).

    Parameters
    ----------
    photometry : xarray.Dataset
        The photometry Dataset of the pair's key.
    loss_ds : xarray.Dataset
        The loss Dataset the pair belongs to.
    pair : str
        The pair id (``pair`` coordinate).
    aperture : float
        Aperture radius, pixel.
    errors : bool
        Also return each point's ratio error.
    """
    if pair not in loss_ds["pair"].values:
        msg = f"pair {pair!r} not in loss_ds (it has {loss_ds.sizes['pair']} pairs)"
        raise KeyError(msg)
    row = loss_ds.sel(pair=[pair])
    attrs = loss_ds.attrs
    reject = attrs.get("reject_flags", -1)
    min_snr = attrs.get("min_snr", "none")
    ds = _select_apertures(photometry, [aperture])
    pairs = xr.Dataset(coords={"image_num": ("pair", row["image_num"].values),
                               "image_den": ("pair", row["image_den"].values)})
    missing = [i for i in (*pairs["image_num"].values, *pairs["image_den"].values)
               if i not in ds["image"].values]
    if missing:
        msg = f"photometry {dataset_name(ds)} lacks the images {missing} of pair {pair!r}"
        raise KeyError(msg)
    bins = np.column_stack([loss_ds["flux_bin_lo"].values, loss_ds["flux_bin_hi"].values])
    m = _memberships(ds, pairs, bins, attrs.get("flux_var", "flux"),
                     None if reject == -1 else int(reject), attrs.get("bin_by", "mean"),
                     None if min_snr == "none" else float(min_snr), with_errors=errors)
    names = ("x", "ratio", "ratio_err") if errors else ("x", "ratio")
    return [tuple(m[n][m["bin"] == b] for n in names) for b in range(len(bins))]
