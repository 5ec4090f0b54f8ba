"""The STIS CCD monitoring site: one self-contained HTML page from the pixel cube.

:func:`write_site` (``stiscube report STORE --out DIR``) writes ``DIR/index.html``, built
with :mod:`stores.presentation.site` (BokehJS inlined, works offline from a copied directory).  The
page holds, in order:

headline numbers
    hot pixels in the newest period (:func:`stiscube.dq.hot_pixels` under the options'
    :class:`~stiscube.dq.DQRules`, the same rule object as the DQ array and the
    reference files' ``NHOT``, stated on the page) and their growth per
    year (least-squares line through the counts of every rate period against the
    period mid-dates, with its 1-sigma error from the fit residuals); the median dark
    rate of the newest period and its trend per year (same fit on the per-period
    medians); the median read noise of the newest period; and what the newest period
    changed against the one before (pixels that turned hot, pixels that healed).
trends
    interactive Bokeh plots (pan, box and wheel zoom, hover with the period's values)
    of the hot-pixel count, the median dark rate and the median read noise per period
    (with the 1-sigma error of the median, ``1.2533 * 1.4826 MAD / sqrt(n)`` over the
    pixels, coloured by electronics side).
anneal effectiveness
    per anneal, the fraction of the new hot pixels it repaired and of the old ones
    still hot, with binomial errors, by electronics side, and the fractions pooled per
    side in the headline (:mod:`stiscube.dq.effectiveness`, under the hot rule
    the options' rules); the table is written beside the page as
    ``anneal_effectiveness.ecsv``.
pixel browser
    a map of ``sci_mean`` of a chosen period (one of the newest ``map_periods``) next
    to a history plot.  A full frame is downsampled for
    the page: the map shows the **block maximum** of ``sci_mean`` over blocks of
    ``b x b`` pixels, ``b = ceil(max(rows, cols) / map_size)`` (so at most
    ``map_size x map_size`` values; a hot pixel stays visible in its block); a menu
    picks the period.  Clicking
    (or tapping) a block draws, across every rate period, the block's maximum and mean
    ``sci_mean`` and, when the block holds one of the ``track`` pixels hottest in the
    newest period, that pixel's own ``sci_mean``.  Block histories use blocks of
    ``h >= b`` pixels, ``h`` a multiple of ``b`` chosen so that the embedded histories
    stay below ``history_budget`` values (``h = b`` for a year of monthly periods).
tables
    the periods used (dates, darks, counts, medians), the darks of each period, and the
    periods excluded with the reason (periods in the seed CSV's ``"counts"`` unit
    system cannot be compared with a level in electron / s).
provenance (collapsible, last)
    the database, cube version and period checksums, the options, software versions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stiscube._provenance import iso
from stiscube.cube.pixeldb import PixelDB
from stiscube.dq.array import hot_pixels
from stiscube.dq.effectiveness import (
    anneal_effectiveness,
    effectiveness_by_side,
    write_anneal_effectiveness,
)
from stiscube.dq.rules import DQRules
from stiscube.io.darks import SIDE2_START_MJD
from stores.common.dates import datetime64_to_mjd
from stores.common.provenance import DEFAULT_LIBRARIES, provenance, slice_checksums
from stores.common.validate import as_int, check_fields, instance_of, one_of

__all__ = ["SiteOptions", "block_reduce", "site_summary", "write_site"]

logger = logging.getLogger(__name__)

_YEAR_DAYS = 365.25


@dataclass(frozen=True, kw_only=True)
class SiteOptions:
    """Options of the STIS site (validated).

    Parameters
    ----------
    rules : DQRules
        The rules that decide a period's hot pixels (default ``DQRules()``: 0.1
        electron / s, as the STIS reference superdarks), the same rule object as
        ``stiscube dq``; it must have a hot rule and no persistence (the site compares
        single periods: new and healed hot pixels, anneal effectiveness; persistent bad
        pixels are the BPIXTAB's, ``stiscube dq --bpixtab``).
    map_size : int
        Largest side of the pixel-browser map, in blocks (16 ... 1024).
    map_periods : int
        How many of the newest periods the map can show (>= 1; each adds up to
        ``map_size**2`` float32 values to the page).
    track : int
        Pixels (hottest in the newest period) whose own history is embedded (>= 0).
    history_budget : int
        Most block-history values embedded per statistic (>= 1000; with the defaults a
        year of 256 x 256 frames keeps 2 x 2 blocks, and the page weighs about 8 MB,
        4 MB of which is BokehJS).
    """

    rules: DQRules = dataclasses.field(default_factory=DQRules)
    map_size: int = 256
    map_periods: int = 6
    track: int = 500
    history_budget: int = 250_000

    #: the rule of each field, checked once (in ``__post_init__``)
    _RULES: ClassVar[dict[str, Callable[[Any, str], Any]]] = {
        "rules": partial(instance_of, cls=DQRules, what="a stiscube.dq.DQRules"),
        "map_size": partial(as_int, min=16, max=1024),
        "map_periods": partial(as_int, min=1),
        "track": partial(as_int, min=0),
        "history_budget": partial(as_int, min=1000),
    }

    def __post_init__(self) -> None:
        check_fields(self, self._RULES)
        if not self.rules.has_hot_rule:
            msg = "rules must have a hot rule (hot_level or hot_nsigma): the site counts hot pixels"
            raise ValueError(msg)
        if self.rules.window != 1:
            msg = (
                "rules must have no persistence (persist_k/persist_m, --persist): the site "
                "compares single periods; persistent bad pixels are the BPIXTAB's"
            )
            raise ValueError(msg)


def block_reduce(frame: np.ndarray, block: int, how: str) -> np.ndarray:
    """Reduce a 2-D frame over ``block x block`` blocks, ignoring NaN (numpy kernel).

    The frame is padded with NaN to a multiple of *block*.  ``how="max"`` gives the
    largest finite value of each block, ``"mean"`` the mean of its finite values; a block
    without any finite value gives NaN.

    Parameters
    ----------
    frame : numpy.ndarray
        2-D values.
    block : int
        Block side, pixels.
    how : {"max", "mean"}
        The reduction.

    Returns
    -------
    numpy.ndarray
        float32 of shape ``ceil(rows / block), ceil(cols / block)``.
    """
    one_of(how, "how", ("max", "mean"))
    block = as_int(block, "block", min=1)
    data = np.asarray(frame, dtype=np.float64)
    rows, cols = data.shape
    nr, nc = -(-rows // block), -(-cols // block)
    padded = np.full((nr * block, nc * block), np.nan)
    padded[:rows, :cols] = data
    blocks = padded.reshape(nr, block, nc, block)
    if how == "max":
        out = np.fmax.reduce(np.fmax.reduce(blocks, axis=3), axis=1)
    else:
        finite = np.isfinite(blocks)
        total = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
        count = finite.sum(axis=(1, 3))
        out = np.full(total.shape, np.nan)
        np.divide(total, count, out=out, where=count > 0)
    return out.astype(np.float32)


def _trend(x_years: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope of the least-squares line y(x) and its 1-sigma error (NaN if < 3 points)."""
    good = np.isfinite(x_years) & np.isfinite(y)
    x, y = x_years[good], y[good]
    if x.size < 2 or np.ptp(x) == 0:
        return math.nan, math.nan
    design = np.column_stack([x - x.mean(), np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    if x.size < 3:
        return float(coef[0]), math.nan
    resid = y - design @ coef
    sigma2 = float(resid @ resid) / (x.size - 2)
    return float(coef[0]), math.sqrt(sigma2 / float(np.sum((x - x.mean()) ** 2)))


def _median_error(values: np.ndarray) -> float:
    """1-sigma error of the median of *values*: ``1.2533 * 1.4826 MAD / sqrt(n)`` (the
    normal-distribution value, with a robust sigma); NaN for fewer than 2 values."""
    if values.size < 2:
        return math.nan
    mad = float(np.median(np.abs(values - np.median(values))))
    return 1.2533 * 1.4826 * mad / math.sqrt(values.size)


def _mid(start: np.datetime64, end: np.datetime64) -> np.datetime64:
    start = np.datetime64(start, "ms")
    return start + (np.datetime64(end, "ms") - start) // 2


def site_summary(db: PixelDB, *, site: SiteOptions | None = None) -> dict[str, Any]:
    """The numbers and arrays the site shows (computed from the cube, one period at a time).

    Parameters
    ----------
    db : PixelDB
        The database.
    site : SiteOptions, optional
        The options (default ``SiteOptions()``).

    Returns
    -------
    dict
        ``periods`` (list of dict per rate period: ``anneal``, ``start``, ``end``,
        ``mid`` (datetime64[ms]), ``n_darks``, ``n_hot``, ``new_hot``, ``healed``,
        ``median_dark`` (electron / s), ``median_readnoise`` and ``readnoise_err``
        (electron), ``side`` (electronics side 1 or 2 by the period start)),
        ``effectiveness`` and ``effectiveness_by_side`` (the tables of
        :mod:`stiscube.dq.effectiveness`),
        ``excluded`` (list of ``(anneal, reason)``), ``hot_trend`` and ``dark_trend``
        ((slope, error) per year), ``map_block``, ``history_block``, ``maps``
        ({anneal: block-max map}), ``block_max``/``block_mean`` ((period, hr, hc)
        float32), ``tracked`` (rows, cols, values (pixel, period)), ``shape``.
    """
    site = SiteOptions() if site is None else site
    instance_of(db, "db", PixelDB, what="a stiscube.PixelDB")
    ds = db.dataset
    numbers = [int(n) for n in ds["anneal"].values]
    systems = np.atleast_1d(ds["unit_system"].values).astype(str)
    excluded = [
        (n, "counts per frame (seed CSV, 'counts' unit system): not comparable with levels "
         "in electron / s")
        for n, s in zip(numbers, systems, strict=True)
        if s != "rate"
    ]
    rate = [n for n, s in zip(numbers, systems, strict=True) if s == "rate"]
    if not rate:
        msg = f"{db.location.url} holds no period in electron / s to report on"
        raise ValueError(msg)
    rows, cols = db.shape
    block = max(1, -(-max(rows, cols) // site.map_size))
    nr, nc = -(-rows // block), -(-cols // block)
    factor = 1
    while (nr // factor + 1) * (nc // factor + 1) * len(rate) > site.history_budget:
        factor += 1
    hblock = block * factor
    hr, hc = -(-rows // hblock), -(-cols // hblock)
    newest = db.store.read_arrays([rate[-1]], variables=["sci_mean"])["sci_mean"][0]
    newest = np.asarray(newest, dtype=np.float64)
    rules = site.rules
    hot_masks = {n: hot_pixels(db, rules=rules, anneal_num=n).values for n in rate}
    hot_now = np.flatnonzero(hot_masks[rate[-1]].ravel())
    order = np.argsort(-newest.ravel()[hot_now], kind="stable")[: site.track]
    tracked = hot_now[order]
    t_rows, t_cols = np.divmod(tracked, cols)
    t_values = np.full((tracked.size, len(rate)), np.nan, dtype=np.float32)
    block_max = np.full((len(rate), hr, hc), np.nan, dtype=np.float32)
    block_mean = np.full((len(rate), hr, hc), np.nan, dtype=np.float32)
    maps = {}
    map_from = set(rate[-site.map_periods :])
    periods = []
    previous = None
    one = ds.sel(anneal=rate)
    for i, number in enumerate(rate):
        arrays = db.store.read_arrays([number], variables=["sci_mean", "readnoise"])
        sci = np.asarray(arrays["sci_mean"][0], dtype=np.float64)
        rn = np.asarray(arrays["readnoise"][0], dtype=np.float64)
        rn = rn[np.isfinite(rn)]
        hot = hot_masks[number]
        if number in map_from:
            maps[number] = block_reduce(sci, block, "max")
        block_max[i] = block_reduce(sci, hblock, "max")
        block_mean[i] = block_reduce(sci, hblock, "mean")
        t_values[:, i] = sci.ravel()[tracked]
        start = one["anneal_start"].values[i]
        end = one["anneal_end"].values[i]
        periods.append(
            {
                "anneal": number,
                "start": np.datetime64(start, "s"),
                "end": np.datetime64(end, "s"),
                "mid": _mid(start, end),
                "n_darks": int(one["n_darks"].values[i]),
                "n_hot": int(np.count_nonzero(hot)),
                "new_hot": None if previous is None else int(np.count_nonzero(hot & ~previous)),
                "healed": None if previous is None else int(np.count_nonzero(previous & ~hot)),
                "median_dark": float(np.nanmedian(sci)) if np.isfinite(sci).any() else math.nan,
                "median_readnoise": float(np.median(rn)) if rn.size else math.nan,
                "readnoise_err": _median_error(rn),
                "side": 2 if datetime64_to_mjd(start) >= SIDE2_START_MJD else 1,
            }
        )
        previous = hot
    mids = np.array([p["mid"] for p in periods], dtype="datetime64[ms]")
    years = (mids - mids[0]).astype(np.float64) / (86_400_000.0 * _YEAR_DAYS)
    effect = anneal_effectiveness(db, rules=rules)
    return {
        "effectiveness": effect,
        "effectiveness_by_side": effectiveness_by_side(effect),
        "periods": periods,
        "excluded": excluded,
        "hot_trend": _trend(years, np.array([p["n_hot"] for p in periods], dtype=float)),
        "dark_trend": _trend(years, np.array([p["median_dark"] for p in periods])),
        "map_block": block,
        "history_block": hblock,
        "maps": maps,
        "block_max": block_max,
        "block_mean": block_mean,
        "tracked": (t_rows.astype(np.int32), t_cols.astype(np.int32), t_values),
        "shape": (rows, cols),
        "options": site,
    }


# -- the page --------------------------------------------------------------------------------
def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _signed(value: float, err: float, unit: str, digits: int = 2) -> str:
    if not math.isfinite(value):
        return "n/a (needs 2 or more periods)"
    text = f"{value:+.{digits}g}"
    if math.isfinite(err):
        text += f" ± {err:.{digits}g}"
    return f"{text} {unit}"


def _rule_text(rules: DQRules) -> str:
    """The hot rule in words, without the DQ bit (the headline's note)."""
    hot = dataclasses.replace(rules, unstable_level=None).describe()
    return "; ".join(line.split(": ", 1)[-1] for line in hot)


def _headline(summary: dict[str, Any]):
    from stores.presentation.site import Metric

    periods = summary["periods"]
    last = periods[-1]
    rule = _rule_text(summary["options"].rules)
    hot_slope, hot_err = summary["hot_trend"]
    dark_slope, dark_err = summary["dark_trend"]
    span = f"{str(last['start'])[:10]} to {str(last['end'])[:10]}"
    dark_pct = (
        100 * dark_slope / periods[0]["median_dark"]
        if math.isfinite(dark_slope) and periods[0]["median_dark"]
        else math.nan
    )
    change = (
        f"+{last['new_hot']} / -{last['healed']}"
        if last["new_hot"] is not None
        else "first period held"
    )
    before = (
        f"pixels turned hot / healed since period {periods[-2]['anneal']}"
        if len(periods) > 1
        else ""
    )
    return [
        Metric(
            f"Hot pixels, period {last['anneal']}",
            f"{last['n_hot']:,}",
            f"{rule}; {span}",
        ),
        Metric(
            "Hot-pixel growth",
            _signed(hot_slope, hot_err, "per year", 3),
            f"linear fit over {len(periods)} periods",
        ),
        Metric(
            "Median dark rate",
            f"{_fmt(last['median_dark'], 3)} e-/s",
            "trend " + _signed(dark_slope, dark_err, "e-/s per year")
            + (f" ({dark_pct:+.1f} %/yr)" if math.isfinite(dark_pct) else ""),
        ),
        Metric(
            "Read noise (median)",
            f"{last['median_readnoise']:.3f} e-",
            f"first period {periods[0]['median_readnoise']:.3f} e-",
        ),
        Metric(f"Newest period {last['anneal']} changed", change, before),
        Metric(
            "Anneal repair of new hot pixels",
            "; ".join(
                f"Side-{r['side']} {100 * r['repair_fraction']:.0f} ± "
                f"{100 * r['repair_fraction_err']:.0f} %"
                for r in summary["effectiveness_by_side"]
                if r["n_new"] > 0
            )
            or "n/a (needs 3 consecutive periods)",
            f"{len(summary['effectiveness'])} anneals pooled per electronics side",
        ),
    ]


def _trend_figures(summary: dict[str, Any]):
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, HoverTool

    from stores.presentation.site import bokeh_figure

    periods = summary["periods"]
    source = ColumnDataSource(
        {
            "mid": np.array([p["mid"] for p in periods], dtype="datetime64[ms]"),
            "anneal": [p["anneal"] for p in periods],
            "start": [str(p["start"])[:10] for p in periods],
            "end": [str(p["end"])[:10] for p in periods],
            "n_hot": [p["n_hot"] for p in periods],
            "new_hot": [-1 if p["new_hot"] is None else p["new_hot"] for p in periods],
            "median_dark": [p["median_dark"] for p in periods],
            "median_readnoise": [p["median_readnoise"] for p in periods],
            "n_darks": [p["n_darks"] for p in periods],
        },
        name="trends",
    )
    specs = [
        ("n_hot", "Hot pixels per period (rule in the headline)", "hot pixels", "{0,0}"),
        ("median_dark", "Median dark rate per period", "median sci_mean [e-/s]", "{0.00000}"),
        ("median_readnoise", "Median read noise per period", "median readnoise [e-]", "{0.000}"),
    ]
    figures: list[Any] = []
    for column_name, title, label, fmt in specs:
        fig = bokeh_figure(
            title=title, x_label="period mid-date (UTC)", y_label=label, x_axis_type="datetime",
            height=260,
        )
        fig.line("mid", column_name, source=source, legend_label=label, line_width=1.5)
        fig.scatter("mid", column_name, source=source, size=7, legend_label=label)
        if figures:
            fig.x_range = figures[0].x_range
        hover = fig.select_one(HoverTool)
        hover.tooltips = [
            ("period", "@anneal (@start to @end)"),
            (label, f"@{column_name}{fmt}"),
            ("darks", "@n_darks"),
        ]
        hover.mode = "vline"
        fig.legend.location = "top_left"
        if column_name == "n_hot":
            from bokeh.models import BasicTicker

            fig.yaxis.ticker = BasicTicker(desired_num_ticks=6, min_interval=1)
        else:
            _floor_span(fig, np.asarray(source.data[column_name], dtype=float))
        figures.append(fig)
    rn = figures[-1]
    for side, colour in _SIDE_COLOURS.items():
        mine = [p for p in periods if p["side"] == side]
        if not mine:
            continue
        mid = np.array([p["mid"] for p in mine], dtype="datetime64[ms]")
        value = np.array([p["median_readnoise"] for p in mine])
        err = np.array([p["readnoise_err"] for p in mine])
        label = f"Side-{side}: median, 1-sigma error"
        rn.segment(
            mid, value - err, mid, value + err, color=colour, line_width=2, legend_label=label
        )
        rn.scatter(mid, value, size=8, color=colour, legend_label=label)
    return column(*figures, sizing_mode="stretch_width")


#: The colour of each electronics side in the trend plots.
_SIDE_COLOURS = {1: "#1b9e77", 2: "#d95f02"}


def _effectiveness_figures(summary: dict[str, Any]):
    """Repair fraction of new hot pixels and fraction of old ones still hot, per anneal,
    with binomial 1-sigma errors, by electronics side."""
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, HoverTool

    from stores.common.dates import mjd_to_datetime64
    from stores.presentation.site import bokeh_figure

    table = summary["effectiveness"]
    specs = [
        (
            "repair_fraction",
            "New hot pixels repaired by each anneal",
            "fraction repaired",
            "n_new",
            "new",
        ),
        (
            "old_still_hot_fraction",
            "Old hot pixels still hot after each anneal",
            "fraction still hot",
            "n_old",
            "old",
        ),
    ]
    figures: list[Any] = []
    for name, title, label, n_name, what in specs:
        fig = bokeh_figure(
            title=title,
            x_label="anneal date (UTC)",
            y_label=label,
            x_axis_type="datetime",
            height=260,
        )
        for side, colour in _SIDE_COLOURS.items():
            part = table[table["side"] == side]
            if len(part) == 0:
                continue
            value = np.asarray(part[name], dtype=float)
            err = np.asarray(part[name + "_err"], dtype=float)
            source = ColumnDataSource(
                {
                    "date": mjd_to_datetime64(np.asarray(part["anneal_mjd"])).astype(
                        "datetime64[ms]"
                    ),
                    "anneal": np.asarray(part["anneal"]),
                    "value": value,
                    "lower": value - err,
                    "upper": value + err,
                    "n": np.asarray(part[n_name]),
                }
            )
            legend = f"Side-{side}, 1-sigma binomial error"
            fig.segment(
                "date",
                "lower",
                "date",
                "upper",
                source=source,
                color=colour,
                line_width=2,
                legend_label=legend,
            )
            fig.scatter("date", "value", source=source, size=8, color=colour, legend_label=legend)
        hover = fig.select_one(HoverTool)
        hover.tooltips = [
            ("anneal opening period", "@anneal"),
            (label, "@value{0.000}"),
            (f"{what} hot pixels", "@n"),
        ]
        box = fig.legend[0]  # below the panel: inside it, it hid points
        box.orientation = "horizontal"
        fig.add_layout(box, "below")
        if figures:
            fig.x_range = figures[0].x_range
        figures.append(fig)
    return column(*figures, sizing_mode="stretch_width")


def _floor_span(fig: Any, values: np.ndarray) -> None:
    """A fixed y range of at least MIN_RELATIVE_SPAN of the values' median when they vary
    less than that (as :mod:`stiscube.report.plots`), so that noise is not stretched into a
    trend."""
    from bokeh.models import Range1d

    from stiscube.report.plots import MIN_RELATIVE_SPAN

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    scale = float(np.median(np.abs(finite))) or 1.0
    need = MIN_RELATIVE_SPAN * scale
    if np.ptp(finite) < need:
        centre = 0.5 * (float(finite.min()) + float(finite.max()))
        fig.y_range = Range1d(centre - need / 2, centre + need / 2)


_TAP_JS = """
const x = cb_obj.x, y = cb_obj.y;
if (x == null || y == null || x < 0 || y < 0 || x >= ncols || y >= nrows) { return; }
const col = Math.floor(x), row = Math.floor(y);
const hr = Math.floor(row / hblock), hc = Math.floor(col / hblock);
const n = dates.length;
const vmax = bmax.data.v, vmean = bmean.data.v;
const ymax = [], ymean = [], ypix = [];
for (let p = 0; p < n; p++) {
  const k = (p * hrows + hr) * hcols + hc;
  ymax.push(vmax[k]); ymean.push(vmean[k]);
}
const tr = tracked.data;
let found = -1;
for (let i = 0; i < tr.row.length; i++) {
  if (Math.floor(tr.row[i] / hblock) === hr && Math.floor(tr.col[i] / hblock) === hc) {
    found = i; break;
  }
}
for (let p = 0; p < n; p++) { ypix.push(found < 0 ? NaN : tvals.data.v[found * n + p]); }
hist.data = {x: dates, block_max: ymax, block_mean: ymean, pixel: ypix};
const r0 = hr * hblock, c0 = hc * hblock;
const r1 = Math.min(r0 + hblock, nrows) - 1, c1 = Math.min(c0 + hblock, ncols) - 1;
let text = `History of pixel (${row}, ${col})`;
if (hblock > 1) {
  text += ` in its ${hblock} x ${hblock} block rows ${r0}-${r1}, cols ${c0}-${c1}`;
}
if (found >= 0) { text += `; hot pixel (${tr.row[found]}, ${tr.col[found]})`; }
hplot.title.text = text;
marker.data = {x: [col + 0.5], y: [row + 0.5]};
"""

_SLIDER_JS = """
const i = parseInt(cb_obj.value);
const k = numbers.indexOf(i);
if (k < 0) { return; }
img.data = {image: [maps.data.image[k]]};
mplot.title.text = `sci_mean, period ${i}: ` + (block > 1
  ? `block maximum of ${block} x ${block} pixels` : "full resolution");
"""


def _browser(summary: dict[str, Any]):
    from bokeh.layouts import column, row
    from bokeh.models import (
        ColorBar,
        ColumnDataSource,
        CustomJS,
        CustomJSHover,
        HoverTool,
        LogColorMapper,
        Select,
    )

    from stores.presentation.site import bokeh_figure

    rows, cols = summary["shape"]
    block, hblock = summary["map_block"], summary["history_block"]
    numbers = sorted(summary["maps"])
    maps = [summary["maps"][n] for n in numbers]
    newest = maps[-1]
    finite = np.concatenate([m[np.isfinite(m) & (m > 0)] for m in maps])
    low = float(np.percentile(finite, 1)) if finite.size else 1e-4
    high = float(max(np.max(finite), low * 10)) if finite.size else 1.0
    mapper = LogColorMapper(palette="Viridis256", low=low, high=high, nan_color="white")
    img = ColumnDataSource({"image": [newest]}, name="map_image")
    all_maps = ColumnDataSource({"image": maps}, name="all_maps")
    mplot = bokeh_figure(
        title=f"sci_mean, period {numbers[-1]}: "
        + (f"block maximum of {block} x {block} pixels" if block > 1 else "full resolution"),
        x_label="column (0-based)",
        y_label="row (0-based)",
        height=520,
        x_range=(0, cols),
        y_range=(0, rows),
        tools="pan,box_zoom,wheel_zoom,hover,tap,reset,save",
        match_aspect=True,
        name="pixel_map",
    )
    mplot.image(
        image="image", source=img, x=0, y=0, dw=cols, dh=rows, color_mapper=mapper,
        legend_label="block max of sci_mean",
    )
    mplot.add_layout(
        ColorBar(color_mapper=mapper, title="sci_mean block max [e-/s] (log)"), "right"
    )
    hover = mplot.select_one(HoverTool)
    # the pixel under the pointer is floor(x), floor(y), as a click takes it (not rounded)
    hover.tooltips = [("column", "$x{custom}"), ("row", "$y{custom}"),
                      ("block max [e-/s]", "@image")]
    floor = CustomJSHover(code="return String(Math.floor(value))")
    hover.formatters = {"$x": floor, "$y": floor}
    marker = ColumnDataSource({"x": [], "y": []}, name="marker")
    mplot.scatter(
        "x", "y", source=marker, marker="circle_x", size=14, fill_alpha=0,
        line_color="red", line_width=2, legend_label="selected pixel",
    )
    legend = mplot.legend[0]
    legend.orientation = "horizontal"
    mplot.add_layout(legend, "below")
    periods = summary["periods"]
    dates = np.array([p["mid"] for p in periods], dtype="datetime64[ms]")
    t_rows, t_cols, t_values = summary["tracked"]
    initial = {"x": dates, "block_max": np.full(len(dates), np.nan),
               "block_mean": np.full(len(dates), np.nan), "pixel": np.full(len(dates), np.nan)}
    title = "History: click a pixel of the map"
    marker.data = {"x": [], "y": []}
    if t_rows.size:  # start on the hottest pixel of the newest period
        r, c = int(t_rows[0]), int(t_cols[0])
        initial["block_max"] = summary["block_max"][:, r // hblock, c // hblock]
        initial["block_mean"] = summary["block_mean"][:, r // hblock, c // hblock]
        initial["pixel"] = t_values[0]
        r0, c0 = (r // hblock) * hblock, (c // hblock) * hblock
        r1, c1 = min(r0 + hblock, rows) - 1, min(c0 + hblock, cols) - 1
        title = f"History of pixel ({r}, {c})"
        if hblock > 1:
            title += f" in its {hblock} x {hblock} block rows {r0}-{r1}, cols {c0}-{c1}"
        title += f"; hot pixel ({r}, {c})"
        marker.data = {"x": [c + 0.5], "y": [r + 0.5]}
    hist = ColumnDataSource(initial, name="history")
    hplot = bokeh_figure(
        title=title,
        x_label="period mid-date (UTC)",
        y_label="sci_mean [e-/s]",
        x_axis_type="datetime",
        y_axis_type="log",
        height=520,
        name="pixel_history",
    )
    styles = [
        ("block_max", f"block max ({hblock} x {hblock} px)", "#d62728"),
        ("block_mean", f"block mean ({hblock} x {hblock} px)", "#1f77b4"),
        ("pixel", "hot pixel in the block", "#2ca02c"),
    ]
    for name, label, colour in styles:
        hplot.line("x", name, source=hist, color=colour, legend_label=label, line_width=1.5)
        hplot.scatter("x", name, source=hist, color=colour, legend_label=label, size=6)
    hplot.legend.location = "top_left"
    hplot.select_one(HoverTool).tooltips = [
        ("date", "@x{%F}"), ("block max", "@block_max"), ("block mean", "@block_mean"),
        ("pixel", "@pixel"),
    ]
    hplot.select_one(HoverTool).formatters = {"@x": "datetime"}
    _, hrows, hcols = summary["block_max"].shape
    args = {
        "ncols": cols, "nrows": rows, "hblock": hblock, "hrows": hrows, "hcols": hcols,
        "dates": dates.astype(np.int64).astype(np.float64),
        "bmax": ColumnDataSource({"v": summary["block_max"].ravel()}),
        "bmean": ColumnDataSource({"v": summary["block_mean"].ravel()}),
        "tracked": ColumnDataSource({"row": t_rows, "col": t_cols}),
        "tvals": ColumnDataSource({"v": t_values.ravel()}),
        "hist": hist, "hplot": hplot, "marker": marker,
    }
    mplot.js_on_event("tap", CustomJS(args=args, code=_TAP_JS))
    widgets = []
    if len(numbers) > 1:
        select = Select(
            title="anneal period shown in the map",
            value=str(numbers[-1]),
            options=[str(n) for n in numbers],
            width=260,
        )
        select.js_on_change(
            "value",
            CustomJS(
                args={"img": img, "maps": all_maps, "numbers": numbers, "mplot": mplot,
                      "block": block},
                code=_SLIDER_JS,
            ),
        )
        widgets.append(select)
    return column(*widgets, row(mplot, hplot, sizing_mode="stretch_width"),
                  sizing_mode="stretch_width")


def _inputs_digest(db: PixelDB, site: SiteOptions) -> str:
    """SHA-256 of what the page is made from: the database's URL, cube version and period
    checksums, the software versions and the options (the provenance record without its
    time).  The page states it; a page that states the same is up to date."""
    record = provenance(
        inputs=[db.location.url], options=site, created="",
        cube_version=str(db.dataset.attrs.get("cube_version", "unknown")),
        checksums=slice_checksums(db.store, db.anneal_numbers),
        libraries=(*DEFAULT_LIBRARIES, "matplotlib", "bokeh"),
    )
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _provenance_items(db: PixelDB, summary: dict[str, Any]) -> list[tuple[str, object]]:
    """The page's provenance: the :mod:`stores.common.provenance` record (database, cube version,
    period checksums, software), then how the page's numbers were made."""
    opts = summary["options"]
    prov = provenance(
        inputs=[db.location.url],
        cube_version=str(db.dataset.attrs.get("cube_version", "unknown")),
        checksums=slice_checksums(db.store, [p["anneal"] for p in summary["periods"]]),
        libraries=(*DEFAULT_LIBRARIES, "matplotlib", "bokeh"),
    )
    return [
        *prov.items(),
        ("hot-pixel rule", "; ".join(opts.rules.describe())),
        ("hot-pixel rules (JSON)", json.dumps(opts.rules.to_dict())),
        (
            "pixel browser",
            f"map: block maximum over {summary['map_block']} x {summary['map_block']} "
            f"pixels, newest {len(summary['maps'])} periods; histories: block max/mean "
            f"over {summary['history_block']} x {summary['history_block']} pixels, "
            f"{summary['tracked'][0].size} tracked hot pixels",
        ),
        ("trend fits", "least-squares lines against period mid-date, 1-sigma from residuals"),
        ("inputs digest", summary["inputs_digest"]),
    ]


def write_site(
    db: PixelDB | str | os.PathLike,
    out: str | os.PathLike,
    *,
    site: SiteOptions | None = None,
) -> Path:
    """Write the STIS monitoring site of *db* to ``out/index.html`` (atomically).

    A page whose provenance states the same inputs digest (the database's state, the
    software versions and *site*; see ``_inputs_digest``) is up to date: it and its
    ``anneal_effectiveness.ecsv`` are left untouched, and the log says so.

    Parameters
    ----------
    db : PixelDB or path-like
        The database (opened read-only when a path is given).
    out : path-like
        Output directory (created if needed).
    site : SiteOptions, optional
        Hot-pixel rules and pixel-browser sizes (default ``SiteOptions()``).

    Returns
    -------
    pathlib.Path
        The page written.

    Raises
    ------
    ValueError
        The database holds no period in electron / s.
    """
    from stores.presentation.site import Page

    if not isinstance(db, PixelDB):
        db = PixelDB(db, mode="r")
    site = SiteOptions() if site is None else site
    out = Path(out)
    if out.exists() and not out.is_dir():
        msg = f"{out}: exists and is not a directory"
        raise NotADirectoryError(msg)
    digest, index = _inputs_digest(db, site), out / "index.html"
    if (out / "anneal_effectiveness.ecsv").is_file() and index.is_file() and (
            digest in index.read_text(encoding="utf-8")):
        logger.info("%s is up to date (the same inputs, digest %s): left untouched", index,
                    digest[:12])
        return index
    summary = site_summary(db, site=site) | {"inputs_digest": digest}
    periods = summary["periods"]
    page = Page(
        "STIS CCD dark and hot-pixel monitor",
        subtitle=f"{len(periods)} anneal periods, {str(periods[0]['start'])[:10]} to "
        f"{str(periods[-1]['end'])[:10]}; frames {summary['shape'][0]} x {summary['shape'][1]}",
    )
    page.headline(
        _headline(summary),
        note="Hot pixels: the rule in the first box, the same rule object "
        "(stiscube.dq.DQRules) that sets the hot bit of `stiscube dq` and the NHOT of the "
        "reference files, so their counts agree for the same rules. Hot-pixel growth and "
        "dark-rate trend: least-squares lines through every period in electron / s; errors "
        "1 sigma from the scatter about the line.",
    )
    page.section(
        "Trends", intro="Per-period values; hover for the numbers, drag or scroll to zoom."
    ).bokeh(_trend_figures(summary))
    effect = page.section(
        "Anneal effectiveness",
        intro="For each anneal: the fraction of the hot pixels that appeared since the "
        "previous anneal that it repaired, and of the older ones still hot after it "
        f"(hot: {_rule_text(site.rules)}; definitions in "
        "stiscube.dq.effectiveness); table: anneal_effectiveness.ecsv.",
    )
    if len(summary["effectiveness"]):
        effect.bokeh(_effectiveness_figures(summary))
    else:
        effect.text("Needs three consecutive periods in electron / s.")
    effect.table(
        [
            "side",
            "anneals",
            "new hot",
            "repaired",
            "repair fraction",
            "old hot",
            "still hot",
            "still-hot fraction",
        ],
        [
            [
                f"Side-{r['side']}",
                r["n_anneals"],
                r["n_new"],
                r["n_repaired"],
                f"{r['repair_fraction']:.3f} ± {r['repair_fraction_err']:.3f}",
                r["n_old"],
                r["n_old_still_hot"],
                f"{r['old_still_hot_fraction']:.4f} ± {r['old_still_hot_fraction_err']:.4f}",
            ]
            for r in summary["effectiveness_by_side"]
        ],
        caption="Pooled by electronics side (binomial 1-sigma errors)",
        empty="No anneal between three consecutive periods.",
    )
    page.section(
        "Pixel browser",
        intro="Click a pixel of the map to see its block's history across every period "
        "(and the hot pixel it holds, if any); the menu picks the period of the map.",
    ).bokeh(_browser(summary))
    used = page.section("Data used")
    used.table(
        ["period", "start (UTC)", "end (UTC)", "darks", "hot pixels", "new hot", "healed",
         "median dark [e-/s]", "median read noise [e-]"],
        [
            [p["anneal"], str(p["start"]).replace("T", " "), str(p["end"]).replace("T", " "),
             p["n_darks"], p["n_hot"], "" if p["new_hot"] is None else p["new_hot"],
             "" if p["healed"] is None else p["healed"], f"{p['median_dark']:.5f}",
             f"{p['median_readnoise']:.3f}"]
            for p in periods
        ],
        caption="Anneal periods",
    )
    darks = db.darks
    rate = {p["anneal"] for p in periods}
    darks = darks[darks["anneal"].isin(rate)]
    used.table(
        ["period", "rootname", "exposure [s]", "start (UTC)"],
        [
            [int(r.anneal), r.rootname, f"{r.exptime:g}", iso(r.start)[:19]]
            for r in darks.itertuples()
        ],
        caption="Dark frames",
        left=2,
        empty="No dark frames recorded (periods ingested from properties).",
    )
    page.section("Data excluded").table(
        ["period", "reason"],
        [[n, reason] for n, reason in summary["excluded"]],
        caption="Periods left out",
        left=2,
        empty="No period excluded.",
    )
    page.provenance(_provenance_items(db, summary))
    out.mkdir(parents=True, exist_ok=True)
    write_anneal_effectiveness(summary["effectiveness"], out / "anneal_effectiveness.ecsv")
    path = page.write(out / "index.html")
    logger.info("wrote the STIS site of %s to %s", db.location.url, path)
    return path
