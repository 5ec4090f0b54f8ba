"""Sigma-clipped statistics along an axis, masked-pixel filling (numpy kernels)."""

from __future__ import annotations

import numpy as np

__all__ = ["clipped_stats", "fill_masked"]


def clipped_stats(values, *, sigma: float = 3.0, maxiters: int = 5, axis: int = -1):
    """Sigma-clipped median, standard deviation and count along *axis*.

    The result of :func:`astropy.stats.sigma_clipped_stats` (``cenfunc="median"``,
    ``stdfunc="std"``, ddof 0) along *axis*: each iteration computes the median ``m`` and
    standard deviation ``s`` of the values kept and keeps those with
    ``m - sigma s <= v <= m + sigma s``; it stops after *maxiters* iterations or when nothing
    more is rejected, and the statistics are those of every value within the last bounds
    (astropy's rule).  NaN and infinite values are ignored.  Slices with no remaining value
    give NaN median and standard deviation and count 0.

    Vectorised over the slices: each slice is sorted once (NaN last), so that the values
    kept are always a window ``[lo, hi)`` of the sorted slice; an iteration is a few passes
    over the whole array (the window's median by index, its mean and standard deviation
    in two passes, the new window by counting the values below each bound), with no loop
    over slices and no warning (it is called from dask's threads, where silencing
    warnings is not thread-safe).  Slices are processed in blocks of about 65 000 values,
    which stay in the CPU cache.  ``benchmarks/bench_photometry.py --kernels`` measures it
    against astropy's ``sigma_clipped_stats`` along the axis (its C bounds, then NumPy's
    ``nanmedian``, which loops over slices) on the annulus pixels of 5 000 stars of a full
    chip: 1.6x less CPU (figures in :func:`cte.photometry._measure.annulus_background`).
    The tests compare it with astropy slice by slice.

    A kernel: *sigma* (> 0) and *maxiters* are checked where they enter, by
    :func:`cte.load_config` and the public functions that take them
    (:func:`cte.io.images.background_levels`), not again here.

    Returns
    -------
    median, std : ndarray of float64
        Shape of *values* without *axis*.
    count : ndarray of int64
        Values kept.
    """
    v = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    shape = v.shape[:-1]
    v = v.reshape(-1, v.shape[-1])
    step = max(1, _BLOCK // max(v.shape[-1], 1))
    blocks = [_clip_rows(v[i:i + step], sigma, maxiters) for i in range(0, len(v), step)]
    median, std, count = (np.concatenate(parts) if parts else np.zeros(0)
                          for parts in zip(*blocks, strict=True)) if blocks else (
        np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
    return median.reshape(shape), std.reshape(shape), count.astype(np.int64).reshape(shape)


_BLOCK = 2**16  # values per block of slices: the block's arrays stay in the CPU cache


def _clip_rows(v: np.ndarray, sigma: float, maxiters: int):
    """:func:`clipped_stats` of each row of the 2-D *v*."""
    s = np.sort(v, axis=-1)  # -inf first, then the finite values, +inf, NaN last
    finite = np.isfinite(s)
    lo = np.count_nonzero(s == -np.inf, axis=-1)
    hi = lo + np.count_nonzero(finite, axis=-1)
    # prefix sums of the values less their slice's first median, for the mean and the
    # standard deviation of any window in O(1) (the final statistics are exact two-pass)
    z = np.subtract(s, _window_stats(s, lo, hi, median_only=True)[0][:, None], out=s.copy())
    z[~finite] = 0.0
    c1 = np.zeros((s.shape[0], s.shape[1] + 1))
    c2 = np.zeros_like(c1)
    np.cumsum(z, axis=-1, out=c1[:, 1:])
    np.cumsum(np.square(z, out=z), axis=-1, out=c2[:, 1:])
    del z
    lower = np.full(s.shape[0], np.nan)
    upper = np.full(s.shape[0], np.nan)
    active = np.arange(s.shape[0])  # slices still being clipped
    for _ in range(maxiters):
        if active.size == 0:
            break
        a_lo, a_hi = lo[active], hi[active]
        n = np.maximum(a_hi - a_lo, 1)
        last = s.shape[-1] - 1
        median = 0.5 * (s[active, np.minimum(a_lo + (n - 1) // 2, last)]
                        + s[active, np.minimum(a_lo + n // 2, last)])
        mean = (c1[active, a_hi] - c1[active, a_lo]) / n
        var = (c2[active, a_hi] - c2[active, a_lo]) / n - np.square(mean)
        std = np.sqrt(np.maximum(var, 0.0))
        empty = a_hi <= a_lo
        median[empty] = np.nan
        lower[active] = median - sigma * std
        upper[active] = median + sigma * std
        sub = s[active]
        new_lo = np.maximum(a_lo, _count_below(sub, lower[active], strict=True))
        new_hi = np.minimum(a_hi, _count_below(sub, upper[active], strict=False))
        changed = (new_lo != a_lo) | (new_hi != a_hi)
        lo[active], hi[active] = new_lo, new_hi
        active = active[changed]
    if maxiters > 0:  # astropy keeps every value within the last bounds
        lo = _count_below(s, lower, strict=True)
        hi = _count_below(s, upper, strict=False)
    median, std = _window_stats(s, lo, hi)
    return median, std, np.maximum(hi - lo, 0)


def _count_below(s: np.ndarray, bound: np.ndarray, *, strict: bool) -> np.ndarray:
    """Values of each sorted row below *bound* (``<`` or ``<=``); a NaN bound counts none."""
    below = s < bound[:, None] if strict else s <= bound[:, None]
    return np.count_nonzero(below, axis=-1)


def _window_stats(s: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, median_only=False):
    """Median and standard deviation (ddof 0) of ``s[i, lo[i]:hi[i]]`` of each sorted row."""
    n = np.maximum(hi - lo, 0)
    some = n > 0
    k = s.shape[-1] - 1
    a = np.take_along_axis(s, np.minimum(lo + (n - 1) // 2, k)[:, None], axis=-1)[:, 0]
    b = np.take_along_axis(s, np.minimum(lo + n // 2, k)[:, None], axis=-1)[:, 0]
    median = np.where(some, 0.5 * (a + b), np.nan)
    if median_only:
        return median, None
    cols = np.arange(s.shape[-1])
    inside = (cols >= lo[:, None]) & (cols < hi[:, None])
    safe = np.where(some, n, 1)
    mean = np.where(inside, s, 0.0).sum(axis=-1) / safe
    var = np.square(np.where(inside, s - mean[:, None], 0.0)).sum(axis=-1) / safe
    return median, np.where(some, np.sqrt(var), np.nan)


def fill_masked(image: np.ndarray, mask: np.ndarray, *, radius: int = 2,
                scale: float = 1.0, fallback: float = np.nan) -> np.ndarray:
    """Copy of *image* with masked pixels replaced from their good neighbours.

    A masked pixel gets the weighted mean of the unmasked pixels within a
    ``(2 radius + 1)^2`` box around it, with Gaussian weights ``exp(-d^2 / (2 scale^2))``
    (``d`` the distance in px); where the box holds no good pixel it gets *fallback*.
    Vectorised over the masked pixels (no loop over pixels).
    """
    out = np.array(image, dtype=np.float64, copy=True)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return out
    ny, nx = image.shape
    off = np.arange(-radius, radius + 1)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    weight = np.exp(-(oy**2 + ox**2) / (2.0 * scale**2)).ravel()
    py = ys[:, None] + oy.ravel()[None, :]
    px = xs[:, None] + ox.ravel()[None, :]
    inside = (py >= 0) & (py < ny) & (px >= 0) & (px < nx)
    pyc, pxc = np.clip(py, 0, ny - 1), np.clip(px, 0, nx - 1)
    ok = inside & ~mask[pyc, pxc]
    w = np.where(ok, weight[None, :], 0.0)
    total = w.sum(axis=1)
    vals = np.where(ok, image[pyc, pxc], 0.0)
    filled = np.divide((w * vals).sum(axis=1), total, out=np.full(ys.size, fallback),
                       where=total > 0)
    out[ys, xs] = filled
    return out
