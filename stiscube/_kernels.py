"""Numpy kernels of the per-pixel properties (no xarray, no dask, no I/O).

Every kernel takes arrays with a *frame axis* (``axis``) and works on all pixels at once;
the only Python loops are over clipping iterations.  Internally the arrays are viewed as
``(n_frames, n_pixels)`` (contiguous along pixels, which is how frames come from disk)
and sorted copies are made as ``(n_pixels, n_frames)`` (contiguous along frames, where
numpy's SIMD sort is fast).

Notation, for one pixel and its samples ``i = 1..n`` (frames):

- ``t_i`` exposure time (s), ``g_i`` gain (e-/count),
- ``e_i = g_i * SCI_i`` signal (e-), ``E_i = g_i * ERR_i`` error (e-),
- ``r_i = e_i / t_i`` rate (e-/s),
- ``v_i = max(E_i**2 - max(e_i, 0), 0)`` the read-noise variance implied by the error
  model ``ERR**2 = RN**2 + signal`` (e-**2),
- *valid* samples: ``SCI`` and ``ERR`` finite, ``ERR > 0``, and ``DQ & dq_mask == 0``,
- *kept* samples: valid samples not rejected as cosmic rays (:func:`reject_cosmic_rays`).

The properties (:func:`pixel_properties`), sums over kept samples, ``m`` of them::

    sci_mean  = sum(e_i) / sum(t_i)                                  [e-/s]
    err_mean  = sum(E_i) / sum(t_i)                                  [e-/s]
    stability = sqrt( sum(((r_i - sci_mean) / (E_i / t_i))**2) / (m - 1) )   [1]
    nan_count = n - m                                                [count]
    readnoise = sqrt( sum(v_i) / m )                                 [e-]

``sci_mean`` is the exposure-time-weighted mean of the rates ``r_i`` (total electrons
over total exposure time): an unweighted mean would be dominated by the read noise of
the short (60 s) darks.  ``err_mean`` is the same weighted mean of the per-frame error
rates ``E_i / t_i``.  Pixels with no kept sample get NaN (``stability`` needs ``m >= 2``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stiscube._dqbits import DEFAULT_DARK_DQ_MASK

__all__ = [
    "masked_median",
    "pixel_properties",
    "reject_cosmic_rays",
    "validate_options",
]

_F32 = np.float32


def validate_options(
    *,
    dq_mask: int = DEFAULT_DARK_DQ_MASK,
    cr_sigma: float = 5.0,
    maxiters: int = 10,
    state_fraction: float = 0.15,
    min_state: int = 4,
    state_sigma: float = 3.0,
) -> dict[str, Any]:
    """Check the options of :func:`pixel_properties`; return them normalised.

    Raises
    ------
    ValueError, TypeError
        Naming the offending parameter.
    """
    if isinstance(dq_mask, bool) or not isinstance(dq_mask, int | np.integer):
        msg = f"dq_mask must be an integer bit mask, got {dq_mask!r}"
        raise TypeError(msg)
    if not 0 <= int(dq_mask) <= 0x7FFF:
        msg = f"dq_mask must be in [0, 32767] (STIS DQ bits 1..16384), got {dq_mask!r}"
        raise ValueError(msg)
    if not (
        isinstance(cr_sigma, int | float | np.number) and np.isfinite(cr_sigma) and cr_sigma > 0
    ):
        msg = f"cr_sigma must be > 0, got {cr_sigma!r}"
        raise ValueError(msg)
    if isinstance(maxiters, bool) or not isinstance(maxiters, int | np.integer) or maxiters < 1:
        msg = f"maxiters must be an integer >= 1, got {maxiters!r}"
        raise ValueError(msg)
    if not (isinstance(state_fraction, int | float | np.number) and 0 < state_fraction <= 1):
        msg = f"state_fraction must be in (0, 1], got {state_fraction!r}"
        raise ValueError(msg)
    if isinstance(min_state, bool) or not isinstance(min_state, int | np.integer) or min_state < 2:
        msg = f"min_state must be an integer >= 2, got {min_state!r}"
        raise ValueError(msg)
    if not (
        isinstance(state_sigma, int | float | np.number)
        and np.isfinite(state_sigma)
        and state_sigma > 0
    ):
        msg = f"state_sigma must be > 0, got {state_sigma!r}"
        raise ValueError(msg)
    return {
        "dq_mask": int(dq_mask),
        "cr_sigma": float(cr_sigma),
        "maxiters": int(maxiters),
        "state_fraction": float(state_fraction),
        "min_state": int(min_state),
        "state_sigma": float(state_sigma),
    }


def masked_median(values: np.ndarray, mask: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Median of ``values`` over the samples where ``mask`` is true, along ``axis``.

    For ``k`` selected samples sorted as ``x_(0) <= ... <= x_(k-1)`` the median is
    ``(x_((k-1)//2) + x_(k//2)) / 2``; NaN where ``k == 0``.  Unselected samples may hold
    anything (NaN included).
    """
    x = np.moveaxis(np.asarray(values), axis, 0)
    m = np.moveaxis(np.asarray(mask, dtype=bool), axis, 0)
    n = x.shape[0]
    out = _masked_median_2d(x.reshape(n, -1), m.reshape(n, -1))
    return out.reshape(x.shape[1:])


