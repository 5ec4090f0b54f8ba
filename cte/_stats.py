"""Numpy kernels: sigma-clipped statistics along an axis, masked-pixel filling."""

from __future__ import annotations

import numpy as np

__all__ = ["clipped_stats", "fill_masked"]


def clipped_stats(values, *, sigma: float = 3.0, maxiters: int = 5, axis: int = -1):
    """Sigma-clipped median, standard deviation and count along *axis*.

    NaN values are ignored.  Each iteration computes the median ``m`` and standard
    deviation ``s`` (ddof 0) of the remaining values and rejects those with
    ``|v - m| > sigma s``; it stops after *maxiters* iterations or when nothing more is
    rejected.  Slices with no remaining values give NaN median and standard deviation
    and count 0.

    Each slice is sorted once: the values kept are always a contiguous run of the
    sorted slice, so every iteration only moves its two ends (counted by comparison)
    and reads the median, mean and variance from prefix sums.

    Returns
    -------
    median, std : ndarray of float64
        Shape of *values* without *axis*.
    count : ndarray of int64
        Values kept.
    """
    if not sigma > 0:
        msg = f"sigma must be > 0, got {sigma!r}"
        raise ValueError(msg)
    v = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    finite = np.isfinite(v)
    ordered = np.sort(np.where(finite, v, np.inf), axis=-1)  # invalid values at the end
    n_valid = finite.sum(axis=-1)
    # offset by a central value so that the prefix sums of squares keep their precision
    centre = np.take_along_axis(ordered, (n_valid // 2)[..., None].clip(0, v.shape[-1] - 1),
                                axis=-1)
    centre = np.where(n_valid[..., None] > 0, centre, 0.0)
    valid = np.isfinite(ordered)
    shifted = np.where(valid, ordered - centre, 0.0)
    zero = np.zeros((*shifted.shape[:-1], 1))
    csum = np.concatenate([zero, np.cumsum(shifted, axis=-1)], axis=-1)
    csq = np.concatenate([zero, np.cumsum(shifted * shifted, axis=-1)], axis=-1)
    lo = np.zeros_like(n_valid)
    hi = n_valid.copy()
    for iteration in range(maxiters + 1):
        count = hi - lo
        n = np.maximum(count, 1)
        mid_lo = np.take_along_axis(shifted, (lo + (n - 1) // 2)[..., None], axis=-1)[..., 0]
        mid_hi = np.take_along_axis(shifted, (lo + n // 2)[..., None], axis=-1)[..., 0]
        median = 0.5 * (mid_lo + mid_hi)
        s1 = _window(csum, lo, hi)
        s2 = _window(csq, lo, hi)
        mean = s1 / n
        std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
        if iteration == maxiters:
            break
        new_lo = np.maximum(lo, (valid & (shifted < (median - sigma * std)[..., None])).sum(-1))
        new_hi = np.minimum(hi, (valid & (shifted <= (median + sigma * std)[..., None])).sum(-1))
        new_hi = np.maximum(new_hi, new_lo)
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            break
        lo, hi = new_lo, new_hi
    empty = count == 0
    median = np.where(empty, np.nan, median + centre[..., 0])
    std = np.where(empty, np.nan, std)
    return median, std, count


def _window(prefix: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of the sorted values ``lo:hi`` of each slice from its prefix sums."""
    return (np.take_along_axis(prefix, hi[..., None], -1)
            - np.take_along_axis(prefix, lo[..., None], -1))[..., 0]


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
