"""Numpy kernels: sigma-clipped statistics along an axis, masked-pixel filling."""

from __future__ import annotations

import numpy as np

__all__ = ["clipped_stats", "fill_masked"]


def clipped_stats(values, *, sigma: float = 3.0, maxiters: int = 5, axis: int = -1):
    """Sigma-clipped median, standard deviation and count along *axis*.

    NaN values are ignored.  Each iteration computes the median ``m`` and standard
    deviation ``s`` of the remaining values and rejects those with ``|v - m| > sigma s``;
    it stops after *maxiters* iterations or when nothing more is rejected.  Slices with
    no remaining values give NaN median and standard deviation and count 0.

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
    v = np.moveaxis(np.array(values, dtype=float, copy=True), axis, -1)
    good = np.isfinite(v)
    for _ in range(maxiters):
        median, std, count = _stats(v, good)
        reject = good & (np.abs(v - median[..., None]) > sigma * std[..., None])
        if not reject.any():
            break
        good &= ~reject
    median, std, count = _stats(v, good)
    return median, std, count


def _stats(v: np.ndarray, good: np.ndarray):
    """Median, std (ddof 0) and count of ``v[good]`` along the last axis, NaN when empty."""
    count = good.sum(axis=-1)
    empty = count == 0
    w = np.where(good, v, np.nan)
    w[empty] = 0.0  # keep numpy from warning about all-NaN slices; reset below
    median = np.nanmedian(w, axis=-1)
    n = np.maximum(count, 1)
    mean = np.nansum(w, axis=-1) / n
    std = np.sqrt(np.maximum(np.nansum(w * w, axis=-1) / n - mean * mean, 0.0))
    median = np.where(empty, np.nan, median)
    std = np.where(empty, np.nan, std)
    return median, std, count


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
