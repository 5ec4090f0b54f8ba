"""Gaussian-windowed centroids, vectorised over stars (numpy kernel)."""

from __future__ import annotations

import numpy as np

__all__ = ["windowed_centroid"]


def windowed_centroid(data: np.ndarray, x0, y0, *, sigma: float = 1.5, half: int = 4,
                      iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Iterated Gaussian-windowed first moments of background-subtracted *data*.

    Starting at ``(x0, y0)``, each iteration moves every star to::

        x <- sum(w_i I_i x_i) / sum(w_i I_i),   w_i = exp(-|p_i - (x, y)|^2 / (2 sigma^2))

    over the ``(2 half + 1)^2`` pixels around its starting pixel (pixels off the image
    get no weight).  The fixed point is the centre of any symmetric profile, so unlike a
    box centre of mass it is not pulled towards the box centre (bias ~0.002 px for a
    1.8 px FWHM star with ``sigma = 1.5``).  Stars whose weighted sum is not positive
    get NaN.  All stars are updated at once: the loop runs over iterations only.

    Returns
    -------
    x, y : ndarray of float64
    """
    ny, nx = data.shape
    x = np.array(x0, dtype=float)
    y = np.array(y0, dtype=float)
    if x.size == 0:
        return x, y
    off = np.arange(-half, half + 1)
    cx = np.rint(x).astype(np.int64)
    cy = np.rint(y).astype(np.int64)
    px = cx[:, None, None] + off[None, None, :]
    py = cy[:, None, None] + off[None, :, None]
    inside = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    values = np.where(inside, data[np.clip(py, 0, ny - 1), np.clip(px, 0, nx - 1)], 0.0)
    for _ in range(iterations):
        w = values * np.exp(-((px - x[:, None, None]) ** 2 + (py - y[:, None, None]) ** 2)
                            / (2.0 * sigma**2))
        total = w.sum(axis=(1, 2))
        ok = total > 0
        safe = np.where(ok, total, 1.0)
        x = np.where(ok, (w * px).sum(axis=(1, 2)) / safe, np.nan)
        y = np.where(ok, (w * py).sum(axis=(1, 2)) / safe, np.nan)
        # a star that failed stays NaN; keep the arrays finite for the next iteration
        bad = ~np.isfinite(x)
        if bad.all():
            break
        x = np.where(bad, cx, x)
        y = np.where(bad, cy, y)
        values = np.where(bad[:, None, None], 0.0, values)
    x[bad] = np.nan
    y[bad] = np.nan
    return x, y
