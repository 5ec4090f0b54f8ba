"""Diagnostic plots of the CTE monitor (matplotlib, Agg, no global pyplot state).

Every function draws on a new :class:`matplotlib.figure.Figure`, saves it to *path*
(format from the suffix, e.g. ``.png``) and returns the Figure:

- :func:`plot_ratio_vs_y` — flux ratio vs chip-2 y (denominator transfers) of one
  pair, one panel per flux bin, with the fitted line (and the forced fit if any);
- :func:`plot_loss_vs_flux` — loss vs log10 flux for every epoch of a configuration,
  with the fitted model at each epoch's MJD;
- :func:`plot_loss_vs_time` — loss vs MJD, one panel per flux bin, with the model;
- :func:`plot_same_chip` — the 180-degree set: free vs forced-crossing loss vs log10
  flux, optionally over nominal pairs of the same proposal.
"""

from __future__ import annotations

from os import PathLike

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cte.loss import ratio_points
from cte.model import CTEModel, FittedLoss

__all__ = [
    "plot_loss_vs_flux",
    "plot_loss_vs_time",
    "plot_ratio_vs_y",
    "plot_same_chip",
    "select_configuration",
]

_CONFIG = ("target", "filter", "exptime_class", "ctecorr")
_SELECT = (*_CONFIG, "flash")


def _figure(n_panels: int, *, ncols: int = 4, size=(3.2, 2.6)) -> tuple[Figure, np.ndarray]:
    ncols = min(ncols, n_panels)
    nrows = int(np.ceil(n_panels / ncols))
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _save(fig: Figure, path: str | PathLike) -> Figure:
    fig.savefig(path, dpi=90)
    return fig


def _bin_label(loss_ds, b) -> str:
    return f"{loss_ds['flux_bin_lo'].values[b]:g}-{loss_ds['flux_bin_hi'].values[b]:g} e-"


def select_configuration(loss_ds: xr.Dataset, *, aperture: float, **config) -> xr.Dataset:
    """Pairs of *loss_ds* matching *config* (target, filter, exptime_class, ctecorr,
    flash), one aperture; raises ValueError naming what is available when nothing
    matches."""
    unknown = [k for k in config if k not in _SELECT]
    if unknown:
        msg = f"selection keys must be drawn from {_SELECT}, got {unknown}"
        raise ValueError(msg)
    have = loss_ds["aperture"].values
    if not np.any(np.isclose(have, aperture)):
        msg = f"aperture {aperture} px not in loss_ds (apertures: {have.tolist()})"
        raise ValueError(msg)
    mask = np.ones(loss_ds.sizes["pair"], dtype=bool)
    for key, value in config.items():
        if key == "flash":
            mask &= np.isclose(loss_ds[key].values.astype(float), float(value))
        else:
            mask &= loss_ds[key].values.astype(str) == str(value)
    if not mask.any():
        available = sorted({tuple(str(loss_ds[k].values[i]) for k in config)
                            for i in range(loss_ds.sizes["pair"])})
        msg = f"no pair matches {config}; available {tuple(config)}: {available}"
        raise ValueError(msg)
    index = int(np.argmin(np.abs(have - aperture)))
    return loss_ds.isel(pair=np.flatnonzero(mask), aperture=index)


