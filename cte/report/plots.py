"""Diagnostic plots of the CTE monitor (matplotlib, Agg, no global pyplot state).

Every function draws on a new :class:`matplotlib.figure.Figure` in the shared style
(:mod:`stores.presentation.style`: no offset axes, calendar dates, a legend entry for everything
that encodes something), saves it atomically to *path* (format from the suffix, e.g.
``.png``; ``path=None`` saves nothing) and returns the Figure:

- :func:`plot_ratio_vs_y` — flux ratio vs chip-2 y (denominator transfers) of one
  pair, one panel per flux bin: the stars with their photometric error bars, the fitted
  line and the line forced through ratio 1 at the pivot, each drawn over the stars'
  range only;
- :func:`plot_loss_vs_flux` — loss vs flux (log axis) of every epoch (colour) and
  flash level (marker) of a configuration, with the fitted model of each, drawn only
  over the fluxes of its own points;
- :func:`plot_loss_vs_time` — loss vs date, one panel per flux bin *with data*, one
  colour per flash level, with the model over the dates of its points;
- :func:`plot_same_chip` — the 180-degree set: free vs forced-crossing loss vs flux,
  optionally over nominal pairs of the same proposal.

A configuration without a fitted model (:attr:`cte.analysis.model.CTEModel.skipped`) is shown
as data only, with the reason in the figure.  Data artists carry ``gid`` ``"data:<key>"``
and model curves ``"model:<key>"`` with the same key, so tests (and users) can pair a
curve with its points.
"""

from __future__ import annotations

import textwrap
from os import PathLike

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cte.analysis.loss import ratio_points
from cte.analysis.model import CTEModel, FittedLoss, independent_bins
from cte.analysis.model import epochs as epoch_of
from cte.exceptions import ModelNotFoundError
from stores.common.dates import mjd_to_datetime64
from stores.presentation import style

__all__ = [
    "plot_loss_vs_flux",
    "plot_loss_vs_time",
    "plot_ratio_vs_y",
    "plot_same_chip",
    "select_configuration",
]

_CONFIG = ("target", "filter", "exptime_class", "ctecorr")
_SELECT = (*_CONFIG, "flash")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_LINESTYLES = ("-", "--", ":", "-.")
_LOSS_LABEL = "loss per 2048 transfers"


