"""Plots of the pixel property cube (matplotlib, headless).

Each function takes the cube as an :class:`xarray.Dataset` (e.g.
:attr:`stiscube.PixelDB.dataset`: properties on ``(anneal, row, col)`` with the
coordinates ``anneal_start``, ``anneal_end`` and ``unit_system``), builds a
:class:`matplotlib.figure.Figure` with the object API (no pyplot state, so it works
without a display), saves it to *path* when given (format from the suffix: png, pdf,
svg, ...), and returns the Figure.

All figures use the shared style of :mod:`stores.presentation.style` (no offset or
scientific-notation tick labels, calendar-date ticks on time axes, integer ticks for
counts, a legend for every line or marker that encodes something) and are saved
atomically.  In :func:`plot_pixel_history` each panel's y range spans at least
:data:`MIN_RELATIVE_SPAN` (5 %) of the panel's median absolute value (or its smallest
non-zero value, for values around zero), so that a variation far below that, such as a
read noise steady to 1e-6 e-, is drawn as the flat line it is instead of being
stretched over the whole panel.

Time axes are UTC dates.  A period is drawn at its mid-date
``anneal_start + (anneal_end - anneal_start) / 2`` (markers) or as a horizontal segment
from ``anneal_start`` to ``anneal_end`` (steps); dotted vertical lines mark the anneal
boundaries (every distinct start and end date).  Axis labels carry the units of the
periods' unit system (:mod:`stiscube.schema`); plots that would put values of different
unit systems on one axis are refused with
:class:`~stiscube.exceptions.UnitMismatchError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from stiscube.cube._cubecheck import check_cube
from stiscube.cube._queries import pixel_history, select_period
from stiscube.dq.array import hot_pixel_counts
from stiscube.exceptions import UnitMismatchError
from stiscube.schema import PROPERTIES, PROPERTY_DTYPES, UNIT_SYSTEMS
from stores.common.validate import as_float, as_interval, as_sequence_of, one_of, subset_of
from stores.presentation import style as _style

__all__ = ["MIN_RELATIVE_SPAN", "plot_hot_pixel_counts", "plot_pixel_history", "plot_property_map"]

logger = logging.getLogger(__name__)

_STYLES = ("step", "markers")
_POSITIVE = partial(as_float, min=0, strict_min=True)

#: smallest y range of a history panel, relative to the panel's typical value
MIN_RELATIVE_SPAN = 0.05
#: integer-valued properties (integer ticks), from the declared dtypes
_INTEGER = tuple(name for name, dtype in PROPERTY_DTYPES.items() if np.dtype(dtype).kind in "iu")


def _units_label(name: str, units: str) -> str:
    text = "dimensionless" if units == "1" else units
    return f"{name} [{text}]"


def _check_path(path: str | os.PathLike | None) -> None:
    """Fail on a bad output path (missing directory, unknown format) before plotting."""
    if path is None:
        return
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(path)
    if not path.parent.is_dir():
        msg = f"{path}: directory {path.parent} does not exist"
        raise FileNotFoundError(msg)
    kinds = sorted(FigureCanvasBase.get_supported_filetypes())
    one_of(path.suffix.lstrip(".").lower(), f"the image format of {path}", kinds)


def _save(fig: Figure, path: str | os.PathLike | None, dpi: float) -> None:
    if path is not None:
        _style.save(fig, path, dpi=dpi)
        logger.info("saved plot to %s", path)


def _floor_span(ax: Any, values: np.ndarray) -> None:
    """Widen the y range of *ax* to at least MIN_RELATIVE_SPAN of the values' scale."""
    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0:
        return
    scale = float(np.median(finite))
    if scale == 0:
        nonzero = finite[finite > 0]
        scale = float(nonzero.min()) if nonzero.size else 1.0
    lo, hi = ax.get_ylim()
    need = MIN_RELATIVE_SPAN * scale
    if hi - lo < need:
        centre = 0.5 * (float(np.nanmin(values[np.isfinite(values)])) + float(
            np.nanmax(values[np.isfinite(values)])
        ))
        ax.set_ylim(centre - need / 2, centre + need / 2)


