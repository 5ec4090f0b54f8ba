"""The monitor's web site: ``index.html`` with headline numbers, interactive trends,
the fitted model, static figures, the data used and excluded, and provenance.

:func:`write_site` writes ``index.html`` and a ``plots/`` directory into an output
directory.  The page is self-contained (BokehJS and CSS inlined, images by relative
link), so the directory works offline, copied or served as it is.  In order:

1. **Headline**: for FLT and FLC, the model loss at 1 000 e- per 2048 transfers at
   the newest epoch of the reference configuration (the one with the longest
   fitted time baseline, then the most cells) and its trend per year (the coefficient
   ``c_t``: ``dL/dt`` at ``x = 0``), each with its 1-sigma error;
2. **Trends**: interactive Bokeh plots (hover, zoom, legend click hides a series):
   loss vs date per flux bin and loss vs flux per epoch of the reference
   configurations, with error bars and the model where it is fitted;
3. **Correction model**: configurations fitted (terms fitted and left out, with the
   reasons; coefficients ± errors) and configurations shown as data only (reason);
4. **Figures** per configuration (PNG, :mod:`cte.report.plots`) and ratio-vs-y plots of the
   latest pairs;
5. **Data used** (pairs) and **data excluded** (with reasons);
6. **Provenance** (collapsed): options, metadata, software versions.

Every file is written atomically (:func:`stores.atomic_write`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import xarray as xr

from cte.analysis.lossmodel import BASIS_TERMS
from cte.analysis.model import CTEModel, FittedLoss, independent_bins
from cte.analysis.model import epochs as epoch_of
from cte.report.plots import (
    check_aperture,
    plot_loss_vs_flux,
    plot_loss_vs_time,
    plot_ratio_vs_y,
    plot_same_chip,
)
from stores.common import provenance
from stores.common.dates import mjd_to_datetime64
from stores.common.validate import as_int
from stores.presentation.site import Metric, Page, bokeh_figure

__all__ = ["headline_numbers", "write_site"]

logger = logging.getLogger(__name__)

_KEYS = ("target", "filter", "exptime_class", "ctecorr")
_REFERENCE_FLUX = 1000.0  # e-


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", "_".join(str(p) for p in parts)).strip("_")


def _fmt(value: float, error: float) -> str:
    """``value ± error`` with the error to two significant digits; unfitted terms
    (error NaN or 0 with value 0) read ``0 (not fitted)``."""
    if not np.isfinite(error) or error == 0:
        return "0 (not fitted)" if value == 0 else f"{value:.4g}"
    digits = max(0, 1 - int(np.floor(np.log10(abs(error)))))
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def _date(mjd: float) -> str:
    return str(mjd_to_datetime64(mjd).astype("datetime64[D]"))


def _configurations(loss: xr.Dataset) -> list[dict[str, str]]:
    seen = []
    for i in range(loss.sizes["pair"]):
        config = {k: str(loss[k].values[i]) for k in _KEYS}
        if config not in seen:
            seen.append(config)
    return seen


def _select(loss: xr.Dataset, config: Mapping[str, str], aperture: float) -> xr.Dataset:
    mask = np.ones(loss.sizes["pair"], dtype=bool)
    for key, value in config.items():
        mask &= loss[key].values.astype(str) == value
    index = int(np.argmin(np.abs(loss["aperture"].values - aperture)))
    return loss.isel(pair=np.flatnonzero(mask), aperture=index)


def _fit_of(model: CTEModel, config, aperture) -> FittedLoss | None:
    for fit in model:
        if all(str(fit.config[k]) == v for k, v in config.items()) and np.isclose(
                float(fit.config["aperture"]), aperture):
            return fit
    return None


def _reference_fits(model: CTEModel, aperture: float) -> dict[str, FittedLoss]:
    """Per FLT/FLC: the fit with time terms and the longest baseline, then most cells."""
    best: dict[str, FittedLoss] = {}
    for fit in model:
        if not np.isclose(float(fit.config["aperture"]), aperture):
            continue
        kind = str(fit.config["ctecorr"])

        def rank(f):
            return ("t" in f.terms, f.n_epochs, f.mjd_range[1] - f.mjd_range[0], f.n_cells)

        if kind not in best or rank(fit) > rank(best[kind]):
            best[kind] = fit
    order = {"FLT": 0, "FLC": 1}
    return dict(sorted(best.items(), key=lambda kv: (order.get(kv[0], 2), kv[0])))


def headline_numbers(loss: xr.Dataset, model: CTEModel, *, aperture: float) -> list[dict]:
    """The headline of the site, one dict per FLT/FLC reference configuration.

    Keys: ``ctecorr``, ``config`` (dict), ``mjd`` (newest epoch of the fit), ``date``,
    ``background`` (median of that epoch's cells, e-/px), ``loss``, ``loss_err`` (model
    loss per 2048 transfers at 1000 e-, 1-sigma), ``trend``, ``trend_err`` (``c_t``
    per year, NaN when the time terms are not fitted), ``time_terms`` (bool),
    ``in_range`` (1000 e- inside the fitted flux range), ``first_mjd``, ``n_epochs``.

    Parameters
    ----------
    loss : xarray.Dataset
        The loss Dataset.
    model : CTEModel
        The fitted model.
    aperture : float
        Aperture radius, pixel.
    """
    out = []
    for kind, fit in _reference_fits(model, aperture).items():
        config = {k: str(fit.config[k]) for k in _KEYS}
        sub = _select(loss, config, aperture)
        mjd = fit.mjd_range[1]
        newest = np.abs(sub["mjd"].values - mjd) < 1.0
        bkg = float(np.nanmedian(sub["background"].values[newest])) if newest.any() else (
            float(np.mean(fit.background_range)))
        bkg = float(np.clip(bkg, *fit.background_range))
        t = BASIS_TERMS.index("t")
        out.append({
            "ctecorr": kind,
            "config": config,
            "mjd": mjd,
            "date": _date(mjd),
            "background": bkg,
            "loss": float(fit.loss(_REFERENCE_FLUX, mjd, bkg)),
            "loss_err": float(fit.loss_err(_REFERENCE_FLUX, mjd, bkg)),
            "trend": float(fit.coefficients[t]) if "t" in fit.terms else np.nan,
            "trend_err": float(fit.errors[t]),
            "time_terms": "t" in fit.terms,
            "in_range": fit.flux_range[0] <= _REFERENCE_FLUX <= fit.flux_range[1],
            "first_mjd": fit.mjd_range[0],
            "n_epochs": fit.n_epochs,
        })
    return out


def write_site(
    out: str | PathLike,
    *,
    loss: xr.Dataset,
    model: CTEModel,
    photometry: Mapping[str, xr.Dataset] | Sequence[xr.Dataset] | None = None,
    excluded: Iterable[tuple[str, str]] = (),
    metadata: Mapping[str, object] | None = None,
    aperture: float | None = None,
    ratio_plots: int = 1,
) -> Path:
    """Write ``index.html`` (and its plots) into *out*; return the page's path.

    Parameters
    ----------
    out : path
        Output directory (created if needed).
    loss : xarray.Dataset
        Output of :func:`cte.measure_loss`.
    model : CTEModel
        Output of :func:`cte.fit_model`.
    photometry : mapping or sequence of Datasets, optional
        The photometry behind *loss*, for the ratio-vs-y plots.
    excluded : iterable of (item, reason)
        Data left out before the analysis (e.g. images skipped by the photometry).
    metadata : mapping, optional
        Run metadata, shown in the provenance section (command, directories, ...).
    aperture : float, optional
        Aperture (px) of the headline and plots; default the smallest.
    ratio_plots : int
        Ratio-vs-y plots per configuration (the latest pairs).
    """
    if aperture is None:
        aperture = float(np.min(loss["aperture"].values))
    aperture = check_aperture(loss, aperture, "loss")
    ratio_plots = as_int(ratio_plots, "ratio_plots", min=0, allow_integral_float=True)
    out = Path(out)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    aperture = float(loss["aperture"].values[np.argmin(np.abs(loss["aperture"].values
                                                              - aperture))])
    created = provenance.now()
    newest = float(np.nanmax(loss["mjd"].values))
    page = Page("WFC3/UVIS external CTE monitor",
                subtitle=f"{loss.sizes['pair']} image pairs up to {_date(newest)} "
                         f"(MJD {newest:.0f}); aperture {aperture:g} px; page made {created}")
    _headline(page, loss, model, aperture, excluded, _pam_note(photometry))
    _trend_section(page, loss, model, aperture)
    _model_section(page, loss, model, out, aperture)
    _figure_section(page, loss, model, plots, aperture)
    if photometry is not None and ratio_plots:
        _ratio_section(page, loss, photometry, plots, aperture, int(ratio_plots))
    _data_used(page, loss)
    _data_excluded(page, loss, model, excluded)
    page.provenance(_provenance(loss, model, metadata, created))
    path = page.write(out / "index.html")
    logger.info("site written to %s", path)
    return path


# --- headline -----------------------------------------------------------------------


def _pam_note(photometry) -> str:
    """What the page can say about pixel-area correction (``pam_corrected`` per image)."""
    if photometry is None:
        return ("Whether the fluxes were corrected for pixel area is not recorded here "
                "(photometry not given).")
    datasets = list(photometry.values()) if isinstance(photometry, Mapping) else list(photometry)
    flags = np.concatenate([np.asarray(ds["pam_corrected"].values).ravel() for ds in datasets
                            if "pam_corrected" in ds.coords or "pam_corrected" in ds])
    if flags.size and flags.all():
        return "Fluxes are corrected for pixel area (pixel-area maps applied)."
    if not flags.any():
        return ("Fluxes are not corrected for pixel area (no pixel-area maps were given), "
                "which varies by a few per cent across each chip.")
    return (f"Fluxes of {int(flags.sum())} of {flags.size} images are corrected for pixel "
            "area; the others are not.")


def _headline(page, loss, model, aperture, excluded, pam_note: str) -> None:
    metrics = []
    numbers = headline_numbers(loss, model, aperture=aperture)
    for h in numbers:
        where = f"{h['config']['target']} {h['config']['filter']} {h['config']['exptime_class']}"
        extrapolated = "" if h["in_range"] else " (outside the fitted flux range)"
        metrics.append(Metric(
            f"{h['ctecorr']}: loss at 1000 e- per 2048 transfers, {h['date']}",
            _fmt(h["loss"], h["loss_err"]),
            f"model, {where}, background {h['background']:.1f} e-/px{extrapolated}"))
        if h["time_terms"]:
            metrics.append(Metric(f"{h['ctecorr']}: trend of the loss per year",
                                  f"{h['trend']:+.4f} ± {h['trend_err']:.4f}",
                                  f"c_t of {where} over {_date(h['first_mjd'])} to "
                                  f"{h['date']} ({h['n_epochs']} epochs)"))
        else:
            metrics.append(Metric(f"{h['ctecorr']}: trend of the loss per year", "not fitted",
                                  "the data span one epoch or too short a time"))
    n_excluded = len(list(excluded)) + len(model.skipped)
    metrics.append(Metric("data", f"{loss.sizes['pair']} pairs",
                          f"{len(model)} configurations fitted, {len(model.skipped)} shown "
                          f"as data only; excluded items: {n_excluded} (listed below)"))
    note = ("Loss = fraction of a star's flux lost per 2048 parallel transfers, from the "
            "chip 1 / chip 2 flux ratio vs chip-2 y; values are the fitted model with "
            "1-sigma errors.")
    if not numbers:
        note = "No configuration could be fitted at this aperture; see the data below."
    page.headline(metrics, note=f"{note} {pam_note}")


# --- interactive trends ---------------------------------------------------------------


def _bokeh_source(**columns):
    from bokeh.models import ColumnDataSource

    return ColumnDataSource({k: np.asarray(v) for k, v in columns.items()})


def _palette(n):
    from bokeh.palettes import Category10_10

    return [Category10_10[i % 10] for i in range(n)]


def _loss_vs_time_bokeh(sub: xr.Dataset, fit: FittedLoss | None, title: str):
    from bokeh.models import HoverTool

    fig = bokeh_figure(title=title, x_label="date", y_label="loss per 2048 transfers",
                       x_axis_type="datetime", height=360,
                       tooltips=[("pair", "@pair"), ("date", "@date{%F}"), ("MJD", "@mjd{0.0}"),
                                 ("flux bin", "@bin"), ("flash", "@flash e-/px"),
                                 ("loss", "@loss{0.0000} ± @err{0.0000}"),
                                 ("stars", "@n")])
    fig.select_one(HoverTool).formatters = {"@date": "datetime"}
    bins = np.flatnonzero(independent_bins(sub["flux_bin_lo"].values,
                                           sub["flux_bin_hi"].values))
    colours = _palette(bins.size)
    for colour, b in zip(colours, bins, strict=True):
        cells = sub.isel(flux_bin=b)
        good = np.isfinite(cells["loss"].values)
        if not good.any():
            continue
        label = f"{sub['flux_bin_lo'].values[b]:g}-{sub['flux_bin_hi'].values[b]:g} e-"
        mjd = cells["mjd"].values[good]
        y = cells["loss"].values[good]
        e = cells["loss_err"].values[good]
        src = _bokeh_source(date=mjd_to_datetime64(mjd), mjd=mjd, loss=y, err=e,
                            lower=y - e, upper=y + e, pair=cells["pair"].values[good],
                            bin=np.full(good.sum(), label),
                            flash=cells["flash"].values[good].astype(float),
                            n=cells["n_stars"].values[good])
        fig.segment("date", "lower", "date", "upper", source=src, color=colour,
                    legend_label=label)
        fig.scatter("date", "loss", source=src, color=colour, size=7, legend_label=label)
        if fit is None or np.unique(epoch_of(mjd)).size < 2:
            continue
        lo, hi = max(mjd.min(), fit.mjd_range[0]), min(mjd.max(), fit.mjd_range[1])
        flux = float(np.nanmedian(cells["flux"].values[good]))
        if lo >= hi or not fit.flux_range[0] <= flux <= fit.flux_range[1]:
            continue
        for f in np.unique(cells["flash"].values[good]):
            pick = cells["flash"].values[good] == f
            bkg = float(np.nanmedian(cells["background"].values[good][pick]))
            grid = np.linspace(lo, hi, 40)
            fig.line(mjd_to_datetime64(grid), fit.loss(flux, grid, bkg), color=colour,
                     line_dash="dashed", legend_label=label)
    _finish_legend(fig)
    return fig


def _loss_vs_flux_bokeh(sub: xr.Dataset, fit: FittedLoss | None, title: str):
    fig = bokeh_figure(title=title, x_label="flux (e-)", y_label="loss per 2048 transfers",
                       x_axis_type="log", height=360,
                       tooltips=[("pair", "@pair"), ("epoch", "@epoch"), ("flux", "@flux{0}"),
                                 ("flash", "@flash e-/px"),
                                 ("loss", "@loss{0.0000} ± @err{0.0000}"), ("stars", "@n")])
    epochs = epoch_of(sub["mjd"].values)
    unique = np.unique(epochs)
    fitted_bin = independent_bins(sub["flux_bin_lo"].values, sub["flux_bin_hi"].values)
    drawn = []
    for colour, m in zip(_palette(unique.size), unique, strict=True):
        cells = sub.isel(pair=np.flatnonzero(epochs == m), flux_bin=fitted_bin)
        y = cells["loss"].values.ravel()
        good = np.isfinite(y)
        if not good.any():
            continue
        label = _date(m)
        e = cells["loss_err"].values.ravel()[good]
        flux = cells["flux"].values.ravel()[good]
        drawn.append(flux)
        n_bins = cells.sizes["flux_bin"]
        src = _bokeh_source(
            flux=flux, loss=y[good], err=e, lower=y[good] - e, upper=y[good] + e,
            pair=np.repeat(cells["pair"].values, n_bins)[good],
            epoch=np.full(good.sum(), f"{label} (MJD {m:.0f})"),
            flash=np.repeat(cells["flash"].values.astype(float), n_bins)[good],
            n=cells["n_stars"].values.ravel()[good])
        fig.segment("flux", "lower", "flux", "upper", source=src, color=colour,
                    legend_label=label)
        fig.scatter("flux", "loss", source=src, color=colour, size=7, legend_label=label)
        if fit is None or good.sum() < 2 or not fit.mjd_range[0] <= m <= fit.mjd_range[1]:
            continue
        for f in np.unique(cells["flash"].values):
            pick = np.flatnonzero(cells["flash"].values == f)
            part = cells.isel(pair=pick)
            ok = np.isfinite(part["loss"].values)
            if ok.sum() < 2:
                continue
            lo = max(np.min(part["flux"].values[ok]), fit.flux_range[0])
            hi = min(np.max(part["flux"].values[ok]), fit.flux_range[1])
            if lo >= hi:
                continue
            grid = np.geomspace(lo, hi, 40)
            bkg = float(np.nanmedian(part["background"].values))
            fig.line(grid, fit.loss(grid, float(np.median(part["mjd"].values)), bkg),
                     color=colour, line_dash="dashed", legend_label=label)
    if drawn:
        from bokeh.models import FixedTicker

        flux = np.concatenate(drawn)
        fig.xaxis.ticker = FixedTicker(ticks=_log_ticks(flux.min(), flux.max()))
    _finish_legend(fig)
    return fig


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks per decade from below *low* to above *high* (Bokeh's log ticker labels
    only 5 000-20 000 e- on a range of less than two decades)."""
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    ticks = [m * 10.0**k for k in decades for m in (1, 2, 5)]
    below = [t for t in ticks if t <= low]
    above = [t for t in ticks if t >= high]
    return [t for t in ticks if below[-1] <= t <= above[0]]


