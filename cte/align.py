"""Align an image's header WCS to its master catalog: shift and small rotation.

The header WCS of a calibrated image is off by a pointing error of up to a few pixels.
:func:`align_to_catalog` measures it from the image itself:

1. :func:`detect_stars` finds the brightest stars (local maxima above a threshold,
   vectorised over candidate pixels) and centres them with
   :func:`photutils.centroids.centroid_sources` (centre of mass, background removed);
2. :func:`estimate_offset` finds the common offset between detections and catalog
   positions predicted by the header WCS by voting: the 2-D histogram of all pairwise
   differences within ``max_offset`` peaks at the shift;
3. detections are matched to their nearest catalog star (:func:`match_nearest`) and a
   similarity transform is fitted by linear least squares with sigma clipping
   (:func:`fit_similarity`), twice, the second time within ``match_radius``.

The result is an :class:`Alignment`, a map from header-predicted pixel positions ``p``
to corrected ones::

    p' = c + s R(theta) (p - c) + (shift_x, shift_y)

with ``c`` the image centre ``((nx - 1) / 2, (ny - 1) / 2)``, ``R`` the rotation by
``theta`` (deg, counter-clockwise) and ``s`` a scale that stays within
``max_scale_error`` of 1.  ``residual_rms`` is ``sqrt(mean(|p'_i - d_i|^2))`` over the
matched detections ``d_i`` (px).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from photutils.centroids import centroid_com, centroid_sources
from scipy.spatial import cKDTree

from cte._exceptions import AlignmentError
from cte._stats import clipped_stats
from cte.config import AlignmentOptions

__all__ = [
    "Alignment",
    "align_to_catalog",
    "detect_stars",
    "estimate_offset",
    "fit_similarity",
    "match_nearest",
]


@dataclass(frozen=True)
class Alignment:
    """A fitted correction of header-WCS pixel positions (see the module docstring).

    Attributes
    ----------
    shift_x, shift_y : float
        Displacement of the image centre, px.
    rotation : float
        Rotation, deg (counter-clockwise in the pixel frame).
    scale : float
        Scale factor (1 for a pure pointing error).
    center : (float, float)
        The centre ``c`` of the rotation, px.
    residual_rms : float
        RMS distance of matched detections from the corrected positions, px.
    n_matched, n_detected : int
        Stars used in the final fit, and detections offered.
    """

    shift_x: float
    shift_y: float
    rotation: float
    scale: float
    center: tuple[float, float]
    residual_rms: float
    n_matched: int
    n_detected: int

    def apply(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Corrected positions of header-predicted positions ``(x, y)`` (px)."""
        a = self.scale * np.cos(np.deg2rad(self.rotation))
        b = self.scale * np.sin(np.deg2rad(self.rotation))
        dx = np.asarray(x, float) - self.center[0]
        dy = np.asarray(y, float) - self.center[1]
        return (self.center[0] + a * dx - b * dy + self.shift_x,
                self.center[1] + b * dx + a * dy + self.shift_y)