def _mid_dates(ds: xr.Dataset) -> np.ndarray:
    start = ds["anneal_start"].values.astype("datetime64[ns]")
    end = ds["anneal_end"].values.astype("datetime64[ns]")
    return start + (end - start) / 2


def _boundaries(ds: xr.Dataset) -> np.ndarray:
    edges = np.concatenate(
        [np.atleast_1d(ds["anneal_start"].values), np.atleast_1d(ds["anneal_end"].values)]
    )
    return np.unique(edges.astype("datetime64[ns]"))


def _draw_boundaries(ax: Any, edges: np.ndarray) -> None:
    ax.vlines(
        edges,
        0,
        1,
        transform=ax.get_xaxis_transform(),
        colors="0.6",
        linestyles=":",
        linewidth=0.8,
        label="anneal boundaries",
    )


def _systems(ds: xr.Dataset) -> np.ndarray:
    return np.atleast_1d(ds["unit_system"].values).astype(str)


def _units_of(ds: xr.Dataset, name: str) -> str:
    """Units of property *name* over all periods of *ds* (refuses mixed units)."""
    systems = _systems(ds)
    units = {s: UNIT_SYSTEMS[s][name] for s in np.unique(systems)}
    if len(set(units.values())) > 1:
        by_system = {
            s: np.atleast_1d(ds["anneal"].values)[systems == s].tolist() for s in sorted(units)
        }
        msg = (
            f"{name} is in different units across the periods {by_system} "
            f"({', '.join(f'{s}: {u}' for s, u in sorted(units.items()))}); select periods "
            "of one unit system, e.g. ds.where(ds.unit_system == 'rate', drop=True)"
        )
        raise UnitMismatchError(msg)
    return next(iter(units.values())) if units else UNIT_SYSTEMS["rate"][name]


def _figsize(figsize: Any, default: tuple[float, float]) -> tuple[float, float]:
    """*figsize* as (width, height) in inches, both > 0, or *default* for None."""
    if figsize is None:
        return default
    return as_sequence_of(figsize, "figsize", _POSITIVE, min_len=2, max_len=2)


def _check_plottable(ds: Any, names: Sequence[str]) -> None:
    """Refuse anything but a cube holding *names* and at least one period."""
    check_cube(ds, tuple(names))
    if ds.sizes["anneal"] == 0:
        msg = "the cube holds no anneal periods to plot"
        raise ValueError(msg)