def _finish_legend(fig) -> None:
    if fig.legend:
        fig.legend.click_policy = "hide"
        fig.legend.label_text_font_size = "8pt"
        fig.legend.location = "top_left"
        fig.add_layout(fig.legend[0], "right")


def _trend_section(page, loss, model, aperture) -> None:
    sec = page.section(
        "Trends",
        intro="Interactive: hover a point for its pair and values, drag or scroll to zoom, "
              "click a legend entry to hide it. Points are measured losses with 1-sigma "
              "error bars (non-overlapping flux bins); dashed lines are the fitted model "
              "at each group's median flux and background, drawn only over its data.")
    refs = _reference_fits(model, aperture)
    configs = [{k: str(f.config[k]) for k in _KEYS} for f in refs.values()]
    if not configs:  # nothing fitted: show the data of the first configuration per kind
        seen: dict = {}
        for c in _configurations(loss):
            seen.setdefault(c["ctecorr"], c)
        configs = list(seen.values())
    for config in configs:
        sub = _select(loss, config, aperture)
        fit = _fit_of(model, config, aperture)
        name = ", ".join(config.values())
        status = "fitted" if fit is not None else "data only"
        sec.subsection(f"{name} ({status})")
        sec.bokeh(_loss_vs_time_bokeh(sub, fit, f"Loss vs date by flux bin: {name}"))
        sec.bokeh(_loss_vs_flux_bokeh(sub, fit, f"Loss vs flux by epoch: {name}"))