def _masked_median_2d(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked median along axis 0 of ``(n, P)`` arrays (see :func:`masked_median`)."""
    count = mask.sum(axis=0)
    ordered = np.where(mask, x, np.array(np.inf, dtype=x.dtype)).T.copy()  # (P, n)
    ordered.sort(axis=-1)
    lo = np.maximum((count - 1) // 2, 0)[:, None]
    hi = np.maximum(count // 2, 0)[:, None]
    low = np.take_along_axis(ordered, np.minimum(lo, x.shape[0] - 1), axis=-1)[:, 0]
    high = np.take_along_axis(ordered, np.minimum(hi, x.shape[0] - 1), axis=-1)[:, 0]
    with np.errstate(invalid="ignore"):
        median = (low + high) * x.dtype.type(0.5)
    median[count == 0] = np.nan
    return median


def _per_frame(values: Any, n: int, axis: int, ndim: int, name: str) -> np.ndarray:
    """Per-frame values as a float32 ``(n, 1)`` column."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        flat = arr
    else:
        moved = np.moveaxis(arr, axis if arr.ndim == ndim else -1, 0)
        flat = moved.reshape(moved.shape[0], -1)[:, 0]
        if not np.all(moved.reshape(moved.shape[0], -1) == flat[:, None]):
            msg = f"{name} must be the same for every pixel of a frame"
            raise ValueError(msg)
    if flat.shape != (n,):
        msg = f"{name} must hold one value per frame ({n}), got shape {arr.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(flat) & (flat > 0)):
        msg = f"{name} must be finite and > 0 for every frame, got {flat.tolist()!r}"
        raise ValueError(msg)
    return flat.astype(_F32)[:, None]


def _prepare(
    sci: Any, err: Any, dq: Any, exptime: Any, gain: Any, axis: int, dq_mask: int
) -> tuple[np.ndarray, ...]:
    sci = np.moveaxis(np.asarray(sci), axis, 0)
    err = np.moveaxis(np.asarray(err), axis, 0)
    if sci.shape != err.shape:
        msg = f"sci and err must have the same shape, got {sci.shape} and {err.shape}"
        raise ValueError(msg)
    n = sci.shape[0]
    pixel_shape = sci.shape[1:]
    sci2 = sci.reshape(n, -1).astype(_F32, copy=False)
    err2 = err.reshape(n, -1).astype(_F32, copy=False)
    t = _per_frame(exptime, n, axis, sci.ndim, "exptime")
    g = _per_frame(gain, n, axis, sci.ndim, "gain")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(sci2) & np.isfinite(err2) & (err2 > 0)
    if dq is not None and dq_mask:
        dq2 = np.moveaxis(np.asarray(dq), axis, 0)
        if dq2.shape != sci.shape:
            msg = f"dq must have the shape of sci {sci.shape}, got {dq2.shape}"
            raise ValueError(msg)
        valid &= (dq2.reshape(n, -1) & dq_mask) == 0
    with np.errstate(invalid="ignore", over="ignore"):
        e = sci2 * g
        big_e = err2 * g
        v = np.maximum(big_e * big_e - np.maximum(e, 0), 0)
    return e, big_e, v, t, valid, pixel_shape


def _state_members(
    e: np.ndarray,
    v: np.ndarray,
    t: np.ndarray,
    cand: np.ndarray,
    min_count: np.ndarray,
    state_sigma: float,
) -> np.ndarray:
    """Candidates that form a recurring level of the pixel (a state, not cosmic rays).

    ``level`` = median rate of the candidates; a candidate is a member when
    ``|e_i - level t_i| <= state_sigma * sqrt(v_i + max(level t_i, 0))``; the members
    count only if there are at least ``min_count`` of them.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        level = _masked_median_2d(e / t, cand)
        lt = level * t
        dev = np.abs(e - lt) / np.sqrt(v + np.maximum(lt, 0))
        members = cand & (dev <= state_sigma)
    enough = members.sum(axis=0) >= min_count
    return members & enough


def reject_cosmic_rays(
    sci: Any,
    err: Any,
    dq: Any,
    exptime: Any,
    gain: Any,
    *,
    axis: int = -1,
    dq_mask: int = DEFAULT_DARK_DQ_MASK,
    cr_sigma: float = 5.0,
    maxiters: int = 10,
    state_fraction: float = 0.15,
    min_state: int = 4,
    state_sigma: float = 3.0,
) -> np.ndarray:
    """Per-pixel sigma clipping of cosmic rays across frames; returns the *kept* mask.

    Parameters
    ----------
    sci, err : array_like
        Science and error values in counts, frame axis ``axis``.
    dq : array_like of int or None
        DQ flags (same shape); samples with ``dq & dq_mask != 0`` are not valid.
    exptime, gain : array_like
        Exposure time (s) and gain (e-/count) of each frame (1-D, one per frame).
    axis : int
        The frame axis of ``sci``, ``err``, ``dq``.
    dq_mask : int
        DQ bits that invalidate a sample.
    cr_sigma : float
        Clipping threshold in standard deviations.
    maxiters : int
        Maximum number of clipping iterations.
    state_fraction, min_state, state_sigma : float, int, float
        Recurring-level protection, see Notes.

    Returns
    -------
    numpy.ndarray of bool
        Kept samples, with the frame axis at ``axis`` (the input's shape).

    Notes
    -----
    Cosmic rays only add charge, so the clipping is one-sided.  For each pixel:

    1. centre ``c`` = median of the valid rates ``r_i``;
    2. noise of each sample at that centre, ``s_i = sqrt(v_i + max(c t_i, 0))`` (read
       noise from the ERR array plus the Poisson noise of the centre, e-), and
       ``z_i = (e_i - c t_i) / s_i``; the candidates are the kept samples with
       ``z_i > cr_sigma``;
    3. *recurring level*: if a pixel has at least
       ``max(min_state, ceil(state_fraction * n_valid))`` candidates and that many of them
       agree with their own median rate within ``state_sigma`` (same noise model), those
       are a real state of the pixel (a flickering pixel's high level, or a hot pixel
       that switched on during the period) and are kept for good; the other candidates
       are rejected.  Cosmic rays deposit widely different charges and rarely hit one
       pixel that often, so they do not form such a level;
    4. ``c`` = median rate of the kept samples; repeat from 2 until no sample is newly
       rejected or after ``maxiters`` iterations.  (The median, not the mean, is the
       centre throughout: a mean between the two levels of a pixel that switched state
       would reject the upper level a few samples at a time.)

    A level seen in fewer frames than that minimum (e.g. a hot pixel switching on in the
    last frames of a period) cannot be told from cosmic rays and is rejected.
    """
    opts = validate_options(
        dq_mask=dq_mask,
        cr_sigma=cr_sigma,
        maxiters=maxiters,
        state_fraction=state_fraction,
        min_state=min_state,
        state_sigma=state_sigma,
    )
    e, _, v, t, valid, pixel_shape = _prepare(sci, err, dq, exptime, gain, axis, opts["dq_mask"])
    kept = _clip(e, v, t, valid, **{k: opts[k] for k in opts if k != "dq_mask"})
    n = kept.shape[0]
    return np.moveaxis(kept.reshape(n, *pixel_shape), 0, axis)


def _clip(
    e: np.ndarray,
    v: np.ndarray,
    t: np.ndarray,
    valid: np.ndarray,
    *,
    cr_sigma: float,
    maxiters: int,
    state_fraction: float,
    min_state: int,
    state_sigma: float,
) -> np.ndarray:
    """The clipping of :func:`reject_cosmic_rays` on ``(n, P)`` arrays; returns ``kept``."""
    n_valid = valid.sum(axis=0)
    min_count = np.maximum(min_state, np.ceil(state_fraction * n_valid)).astype(np.int64)
    kept = valid.copy()
    protected = np.zeros_like(valid)
    threshold = _F32(cr_sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = e / t
    center = _masked_median_2d(rate, valid)
    # Pixels examined in an iteration: all at first, then those that lost samples.
    active: np.ndarray | None = None
    for _ in range(maxiters):
        if active is None:
            e_a, v_a, kept_a, prot_a, c_a, mc_a = e, v, kept, protected, center, min_count
        else:
            e_a, v_a = e[:, active], v[:, active]
            kept_a, prot_a = kept[:, active], protected[:, active]
            c_a, mc_a = center[active], min_count[active]
        with np.errstate(invalid="ignore", divide="ignore"):
            ct = c_a * t
            z = (e_a - ct) / np.sqrt(v_a + np.maximum(ct, 0))
        cand = kept_a & ~prot_a & (z > threshold)
        state_px = np.flatnonzero(cand.sum(axis=0) >= mc_a)
        if state_px.size:
            sub = (slice(None), state_px)
            members = _state_members(e_a[sub], v_a[sub], t, cand[sub], mc_a[state_px], state_sigma)
            prot_a[:, state_px] |= members
            cand[:, state_px] &= ~members
        kept_a &= ~cand
        if active is not None:
            kept[:, active] = kept_a
            protected[:, active] = prot_a
        changed = cand.any(axis=0)
        if not changed.any():
            break
        active = np.flatnonzero(changed) if active is None else active[changed]
        center[active] = _masked_median_2d(rate[:, active], kept[:, active])
    return kept


def _weighted_mean(e: np.ndarray, t: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """``sum(e_i) / sum(t_i)`` over kept samples, along axis 0 (NaN if none kept)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(kept, e, _F32(0)).sum(axis=0) / np.where(kept, t, _F32(0)).sum(axis=0)


def pixel_properties(
    sci: Any,
    err: Any,
    dq: Any,
    exptime: Any,
    gain: Any,
    *,
    axis: int = -1,
    dq_mask: int = DEFAULT_DARK_DQ_MASK,
    cr_sigma: float = 5.0,
    maxiters: int = 10,
    state_fraction: float = 0.15,
    min_state: int = 4,
    state_sigma: float = 3.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The five per-pixel properties of a stack of dark frames (see the module docstring).

    Parameters
    ----------
    sci, err, dq, exptime, gain, axis, dq_mask, cr_sigma, maxiters, state_fraction, \
min_state, state_sigma
        As in :func:`reject_cosmic_rays`.

    Returns
    -------
    sci_mean, err_mean, stability, nan_count, readnoise : numpy.ndarray
        Arrays of the input shape without the frame axis: float32 (e-/s, e-/s, 1),
        int32 (count of excluded samples: invalid or rejected), float32 (e-).
    """
    opts = validate_options(
        dq_mask=dq_mask,
        cr_sigma=cr_sigma,
        maxiters=maxiters,
        state_fraction=state_fraction,
        min_state=min_state,
        state_sigma=state_sigma,
    )
    e, big_e, v, t, valid, pixel_shape = _prepare(
        sci, err, dq, exptime, gain, axis, opts["dq_mask"]
    )
    n = e.shape[0]
    kept = _clip(e, v, t, valid, **{k: opts[k] for k in opts if k != "dq_mask"})
    zero = _F32(0)
    m = kept.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        total_t = np.where(kept, t, zero).sum(axis=0)
        sci_mean = np.where(kept, e, zero).sum(axis=0) / total_t
        err_mean = np.where(kept, big_e, zero).sum(axis=0) / total_t
        resid = np.where(kept, (e - sci_mean * t) / big_e, zero)
        stability = np.sqrt((resid * resid).sum(axis=0) / (m - 1).astype(_F32))
        readnoise = np.sqrt(np.where(kept, v, zero).sum(axis=0) / m.astype(_F32))
    stability[m < 2] = np.nan
    nan_count = (n - m).astype(np.int32)
    return (
        sci_mean.astype(_F32, copy=False).reshape(pixel_shape),
        err_mean.astype(_F32, copy=False).reshape(pixel_shape),
        stability.astype(_F32, copy=False).reshape(pixel_shape),
        nan_count.reshape(pixel_shape),
        readnoise.astype(_F32, copy=False).reshape(pixel_shape),
    )
