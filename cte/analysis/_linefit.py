"""Numpy kernels: many straight-line fits at once, over segments of flat arrays.

The CTE cells (pair x flux bin x aperture) hold very different numbers of stars and
the flux bins overlap, so the data are kept as flat arrays of *memberships* (one entry
per star per cell it belongs to) with an integer ``segment`` (cell) index; every sum
over a cell is one :func:`numpy.bincount`.  This keeps the work proportional to the
memberships rather than to cells x all stars, and needs no Python loop over cells.

Formulas (sums over the kept entries ``i`` of one segment, ``n`` of them)::

    xbar = sum(x_i) / n,  ybar = sum(y_i) / n
    Sxx = sum((x_i - xbar)^2),  Sxy = sum((x_i - xbar) (y_i - ybar))
    slope b = Sxy / Sxx,  intercept a = ybar - b xbar
    residual r_i = y_i - a - b x_i,  s^2 = sum(r_i^2) / (n - 2)
    err(b) = s / sqrt(Sxx),  err(a) = s sqrt(1/n + xbar^2 / Sxx)

which are the ordinary least-squares results of :func:`scipy.stats.linregress`
(``slope``, ``intercept``, ``stderr``, ``intercept_stderr``).  Sigma clipping (on
request) removes entries with ``|r_i| > sigma * s`` and refits, cumulatively (a removed
entry never returns), until nothing changes or ``maxiters`` clipping rounds were made;
the returned fit is always the fit of the returned mask.  Because a few large outliers
inflate ``s`` enough to hide themselves (15 % of points at 50 sigma pass a 3-sigma
clip on ``s``), the first round uses the robust scale ``1.4826 median(|r_i|)`` instead
of ``s`` (``robust_start=True``); the later rounds use ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stores.common.validate import as_float, as_int

__all__ = [
    "LineFit",
    "invert_ratio_slope",
    "segment_median",
    "segment_sum",
    "segmented_line_fit",
    "segmented_pivot_fit",
]


def segment_sum(segment: np.ndarray, values: np.ndarray, n_segments: int) -> np.ndarray:
    """Sum of *values* per segment (length *n_segments*)."""
    return np.bincount(segment, weights=values, minlength=n_segments)


def segment_median(
    segment: np.ndarray, values: np.ndarray, keep: np.ndarray, n_segments: int
) -> np.ndarray:
    """Median of ``values[keep]`` per segment (NaN for empty segments); one sort."""
    keep = np.asarray(keep, dtype=bool)
    values = np.asarray(values, dtype=float)
    n = np.bincount(segment, weights=keep.astype(float), minlength=n_segments).astype(np.int64)
    counts = np.bincount(segment, minlength=n_segments)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    finite = keep & np.isfinite(values)
    span = np.max(np.abs(values[finite])) if finite.any() else 1.0
    span = span if span > 0 else 1.0
    # one float key orders by segment, then value (kept entries in [0, 0.5), others last)
    frac = np.where(finite, 0.25 + 0.2 * values / span, 0.75)
    order = np.argsort(segment + frac, kind="stable")  # fast on segment-grouped input
    ordered = values[order]
    has = n > 0
    lo = np.where(has, start + (n - 1) // 2, 0)
    hi = np.where(has, start + n // 2, 0)
    if ordered.size == 0:
        return np.full(n_segments, np.nan)
    return np.where(has, 0.5 * (ordered[lo] + ordered[hi]), np.nan)


@dataclass(frozen=True)
class LineFit:
    """Per-segment straight-line fits (arrays of length ``n_segments``) and the mask.

    ``slope``, ``intercept``, their 1-sigma errors, the residual rms ``rms`` (``s``),
    the number of kept entries ``n``, the mean abscissa ``x_mean``, the entry mask
    ``keep`` (length of the flat arrays) and the number of fit passes ``n_iter``.
    Segments with fewer than 3 kept entries have NaN fit values.
    """

    slope: np.ndarray
    intercept: np.ndarray
    slope_err: np.ndarray
    intercept_err: np.ndarray
    rms: np.ndarray
    n: np.ndarray
    x_mean: np.ndarray
    keep: np.ndarray
    n_iter: int


def _fit(segment, x, y, n_segments):
    """Fit every segment of the (already kept) entries; residuals of the entries.

    Single-pass sums of ``x``, ``y``, ``x^2``, ``x y``, ``y^2`` per segment (the
    callers pass ``x`` and ``y`` shifted near their means, which keeps the
    differences of sums accurate), then ``Sxx = sum(x^2) - n xbar^2`` etc. and
    ``sum(r^2) = Syy - Sxy^2 / Sxx``.
    """
    n = np.bincount(segment, minlength=n_segments).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        sx = np.bincount(segment, x, n_segments)
        sy = np.bincount(segment, y, n_segments)
        sxx = np.bincount(segment, x * x, n_segments) - sx * sx / n
        sxy = np.bincount(segment, x * y, n_segments) - sx * sy / n
        syy = np.bincount(segment, y * y, n_segments) - sy * sy / n
        xbar, ybar = sx / n, sy / n
        slope = sxy / sxx
        intercept = ybar - slope * xbar
        ss = np.maximum(syy - slope * sxy, 0.0)
        rms = np.sqrt(ss / (n - 2))
        slope_err = rms / np.sqrt(sxx)
        intercept_err = rms * np.sqrt(1.0 / n + xbar * xbar / sxx)
        resid = y - intercept[segment] - slope[segment] * x
    bad = (n < 3) | ~(sxx > 0)
    out = [np.where(bad, np.nan, v) for v in (slope, intercept, slope_err, intercept_err, rms)]
    return (*out, n, np.where(n > 0, xbar, np.nan)), resid


def segmented_line_fit(
    segment: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    n_segments: int,
    *,
    sigma: float | None = 3.0,
    maxiters: int = 10,
    keep: np.ndarray | None = None,
    robust_start: bool = True,
) -> LineFit:
    """Least-squares line ``y = a + b x`` per segment, optionally sigma-clipped.

    Parameters
    ----------
    segment : ndarray of int
        Segment (cell) index of every entry, in ``[0, n_segments)``.
    x, y : ndarray of float
        Abscissa and ordinate of every entry (same shape as *segment*).
    n_segments : int
        Number of segments.
    sigma : float or None
        Clip entries whose residual exceeds ``sigma`` times the segment's residual rms;
        None fits once without clipping.
    maxiters : int
        Maximum number of clipping rounds.
    keep : ndarray of bool, optional
        Entries allowed in the fit to start with (default: those with finite x and y).
    robust_start : bool
        Use ``1.4826 median(|residual|)`` as the scale of the first clipping round.

    Returns
    -------
    LineFit
    """
    sigma = as_float(sigma, "sigma", min=0, strict_min=True, allow_none=True)
    maxiters = as_int(maxiters, "maxiters", min=0)
    segment = np.asarray(segment, dtype=np.intp)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(x) & np.isfinite(y)
    keep = finite if keep is None else (np.asarray(keep, dtype=bool) & finite)
    # shift by (outlier-proof) medians for accurate single-pass sums (undone below); a
    # strided subsample locates the middle well enough and costs little
    step = max(1, finite.size // 20_000)
    sample = np.flatnonzero(finite[::step]) * step
    x0 = float(np.median(x[sample])) if sample.size else 0.0
    y0 = float(np.median(y[sample])) if sample.size else 0.0
    x = np.where(finite, x - x0, 0.0)
    y = np.where(finite, y - y0, 0.0)
    # Each round refits only the segments whose mask changed in the previous round
    # (the others keep their fit), on the compressed arrays of their kept entries.
    results = None
    active = np.flatnonzero(keep)  # kept entries of the segments to (re)fit
    n_iter = 0
    while True:  # loop over clipping rounds only
        if active.size == segment.size:  # every entry: no gathering needed
            seg = segment
            fitted, resid = _fit(seg, x, y, n_segments)
        else:
            seg = segment[active]
            fitted, resid = _fit(seg, x[active], y[active], n_segments)
        if results is None:
            results = [np.array(v) for v in fitted]
        else:
            redo = np.bincount(seg, minlength=n_segments) > 0
            for old, new in zip(results, fitted, strict=True):
                old[redo] = new[redo]
        n_iter += 1
        if sigma is None or n_iter > maxiters or active.size == 0:
            break
        if robust_start and n_iter == 1:
            keep_seg = np.ones(seg.size, dtype=bool)
            scale = 1.4826 * segment_median(seg, np.abs(resid), keep_seg, n_segments)
        else:
            scale = results[4]  # rms
        limit = sigma * scale[seg]
        clip = np.isfinite(limit) & (limit > 0) & (np.abs(resid) > limit)
        if not clip.any():
            break
        keep[active[clip]] = False
        changed = np.bincount(seg[clip], minlength=n_segments) > 0
        active = active[~clip & changed[seg]]
    slope, intercept, slope_err, intercept_err, rms, n, xbar = results
    # undo the shift: y - y0 = a' + b (x - x0)  =>  a = a' + y0 - b x0, and
    # err(a)^2 = s^2 (1/n + xbar^2 / Sxx) with the unshifted mean
    xbar = xbar + x0
    intercept = intercept + y0 - slope * x0
    with np.errstate(invalid="ignore", divide="ignore"):
        sxx = (rms / slope_err) ** 2
        intercept_err = rms * np.sqrt(1.0 / n + xbar * xbar / sxx)
    return LineFit(slope, intercept, slope_err, intercept_err, rms, n, xbar, keep, n_iter)


def segmented_pivot_fit(
    segment: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    n_segments: int,
    keep: np.ndarray,
    *,
    x_pivot: float,
    y_pivot: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Line forced through ``(x_pivot, y_pivot)``: slope and its 1-sigma error.

    ``b = sum(u v) / sum(u^2)`` with ``u = x - x_pivot``, ``v = y - y_pivot``;
    ``err(b) = s / sqrt(sum(u^2))`` with ``s^2 = sum((v - b u)^2) / (n - 1)``, over the
    entries selected by *keep*.  Segments with fewer than 2 entries give NaN.
    """
    segment = np.asarray(segment, dtype=np.intp)
    keep = np.asarray(keep, dtype=bool)
    u = np.where(keep, np.asarray(x, float) - x_pivot, 0.0)
    v = np.where(keep, np.asarray(y, float) - y_pivot, 0.0)
    n = segment_sum(segment, keep.astype(float), n_segments)
    with np.errstate(invalid="ignore", divide="ignore"):
        suu = segment_sum(segment, u * u, n_segments)
        slope = segment_sum(segment, u * v, n_segments) / suu
        resid = np.where(keep, v - slope[segment] * u, 0.0)
        s = np.sqrt(segment_sum(segment, resid * resid, n_segments) / (n - 1))
        err = s / np.sqrt(suu)
    bad = (n < 2) | ~(suu > 0)
    return np.where(bad, np.nan, slope), np.where(bad, np.nan, err)