# --- model ---------------------------------------------------------------------------


def _model_section(page, loss, model, out: Path, aperture) -> None:
    sec = page.section("Correction model", intro=str(model.meta.get("formula", "")))
    rows = []
    for fit in model:
        c = fit.config
        rows.append([c["target"], c["filter"], c["exptime_class"], c["ctecorr"],
                     f"{c['aperture']:g}", " ".join(fit.terms),
                     "; ".join(f"{t}: {r}" for t, r in fit.dropped) or "-",
                     fit.n_epochs, fit.n_flux_bins, fit.n_cells, f"{fit.chi2_red:.2f}",
                     f"{fit.flux_range[0]:.0f}-{fit.flux_range[1]:.0f}",
                     f"{_date(fit.mjd_range[0])} to {_date(fit.mjd_range[1])}"])
    sec.table(["target", "filter", "exposure", "FLT/FLC", "aperture (px)", "terms fitted",
               "terms left out (reason)", "epochs", "flux bins", "cells", "chi2_red",
               "flux (e-)", "dates"], rows, caption="Fitted", left=7, collapse_after=60)
    coeff_rows = [
        [fit.config["target"], fit.config["filter"], fit.config["exptime_class"],
         fit.config["ctecorr"], f"{fit.config['aperture']:g}",
         *(_fmt(v, e) for v, e in zip(fit.coefficients, fit.errors, strict=True))]
        for fit in model]
    sec.table(["target", "filter", "exposure", "FLT/FLC", "aperture (px)",
               *(f"c_{t}" for t in BASIS_TERMS)], coeff_rows,
              caption="Coefficients (value ± 1-sigma; terms not fitted are 0)", left=4,
              collapse_after=12)
    data_only = [[", ".join(f"{k}={v}" for k, v in config.items()), reason]
                 for config, reason in model.skipped]
    fitted = {tuple(str(f.config[k]) for k in _KEYS) for f in model}
    at_aperture = {tuple(str(f.config[k]) for k in _KEYS) for f in model
                   if np.isclose(float(f.config["aperture"]), aperture)}
    for config in _configurations(loss):
        key = tuple(config.values())
        if key not in fitted:
            data_only.append([", ".join(f"{k}={v}" for k, v in config.items()),
                              "no usable cell at any aperture"])
        elif key not in at_aperture and not any(
                all(str(c.get(k)) == v for k, v in config.items()) for c, _ in model.skipped):
            data_only.append([", ".join(f"{k}={v}" for k, v in config.items())
                              + f", aperture={aperture:g}", "not fitted at this aperture"])
    sec.table(["configuration", "reason"], data_only, caption="Shown as data only",
              empty="Every configuration was fitted.")
    links = [f'<a href="{name}">{name}</a>' for name in ("coefficients.ecsv",
                                                         "coefficients.tex", "loss.nc")
             if (out / name).exists()]
    if links:
        sec.html(f"<p>Files: {', '.join(links)}</p>")


