"""The monitor's static HTML report: plots, coefficients, data used and excluded, metadata.

:func:`write_report` writes ``report.html`` and a ``plots/`` directory into an output
directory; the page uses relative links only, so the directory can be copied or served
as it is (the successor of the monitor's web page).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path

import numpy as np
import xarray as xr

from cte.lossmodel import BASIS_TERMS
from cte.model import CTEModel
from cte.plots import plot_loss_vs_flux, plot_loss_vs_time, plot_ratio_vs_y, plot_same_chip
from stores._version import __version__

__all__ = ["write_report"]

logger = logging.getLogger(__name__)

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: right; }
th { background: #eee; } td.l, th.l { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.meta { font-size: 0.85em; color: #555; }
"""


def _e(value) -> str:
    return html.escape(str(value))


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", "_".join(str(p) for p in parts)).strip("_")


def _table(header: Sequence[str], rows: Iterable[Sequence], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>'
                   for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{_e(v)}</td>'
                         for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: float, error: float) -> str:
    if error == 0:
        return "0 (not fitted)" if value == 0 else f"{value:.4g}"
    digits = max(0, 1 - int(np.floor(np.log10(abs(error)))))
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def _configurations(loss: xr.Dataset) -> list[dict[str, str]]:
    keys = ("target", "filter", "exptime_class", "ctecorr")
    seen = []
    for i in range(loss.sizes["pair"]):
        config = {k: str(loss[k].values[i]) for k in keys}
        if config not in seen:
            seen.append(config)
    return seen


def write_report(
    out_dir: str | PathLike,
    *,
    loss: xr.Dataset,
    model: CTEModel,
    photometry: Mapping[str, xr.Dataset] | Sequence[xr.Dataset] | None = None,
    excluded: Iterable[tuple[str, str]] = (),
    metadata: Mapping[str, object] | None = None,
    aperture: float | None = None,
    ratio_plots: int = 1,
) -> Path:
    """Write ``report.html`` (and its plots) into *out_dir*; return the page's path.

    Parameters
    ----------
    out_dir : path
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
        Run metadata shown at the top (command, directories, selection, ...).
    aperture : float, optional
        Aperture (px) of the plots; default the smallest.
    ratio_plots : int
        Ratio-vs-y plots per configuration (the latest pairs).
    """
    out = Path(out_dir)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    if aperture is None:
        aperture = float(np.min(loss["aperture"].values))
    if not np.any(np.isclose(loss["aperture"].values, aperture)):
        msg = f"aperture {aperture} px not in loss (apertures: {loss['aperture'].values.tolist()})"
        raise ValueError(msg)
    if int(ratio_plots) < 0:
        msg = f"ratio_plots must be >= 0, got {ratio_plots!r}"
        raise ValueError(msg)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    sections = [_header(loss, model, metadata, created)]
    sections.append(_coefficients(model, out))
    sections.append(_trend_plots(loss, model, plots, aperture))
    if photometry is not None and ratio_plots:
        sections.append(_ratio_section(loss, photometry, plots, aperture, int(ratio_plots)))
    sections.append(_data_used(loss))
    sections.append(_data_excluded(loss, model, excluded))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>WFC3/UVIS external CTE monitor — {created}</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    logger.info("report written to %s", path)
    return path


def _header(loss, model, metadata, created) -> str:
    measured = int(np.isfinite(loss["loss"].values).sum())
    rows = [
        ("created", created),
        ("software", f"stiscube {__version__}"),
        ("pairs", loss.sizes["pair"]),
        ("cells (pair x flux bin x aperture)",
         loss.sizes["pair"] * loss.sizes["flux_bin"] * loss.sizes["aperture"]),
        ("cells with a loss", measured),
        ("configurations fitted", len(model)),
    ]
    rows += [(f"loss option: {k}", v) for k, v in loss.attrs.items()
             if k not in ("title", "created")]
    rows += [(k, v) for k, v in (metadata or {}).items()]
    return ("<h1>WFC3/UVIS external CTE monitor</h1>"
            '<div class="meta">' + _table(["item", "value"], rows, left=2) + "</div>")