def _consistent(fit, flux, mjd, background, loss, err) -> bool:
    """True when the model comes within 3 sigma of at least one of the points.

    A curve that misses every point it is drawn over would misrepresent the fit (an
    extrapolation in a corner of the data the fit does not constrain); the plots do not
    draw it and say so.
    """
    sigma = np.asarray(err, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(fit.loss(flux, mjd, background) - loss) / sigma
    return bool(np.any(z <= 3.0))


def _save(fig: Figure, path) -> Figure:
    return fig if path is None else style.save(fig, path, dpi=80)


def _grid_shape(n: int, ncols: int = 4) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return int(np.ceil(n / ncols)), ncols


def _bin_label(loss_ds, b) -> str:
    return f"{loss_ds['flux_bin_lo'].values[b]:g}-{loss_ds['flux_bin_hi'].values[b]:g} e-"


def _date(mjd: float) -> str:
    return str(mjd_to_datetime64(mjd).astype("datetime64[D]"))


def check_aperture(loss_ds: xr.Dataset, aperture: float, name: str = "loss_ds") -> float:
    """*aperture* (px) as a float if *loss_ds* has it (``np.isclose``), else ValueError naming
    the apertures it has."""
    have = loss_ds["aperture"].values
    if not np.any(np.isclose(have, aperture)):
        msg = f"aperture {aperture} px not in {name} (apertures: {have.tolist()})"
        raise ValueError(msg)
    return float(aperture)


def select_configuration(loss_ds: xr.Dataset, *, aperture: float, **config) -> xr.Dataset:
    """Pairs of *loss_ds* matching *config* (target, filter, exptime_class, ctecorr,
    flash), one aperture; raises ValueError naming what is available when nothing
    matches.

    Parameters
    ----------
    loss_ds : xarray.Dataset
        The loss Dataset.
    aperture : float
        Aperture radius, pixel.
    **config
        Values of target, filter, exptime_class and ctecorr.
    """
    unknown = [k for k in config if k not in _SELECT]
    if unknown:
        msg = f"selection keys must be drawn from {_SELECT}, got {unknown}"
        raise ValueError(msg)
    check_aperture(loss_ds, aperture, "loss_ds")
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
    index = int(np.argmin(np.abs(loss_ds["aperture"].values - aperture)))
    return loss_ds.isel(pair=np.flatnonzero(mask), aperture=index)


@style.styled
def plot_ratio_vs_y(
    photometry: xr.Dataset,
    loss_ds: xr.Dataset,
    pair: str,
    *,
    aperture: float,
    path: str | PathLike | None,
) -> Figure:
    """Flux ratio (numerator / denominator) vs denominator transfers (chip-2 y), per bin.

    Points are the stars of each bin before clipping, with the 1-sigma error of their
    ratio from the photometric errors (label ``"stars (before clipping)"``); the solid
    line is the fitted ``intercept + slope * y`` (``"free fit"``), the dashed line the
    fit forced through ratio 1 at ``pivot_transfers`` (``"forced through 1 at y =
    pivot"``), both drawn over the stars' y range only; the grey line marks ratio 1.
    Panels without stars say so.  Titles give the loss and star count.

    Parameters
    ----------
    photometry : xarray.Dataset
        The photometry Dataset of the pair's key.
    loss_ds : xarray.Dataset
        The loss Dataset.
    pair : str
        The pair id.
    aperture : float
        Aperture radius, pixel.
    path : path-like
        The PNG to write.
    """
    points = ratio_points(photometry, loss_ds, pair, aperture=aperture, errors=True)
    row = loss_ds.sel(pair=pair).isel(aperture=int(np.argmin(
        np.abs(loss_ds["aperture"].values - aperture))))
    nrows, ncols = _grid_shape(len(points))
    fig, axes = style.new_figure(nrows, ncols, size=(3.1 * ncols, 2.5 * nrows + 0.5),
                                 n_panels=len(points))
    pivot = float(loss_ds.attrs.get("pivot_transfers", 1025.5))
    min_stars = loss_ds.attrs.get("min_stars", "?")
    for b, (ax, (x, ratio, ratio_err)) in enumerate(zip(axes, points, strict=True)):
        n = int(row["n_stars"].values[b])
        if len(x) == 0:
            style.no_data(ax, "no stars in this bin")
            ax.set_title(_bin_label(loss_ds, b))
            continue
        err = np.where(np.isfinite(ratio_err), ratio_err, 0.0) if np.isfinite(
            ratio_err).any() else None
        ax.errorbar(x, ratio, yerr=err, fmt="o", ms=2.5, color="0.35", alpha=0.7,
                    elinewidth=0.5, label="stars (before clipping)", gid="data:stars")
        ax.axhline(1.0, color="0.6", lw=0.7, label="ratio 1 (no loss)")
        grid = np.linspace(np.nanmin(x), np.nanmax(x), 50)
        slope = float(row["slope"].values[b])
        if np.isfinite(slope):
            ax.plot(grid, float(row["intercept"].values[b]) + slope * grid, color="C3",
                    lw=1.5, label="free fit", gid="model:free")
            if "slope_fixed" in row and np.isfinite(row["slope_fixed"].values[b]):
                ax.plot(grid, 1.0 + float(row["slope_fixed"].values[b]) * (grid - pivot),
                        color="C0", lw=1.1, ls="--", label="forced through 1 at y = pivot",
                        gid="model:forced")
            title = (f"{_bin_label(loss_ds, b)}: L = {float(row['loss'].values[b]):.3f} "
                     f"± {float(row['loss_err'].values[b]):.3f}, n = {n}")
        else:
            title = f"{_bin_label(loss_ds, b)}: no loss (n = {n} < {min_stars})"
        ax.set_title(title, fontsize=8)
        lo, hi = np.nanpercentile(ratio, [2, 98])
        pad = 0.1 * (hi - lo) + 1e-3
        ax.set_ylim(min(lo, 1.0) - pad, max(hi, 1.0) + pad)
        ax.set_xlabel("chip-2 y (denominator transfers)")
        ax.set_ylabel("flux ratio chip 1 / chip 2")
    mjd = float(row["mjd"].values)
    fig.suptitle(f"{pair}: {_date(mjd)} (MJD {mjd:.1f}), aperture {aperture:g} px")
    style.figure_legend(fig, axes)
    return _save(fig, path)


def _model_for(model, loss_ds, aperture) -> tuple[FittedLoss | None, str]:
    """The fit of the configuration of *loss_ds* and, without one, the reason."""
    if model is None:
        return None, "no model given"
    if isinstance(model, FittedLoss):
        return model, ""
    if isinstance(model, CTEModel):
        config = {k: str(loss_ds[k].values[0]) for k in _CONFIG}
        try:
            return model.select(aperture=aperture, **config), ""
        except ModelNotFoundError:
            for skipped, reason in model.skipped:
                if all(str(skipped.get(k)) == v for k, v in config.items()) and np.isclose(
                        float(skipped.get("aperture", np.nan)), aperture):
                    return None, f"not fitted: {reason}"
            return None, "not fitted"
    msg = f"model must be a FittedLoss, a CTEModel or None, got {type(model).__name__}"
    raise TypeError(msg)


def _title(config, aperture) -> str:
    return ", ".join(f"{v}" for v in config.values()) + f", aperture {aperture:g} px"


def _fitted_bins(sub) -> np.ndarray:
    return independent_bins(sub["flux_bin_lo"].values, sub["flux_bin_hi"].values)


def _configuration_plot(draw):
    """Make a plot of one configuration from ``draw(sub, fit, reason, title) -> Figure``.

    The public plot gets the one signature of the per-configuration plots,
    ``(loss_ds, model=None, *, aperture, path, **config)``, and the steps they share:
    :func:`select_configuration` of *loss_ds* by *config* and
    *aperture* (``sub``), the configuration's fit of *model* (``fit``, or None and the
    ``reason``), the title, the common style, and saving to *path*.
    """

    @style.styled
    def plot(
        loss_ds: xr.Dataset,
        model: CTEModel | FittedLoss | None = None,
        *,
        aperture: float,
        path: str | PathLike | None,
        **config,
    ) -> Figure:
        sub = select_configuration(loss_ds, aperture=aperture, **config)
        fit, reason = _model_for(model, sub, aperture)
        return _save(draw(sub, fit, reason, _title(config, aperture)), path)

    plot.__name__ = plot.__qualname__ = draw.__name__
    plot.__doc__ = draw.__doc__.rstrip() + "\n" + _CONFIGURATION_PLOT_PARAMETERS
    return plot


_CONFIGURATION_PLOT_PARAMETERS = """
    Parameters
    ----------
    loss_ds : xarray.Dataset
        The loss Dataset (:data:`cte.schema.LOSS_VARIABLES`).
    model : CTEModel or FittedLoss, optional
        The fitted model; without it (or without a fit for this configuration) the data
        are drawn alone and the figure says why.
    aperture : float
        Aperture radius (px), one of those measured (ValueError naming them otherwise).
    path : path-like or None
        Where to save the PNG (None: not saved).
    **config
        target, filter, exptime_class, ctecorr (and optionally flash, e-/px).

    Returns
    -------
    matplotlib.figure.Figure
    """


@_configuration_plot
def plot_loss_vs_flux(sub, fit, reason, title) -> Figure:
    """Loss vs flux of every epoch and flash level of one configuration, with the model.

    *config* selects target/filter/exptime_class/ctecorr (and optionally flash, e-/px).
    Points are cells (pair x flux bin) with their 1-sigma errors at the mean flux of
    their stars: colour = epoch (legend: calendar date), marker = flash level; hollow
    markers are bins overlapping narrower ones (not in the fit).  Each curve is the
    model at its epoch's MJD and its group's median background, drawn only over the
    flux range of that group's points (and within the fit's ranges); none is drawn
    for a configuration without a fit (the reason is shown).
    """
    fig, (ax,) = style.new_figure(size=(7.0, 4.6))
    style.log_axis(ax)
    epochs = epoch_of(sub["mjd"].values)
    flashes = sub["flash"].values.astype(float)
    fitted_bin = _fitted_bins(sub)
    drawn_any, refused = set(), []
    for i, m in enumerate(np.unique(epochs)):
        colour = f"C{i % 10}"
        for j, f in enumerate(np.unique(flashes)):
            pick = np.flatnonzero((epochs == m) & (flashes == f))
            if pick.size == 0:
                continue
            cells = sub.isel(pair=pick)
            flux = cells["flux"].values
            loss = cells["loss"].values
            err = cells["loss_err"].values
            good = np.isfinite(loss) & np.isfinite(flux) & (flux > 0)
            if not good.any():
                continue
            key = f"{m:.0f}/{f:g}"
            marker = _MARKERS[j % len(_MARKERS)]
            in_fit = good & fitted_bin[None, :]
            out_fit = good & ~fitted_bin[None, :]
            eb = ax.errorbar(flux[in_fit], loss[in_fit], yerr=err[in_fit], fmt=marker, ms=4,
                             color=colour, alpha=0.8, elinewidth=0.7,
                             label=f"{_date(m)} (MJD {m:.0f})")
            eb.lines[0].set_gid(f"data:{key}")
            if out_fit.any():
                eb2 = ax.errorbar(flux[out_fit], loss[out_fit], yerr=err[out_fit], fmt=marker,
                                  ms=4, mfc="none", color=colour, alpha=0.6, elinewidth=0.5)
                eb2.lines[0].set_gid(f"data:{key}")
            if fit is None or in_fit.sum() < 2:
                continue
            lo = max(np.min(flux[in_fit]), fit.flux_range[0])
            hi = min(np.max(flux[in_fit]), fit.flux_range[1])
            inside_time = fit.mjd_range[0] <= m <= fit.mjd_range[1]
            if lo >= hi or not inside_time:
                continue
            mjd = float(np.median(cells["mjd"].values))
            bkg = float(np.nanmedian(cells["background"].values))
            if not _consistent(fit, flux[good], mjd, bkg, loss[good], err[good]):
                refused.append(key)
                continue
            grid = np.geomspace(lo, hi, 60)
            ax.plot(grid, fit.loss(grid, mjd, bkg), color=colour, lw=1.2,
                    ls=_LINESTYLES[j % len(_LINESTYLES)], gid=f"model:{key}")
            drawn_any.add(j)
    handles = []
    for j, f in enumerate(np.unique(flashes)):
        handles.append(Line2D([], [], ls="none", marker=_MARKERS[j % len(_MARKERS)],
                              color="0.3", label=f"flash {f:g} e-/px"))
    if (~fitted_bin).any():
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", color="0.3",
                              label="bin overlapping narrower ones (not fitted)"))
    for j, f in enumerate(np.unique(flashes)):
        if j in drawn_any:
            handles.append(Line2D([], [], color="0.3", lw=1.2,
                                  ls=_LINESTYLES[j % len(_LINESTYLES)],
                                  label=f"model at the epoch, flash {f:g} e-/px"))
    for h in handles:
        ax.add_line(h)
    if fit is None:
        ax.text(0.02, 0.02, f"data only ({reason})", transform=ax.transAxes, fontsize=8,
                color="C3", va="bottom")
    elif refused:
        ax.text(0.02, 0.02, f"model not drawn for {len(refused)} epoch/flash group(s): more "
                "than 3 sigma from every point", transform=ax.transAxes, fontsize=7,
                color="C3", va="bottom")
    ax.set_xlabel("flux (e-, mean of the two images)")
    ax.set_ylabel(_LOSS_LABEL)
    ax.set_title(title)
    # an explicit place: matplotlib times loc="best" and warns when it is slow (a loaded CI)
    style.legend(ax, loc="upper right", ncols=2, fontsize=6.5)
    return fig


