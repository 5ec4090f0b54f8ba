"""Align an image's header WCS to its master catalog: shift and small rotation.

The header WCS of a calibrated image is off by a pointing error of up to a few pixels.
:func:`align_to_catalog` measures it from the image itself:

1. :func:`detect_stars` finds the brightest stars (local maxima above a threshold,
   vectorised over candidate pixels) and centres them with a Gaussian-windowed
   centroid (:func:`cte.photometry._centroid.windowed_centroid`, unbiased for symmetric stars);
2. :func:`estimate_offset` finds the common offset between detections and catalog
   positions predicted by the header WCS by voting: the 2-D histogram of all pairwise
   differences within ``max_offset`` peaks at the shift;
3. detections are matched to their nearest catalog star (:func:`match_nearest`) and a
   rigid transform (shift and rotation) is fitted by least squares with sigma clipping
   (:func:`fit_rigid`), twice, the second time within ``match_radius``; when at least
   ``min_matches`` of them are isolated (no catalog neighbour within
   ``isolation_radius`` px with ``isolation_flux_ratio`` of their flux), only those
   enter the fit, since neighbours pull centroids.

The result is an :class:`Alignment`, a map from header-predicted pixel positions ``p``
to corrected ones::

    p' = c + R(theta) (p - c) + (shift_x, shift_y)

with ``c`` the image centre ``((nx - 1) / 2, (ny - 1) / 2)`` and ``R`` the rotation by
``theta`` (deg, counter-clockwise).  The least-squares rotation and shift of matched
pairs (reference ``r_i``, detection ``d_i``, both relative to ``c``, weights ``w_i``)
are closed-form::

    theta = atan2(sum w (r'_x d'_y - r'_y d'_x), sum w (r'_x d'_x + r'_y d'_y))
    shift = mean_w(d) - R(theta) mean_w(r)

(primes: deviations from the weighted means); ``w_i ~ F_i^2 / (F_i + A sigma^2)`` is
the inverse centroid variance of a detection of flux ``F_i`` on a background of noise
``sigma`` per pixel, ``A`` the star's noise-equivalent area.  ``residual_rms`` is
``sqrt(mean(|p'_i - d_i|^2))`` over the matched detections (px).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from cte.config import AlignmentOptions
from cte.exceptions import AlignmentError
from cte.photometry._centroid import windowed_centroid
from cte.photometry._neighbours import crowded
from stores.common.stats import clipped_stats

__all__ = [
    "Alignment",
    "align_to_catalog",
]


@dataclass(frozen=True)
class Alignment:
    """A fitted correction of header-WCS pixel positions (see the module docstring).

    Parameters
    ----------
    shift_x, shift_y : float
        Displacement of the image centre, px.
    rotation : float
        Rotation, deg (counter-clockwise in the pixel frame).
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
    center: tuple[float, float]
    residual_rms: float
    n_matched: int
    n_detected: int

    def apply(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Corrected positions of header-predicted positions ``(x, y)`` (px).

        Parameters
        ----------
        x, y : array-like
            Header pixel positions.
        """
        a = np.cos(np.deg2rad(self.rotation))
        b = np.sin(np.deg2rad(self.rotation))
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
    neighbourhood.  The *n_brightest* highest peaks are centred with a Gaussian-windowed
    centroid of ``data - background`` (:func:`cte.photometry._centroid.windowed_centroid`); peaks
    closer than ``box / 2`` px after centring keep only the brighter.

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
    xc, yc = windowed_centroid(data - background, cx.astype(float), cy.astype(float))
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


def fit_rigid(
    x_ref, y_ref, x_det, y_det, *, center: tuple[float, float], weights=None,
    clip_sigma: float = 3.0, maxiters: int = 5,
) -> tuple[tuple[float, float, float], np.ndarray]:
    """Weighted least-squares rotation and shift taking reference to detected positions.

    The closed-form solution of the module docstring with weighted means and sums
    (``weights`` ~ inverse centroid variance; equal by default), for all pairs at
    once.  Pairs whose normalised residual ``|r_i| sqrt(w_i)`` exceeds ``clip_sigma``
    times its RMS are rejected and the fit repeated, up to *maxiters* times.

    Returns
    -------
    (theta, tx, ty) : tuple of float
        Rotation (rad) and shift (px) about *center*.
    used : ndarray of bool
        Pairs kept by the clipping.
    """
    cx, cy = center
    rx = np.asarray(x_ref, float) - cx
    ry = np.asarray(y_ref, float) - cy
    dx = np.asarray(x_det, float) - cx
    dy = np.asarray(y_det, float) - cy
    w_all = np.ones(rx.size) if weights is None else np.asarray(weights, float)
    if w_all.shape != rx.shape or not np.all(w_all > 0):
        msg = f"weights must be positive, one per pair; got shape {w_all.shape}"
        raise ValueError(msg)
    used = np.ones(rx.size, bool)
    theta, tx, ty = 0.0, 0.0, 0.0
    for _ in range(maxiters):
        w = np.where(used, w_all, 0.0)
        mrx, mry = np.average(rx, weights=w), np.average(ry, weights=w)
        mdx, mdy = np.average(dx, weights=w), np.average(dy, weights=w)
        px, py, qx, qy = rx - mrx, ry - mry, dx - mdx, dy - mdy
        theta = float(np.arctan2(np.sum(w * (px * qy - py * qx)),
                                 np.sum(w * (px * qx + py * qy))))
        c, s = np.cos(theta), np.sin(theta)
        tx, ty = float(mdx - (c * mrx - s * mry)), float(mdy - (s * mrx + c * mry))
        r = np.hypot(c * rx - s * ry + tx - dx, s * rx + c * ry + ty - dy) * np.sqrt(w_all)
        rms = np.sqrt(np.mean(r[used] ** 2))
        keep = r <= clip_sigma * max(rms, 1e-6)
        if np.array_equal(keep, used) or keep.sum() < 3:
            break
        used = keep
    return (theta, tx, ty), used


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
        Fewer than ``min_matches`` stars matched, or the fitted rotation is implausibly
        large.
    """
    ny, nx = data.shape
    center = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    sample = data[:: max(1, ny // 512), :: max(1, nx // 512)]
    if mask is not None:
        sample = sample[~mask[:: max(1, ny // 512), :: max(1, nx // 512)]]
    level, sigma = (float(v) for v in clipped_stats(sample.ravel(), sigma=3.0, maxiters=5)[:2])
    if not np.isfinite(sigma) or sigma <= 0:
        msg = f"{path}: cannot align, the image has no usable background pixels"
        raise AlignmentError(msg)
    x_det, y_det, peak = detect_stars(data, threshold=options.detection_nsigma * sigma,
                                      n_brightest=options.n_brightest, background=level,
                                      mask=mask)
    # inverse centroid variance ~ F^2 / (F + A sigma^2), F ~ peak / 0.22 for a 1.8 px
    # FWHM star and A = 4 pi (FWHM / 2.355)^2 its noise-equivalent area (px)
    flux_det = peak / 0.22
    weight = flux_det**2 / (flux_det + 4 * np.pi * (options.fwhm / 2.355) ** 2 * sigma**2)
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
    isolated = ~crowded(x_pred, y_pred, flux, radius=options.isolation_radius,
                        ratio=options.isolation_flux_ratio)
    need = options.min_matches
    if x_det.size < need or ref.size < need:
        msg = (f"{path}: cannot align, {x_det.size} stars detected and {ref.size} catalog "
               f"stars predicted on the image (at least {need} of each needed)")
        raise AlignmentError(msg)
    dx, dy, votes = estimate_offset(x_det, y_det, x_pred[voters], y_pred[voters],
                                    max_offset=options.max_offset)
    theta, tx, ty = 0.0, dx, dy
    used = np.array([], bool)
    i_det = i_ref = np.array([], np.int64)
    for radius in (max(3.0, 3 * options.match_radius), options.match_radius):
        a, b = np.cos(theta), np.sin(theta)
        X, Y = x_pred[ref] - center[0], y_pred[ref] - center[1]
        xs, ys = center[0] + a * X - b * Y + tx, center[1] + b * X + a * Y + ty
        i_det, i_ref = match_nearest(x_det, y_det, xs, ys, radius=radius)
        if i_det.size < need:
            msg = (f"{path}: alignment failed, only {i_det.size} of {x_det.size} detected "
                   f"stars matched the catalog within {radius:g} px (offset votes: {votes}); "
                   f"at least {need} needed")
            raise AlignmentError(msg)
        # fit isolated stars only when there are enough: neighbours pull centroids
        alone = isolated[ref][i_ref]
        if alone.sum() >= need:
            i_det, i_ref = i_det[alone], i_ref[alone]
        (theta, tx, ty), used = fit_rigid(x_pred[ref][i_ref], y_pred[ref][i_ref],
                                          x_det[i_det], y_det[i_det], center=center,
                                          weights=weight[i_det],
                                          clip_sigma=options.clip_sigma)
    rotation = float(np.degrees(theta))
    if abs(rotation) > options.max_rotation:
        msg = (f"{path}: alignment rejected, fitted rotation {rotation:.4f} deg exceeds "
               f"max_rotation {options.max_rotation} deg")
        raise AlignmentError(msg)
    result = Alignment(shift_x=tx, shift_y=ty, rotation=rotation, center=center,
                       residual_rms=0.0, n_matched=int(used.sum()), n_detected=int(x_det.size))
    xm, ym = result.apply(x_pred[ref][i_ref][used], y_pred[ref][i_ref][used])
    rms = float(np.sqrt(np.mean((xm - x_det[i_det][used]) ** 2 + (ym - y_det[i_det][used]) ** 2)))
    return Alignment(**{**result.__dict__, "residual_rms": rms})