def _coefficients(model: CTEModel, out: Path) -> str:
    header = ["target", "filter", "exposure", "FLT/FLC", "aperture (px)",
              *(f"c_{t}" for t in BASIS_TERMS), "chi2_red", "cells", "flux (e-)", "MJD",
              "background (e-/px)"]
    rows = []
    for fit in model:
        c = fit.config
        rows.append(
            [c["target"], c["filter"], c["exptime_class"], c["ctecorr"], f"{c['aperture']:g}",
             *(_fmt(v, e) for v, e in zip(fit.coefficients, fit.errors, strict=True)),
             f"{fit.chi2_red:.2f}", fit.n_cells,
             f"{fit.flux_range[0]:.0f}-{fit.flux_range[1]:.0f}",
             f"{fit.mjd_range[0]:.0f}-{fit.mjd_range[1]:.0f}",
             f"{fit.background_range[0]:.1f}-{fit.background_range[1]:.1f}"]
        )
    links = [f'<a href="{_e(name)}">{_e(name)}</a>' for name in ("coefficients.ecsv",
                                                                "coefficients.tex", "loss.nc")
             if (out / name).exists()]
    formula = _e(model.meta.get("formula", ""))
    return ("<h2>Correction model</h2>"
            f"<p>{formula}</p>" + _table(header, rows, left=4)
            + (f"<p>Files: {', '.join(links)}</p>" if links else ""))


def _trend_plots(loss, model, plots: Path, aperture: float) -> str:
    parts = ["<h2>Loss vs flux and time</h2>"]
    for config in _configurations(loss):
        label = ", ".join(config.values())
        try:
            fit = model.select(aperture=aperture, **config)
        except KeyError:
            fit = None
        stem = _slug(*config.values(), f"ap{aperture:g}")
        flux_png = plots / f"loss_vs_flux_{stem}.png"
        time_png = plots / f"loss_vs_time_{stem}.png"
        plot_loss_vs_flux(loss, fit, aperture=aperture, path=flux_png, **config)
        plot_loss_vs_time(loss, fit, aperture=aperture, path=time_png, **config)
        note = "" if fit is not None else " (no model fitted)"
        parts.append(f"<h3>{_e(label)}{note}</h3>"
                     f'<img src="plots/{_e(flux_png.name)}" alt="loss vs flux {_e(label)}">'
                     f'<img src="plots/{_e(time_png.name)}" alt="loss vs MJD {_e(label)}">')
    if np.any(loss["kind"].values.astype(str) == "180"):
        png = plots / f"same_chip_ap{aperture:g}.png"
        plot_same_chip(loss, aperture=aperture, path=png, nominal=loss)
        parts.append("<h3>180-degree (same-chip) set</h3>"
                     f'<img src="plots/{_e(png.name)}" alt="180-degree comparison">')
    return "\n".join(parts)


def _ratio_section(loss, photometry, plots: Path, aperture: float, per_config: int) -> str:
    datasets = list(photometry.values()) if isinstance(photometry, Mapping) else list(photometry)
    by_image = {}
    for ds in datasets:
        for image in ds["image"].values.astype(str):
            by_image[image] = ds
    parts = ["<h2>Flux ratio vs chip-2 y (latest pairs)</h2>"]
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
                parts.append(f"<p>{_e(pair)}: photometry not given</p>")
                continue
            png = plots / f"ratio_{_slug(pair)}_ap{aperture:g}.png"
            plot_ratio_vs_y(ds, loss, pair, aperture=aperture, path=png)
            parts.append(f"<h3>{_e(pair)} ({_e(', '.join(config.values()))}, "
                         f"MJD {loss['mjd'].values[i]:.2f})</h3>"
                         f'<img src="plots/{_e(png.name)}" alt="ratio vs y {_e(pair)}">')
    return "\n".join(parts)


def _data_used(loss) -> str:
    n_stars = loss["n_stars"].sum(dim=("flux_bin", "aperture")).values
    measured = np.isfinite(loss["loss"].values).sum(axis=(1, 2))
    rows = [
        [str(loss["pair"].values[i]), str(loss["target"].values[i]),
         str(loss["filter"].values[i]), f"{loss['flash'].values[i]:g}",
         str(loss["exptime_class"].values[i]), str(loss["ctecorr"].values[i]),
         str(loss["kind"].values[i]), f"{loss['mjd'].values[i]:.3f}", int(measured[i]),
         int(n_stars[i])]
        for i in range(loss.sizes["pair"])
    ]
    header = ["pair (numerator | denominator)", "target", "filter", "flash (e-/px)",
              "exposure", "FLT/FLC", "kind", "MJD", "cells with a loss", "star measurements"]
    return "<h2>Data used</h2>" + _table(header, rows, left=7)


def _data_excluded(loss, model, excluded) -> str:
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
    body = _table(["item", "stage", "reason"], rows, left=3) if rows else "<p>Nothing.</p>"
    return "<h2>Data excluded</h2>" + body
