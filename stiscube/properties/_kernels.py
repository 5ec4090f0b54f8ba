"""Numpy reference kernels of the per-pixel properties (no xarray, no dask, no I/O).

These define the properties and the cosmic-ray clipping; the pipeline runs the compiled
kernel :func:`stiscube.properties._compiled.band_properties`, which its tests compare
with these (the oracle).

Every kernel takes arrays with a *frame axis* (``axis``) and works on all pixels at once;
the only Python loops are over clipping iterations.  Internally the arrays are viewed as
``(n_pixels, n_frames)``: that is the layout :func:`xarray.apply_ufunc` hands over (core
dimension last, contiguous), no copy is needed for it, reductions over frames run along
contiguous memory, and numpy's SIMD sort works in place on each pixel's samples.

Notation, for one pixel and its samples ``i = 1..n`` (frames):

- ``t_i`` exposure time (s), ``g_i`` gain (e-/count),
- ``e_i = g_i * SCI_i`` signal (e-), ``E_i = g_i * ERR_i`` error (e-),
- ``r_i = e_i / t_i`` rate (e-/s),
- ``v_i = max(E_i**2 - max(e_i, 0), 0)`` the read-noise variance implied by the error
  model ``ERR**2 = RN**2 + signal`` (e-**2): used by the clipping's noise model only,
- *valid* samples: ``SCI`` and ``ERR`` finite, ``ERR > 0``, and ``DQ & dq_mask == 0``,
- *kept* samples: valid samples not rejected as cosmic rays (:func:`reject_cosmic_rays`).

The properties (:func:`pixel_properties`), sums over kept samples, ``m`` of them::

    sci_mean  = sum(e_i) / sum(t_i)                                  [e-/s]
    err_mean  = sum(E_i) / sum(t_i)                                  [e-/s]
    stability = sqrt( sum(((r_i - sci_mean) / (E_i / t_i))**2) / (m - 1) )   [1]
    nan_count = n - m                                                [count]
    readnoise = sqrt( max(s2 - max(sum(e_i), 0) / m, 0) )            [e-]
    s2        = sum((e_i - sci_mean * t_i)**2) / (m - 1)             [e-**2]

``sci_mean`` is the exposure-time-weighted mean of the rates ``r_i`` (total electrons
over total exposure time): an unweighted mean would be dominated by the read noise of
the short (60 s) darks.  ``err_mean`` is the same weighted mean of the per-frame error
rates ``E_i / t_i``.  Pixels with no kept sample get NaN (``stability`` and
``readnoise`` need ``m >= 2``).

``readnoise`` is *measured*: the frames' own temporal scatter about the pixel's mean dark
signal, ``s2``, minus the Poisson variance of that signal (the mean electrons per frame),
so it owes nothing to the ERR arrays (whose read noise is the one calstis assumed).  For
frames of equal exposure time and a steady pixel, ``s2`` is an unbiased estimate of
``RN**2 + D t`` (``D`` the dark rate), so ``readnoise**2`` is unbiased for ``RN**2``
(before the clip at 0); a pixel whose rate changes during the period (a flickering pixel,
a late hot pixel) shows the change as extra scatter.  Error and bias for ``m`` frames
(Gaussian noise, ``sigma**2 = RN**2 + D t``): ``s2`` has a relative standard deviation of
``sqrt(2 / (m - 1))``, so a pixel's ``readnoise`` has a relative error of about
``(sigma**2 / RN**2) / sqrt(2 (m - 1))``: 14 % for ``m = 50``, ``RN = 4`` e-,
``D t = 5.5`` e- (15 % at 40 frames, 12 % at 60).  The median over pixels of the
per-pixel values (the site's per-period read noise) is low by about
``2 sigma**2 / (3 (m - 1))`` in ``readnoise**2`` (the median of a chi-square lies below
its mean), i.e. by a fraction ``(sigma**2 / RN**2) / (3 (m - 1))`` in ``readnoise``:
0.9 % at 50 frames for the numbers above, 1.9 % at 24 frames.  Two frames cannot measure it per
pixel (the median of a one-degree-of-freedom chi-square is 0.45 of its mean, below the
Poisson term); see :func:`stiscube.properties.readnoise.amplifier_readnoise` for whole
frames.

The clipping arithmetic is float32 (the decisions of :func:`reject_cosmic_rays`); the
sums of the statistics are float64.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from stiscube.schema import DEFAULT_DARK_DQ_MASK
from stores.common.validate import as_float, as_int, check_fields, instance_of

__all__ = [
    "ClipOptions",
    "masked_median",
    "pixel_properties",
    "reject_cosmic_rays",
]

_F32 = np.float32


@dataclass(frozen=True, kw_only=True)
class ClipOptions:
    """The cosmic-ray clipping options, validated once (in ``__post_init__``).

    Parameters
    ----------
    dq_mask : int
        DQ bits that invalidate a sample (0 ... 32767; the default is bits 1, 2, 256, 8192).
    cr_sigma : float
        Clipping threshold in standard deviations (> 0, one-sided).
    maxiters : int
        Maximum number of clipping iterations (>= 1).
    state_fraction : float
        A level recurring in ``max(min_state, ceil(state_fraction * n))`` of the *n* valid
        frames is a state of the pixel, kept (in (0, 1]).
    min_state : int
        The fewest frames of such a recurring level (>= 2).
    state_sigma : float
        How close, in standard deviations, the samples of a level must agree (> 0).
    min_tail : int
        A level held by at least this many frames at the end of the period (frames in
        time order) is kept: a pixel that turned hot (0 = off, else >= 2).

    Raises
    ------
    ValueError, TypeError
        Naming the offending field.
    """

    dq_mask: int = DEFAULT_DARK_DQ_MASK
    cr_sigma: float = 5.0
    maxiters: int = 10
    state_fraction: float = 0.2
    min_state: int = 4
    state_sigma: float = 4.0
    min_tail: int = 3

    def __post_init__(self) -> None:
        check_fields(self, _CLIP_FIELDS)


_POSITIVE = partial(as_float, min=0, strict_min=True)


def _min_tail(value: Any, name: str) -> int:
    """0 (off) or an integer >= 2 (1 would keep every cosmic ray of the last frame)."""
    value = as_int(value, name, min=0)
    if value == 1:
        msg = f"{name} must be 0 (off) or an integer >= 2, got 1"
        raise ValueError(msg)
    return value
#: ClipOptions field -> its validator (stores.common.validate)
_CLIP_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "dq_mask": partial(as_int, min=0, max=0x7FFF),  # STIS DQ bits 1 ... 16384
    "cr_sigma": _POSITIVE,
    "maxiters": partial(as_int, min=1),
    "state_fraction": partial(as_float, min=0, max=1, strict_min=True),
    "min_state": partial(as_int, min=2),
    "state_sigma": _POSITIVE,
    "min_tail": _min_tail,
}


def clip_options(clip: ClipOptions | None) -> ClipOptions:
    """*clip*, or the default :class:`ClipOptions` for None (TypeError for anything else)."""
    return ClipOptions() if clip is None else instance_of(clip, "clip", ClipOptions,
                                                          what="a ClipOptions")


def masked_median(values: Any, mask: Any, *, axis: int = -1) -> np.ndarray:
    """Median of ``values`` over the samples where ``mask`` is true, along ``axis``.

    For ``k`` selected samples sorted as ``x_(0) <= ... <= x_(k-1)`` the median is
    ``(x_((k-1)//2) + x_(k//2)) / 2``; NaN where ``k == 0``.  Unselected samples may hold
    anything (NaN included).
    """
    x = np.moveaxis(np.asarray(values), axis, -1)
    m = np.moveaxis(np.asarray(mask, dtype=bool), axis, -1)
    n = x.shape[-1]
    out = _masked_median_2d(x.reshape(-1, n), m.reshape(-1, n))
    return out.reshape(x.shape[:-1])


def _masked_median_2d(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked median along the last axis of ``(P, n)`` arrays (see :func:`masked_median`)."""
    return _median_of_sorted(_sorted_samples(x, mask), np.count_nonzero(mask, axis=-1))


def _sorted_samples(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy of ``(P, n)`` values with each row's selected values sorted first, then +inf."""
    ordered = np.where(mask, x, np.array(np.inf, dtype=x.dtype))
    ordered.sort(axis=-1)
    return ordered


def _median_of_sorted(ordered: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median of the first ``count`` values of each row of ``ordered`` (NaN if none)."""
    last = ordered.shape[-1] - 1
    lo = np.clip((count - 1) // 2, 0, last)[:, None]
    hi = np.clip(count // 2, 0, last)[:, None]
    with np.errstate(invalid="ignore"):
        median = (
            np.take_along_axis(ordered, lo, axis=-1)[:, 0]
            + np.take_along_axis(ordered, hi, axis=-1)[:, 0]
        ) * ordered.dtype.type(0.5)
    median[count == 0] = np.nan
    return median


def per_frame(values: Any, n: int, name: str) -> np.ndarray:
    """Per-frame values (one per frame, or constant over pixels) as a float32 ``(1, n)`` row."""
    arr = np.asarray(values, dtype=np.float64)
    flat = arr.reshape(-1, arr.shape[-1])[0] if arr.ndim > 1 else arr
    if arr.ndim > 1 and not np.all(arr.reshape(-1, arr.shape[-1]) == flat):
        msg = f"{name} must be the same for every pixel of a frame"
        raise ValueError(msg)
    if flat.shape != (n,):
        msg = f"{name} must hold one value per frame ({n}), got shape {arr.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(flat) & (flat > 0)):
        msg = f"{name} must be finite and > 0 for every frame, got {flat.tolist()!r}"
        raise ValueError(msg)
    return flat.astype(_F32)[None, :]


def _prepare(
    sci: Any, err: Any, dq: Any, exptime: Any, gain: Any, axis: int, dq_mask: int
) -> tuple[Any, ...]:
    """``(P, n)`` float32 ``e``, ``E``, ``v``, the ``(1, n)`` ``t`` and the ``valid`` mask."""
    sci = np.moveaxis(np.asarray(sci), axis, -1)
    err = np.moveaxis(np.asarray(err), axis, -1)
    if sci.shape != err.shape:
        msg = f"sci and err must have the same shape, got {sci.shape} and {err.shape}"
        raise ValueError(msg)
    n = sci.shape[-1]
    pixel_shape = sci.shape[:-1]
    sci2 = sci.reshape(-1, n).astype(_F32, copy=False)
    err2 = err.reshape(-1, n).astype(_F32, copy=False)
    t = per_frame(
        np.moveaxis(np.asarray(exptime), axis, -1) if np.ndim(exptime) > 1 else exptime,
        n,
        "exptime",
    )
    g = per_frame(
        np.moveaxis(np.asarray(gain), axis, -1) if np.ndim(gain) > 1 else gain, n, "gain"
    )
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(sci2)
        valid &= err2 > 0
        valid &= err2 < np.inf
    if dq is not None and dq_mask:
        dq2 = np.moveaxis(np.asarray(dq), axis, -1)
        if dq2.shape != sci.shape:
            msg = f"dq must have the shape of sci {sci.shape}, got {dq2.shape}"
            raise ValueError(msg)
        valid &= (dq2.reshape(-1, n) & dq_mask) == 0
    # Private copies in which invalid samples hold harmless values (e = 0, E = 1), so that
    # every later step can multiply by 0/1 masks instead of selecting.
    with np.errstate(invalid="ignore", over="ignore"):
        if np.all(g == 1):  # the usual CCDGAIN=1 case
            e = np.where(valid, sci2, _F32(0))
            big_e = np.where(valid, err2, _F32(1))
        else:
            e = np.where(valid, sci2 * g, _F32(0))
            big_e = np.where(valid, err2 * g, _F32(1))
        v = big_e * big_e
        v -= np.maximum(e, 0)
        np.maximum(v, 0, out=v)
    return e, big_e, v, t, valid, pixel_shape


def _exceeds(
    e: np.ndarray,
    v: np.ndarray,
    t: np.ndarray,
    center: np.ndarray,
    k2: Any,
    work: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``z_i > k`` for ``z_i = (e_i - c t_i) / sqrt(v_i + max(c t_i, 0))``, evaluated as
    ``d > 0 and d**2 > k**2 (v + max(c t, 0))`` with ``d = e - c t``.

    ``work``: two float arrays shaped like ``e`` to reuse as scratch space.
    """
    ct, d = work if work is not None else (np.empty_like(e), np.empty_like(e))
    with np.errstate(invalid="ignore", over="ignore"):
        np.multiply(center[:, None], t, out=ct)
        np.subtract(e, ct, out=d)
        np.maximum(ct, 0, out=ct)
        ct += v
        ct *= k2
        out = d > 0
        d *= d
        out &= d > ct
    return out


def _kept_median(
    rate: np.ndarray,
    ordered: np.ndarray,
    kept: np.ndarray,
    valid: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """Median rate of the kept samples of the ``active`` pixels.

    Where every rejected sample of a pixel has a rate at least its ``m``-th smallest valid
    rate (``m`` kept samples; the usual case: cosmic rays), the kept rates are the first
    ``m`` of its sorted valid rates and the median is read from ``ordered``; the other
    pixels are sorted again.  The rejected samples are few, so they are found sparsely.
    """
    n_pix, n = rate.shape
    rejected = np.flatnonzero(valid & ~kept)
    pixel = rejected // n
    low_rejected = np.full(n_pix, np.inf, dtype=rate.dtype)
    np.minimum.at(low_rejected, pixel, rate.ravel()[rejected])
    m = np.count_nonzero(valid[active], axis=-1) - np.bincount(pixel, minlength=n_pix)[active]
    last = np.clip(m - 1, 0, n - 1)
    on_top = low_rejected[active] >= ordered[active, last]
    median = np.empty(active.size, dtype=rate.dtype)
    top, count = active[on_top], m[on_top]
    lo = np.clip((count - 1) // 2, 0, n - 1)
    hi = np.clip(count // 2, 0, n - 1)
    median[on_top] = (ordered[top, lo] + ordered[top, hi]) * rate.dtype.type(0.5)
    median[on_top & (m == 0)] = np.nan
    if not on_top.all():
        other = active[~on_top]
        median[~on_top] = _masked_median_2d(rate[other], kept[other])
    return median


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
        lt = level[:, None] * t
        dev = np.abs(e - lt) / np.sqrt(v + np.maximum(lt, 0))
        members = cand & (dev <= state_sigma)
    enough = np.count_nonzero(members, axis=-1) >= min_count
    return members & enough[:, None]


def _tail(cand: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The candidates after the last kept sample that is not a candidate (``(P, n)``)."""
    n = cand.shape[-1]
    blocker = kept & ~cand
    last = np.where(blocker.any(axis=-1), n - 1 - np.argmax(blocker[:, ::-1], axis=-1), -1)
    return cand & (np.arange(n) > last[:, None])


class _Stack(NamedTuple):
    """A validated stack of frames, ``(P, n)`` (see :func:`_prepare`), with its kept mask."""

    e: np.ndarray
    big_e: np.ndarray
    v: np.ndarray
    t: np.ndarray
    kept: np.ndarray
    pixel_shape: tuple[int, ...]
    axis: int


def _clipped_stack(
    sci: Any,
    err: Any,
    dq: Any,
    exptime: Any,
    gain: Any,
    *,
    axis: int = -1,
    clip: ClipOptions | None = None,
) -> _Stack:
    """The part both kernels share: the inputs checked and prepared once, and clipped."""
    opts = dataclasses.asdict(clip_options(clip))
    e, big_e, v, t, valid, pixel_shape = _prepare(
        sci, err, dq, exptime, gain, axis, opts.pop("dq_mask")
    )
    return _Stack(e, big_e, v, t, _clip(e, v, t, valid, **opts), pixel_shape, axis)


def reject_cosmic_rays(
    sci: Any, err: Any, dq: Any, exptime: Any, gain: Any, *, axis: int = -1,
    clip: ClipOptions | None = None,
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
    axis : int, default -1
        The frame axis of ``sci``, ``err``, ``dq``.
    clip : ClipOptions, optional
        The clipping options (default ``ClipOptions()``; the level protections: see Notes).

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
    3b. *level to the end* (``min_tail > 0``): the candidates left after the last kept
       sample that is not a candidate (the frames must be in time order, as
       :func:`stiscube.io.darks.open_darks` gives them), if at least ``min_tail`` of them
       agree with their own median rate within ``state_sigma``, are a level the pixel
       held to the end of the period (a hot pixel that switched on inside the period:
       it stays hot until the anneal) and are kept for good;
    4. ``c`` = median rate of the kept samples; repeat from 2 until no sample is newly
       rejected or after ``maxiters`` iterations.  (The median, not the mean, is the
       centre throughout: a mean between the two levels of a pixel that switched state
       would reject the upper level a few samples at a time.)

    A level seen in fewer frames than those minima (a hot pixel switching on in the last
    ``min_tail - 1`` frames, or a flickering pixel seldom up) cannot be told from cosmic
    rays and is rejected.  Measured on simulated periods of 48 darks
    (``benchmarks/late_onsets.py``, README): without the level-to-the-end test 9 % of the
    pixels turning hot inside a period were rejected; with ``min_tail = 3`` the recall is
    above 0.95 and the false states made of cosmic rays stay as rare as before.

    The defaults trade the two errors against each other for STIS darks (about 2% of the
    pixels hit per 1100-s exposure): with ``state_fraction = 0.2`` a period of 24 frames
    needs 5 hits on one pixel with charges within ``4 sigma`` of each other to mistake
    cosmic rays for a state (no case in 200 000 simulated pixel-periods; with 0.15 there
    were a few), while a flickering pixel whose upper state covers 30-70% of the frames
    is kept.  About one steady sample in a million exceeds the 5-sigma threshold by
    chance (the median centre is itself noisy) and is rejected.
    """
    stack = _clipped_stack(sci, err, dq, exptime, gain, axis=axis, clip=clip)
    kept = stack.kept.reshape(*stack.pixel_shape, stack.kept.shape[-1])
    return np.moveaxis(kept, -1, stack.axis)


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
    min_tail: int,
) -> np.ndarray:
    """The clipping of :func:`reject_cosmic_rays` on ``(P, n)`` arrays; returns ``kept``."""
    n_valid = np.count_nonzero(valid, axis=-1)
    min_count = np.maximum(min_state, np.ceil(state_fraction * n_valid)).astype(np.int64)
    kept = valid.copy()
    protected = np.zeros_like(valid)
    k2 = _F32(min(cr_sigma * cr_sigma, float(np.finfo(np.float32).max)))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = e / t
    ordered = _sorted_samples(rate, valid)
    center = _median_of_sorted(ordered, n_valid)
    work = (np.empty_like(e), np.empty_like(e))  # scratch for whole-array passes
    # Pixels examined: all in the first iteration, then only those that lost samples.
    active = np.arange(e.shape[0])
    first = True
    for _ in range(maxiters):
        if first:
            cand = _exceeds(e, v, t, center, k2, work)
            cand &= kept
        elif active.size > e.shape[0] // 3:
            # Many pixels to re-examine: whole arrays beat copying the rows out.  Pixels
            # not active have no candidates (same centre, same kept samples as before).
            cand = _exceeds(e, v, t, center, k2, work)
            cand &= kept
            cand &= ~protected
            active = np.arange(e.shape[0])
        else:
            cand = _exceeds(e[active], v[active], t, center[active], k2)
            cand &= kept[active]
            cand &= ~protected[active]
        state_rows = np.flatnonzero(np.count_nonzero(cand, axis=-1) >= min_count[active])
        if state_rows.size:
            rows = active[state_rows]
            members = _state_members(
                e[rows], v[rows], t, cand[state_rows], min_count[rows], state_sigma
            )
            protected[rows] |= members
            cand[state_rows] &= ~members
        if min_tail:
            tail_rows = np.flatnonzero(np.count_nonzero(cand, axis=-1) >= min_tail)
            if tail_rows.size:
                rows = active[tail_rows]
                tail = _tail(cand[tail_rows], kept[rows])
                members = _state_members(
                    e[rows], v[rows], t, tail, np.full(rows.size, min_tail), state_sigma
                )
                protected[rows] |= members
                cand[tail_rows] &= ~members
        changed = cand.any(axis=-1)
        if first or active.size == e.shape[0]:
            kept &= ~cand
        else:
            kept[active] &= ~cand
        first = False
        if not changed.any():
            break
        active = active[changed]
        center[active] = _kept_median(rate, ordered, kept, valid, active)
    return kept


def pixel_properties(
    sci: Any, err: Any, dq: Any, exptime: Any, gain: Any, *, axis: int = -1,
    clip: ClipOptions | None = None,
) -> tuple[np.ndarray, ...]:
    """The five per-pixel properties of a stack of dark frames (see the module docstring).

    Parameters
    ----------
    sci, err, dq, exptime, gain, axis, clip
        As in :func:`reject_cosmic_rays`.

    Returns
    -------
    sci_mean, err_mean, stability, nan_count, readnoise : numpy.ndarray
        Arrays of the input shape without the frame axis: float32 (e-/s, e-/s, 1),
        int32 (count of excluded samples: invalid or rejected), float32 (e-).
    """
    e, big_e, _, t, kept, pixel_shape, _ = _clipped_stack(sci, err, dq, exptime, gain, axis=axis,
                                                        clip=clip)
    n = e.shape[-1]
    # Sums over kept samples in float64, as products with the 0/1 mask (einsum: one pass).
    weight = kept.astype(np.float64)
    e = e.astype(np.float64)
    t = t.astype(np.float64)
    m = np.count_nonzero(kept, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        total_t = np.einsum("pn,n->p", weight, t[0])
        total_e = np.einsum("pn,pn->p", e, weight)
        sci_mean = total_e / total_t
        err_mean = np.einsum("pn,pn->p", big_e.astype(np.float64), weight) / total_t
        resid = sci_mean[:, None] * t
        np.subtract(e, resid, out=resid)
        resid *= weight
        scatter = np.einsum("pn,pn->p", resid, resid) / (m - 1)  # e-**2
        resid /= big_e
        chi2 = np.einsum("pn,pn->p", resid, resid)
        stability = np.sqrt(chi2 / (m - 1))
        readnoise = np.sqrt(np.maximum(scatter - np.maximum(total_e, 0) / m, 0))
    readnoise[m < 2] = np.nan
    stability[m < 2] = np.nan
    nan_count = (n - m).astype(np.int32)
    return (
        sci_mean.astype(_F32, copy=False).reshape(pixel_shape),
        err_mean.astype(_F32, copy=False).reshape(pixel_shape),
        stability.astype(_F32, copy=False).reshape(pixel_shape),
        nan_count.reshape(pixel_shape),
        readnoise.astype(_F32, copy=False).reshape(pixel_shape),
    )