# --- static figures --------------------------------------------------------------------


def _figure_section(page, loss, model, plot_dir: Path, aperture: float) -> None:
    sec = page.section(
        "Figures per configuration",
        intro="Loss vs flux (colour: epoch, marker: flash level, hollow: bins overlapping "
              "narrower ones, not fitted) and loss vs date (one panel per flux bin with "
              "data). Model curves are drawn only over the data they describe.")
    for config in _configurations(loss):
        label = ", ".join(config.values())
        fit = _fit_of(model, config, aperture)
        stem = _slug(*config.values(), f"ap{aperture:g}")
        flux_png = plot_dir / f"loss_vs_flux_{stem}.png"
        time_png = plot_dir / f"loss_vs_time_{stem}.png"
        plot_loss_vs_flux(loss, model, aperture=aperture, path=flux_png, **config)
        plot_loss_vs_time(loss, model, aperture=aperture, path=time_png, **config)
        note = "fitted" if fit is not None else "data only"
        sec.subsection(f"{label} ({note})")
        sec.image(f"plots/{flux_png.name}", f"loss vs flux {label}")
        sec.image(f"plots/{time_png.name}", f"loss vs date {label}")
    if np.any(loss["kind"].values.astype(str) == "180"):
        png = plot_dir / f"same_chip_ap{aperture:g}.png"
        kinds = loss["kind"].values.astype(str)
        nominal = loss
        if "proposal" in loss.coords:  # nominal pairs of the same proposal(s) only
            same = np.isin(loss["proposal"].values, loss["proposal"].values[kinds == "180"])
            nominal = loss.isel(pair=np.flatnonzero(same))
        plot_same_chip(loss, aperture=aperture, path=png, nominal=nominal)
        sec.subsection("180-degree (same-chip) set, with the nominal pairs of its proposal")
        sec.image(f"plots/{png.name}", "180-degree comparison")