#: narrowest date axis of a loss-vs-date plot, days (a single epoch spans hours)
_MIN_DATE_SPAN_DAYS = 180.0
#: characters of a 9 pt suptitle per inch of figure width (wrapping, with a margin)
_TITLE_CHARS_PER_INCH = 13


@_configuration_plot
def plot_loss_vs_time(sub, fit, reason, title) -> Figure:
    """Loss vs date, one panel per flux bin with data, one colour per flash level.

    Bins without any measured loss get no panel (they are named in the suptitle).
    Each curve is the model at the median flux and background of its points (one per
    flash level), drawn only over the dates of its points and only when they span
    more than one epoch.
    """
    has_data = np.isfinite(sub["loss"].values).any(axis=0)
    bins = np.flatnonzero(has_data)
    empty = [_bin_label(sub, b) for b in np.flatnonzero(~has_data)]
    nrows, ncols = _grid_shape(max(1, bins.size))
    fig, axes = style.new_figure(nrows, ncols, size=(3.1 * ncols, 2.5 * nrows + 0.6),
                                 n_panels=max(1, bins.size), sharex=True)
    if bins.size == 0:
        style.no_data(axes[0], "no flux bin has a measured loss")
    flashes = sub["flash"].values.astype(float)
    fitted_bin = _fitted_bins(sub)
    refused = []
    for ax, b in zip(axes, bins, strict=False):
        cells = sub.isel(flux_bin=b)
        for j, f in enumerate(np.unique(flashes)):
            pick = (flashes == f) & np.isfinite(cells["loss"].values)
            if not pick.any():
                continue
            mjd = cells["mjd"].values[pick]
            key = f"{b}/{f:g}"
            eb = ax.errorbar(mjd_to_datetime64(mjd), cells["loss"].values[pick],
                             yerr=cells["loss_err"].values[pick], fmt=_MARKERS[j % 7], ms=3.5,
                             elinewidth=0.7, color=f"C{j}", label=f"flash {f:g} e-/px",
                             mfc=None if fitted_bin[b] else "none")
            eb.lines[0].set_gid(f"data:{key}")
            if fit is None or np.unique(epoch_of(mjd)).size < 2:
                continue
            lo = max(mjd.min(), fit.mjd_range[0])
            hi = min(mjd.max(), fit.mjd_range[1])
            if lo >= hi:
                continue
            grid = np.linspace(lo, hi, 50)
            flux = float(np.nanmedian(cells["flux"].values[pick]))
            bkg = float(np.nanmedian(cells["background"].values[pick]))
            if not fit.flux_range[0] <= flux <= fit.flux_range[1]:
                continue
            if not _consistent(fit, flux, mjd, bkg, cells["loss"].values[pick],
                               cells["loss_err"].values[pick]):
                refused.append(key)
                continue
            ax.plot(mjd_to_datetime64(grid), fit.loss(flux, grid, bkg), color=f"C{j}",
                    lw=1.2, gid=f"model:{key}", label=f"model, flash {f:g} e-/px")
        note = "" if fitted_bin[b] else " (not fitted: overlaps)"
        ax.set_title(_bin_label(sub, b) + note)
        style.date_axis(ax)
        ax.tick_params(labelbottom=True)
        ax.set_ylabel(_LOSS_LABEL)
    dates = sub["mjd"].values[np.isfinite(sub["mjd"].values)]
    if bins.size and np.ptp(dates) < _MIN_DATE_SPAN_DAYS:  # one epoch: months, not hours
        centre = 0.5 * (dates.min() + dates.max())
        half = _MIN_DATE_SPAN_DAYS / 2
        axes[0].set_xlim(mjd_to_datetime64(np.array([centre - half, centre + half])))
    lines = [title + (f" — data only ({reason})" if fit is None else "")]
    if empty:
        lines.append(f"no measured loss in {', '.join(empty)}")
    if refused:
        lines.append(f"model not drawn for {len(refused)} bin/flash group(s): more than "
                     "3 sigma from every point")
    # wrapped to the figure's width (a one-panel figure is 3.1 inches wide)
    width = max(30, int(_TITLE_CHARS_PER_INCH * fig.get_figwidth()))
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in lines), fontsize=9)
    style.figure_legend(fig, axes)
    return fig