def plot_ratio_vs_y(
    photometry: xr.Dataset,
    loss_ds: xr.Dataset,
    pair: str,
    *,
    aperture: float,
    path: str | PathLike,
) -> Figure:
    """Flux ratio (numerator / denominator) vs denominator transfers (chip-2 y), per bin.

    Points are the stars of each bin (before clipping); the line is the fitted
    ``intercept + slope * y``; the dashed line, where present, the fit forced through
    ratio 1 at ``pivot_transfers``.  Titles give the loss and star count.
    """
    points = ratio_points(photometry, loss_ds, pair, aperture=aperture)
    row = loss_ds.sel(pair=pair).isel(aperture=int(np.argmin(
        np.abs(loss_ds["aperture"].values - aperture))))
    fig, axes = _figure(len(points))
    grid = np.linspace(0.0, 2051.0, 50)
    pivot = float(loss_ds.attrs.get("pivot_transfers", 1025.5))
    for b, (ax, (x, ratio)) in enumerate(zip(axes, points, strict=True)):
        ax.scatter(x, ratio, s=4, color="0.4", alpha=0.6, linewidths=0)
        slope = float(row["slope"].values[b])
        if np.isfinite(slope):
            ax.plot(grid, float(row["intercept"].values[b]) + slope * grid, color="C3", lw=1.5)
            if "slope_fixed" in row and np.isfinite(row["slope_fixed"].values[b]):
                ax.plot(grid, 1.0 + float(row["slope_fixed"].values[b]) * (grid - pivot),
                        color="C0", lw=1, ls="--")
            title = (f"{_bin_label(loss_ds, b)}: L = {float(row['loss'].values[b]):.3f} "
                     f"± {float(row['loss_err'].values[b]):.3f}, "
                     f"n = {int(row['n_stars'].values[b])}")
        else:
            title = f"{_bin_label(loss_ds, b)}: n = {int(row['n_stars'].values[b])}"
        ax.set_title(title, fontsize=8)
        ax.axhline(1.0, color="0.7", lw=0.5)
        if len(ratio):
            lo, hi = np.nanpercentile(ratio, [2, 98])
            pad = 0.1 * (hi - lo) + 1e-3
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("chip-2 y (denominator transfers)")
        ax.set_ylabel("flux ratio chip 1 / chip 2")
    fig.suptitle(f"{pair} (aperture {aperture:g} px)", fontsize=9)
    return _save(fig, path)


def _model_for(model, loss_ds, aperture) -> FittedLoss | None:
    if model is None:
        return None
    if isinstance(model, FittedLoss):
        return model
    if isinstance(model, CTEModel):
        config = {k: str(loss_ds[k].values[0]) for k in _CONFIG}
        return model.select(aperture=aperture, **config)
    msg = f"model must be a FittedLoss, a CTEModel or None, got {type(model).__name__}"
    raise TypeError(msg)


def plot_loss_vs_flux(
    loss_ds: xr.Dataset,
    model: CTEModel | FittedLoss | None = None,
    *,
    aperture: float,
    path: str | PathLike,
    **config,
) -> Figure:
    """Loss vs log10 flux of every epoch of one configuration, with the model.

    *config* selects target/filter/exptime_class/ctecorr (and optionally flash, e-/px);
    points are cells with
    their 1-sigma errors, coloured by MJD; curves are the model at each epoch's MJD
    and median background.
    """
    sub = select_configuration(loss_ds, aperture=aperture, **config)
    fit = _model_for(model, sub, aperture)
    fig, (ax,) = _figure(1, size=(6.5, 4.5))
    mjds = np.unique(np.round(sub["mjd"].values, 0))
    colours = {m: f"C{i % 10}" for i, m in enumerate(mjds)}
    for m in mjds:
        pick = np.flatnonzero(np.round(sub["mjd"].values, 0) == m)
        cells = sub.isel(pair=pick)
        flux = cells["flux"].values.ravel()
        loss = cells["loss"].values.ravel()
        err = cells["loss_err"].values.ravel()
        good = np.isfinite(loss) & np.isfinite(flux)
        ax.errorbar(np.log10(flux[good]), loss[good], yerr=err[good], fmt="o", ms=3,
                    color=colours[m], alpha=0.6, lw=0.7, label=f"MJD {m:.0f}")
        if fit is not None:
            grid = np.geomspace(*fit.flux_range, 60)
            bkg = np.nanmedian(cells["background"].values)
            ax.plot(np.log10(grid), fit.loss(grid, m, bkg), color=colours[m], lw=1.2)
    ax.set_xlabel("log10 flux (e-)")
    ax.set_ylabel("loss per 2048 transfers")
    ax.set_title(", ".join(f"{v}" for v in config.values()) + f", aperture {aperture:g} px",
                 fontsize=9)
    ax.legend(fontsize=7, ncols=2)
    return _save(fig, path)