def _ratio_section(page, loss, photometry, plots: Path, aperture: float, per_config: int):
    datasets = list(photometry.values()) if isinstance(photometry, Mapping) else list(photometry)
    by_image = {}
    for ds in datasets:
        for image in ds["image"].values.astype(str):
            by_image[image] = ds
    sec = page.section("Flux ratio vs chip-2 y (latest pairs)",
                       intro="Each star's chip 1 / chip 2 flux ratio with its photometric "
                             "error, the fitted line and the line forced through 1.")
    for config in _configurations(loss):
        mask = np.ones(loss.sizes["pair"], dtype=bool)
        for key, value in config.items():
            mask &= loss[key].values.astype(str) == value
        index = np.flatnonzero(mask)
        latest = index[np.argsort(loss["mjd"].values[index])][::-1][:per_config]
        for i in latest:
            pair = str(loss["pair"].values[i])
            ds = by_image.get(str(loss["image_den"].values[i]))
            if ds is None:
                sec.text(f"{pair}: photometry not given")
                continue
            png = plots / f"ratio_{_slug(pair)}_ap{aperture:g}.png"
            plot_ratio_vs_y(ds, loss, pair, aperture=aperture, path=png)
            sec.subsection(f"{pair} ({', '.join(config.values())}, "
                           f"{_date(loss['mjd'].values[i])})")
            sec.image(f"plots/{png.name}", f"ratio vs y {pair}")