def plot_pixel_history(
    ds: xr.Dataset,
    row: int,
    col: int,
    *,
    properties: Sequence[str] = PROPERTIES,
    style: str = "step",
    hot_level: float | None = 0.1,
    path: str | os.PathLike | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> Figure:
    """A pixel's history of each property across all periods of the cube.

    One panel per property (shared date axis).  ``style="step"`` draws each period's
    value as a horizontal segment from its start to its end date (gaps between periods
    stay empty); ``style="markers"`` draws one marker per period at its mid-date.
    Dotted vertical lines mark the anneal boundaries; y labels carry the units.  The
    sci_mean panel shows ``sci_mean ± err_mean`` as a vertical bar at each period's
    mid-date and the hot level as a dashed line (in electron / s periods only).  The
    legend sits below the panels, clear of the data.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (dims ``anneal, row, col``).
    row, col : int
        The pixel (0-based detector indices).
    properties : sequence of str
        Properties to plot, in panel order (default all five).
    style : {"step", "markers"}
        How each period is drawn.
    hot_level : float or None
        Hot-pixel level in electron / s drawn on the sci_mean panel (default 0.1, the
        DQ rule's; None: no line).
    path : path-like, optional
        Save the figure there (format from the suffix).
    figsize : (float, float), optional
        Figure size in inches (default 8 wide, 1.8 per panel).
    dpi : float
        Resolution of saved raster images.

    Returns
    -------
    matplotlib.figure.Figure
        Axes ``fig.axes`` in the order of *properties*; each holds one data line
        (``ax.lines[0]``) and one collection of boundary lines (``ax.collections[0]``);
        the sci_mean panel also the ``± err_mean`` bars (``ax.collections[1]``) and the
        hot level (``ax.lines[1]``) when drawn.

    Raises
    ------
    CubeQueryError
        The pixel is outside the frame.
    UnitMismatchError
        A property with units would mix periods of different unit systems.
    ValueError
        Unknown property or style, empty cube, bad path or figsize.
    TypeError
        *figsize* not a sequence of numbers.
    """
    one_of(style, "style", _STYLES)
    properties = list(subset_of(properties, "properties", PROPERTIES))
    if hot_level is not None:
        hot_level = as_float(hot_level, "hot_level", min=0, strict_min=True)
    _check_plottable(ds, properties)
    size = _figsize(figsize, (8.0, 1.6 + 1.8 * len(properties)))
    _check_path(path)
    units = {name: _units_of(ds, name) for name in properties}
    bars = "sci_mean" in properties and "err_mean" in ds
    read = [*properties, "err_mean"] if bars and "err_mean" not in properties else properties
    history = pixel_history(ds[read], row, col).compute()
    start = history["anneal_start"].values.astype("datetime64[ns]")
    end = history["anneal_end"].values.astype("datetime64[ns]")
    edges = _boundaries(history)
    n = start.size

    fig, axes = _style.new_figure(len(properties), 1, size=size, sharex=True)
    with _style.context():
        for ax, name in zip(axes, properties, strict=True):
            values = np.asarray(history[name].values, dtype=np.float64)
            label = "value in the period" if style == "step" else "value (period mid-date)"
            if style == "step":
                # one polyline: (start_i, v_i) - (end_i, v_i), NaN-separated between periods
                nat = np.full(n, np.datetime64("NaT"), "datetime64[ns]")
                x = np.stack([start, end, nat], 1)
                y = np.stack([values, values, np.full(n, np.nan)], 1)
                ax.plot(x.ravel(), y.ravel(), "-", color="C0", linewidth=1.5, label=label)
            else:
                ax.plot(_mid_dates(history), values, "o", color="C0", markersize=4, label=label)
            _draw_boundaries(ax, edges)
            if name == "sci_mean" and bars:
                err = np.asarray(history["err_mean"].values, dtype=np.float64)
                ax.vlines(_mid_dates(history), values - err, values + err, color="C0",
                          linewidth=1, alpha=0.7, label="± err_mean (1 sigma)")
            if name == "sci_mean" and hot_level is not None and units[name] == "electron / s":
                ax.axhline(hot_level, color="C3", linestyle="--", linewidth=1,
                           label=f"hot level {hot_level:g} electron / s")
            ax.set_ylabel(_units_label(name, units[name]))
            if name in _INTEGER:
                _style.integer_ticks(ax, "y")
            else:
                _floor_span(ax, values)
        _style.date_axis(axes[-1], "x")
        axes[-1].set_xlabel("date (UTC)" if style == "step" else "period mid-date (UTC)")
        _style.figure_legend(fig, fontsize=7)  # below the panels: it hides no period
        fig.suptitle(f"pixel (row {row}, col {col}): history over {n} anneal periods")
    _save(fig, path, dpi)
    return fig


def plot_property_map(
    ds: xr.Dataset,
    prop: str = "sci_mean",
    *,
    anneal_num: int | None = None,
    date: Any = None,
    percentiles: tuple[float, float] = (1.0, 99.0),
    cmap: str = "viridis",
    path: str | os.PathLike | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> Figure:
    """Map of one property over the detector in one period (by number or date).

    The colour stretch is linear between the *percentiles* of the finite values
    (``vmin, vmax = nanpercentile(frame, percentiles)``), robust to the few hot pixels
    that would otherwise saturate the scale; values beyond are clipped to the ends of
    the colour map.  Row 0 is at the bottom (``origin="lower"``, as FITS viewers show
    detector images); the colour bar is labelled with the period's units.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (dims ``anneal, row, col``).
    prop : str
        The property to map.
    anneal_num, date
        The period: exactly one of its number or a date in it.
    percentiles : (float, float)
        Lower and upper percentiles of the stretch, ``0 <= lo < hi <= 100``.
    cmap : str
        A matplotlib colour map name.
    path, figsize, dpi
        As for :func:`plot_pixel_history` (default size 7 x 6 inches).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]`` holds the image (``.images[0]``), ``fig.axes[1]`` the colour bar.
    """
    one_of(prop, "prop", PROPERTIES)
    percentiles = as_interval(percentiles, "percentiles", min=0, max=100)
    from matplotlib import colormaps

    if cmap not in colormaps:
        msg = f"cmap {cmap!r} is not a matplotlib colour map"
        raise ValueError(msg)
    check_cube(ds, (prop,))
    size = _figsize(figsize, (7.0, 6.0))
    _check_path(path)
    one = select_period(ds, date=date, anneal_num=anneal_num)
    number = int(one["anneal"].values)
    frame = np.asarray(one[prop].transpose("row", "col").values, dtype=np.float64)
    finite = np.isfinite(frame)
    if not finite.any():
        msg = f"{prop} of period {number} has no finite values to map"
        raise ValueError(msg)
    vmin, vmax = np.percentile(frame[finite], percentiles)
    units = UNIT_SYSTEMS[str(one["unit_system"].values)][prop]
    start = str(one["anneal_start"].values.astype("datetime64[s]")).replace("T", " ")
    end = str(one["anneal_end"].values.astype("datetime64[s]")).replace("T", " ")

    fig, (ax,) = _style.new_figure(size=size)
    with _style.context():
        image = ax.imshow(
            frame, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
        )
        ax.grid(False)
        bar = fig.colorbar(image, ax=ax)
        bar.set_label(_units_label(prop, units))
        if prop in _INTEGER:
            _style.integer_ticks(bar.ax, "y")
        ax.set_xlabel("column (0-based)")
        ax.set_ylabel("row (0-based)")
        ax.set_title(
            f"{prop}, anneal period {number}\n{start} to {end} "
            f"(stretch {percentiles[0]:g}-{percentiles[1]:g} percentile)"
        )
    _save(fig, path, dpi)
    return fig


def plot_hot_pixel_counts(
    ds: xr.Dataset,
    level: float,
    *,
    prop: str = "sci_mean",
    boundaries: bool = True,
    path: str | os.PathLike | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> Figure:
    """Number of hot pixels (``prop > level``) in each period, against the period's mid-date.

    The counts are :func:`stiscube.dq.hot_pixel_counts` (NaN pixels not counted);
    *level* is in the rate units of *prop* (electron / s for ``sci_mean``), so periods
    of the ``"counts"`` unit system are refused.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (dims ``anneal, row, col``), periods in the ``"rate"`` unit system.
    level : float
        The hot level, in electron / s for ``sci_mean``.
    prop : str
        The property compared with *level*.
    boundaries : bool
        Draw the anneal boundaries as dotted vertical lines.
    path, figsize, dpi
        As for :func:`plot_pixel_history` (default size 8 x 4 inches).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0].lines[0]`` is the count series (x = mid-dates, y = counts).
    """
    one_of(prop, "prop", PROPERTIES)
    _check_plottable(ds, (prop,))
    size = _figsize(figsize, (8.0, 4.0))
    _check_path(path)
    counts = hot_pixel_counts(ds, level, prop=prop)
    units = UNIT_SYSTEMS["rate"][prop]

    fig, (ax,) = _style.new_figure(size=size)
    with _style.context():
        ax.plot(
            _mid_dates(counts),
            counts.values,
            "o-",
            color="C3",
            markersize=4,
            label=f"pixels with {prop} > {counts.attrs['level']:g} {units}",
        )
        if boundaries:
            _draw_boundaries(ax, _boundaries(counts))
        ax.set_xlabel("period mid-date (UTC)")
        ax.set_ylabel(f"hot pixels ({prop} > {counts.attrs['level']:g} {units})")
        ax.set_ylim(bottom=0)
        _style.integer_ticks(ax, "y")
        _style.date_axis(ax, "x")
        _style.legend(ax, loc="upper left")
        ax.set_title(f"hot pixels per anneal period ({counts.sizes['anneal']} periods)")
    _save(fig, path, dpi)
    return fig