def detect_stars(
    data: np.ndarray,
    *,
    threshold: float,
    n_brightest: int,
    background: float = 0.0,
    mask: np.ndarray | None = None,
    box: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of the brightest stars.

    A pixel is a peak when it exceeds ``background + threshold``, is not masked, lies at
    least ``box // 2`` px from the edge, and is the maximum of its ``box x box``
    neighbourhood.  The *n_brightest* highest peaks are centred with
    :func:`~photutils.centroids.centroid_sources` (centre of mass of
    ``data - background`` in a ``box x box`` box); peaks closer than ``box / 2`` px
    after centring keep only the brighter.

    Returns
    -------
    x, y : ndarray
        0-based centroids, px.
    peak : ndarray
        Peak values above the background (data units).
    """
    ny, nx = data.shape
    half = box // 2
    above = data > background + threshold
    if mask is not None:
        above &= ~mask
    above[:half, :] = above[ny - half :, :] = False
    above[:, :half] = above[:, nx - half :] = False
    cand = np.flatnonzero(above)
    empty = np.array([], float)
    if cand.size == 0:
        return empty, empty, empty
    cy, cx = np.divmod(cand, nx)
    off = np.arange(-half, half + 1)
    neigh = data[cy[:, None, None] + off[None, :, None], cx[:, None, None] + off[None, None, :]]
    value = data[cy, cx]
    is_peak = value >= neigh.reshape(cand.size, -1).max(axis=1)
    cy, cx, value = cy[is_peak], cx[is_peak], value[is_peak]
    order = np.argsort(value)[::-1][:n_brightest]
    cy, cx, value = cy[order], cx[order], value[order]
    xc, yc = centroid_sources(data - background, cx.astype(float), cy.astype(float),
                              box_size=box, centroid_func=centroid_com)
    good = np.isfinite(xc) & np.isfinite(yc) & (np.hypot(xc - cx, yc - cy) <= half)
    xc, yc, value = xc[good], yc[good], value[good] - background
    # flat-topped (saturated) stars give several peaks: keep the brightest of close pairs
    pairs = cKDTree(np.column_stack([xc, yc])).query_pairs(box / 2.0, output_type="ndarray")
    drop = np.zeros(xc.size, bool)
    if len(pairs):
        fainter = np.where(value[pairs[:, 0]] >= value[pairs[:, 1]], pairs[:, 1], pairs[:, 0])
        drop[fainter] = True
    return xc[~drop], yc[~drop], value[~drop]


def estimate_offset(
    x_det, y_det, x_ref, y_ref, *, max_offset: float, bin_size: float = 1.0
) -> tuple[float, float, int]:
    """Common offset ``detected - reference`` by voting (px).

    All pairwise differences with ``|dx|, |dy| <= max_offset`` are histogrammed in
    ``bin_size`` px bins; the offset is the mean difference within one bin of the
    fullest bin.  Returns ``(dx, dy, votes)``, ``votes`` the count in the fullest bin.
    """
    dx = (np.asarray(x_det, float)[:, None] - np.asarray(x_ref, float)[None, :]).ravel()
    dy = (np.asarray(y_det, float)[:, None] - np.asarray(y_ref, float)[None, :]).ravel()
    near = (np.abs(dx) <= max_offset) & (np.abs(dy) <= max_offset)
    dx, dy = dx[near], dy[near]
    if dx.size == 0:
        return 0.0, 0.0, 0
    edges = np.arange(-max_offset, max_offset + bin_size, bin_size)
    hist, ex, ey = np.histogram2d(dx, dy, bins=[edges, edges])
    ix, iy = np.unravel_index(np.argmax(hist), hist.shape)
    px, py = 0.5 * (ex[ix] + ex[ix + 1]), 0.5 * (ey[iy] + ey[iy + 1])
    sel = (np.abs(dx - px) <= 1.5 * bin_size) & (np.abs(dy - py) <= 1.5 * bin_size)
    return float(dx[sel].mean()), float(dy[sel].mean()), int(hist[ix, iy])


def match_nearest(x1, y1, x2, y2, *, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Unambiguous nearest-neighbour matches of points 1 to points 2 within *radius*.

    A point 1 is matched when its nearest point 2 lies within *radius* and no other
    point 2 does; a point 2 claimed by several points 1 is dropped.

    Returns
    -------
    i1, i2 : ndarray of int
        Indices of matched pairs.
    """
    x1, y1 = np.asarray(x1, float), np.asarray(y1, float)
    empty = np.array([], dtype=np.int64)
    if x1.size == 0 or np.size(x2) == 0:
        return empty, empty
    tree = cKDTree(np.column_stack([x2, y2]))
    dist, idx = tree.query(np.column_stack([x1, y1]), k=2, distance_upper_bound=radius)
    ok = np.isfinite(dist[:, 0]) & ~np.isfinite(dist[:, 1])
    i1 = np.flatnonzero(ok)
    i2 = idx[ok, 0]
    unique, counts = np.unique(i2, return_counts=True)
    single = np.isin(i2, unique[counts == 1])
    return i1[single], i2[single].astype(np.int64)


def fit_similarity(
    x_ref, y_ref, x_det, y_det, *, center: tuple[float, float], clip_sigma: float = 3.0,
    maxiters: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity transform taking reference to detected positions.

    Solves ``x_det - cx = a X - b Y + tx`` and ``y_det - cy = b X + a Y + ty`` with
    ``X = x_ref - cx``, ``Y = y_ref - cy`` for ``(a, b, tx, ty)`` (one linear system for
    all stars), rejecting pairs whose residual exceeds ``clip_sigma`` times the RMS
    residual and refitting, up to *maxiters* times.

    Returns
    -------
    params : ndarray
        ``(a, b, tx, ty)``; rotation ``atan2(b, a)``, scale ``hypot(a, b)``.
    used : ndarray of bool
        Pairs kept by the clipping.
    """
    cx, cy = center
    X = np.asarray(x_ref, float) - cx
    Y = np.asarray(y_ref, float) - cy
    u = np.asarray(x_det, float) - cx
    v = np.asarray(y_det, float) - cy
    one, zero = np.ones_like(X), np.zeros_like(X)
    design = np.concatenate([np.column_stack([X, -Y, one, zero]),
                             np.column_stack([Y, X, zero, one])])
    target = np.concatenate([u, v])
    used = np.ones(X.size, bool)
    params = np.array([1.0, 0.0, 0.0, 0.0])
    for _ in range(maxiters):
        rows = np.concatenate([used, used])
        params = np.linalg.lstsq(design[rows], target[rows], rcond=None)[0]
        resid = (design @ params - target).reshape(2, -1)
        r = np.hypot(resid[0], resid[1])
        rms = np.sqrt(np.mean(r[used] ** 2))
        keep = r <= clip_sigma * max(rms, 1e-3)
        if np.array_equal(keep, used) or keep.sum() < 3:
            break
        used = keep
    return params, used


def align_to_catalog(
    data: np.ndarray,
    x_pred,
    y_pred,
    *,
    options: AlignmentOptions,
    flux=None,
    mask: np.ndarray | None = None,
    path: str = "image",
) -> Alignment:
    """Fit the correction of header-predicted catalog positions (module docstring).

    Parameters
    ----------
    data : ndarray
        Image, e- (masked pixels preferably already filled).
    x_pred, y_pred : array_like
        Catalog positions predicted by the header WCS, px.
    options : AlignmentOptions
    flux : array_like, optional
        Catalog fluxes: the ``n_brightest`` brightest predicted stars vote for the
        offset (all stars otherwise).
    mask : ndarray of bool, optional
        Pixels that cannot be peaks (cosmic rays, bad pixels).
    path : str
        Named in error messages.

    Raises
    ------
    AlignmentError
        Fewer than ``min_matches`` stars matched, or the fitted rotation or scale is
        implausibly large.
    """
    ny, nx = data.shape
    center = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    sample = data[:: max(1, ny // 512), :: max(1, nx // 512)]
    if mask is not None:
        sample = sample[~mask[:: max(1, ny // 512), :: max(1, nx // 512)]]
    level, sigma, _ = clipped_stats(sample.ravel(), sigma=3.0, maxiters=5)
    if not np.isfinite(sigma) or sigma <= 0:
        msg = f"{path}: cannot align, the image has no usable background pixels"
        raise AlignmentError(msg)
    x_det, y_det, _ = detect_stars(data, threshold=options.detection_nsigma * sigma,
                                   n_brightest=options.n_brightest, background=level,
                                   mask=mask)
    x_pred = np.asarray(x_pred, float)
    y_pred = np.asarray(y_pred, float)
    margin = options.max_offset
    inside = ((x_pred > -margin) & (x_pred < nx - 1 + margin) & (y_pred > -margin)
              & (y_pred < ny - 1 + margin))
    ref = np.flatnonzero(inside)
    if flux is not None:
        f = np.asarray(flux, float)[ref]
        voters = ref[np.argsort(np.where(np.isfinite(f), f, -np.inf))[::-1]][
            : 2 * options.n_brightest]
    else:
        voters = ref
    need = options.min_matches
    if x_det.size < need or ref.size < need:
        msg = (f"{path}: cannot align, {x_det.size} stars detected and {ref.size} catalog "
               f"stars predicted on the image (at least {need} of each needed)")
        raise AlignmentError(msg)
    dx, dy, votes = estimate_offset(x_det, y_det, x_pred[voters], y_pred[voters],
                                    max_offset=options.max_offset)
    params = np.array([1.0, 0.0, dx, dy])
    used = np.array([], bool)
    i_det = i_ref = np.array([], np.int64)
    for radius in (max(3.0, 3 * options.match_radius), options.match_radius):
        a, b, tx, ty = params
        X, Y = x_pred[ref] - center[0], y_pred[ref] - center[1]
        xs, ys = center[0] + a * X - b * Y + tx, center[1] + b * X + a * Y + ty
        i_det, i_ref = match_nearest(x_det, y_det, xs, ys, radius=radius)
        if i_det.size < need:
            msg = (f"{path}: alignment failed, only {i_det.size} of {x_det.size} detected "
                   f"stars matched the catalog within {radius:g} px (offset votes: {votes}); "
                   f"at least {need} needed")
            raise AlignmentError(msg)
        params, used = fit_similarity(x_pred[ref][i_ref], y_pred[ref][i_ref], x_det[i_det],
                                      y_det[i_det], center=center,
                                      clip_sigma=options.clip_sigma)
    a, b, tx, ty = params
    rotation = float(np.degrees(np.arctan2(b, a)))
    scale = float(np.hypot(a, b))
    if abs(rotation) > options.max_rotation or abs(scale - 1.0) > options.max_scale_error:
        msg = (f"{path}: alignment rejected, fitted rotation {rotation:.4f} deg and scale "
               f"{scale:.6f} exceed max_rotation {options.max_rotation} deg or "
               f"max_scale_error {options.max_scale_error}")
        raise AlignmentError(msg)
    result = Alignment(shift_x=float(tx), shift_y=float(ty), rotation=rotation, scale=scale,
                       center=center, residual_rms=0.0, n_matched=int(used.sum()),
                       n_detected=int(x_det.size))
    xm, ym = result.apply(x_pred[ref][i_ref][used], y_pred[ref][i_ref][used])
    rms = float(np.sqrt(np.mean((xm - x_det[i_det][used]) ** 2 + (ym - y_det[i_det][used]) ** 2)))
    return Alignment(**{**result.__dict__, "residual_rms": rms})