# --- data tables -----------------------------------------------------------------------


def _data_used(page, loss) -> None:
    n_stars = loss["n_stars"].sum(dim=("flux_bin", "aperture")).values
    measured = np.isfinite(loss["loss"].values).sum(axis=(1, 2))
    rows = [
        [str(loss["pair"].values[i]), str(loss["target"].values[i]),
         str(loss["filter"].values[i]), f"{loss['flash'].values[i]:g}",
         str(loss["exptime_class"].values[i]), str(loss["ctecorr"].values[i]),
         str(loss["kind"].values[i]), _date(loss["mjd"].values[i]),
         f"{loss['mjd'].values[i]:.3f}", int(measured[i]), int(n_stars[i])]
        for i in range(loss.sizes["pair"])
    ]
    header = ["pair (numerator | denominator)", "target", "filter", "flash (e-/px)",
              "exposure", "FLT/FLC", "kind", "date", "MJD", "cells with a loss",
              "star measurements"]
    page.section("Data used").table(header, rows, caption="Image pairs", left=8)


def _data_excluded(page, loss, model, excluded) -> None:
    rows = [[str(item), "photometry", str(reason)] for item, reason in excluded]
    if "unpaired_image" in loss.coords:
        rows += [[str(i), "pairing", str(r)] for i, r in
                 zip(loss["unpaired_image"].values, loss["unpaired_reason"].values, strict=True)]
    rows += [[", ".join(f"{k}={v}" for k, v in config.items()), "model", str(reason)]
             for config, reason in model.skipped]
    min_stars = loss.attrs.get("min_stars", "?")
    few = (~np.isfinite(loss["loss"].values)).sum(axis=(0, 2))
    for b, count in enumerate(few):
        if count:
            rows.append([f"flux bin {loss['flux_bin_lo'].values[b]:g}-"
                         f"{loss['flux_bin_hi'].values[b]:g} e-", "loss",
                         f"{int(count)} cells with fewer than {min_stars} stars (no loss)"])
    fitted = model.meta.get("flux_bins_fitted")
    if fitted:
        rows.append(["overlapping flux bins", "model",
                     f"fit uses the independent bins {fitted} (the others re-use their stars)"])
    page.section("Data excluded").table(["item", "stage", "reason"], rows,
                                        caption="Left out, with the reason", left=3,
                                        empty="Nothing.")


def _provenance(loss, model, metadata, created) -> dict:
    """The page's :mod:`stores.common.provenance` record: the run's metadata, the options of the
    loss measurement and of the model fit (without their own provenance keys, which the
    record holds once), software and versions."""
    skip = {"title", "loss_options", *provenance.KEYS}  # shown once, at the top level
    return provenance.provenance(
        created=created,
        options={
            "loss measurement": {k: str(v) for k, v in loss.attrs.items() if k not in skip},
            "model fit": {k: str(v) for k, v in model.meta.items() if k not in skip},
        },
        libraries=(*provenance.DEFAULT_LIBRARIES, "matplotlib", "bokeh"),
        run={k: str(v) for k, v in (metadata or {}).items()} or "not given",
    )
