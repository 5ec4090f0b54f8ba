"""Numpy kernels of the DQ rules: sigma-clipped statistics, hot masks, persistence.

No xarray, no dask, no I/O: :mod:`stiscube.dq` wraps these for the cube.

The sigma-clipped statistics are :func:`stores.common.stats.clipped_stats` (astropy's
sigma clip with ``cenfunc="median"``, ``stdfunc="std"``, on the finite values).
"""

from __future__ import annotations

import numpy as np

from stores.common.stats import clipped_stats
from stores.common.validate import one_of

__all__ = [
    "clipped_threshold",
    "hot_mask",
    "persistent",
]


def clipped_threshold(
    frames: np.ndarray,
    nsigma: float,
    *,
    clip_sigma: float = 3.0,
    maxiters: int | None = 40,
    axis: int | tuple[int, ...] = (-2, -1),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped median, std and the hot threshold ``median + nsigma * std``.

    :func:`~stores.common.stats.clipped_stats` of the values over *axis*, separately for
    every index of the other axes (e.g. each frame of a ``(period, row, col)`` stack with
    ``axis=(1, 2)``).  Where all values along *axis* are non-finite, the outputs are NaN.

    Parameters
    ----------
    frames : numpy.ndarray
        The values.
    nsigma : float
        The threshold's number of clipped standard deviations.
    clip_sigma, maxiters
        The clipping limit (standard deviations) and most iterations (None: until
        convergence).
    axis : int or tuple of int
        The axes of one frame.

    Returns
    -------
    median, std, threshold : numpy.ndarray
        float64 arrays of the shape of *frames* without *axis*, in the units of
        *frames*.
    """
    median, std, _ = clipped_stats(frames, sigma=clip_sigma, maxiters=maxiters, axis=axis)
    return median, std, median + nsigma * std


def hot_mask(
    sci: np.ndarray,
    *,
    level: float | None = None,
    threshold: np.ndarray | float | None = None,
    combine: str = "or",
    axis: tuple[int, int] = (-2, -1),
) -> np.ndarray:
    """Hot-pixel mask of dark-rate frames: ``sci > level`` and/or ``sci > threshold``.

    Parameters
    ----------
    sci : numpy.ndarray
        ``sci_mean`` frames; *axis* are the frame (row, col) axes.
    level : float, optional
        Absolute level, in the units of *sci*: ``sci > level``.
    threshold : numpy.ndarray or float, optional
        Per-frame relative threshold (shape of *sci* without *axis*), e.g. from
        :func:`clipped_threshold`: ``sci > threshold``.
    combine : {"or", "and"}
        How the two tests combine when both are given.
    axis : (int, int)
        The frame axes of *sci*.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as *sci*; all False when neither test is given.  NaN is never hot.
        The comparisons are made in float64 whatever the dtype of *sci* (exact for
        float32 values).
    """
    one_of(combine, "combine", ("or", "and"))
    sci = np.asarray(sci)
    parts = []
    with np.errstate(invalid="ignore"):  # float64 levels: compared in double precision
        if level is not None:
            parts.append(sci > np.float64(level))
        if threshold is not None:
            axes = tuple(int(a) % sci.ndim for a in axis)
            parts.append(sci > np.expand_dims(np.asarray(threshold, dtype=np.float64), axes))
    if not parts:
        return np.zeros(sci.shape, dtype=bool)
    if len(parts) == 1:
        return parts[0]
    return (parts[0] | parts[1]) if combine == "or" else (parts[0] & parts[1])


def persistent(masks: np.ndarray, k: int, *, axis: int = 0) -> np.ndarray:
    """True where *masks* holds in at least *k* entries along *axis*: ``sum(masks) >= k``.

    Parameters
    ----------
    masks : numpy.ndarray of bool
        The masks, one per period along *axis*.
    k : int
        Entries needed.
    axis : int
        The period axis.

    Returns
    -------
    numpy.ndarray of bool
        *masks* reduced over *axis*.
    """
    return np.count_nonzero(masks, axis=axis) >= k