@style.styled
def plot_same_chip(
    loss_ds: xr.Dataset,
    *,
    aperture: float,
    path: str | PathLike | None,
    nominal: xr.Dataset | None = None,
) -> Figure:
    """The 180-degree set: loss of the free fit and of the forced crossing vs flux.

    Optionally over *nominal* loss cells (e.g. NGC 104 pairs of the same proposal).
    The two 180-degree series are shifted by ±2 % in flux so their error bars do not
    overlap.

    Parameters
    ----------
    loss_ds : xarray.Dataset
        The loss Dataset of the 180-degree pairs.
    nominal : xarray.Dataset, optional
        The loss Dataset of the nominal pairs, for comparison.
    aperture : float
        Aperture radius, pixel.
    path : path-like
        The PNG to write.
    """
    kinds = loss_ds["kind"].values.astype(str)
    if not np.any(kinds == "180"):
        msg = "loss_ds has no 180-degree (same-chip) pairs"
        raise ValueError(msg)
    index = int(np.argmin(np.abs(loss_ds["aperture"].values - aperture)))
    sub = loss_ds.isel(pair=np.flatnonzero(kinds == "180"), aperture=index)
    fig, (ax,) = style.new_figure(size=(7.0, 4.6))
    style.log_axis(ax)
    flux = sub["flux"].values.ravel()
    for name, err, label, colour, shift in (
        ("loss", "loss_err", "180-degree, free fit", "C0", 0.98),
        ("loss_fixed", "loss_fixed_err", "180-degree, through 1 at y = pivot", "C1", 1.02),
    ):
        if name not in sub:
            continue
        y = sub[name].values.ravel()
        good = np.isfinite(y) & np.isfinite(flux) & (flux > 0)
        ax.errorbar(flux[good] * shift, y[good], yerr=sub[err].values.ravel()[good], fmt="o",
                    ms=3.5, elinewidth=0.7, color=colour, label=label)
    if nominal is not None:
        index_n = int(np.argmin(np.abs(nominal["aperture"].values - aperture)))
        nom = nominal.isel(aperture=index_n)
        nom = nom.isel(pair=np.flatnonzero(nom["kind"].values.astype(str) == "nominal"))
        y = nom["loss"].values.ravel()
        xn = nom["flux"].values.ravel()
        good = np.isfinite(y) & np.isfinite(xn) & (xn > 0)
        ax.errorbar(xn[good], y[good], yerr=nom["loss_err"].values.ravel()[good], fmt="s",
                    ms=3, elinewidth=0.6, color="0.5", alpha=0.6,
                    label="nominal chip 1 / chip 2")
    dates = sorted({_date(m) for m in sub["mjd"].values})
    ax.set_xlabel("flux (e-, mean of the two images)")
    ax.set_ylabel(_LOSS_LABEL)
    ax.set_title(f"180-degree set ({', '.join(dates)}), aperture {aperture:g} px")
    style.legend(ax, loc="upper right")
    return _save(fig, path)
