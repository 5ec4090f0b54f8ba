"""One matplotlib plotting style for every figure of :mod:`stiscube` and :mod:`cte`.

Figures are made without pyplot (no global state, Agg canvas) and share these habits:

- no offset or scientific-notation tick labels that magnify noise (a readnoise of
  ``4.000001`` e- is labelled ``4.000001``, never ``+4`` and ``1e-6``);
- integer quantities get integer ticks (:func:`integer_ticks`);
- epochs are shown as calendar dates (:func:`date_axis`);
- a legend only where something is labelled (:func:`legend`); an empty panel says
  so (:func:`no_data`);
- files are written atomically (:func:`save`).

The style is :data:`RC` (applied by :func:`context` and :func:`styled`); figures come
from :func:`new_figure`.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable, Iterator
from os import PathLike
from pathlib import Path

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from stores.common.validate import as_int, one_of

__all__ = [
    "RC",
    "context",
    "date_axis",
    "figure_legend",
    "integer_ticks",
    "legend",
    "log_axis",
    "new_figure",
    "no_data",
    "no_offset",
    "save",
    "styled",
]

#: rcParams of the shared style.
RC: dict[str, object] = {
    "axes.formatter.useoffset": False,
    "axes.formatter.limits": (-4, 5),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "figure.titlesize": 10,
    "lines.linewidth": 1.3,
    "lines.markersize": 4,
    "errorbar.capsize": 0,
    "image.cmap": "viridis",
    "savefig.dpi": 100,
    "figure.dpi": 100,
}



@contextlib.contextmanager
def context() -> Iterator[None]:
    """Apply :data:`RC` for the duration of the block."""
    with mpl.rc_context(RC):
        yield


def styled(func: Callable) -> Callable:
    """Decorator: run *func* inside :func:`context`.

    Parameters
    ----------
    func : callable
        A function making artists.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with context():
            return func(*args, **kwargs)

    return wrapper


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    size: tuple[float, float] = (6.4, 4.0),
    n_panels: int | None = None,
    **subplot_kw,
) -> tuple[Figure, np.ndarray]:
    """A styled Figure (constrained layout, Agg canvas) and a flat array of its axes.

    Parameters
    ----------
    nrows, ncols : int
        Grid of panels.
    size : (float, float)
        Size of the whole figure, inches.
    n_panels : int, optional
        Panels used; axes beyond it are hidden and left out of the returned array.
    **subplot_kw
        Passed to :meth:`matplotlib.figure.Figure.subplots` (e.g. ``sharex=True``).
    """
    nrows, ncols = as_int(nrows, "nrows", min=1), as_int(ncols, "ncols", min=1)
    with context():
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, **subplot_kw).ravel())
        for ax in axes:
            no_offset(ax)
    if n_panels is not None:
        for ax in axes[n_panels:]:
            ax.set_visible(False)
        axes = axes[:n_panels]
    return fig, axes


def integer_ticks(ax: Axes, axis: str = "y") -> None:
    """Put tick marks at integers only on *axis*.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    axis : {"x", "y", "both"}
        Which axis.
    """
    for a in _axes_of(ax, axis):
        a.set_major_locator(MaxNLocator(integer=True))


def no_offset(ax: Axes, axis: str = "both") -> None:
    """Plain tick labels on *axis*: no offset (``+4``) and no ``1e-6`` multiplier.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    axis : {"x", "y", "both"}
        Which axis.
    """
    for a in _axes_of(ax, axis):
        formatter = a.get_major_formatter()
        if isinstance(formatter, ScalarFormatter):
            formatter.set_useOffset(False)


def _axes_of(ax: Axes, axis: str):
    one_of(axis, "axis", ("x", "y", "both"))
    return [a for name, a in (("x", ax.xaxis), ("y", ax.yaxis)) if axis in (name, "both")]


def log_axis(ax: Axes, axis: str = "x") -> None:
    """Log scale on *axis* with plain-number ticks at 1, 2, 5 x 10^k (``200``, ``1000``).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    axis : {"x", "y"}
        Which axis.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    one_of(axis, "axis", ("x", "y"))
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    a.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    a.set_minor_formatter(NullFormatter())


def date_axis(ax: Axes, axis: str = "x") -> None:
    """Calendar-date ticks (concise format) on *axis*, which must hold datetime64 data.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    axis : {"x", "y"}
        Which axis.
    """
    one_of(axis, "axis", ("x", "y"))
    a = ax.xaxis if axis == "x" else ax.yaxis
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    a.set_major_locator(locator)
    a.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _distinct_labelled(axes) -> tuple[list, list[str]]:
    """The labelled artists of *axes* (labels not starting with ``_``), each distinct label
    once, in order of appearance."""
    handles, labels = [], []
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    return handles, labels


def legend(ax: Axes, **kwargs) -> Legend | None:
    """A legend of the artists with a label (not starting with ``_``), each distinct
    label once; None if nothing is labelled.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.legend`.
    """
    handles, labels = _distinct_labelled([ax])
    if not handles:
        return None
    with context():
        return ax.legend(handles, labels, **kwargs)


def figure_legend(fig: Figure, axes=None, *, loc: str = "outside lower center",
                  **kwargs) -> Legend | None:
    """One figure-level legend with every distinct label of *axes* once; None if
    nothing is labelled.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    axes : sequence of Axes, optional
        The panels whose labels are shown (default: all).
    loc : str
        Where (matplotlib's ``loc``; ``"outside ..."`` needs constrained layout).
    **kwargs
        Passed to :meth:`matplotlib.figure.Figure.legend`.
    """
    handles, labels = _distinct_labelled(fig.axes if axes is None else axes)
    if not handles:
        return None
    kwargs.setdefault("ncols", min(len(labels), 4))
    with context():
        return fig.legend(handles, labels, loc=loc, **kwargs)


def no_data(ax: Axes, message: str = "no data") -> None:
    """Mark *ax* as an empty panel: a centred note and no ticks.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel.
    message : str
        The note.
    """
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
            fontsize=9, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def save(fig: Figure, path: str | PathLike, *, dpi: int = 100) -> Figure:
    """Write *fig* to *path* atomically (rendered in memory, then one rename); return *fig*.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or path-like
        The file; its suffix gives the format (default PNG).
    dpi : int
        Resolution of raster formats.
    """
    from stores import atomic_write

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    buffer = io.BytesIO()
    with context():
        fig.savefig(buffer, format=fmt, dpi=dpi)
    atomic_write(path, buffer.getvalue())
    return fig
