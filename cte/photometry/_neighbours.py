"""Catalog neighbours: which stars have a bright companion within a radius.

One kernel for the two uses: the photometry's ``CROWDED`` flag
(:func:`cte.photometry._measure.measure_image`, ``crowding_radius`` and
``crowding_flux_ratio``) and the alignment's choice of isolated stars
(:func:`cte.photometry.align.align_to_catalog`, ``isolation_radius`` and
``isolation_flux_ratio``).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def crowded(x, y, flux, *, radius: float, ratio: float) -> np.ndarray:
    """Stars with a neighbour within *radius* px at least *ratio* times as bright.

    Parameters
    ----------
    x, y : array_like
        Positions, px.
    flux : array_like or None
        Fluxes in any one unit; a non-finite flux (or ``flux=None``, every flux) counts
        as bright, so such a star crowds every neighbour within *radius*.
    radius : float
        Search radius, px; ``radius <= 0`` finds no neighbours.
    ratio : float
        A neighbour counts when ``flux_neighbour >= ratio * flux_star``.

    Returns
    -------
    ndarray of bool
        One element per star.
    """
    out = np.zeros(np.size(x), bool)
    if radius <= 0 or np.size(x) < 2:
        return out
    f = np.full(np.size(x), np.inf) if flux is None else np.asarray(flux, float)
    f = np.where(np.isfinite(f), f, np.inf)
    pairs = cKDTree(np.column_stack([x, y])).query_pairs(radius, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        out[i[f[j] >= ratio * f[i]]] = True
        out[j[f[i] >= ratio * f[j]]] = True
    return out
