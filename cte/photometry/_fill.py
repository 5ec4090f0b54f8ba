"""Masked-pixel filling (a numpy kernel)."""

from __future__ import annotations

import numpy as np

__all__ = ["fill_masked"]


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
