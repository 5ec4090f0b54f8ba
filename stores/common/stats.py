"""Sigma-clipped statistics along an axis: the one kernel of :mod:`stiscube` and :mod:`cte`."""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = ["clipped_stats"]


def clipped_stats(
    values: np.ndarray,
    *,
    sigma: float = 3.0,
    maxiters: int | None = 5,
    axis: int | tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped median, standard deviation and count of each slice along *axis*.

    Astropy's sigma clip (:class:`astropy.stats.SigmaClip` with ``cenfunc="median"``,
    ``stdfunc="std"``, ddof 0, the statistics of its masked result): each iteration
    computes the median ``m`` and standard deviation ``s`` of the values kept and keeps
    those with ``m - sigma s <= v <= m + sigma s``; it stops after *maxiters* iterations or
    when nothing more is rejected, and the statistics are those of every value within the
    last bounds.  (:func:`astropy.stats.sigma_clipped_stats` of a flat array, without
    ``axis``, drops a value for good once clipped and differs when the bounds widen
    again.)  NaN and infinite values are ignored; slices with no value left give NaN
    median and standard deviation and count 0.

    Vectorised over the slices, with no loop over them and no warning (it runs in dask's
    threads, where silencing warnings is not thread-safe): each slice is sorted once, so
    that the values kept are always a window of the sorted slice, and an iteration is a
    few passes over the array.  ``benchmarks/bench_stats.py`` measures it against
    ``sigma_clipped_stats`` in one run (best CPU time of 3, 2-core machine at load 8):
    on the annulus pixels of 5 000 stars along axis 1 (5 iterations) astropy takes
    2.0x longer (232 ms against 113 ms), on one 1024 x 1024 DQ frame (40 iterations)
    1.9x (288 ms against 151 ms), with the same medians and standard deviations (within
    3e-15).

    A kernel: *sigma* and *maxiters* are checked where they enter (the options that
    carry them), not again here.

    Parameters
    ----------
    values : array_like
        The sample, any real dtype (computed in float64).
    sigma : float
        Clipping limit in standard deviations (> 0).
    maxiters : int or None
        Maximum number of iterations (>= 0); None iterates until nothing is rejected.
    axis : int, tuple of int or None
        The axes of a slice; None: all of *values* is one slice.

    Returns
    -------
    median, std : numpy.ndarray of float64
        Shape of *values* without *axis* (0-d for ``axis=None``), in the units of *values*.
    count : numpy.ndarray of int64
        Values kept.
    """
    v = np.asarray(values, dtype=np.float64)
    axes = tuple(range(v.ndim)) if axis is None else tuple(np.atleast_1d(axis).tolist())
    v = np.moveaxis(v, axes, tuple(range(-len(axes), 0)))  # moveaxis checks the axes
    shape = v.shape[: v.ndim - len(axes)]
    v = v.reshape(math.prod(shape), math.prod(v.shape[len(shape):]))
    if v.size == 0:  # no slice, or slices of no value
        return np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, np.int64)
    step = max(1, _BLOCK // v.shape[-1])
    blocks = [_clip_rows(v[i:i + step], sigma, maxiters) for i in range(0, len(v), step)]
    median, std, count = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
    return median.reshape(shape), std.reshape(shape), count.astype(np.int64).reshape(shape)


_BLOCK = 2**16  # values per block of slices: the block's arrays stay in the CPU cache


def _clip_rows(v: np.ndarray, sigma: float, maxiters: int | None):
    """:func:`clipped_stats` of each row of the 2-D *v*."""
    s = np.sort(v, axis=-1)  # -inf first, then the finite values, +inf, NaN last
    lo = np.count_nonzero(s == -np.inf, axis=-1)
    hi = lo + np.count_nonzero(np.isfinite(s), axis=-1)
    lower = np.full(s.shape[0], np.nan)
    upper = np.full(s.shape[0], np.nan)
    active = np.arange(s.shape[0])  # slices still being clipped
    for _ in itertools.count() if maxiters is None else range(maxiters):
        if active.size == 0:
            break
        sub, a_lo, a_hi = s[active], lo[active], hi[active]
        median, std = _window_stats(sub, a_lo, a_hi)
        lower[active] = median - sigma * std
        upper[active] = median + sigma * std
        new_lo = np.maximum(a_lo, _count_below(sub, lower[active], strict=True))
        new_hi = np.minimum(a_hi, _count_below(sub, upper[active], strict=False))
        changed = (new_lo != a_lo) | (new_hi != a_hi)
        lo[active], hi[active] = new_lo, new_hi
        active = active[changed]
    if maxiters != 0:  # astropy keeps every value within the last bounds
        lo = _count_below(s, lower, strict=True)
        hi = _count_below(s, upper, strict=False)
    median, std = _window_stats(s, lo, hi)
    return median, std, np.maximum(hi - lo, 0)


def _count_below(s: np.ndarray, bound: np.ndarray, *, strict: bool) -> np.ndarray:
    """Values of each sorted row below *bound* (``<`` or ``<=``); a NaN bound counts none."""
    below = s < bound[:, None] if strict else s <= bound[:, None]
    return np.count_nonzero(below, axis=-1)


def _window_stats(s: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Median and standard deviation (ddof 0) of ``s[i, lo[i]:hi[i]]`` of each sorted row."""
    n = np.maximum(hi - lo, 0)
    some = n > 0
    k = s.shape[-1] - 1
    a = np.take_along_axis(s, np.minimum(lo + (n - 1) // 2, k)[:, None], axis=-1)[:, 0]
    b = np.take_along_axis(s, np.minimum(lo + n // 2, k)[:, None], axis=-1)[:, 0]
    median = np.where(some, 0.5 * (a + b), np.nan)
    cols = np.arange(s.shape[-1])
    inside = (cols >= lo[:, None]) & (cols < hi[:, None])
    safe = np.where(some, n, 1)
    mean = np.where(inside, s, 0.0).sum(axis=-1) / safe
    var = np.square(np.where(inside, s - mean[:, None], 0.0)).sum(axis=-1) / safe
    return median, np.where(some, np.sqrt(var), np.nan)