def plot_loss_vs_time(
    loss_ds: xr.Dataset,
    model: CTEModel | FittedLoss | None = None,
    *,
    aperture: float,
    path: str | PathLike,
    **config,
) -> Figure:
    """Loss vs MJD, one panel per flux bin, with the model at the bin's median flux."""
    sub = select_configuration(loss_ds, aperture=aperture, **config)
    fit = _model_for(model, sub, aperture)
    n_bins = sub.sizes["flux_bin"]
    fig, axes = _figure(n_bins)
    for b, ax in enumerate(axes):
        cells = sub.isel(flux_bin=b)
        good = np.isfinite(cells["loss"].values)
        ax.errorbar(cells["mjd"].values[good], cells["loss"].values[good],
                    yerr=cells["loss_err"].values[good], fmt="o", ms=3, lw=0.7, color="C0")
        if fit is not None and good.any():
            mjd = np.linspace(*fit.mjd_range, 50)
            flux = np.nanmedian(cells["flux"].values[good])
            bkg = np.nanmedian(cells["background"].values[good])
            ax.plot(mjd, fit.loss(flux, mjd, bkg), color="C3", lw=1.2)
        ax.set_title(_bin_label(sub, b), fontsize=8)
        ax.set_xlabel("MJD")
        ax.set_ylabel("loss per 2048 transfers")
    fig.suptitle(", ".join(str(v) for v in config.values()) + f", aperture {aperture:g} px",
                 fontsize=9)
    return _save(fig, path)


def plot_same_chip(
    loss_ds: xr.Dataset,
    *,
    aperture: float,
    path: str | PathLike,
    nominal: xr.Dataset | None = None,
) -> Figure:
    """The 180-degree set: loss of the free fit and of the forced crossing vs log10 flux.

    Optionally over *nominal* loss cells (e.g. NGC 104 pairs of the same proposal).
    """
    kinds = loss_ds["kind"].values.astype(str)
    if not np.any(kinds == "180"):
        msg = "loss_ds has no 180-degree (same-chip) pairs"
        raise ValueError(msg)
    index = int(np.argmin(np.abs(loss_ds["aperture"].values - aperture)))
    sub = loss_ds.isel(pair=np.flatnonzero(kinds == "180"), aperture=index)
    fig, (ax,) = _figure(1, size=(6.5, 4.5))
    x = np.log10(sub["flux"].values.ravel())
    for name, err, label, colour, shift in (
        ("loss", "loss_err", "180-degree, free fit", "C0", -0.01),
        ("loss_fixed", "loss_fixed_err", "180-degree, through 1 at y = pivot", "C1", 0.01),
    ):
        if name not in sub:
            continue
        y = sub[name].values.ravel()
        good = np.isfinite(y) & np.isfinite(x)
        ax.errorbar(x[good] + shift, y[good], yerr=sub[err].values.ravel()[good], fmt="o",
                    ms=3, lw=0.7, color=colour, label=label)
    if nominal is not None:
        index_n = int(np.argmin(np.abs(nominal["aperture"].values - aperture)))
        nom = nominal.isel(aperture=index_n)
        nom = nom.isel(pair=np.flatnonzero(nom["kind"].values.astype(str) == "nominal"))
        y = nom["loss"].values.ravel()
        xn = np.log10(nom["flux"].values.ravel())
        good = np.isfinite(y) & np.isfinite(xn)
        ax.errorbar(xn[good], y[good], yerr=nom["loss_err"].values.ravel()[good], fmt="s",
                    ms=3, lw=0.7, color="0.5", alpha=0.6, label="nominal chip 1 / chip 2")
    ax.set_xlabel("log10 flux (e-)")
    ax.set_ylabel("loss per 2048 transfers")
    ax.set_title(f"180-degree set, aperture {aperture:g} px", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)