def invert_ratio_slope(
    segment: np.ndarray,
    x: np.ndarray,
    total_transfers: np.ndarray,
    keep: np.ndarray,
    slope: np.ndarray,
    center: np.ndarray,
    n_segments: int,
    *,
    iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-transfer loss ``a`` whose ratio curve has the measured least-squares slope.

    A star with ``x`` transfers in the denominator image and ``N - x`` in the
    numerator image (``N`` = *total_transfers*, about 2051), losing the fraction ``a``
    of its flux per transfer in both, has the flux ratio::

        r(x; a) = (1 - a (N - x)) / (1 - a x)

    which is only approximately a straight line (``r ~ 1 - a (N - 2x)`` to first
    order, hence the seed's ``L ~ slope * 2048 / 2``).  For the entries of a segment,
    the least-squares slope about the abscissa *center* ``c`` (the mean ``x`` for a free
    fit, the pivot for a fit forced through a point) of the noise-free curve is::

        g(a) = sum((x_i - c) (r(x_i; a) - 1)) / sum((x_i - c)^2)

    This solves ``g(a) = slope`` by Newton's method with
    ``g'(a) = sum((x_i - c) (2 x_i - N_i) / (1 - a x_i)^2) / sum((x_i - c)^2)``,
    starting from the solution of ``r'(xbar; a) = slope`` at the mean ``xbar`` and
    ``N`` of the segment (``a = (1 + b xbar - sqrt(1 + b (2 xbar - N))) / (N + b
    xbar^2)``, within ~2 % of the root for L <= 0.3; three steps reach machine
    precision).  The loss is thus exact for the geometry of the stars actually used
    (no first-order bias, which is ``~L/2`` relative: 12 % at L = 0.25).

    Returns
    -------
    a, dadb : ndarray
        The loss per transfer and ``da/d(slope) = 1 / g'(a)`` (for error propagation).
    """
    keep = np.asarray(keep, dtype=bool)
    seg = np.asarray(segment, dtype=np.intp)[keep]
    x = np.asarray(x, float)[keep]
    total = np.asarray(total_transfers, float)[keep]
    slope = np.asarray(slope, float)
    center = np.asarray(center, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = x - center[seg]
        suu = np.bincount(seg, u * u, n_segments)
        # r(x; a) - 1 = a (2x - N) / (1 - a x), so with lever = u (2x - N):
        #   g(a) = a sum(lever / (1 - a x)) / suu,  g'(a) = sum(lever / (1 - a x)^2) / suu
        lever = u * (2 * x - total)
        # start: the exact inversion of the slope at the segment's mean x and N
        n = np.bincount(seg, minlength=n_segments)
        xm = np.bincount(seg, x, n_segments) / n
        nm = np.bincount(seg, total, n_segments) / n
        q = slope * xm
        a = (1 + q - np.sqrt(1 + slope * (2 * xm - nm))) / (nm + q * xm)
        a = np.where(np.isfinite(a), a, 0.5 * slope)
        def g_and_slope(a):
            inv = 1.0 / (1.0 - a[seg] * x)
            w1 = lever * inv
            s1 = np.bincount(seg, w1, n_segments)
            s2 = np.bincount(seg, w1 * inv, n_segments)
            return a * s1 / suu, s2 / suu

        for _ in range(iterations):  # Newton steps, not a loop over cells
            g, dg = g_and_slope(a)
            a = a - (g - slope) / dg
        _, dg = g_and_slope(a)  # g'(a) at the loss returned
    return a, 1.0 / dg
