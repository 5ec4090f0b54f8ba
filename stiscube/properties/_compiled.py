"""The compiled (numba) kernel of the per-pixel properties: clip and statistics in one pass.

:func:`band_properties` computes, for a band of rows of every frame, what the numpy
reference :func:`stiscube.properties._kernels.pixel_properties` computes (same clipping
decisions, same formulas, see that module), plus the per-frame counts of valid samples,
in one pass over the data: each pixel's samples are read once, clipped, and summed.  The
numpy kernels stay as this kernel's test oracle.

Differences from the numpy reference, by design:

- the sums of the statistics are accumulated in float64, as in the reference, but in
  another order, so results agree to float32 rounding, not bit for bit;
- the clipping arithmetic (rates, thresholds, medians) is float32 as in the reference,
  so the kept samples are the same.

The function is compiled on first use (``cache=True``: the machine code is cached next
to this module, so later processes load it in well under a second) and releases the GIL
(``nogil=True``), so dask's threads run blocks in parallel.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from stiscube.properties._kernels import ClipOptions, per_frame

__all__ = ["band_properties"]

_F32 = np.float32
_JIT = {"cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}


@numba.njit(**_JIT)
def _select(buf, k, lo, hi):  # pragma: no cover - compiled
    """Partially sort ``buf[lo:hi]`` so that ``buf[k]`` is its ``k``-th smallest value
    (everything before ``k`` is <= it, everything after >=); quickselect."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        # median of three as pivot, moved to hi - 1
        a, b, c = buf[lo], buf[mid], buf[hi - 1]
        if (a <= b) == (b <= c):
            p = mid
        elif (b <= a) == (a <= c):
            p = lo
        else:
            p = hi - 1
        pivot = buf[p]
        buf[p] = buf[hi - 1]
        buf[hi - 1] = pivot
        # branchless Lomuto partition: no mispredicted branch per element
        store = lo
        for i in range(lo, hi - 1):
            x = buf[i]
            buf[i] = buf[store]
            buf[store] = x
            store += x < pivot
        buf[hi - 1] = buf[store]
        buf[store] = pivot
        if store == k:
            return
        if k < store:
            hi = store
        else:
            lo = store + 1


@numba.njit(**_JIT)
def _median_of_first(buf, size, k):  # pragma: no cover - compiled
    """Median of ``k`` values whose order statistics up to rank ``k // 2`` are those of
    ``buf[:size]``, as the reference computes it: ``(x_lo + x_hi) * 0.5`` in float32 for
    ``lo = (k - 1) // 2``, ``hi = k // 2``; NaN if ``k == 0``.  Leaves ``buf[:size]``
    partitioned about ``x_lo``."""
    if k == 0:
        return np.float32(np.nan)
    lo = (k - 1) // 2
    _select(buf, lo, 0, size)
    x_lo = buf[lo]
    if k % 2 == 1:
        return x_lo
    x_hi = buf[lo + 1]
    for i in range(lo + 2, size):
        x_hi = min(x_hi, buf[i])
    return (x_lo + x_hi) * np.float32(0.5)


@numba.njit(**_JIT)
def _median(values, mask, buf):  # pragma: no cover - compiled
    """Median of ``values[mask]`` (see :func:`_median_of_first`), gathered into ``buf``."""
    k = 0
    for i in range(values.size):
        if mask[i]:
            buf[k] = values[i]
            k += 1
    return _median_of_first(buf, k, k)


@numba.njit(**_JIT)
def _protect_state(
    sel, rate, e, t, v, buf, state, protected, cand, state_sigma, min_count
):  # pragma: no cover - compiled
    """The state test of the clip for the samples ``sel``: their median rate is a level,
    the samples within ``state_sigma`` of it (Poisson + read variance) are its members,
    and if there are at least ``min_count`` of them they are protected from the clip
    (dropped from ``cand``).  Returns how many were protected (0 or the member count)."""
    level = _median(rate, sel, buf)
    n_members = 0
    for i in range(sel.size):
        member = False
        if sel[i]:
            lt = level * t[i]
            dev = abs(e[i] - lt) / np.sqrt(v[i] + max(lt, np.float32(0)))
            member = dev <= state_sigma
        state[i] = member
        n_members += member
    if n_members < min_count:
        return 0
    for i in range(sel.size):
        if state[i]:
            protected[i] = True
            cand[i] = False
    return n_members


@numba.njit(**_JIT)
def _bands(
    sci, err, dq, t, g, dq_mask, k2, maxiters, state_fraction, min_state, state_sigma,
    min_tail,
    out_mean, out_err, out_stab, out_nan, out_rn, out_valid,
):  # pragma: no cover - compiled
    n, rows, cols = sci.shape
    e = np.empty(n, np.float32)
    big_e = np.empty(n, np.float32)
    v = np.empty(n, np.float32)
    rate = np.empty(n, np.float32)
    buf = np.empty(n, np.float32)
    valid = np.empty(n, np.bool_)
    kept = np.empty(n, np.bool_)
    protected = np.empty(n, np.bool_)
    cand = np.empty(n, np.bool_)
    state = np.empty(n, np.bool_)
    tail = np.empty(n, np.bool_)
    ordered = np.empty(n, np.float32)
    zero = np.float32(0)
    one = np.float32(1)
    for r in range(rows):
        for c in range(cols):
            n_valid = 0
            for i in range(n):
                s = sci[i, r, c]
                x = err[i, r, c]
                ok = np.isfinite(s) & (x > 0) & (x < np.inf) & ((dq[i, r, c] & dq_mask) == 0)
                valid[i] = ok
                kept[i] = ok
                protected[i] = False
                out_valid[r, i] += ok
                # invalid samples hold harmless values (e = 0, E = 1, v = 0)
                ei = s * g[i] if ok else zero
                xi = x * g[i] if ok else one
                e[i] = ei
                big_e[i] = xi
                v[i] = max(xi * xi - max(ei, zero), zero)
                rate[i] = ei / t[i]
                ordered[n_valid] = rate[i]
                n_valid += ok
            min_count = max(min_state, math.ceil(state_fraction * n_valid))
            # ``ordered[:low + 1]`` holds the low + 1 smallest valid rates after this
            # median; while every rejected rate exceeds ``x_low`` (cosmic rays lie above
            # the centre) the kept median is found among them, as in the reference's
            # _kept_median, without gathering the samples again.
            center = _median_of_first(ordered, n_valid, n_valid)
            low = (n_valid - 1) // 2
            x_low = ordered[low] if n_valid > 0 else zero
            min_rejected = np.float32(np.inf)
            m = n_valid
            for _ in range(maxiters):
                n_cand = 0
                for i in range(n):
                    ct = center * t[i]
                    d = e[i] - ct
                    limit = (max(ct, zero) + v[i]) * k2
                    hit = kept[i] & ~protected[i] & (d > zero) & (d * d > limit)
                    cand[i] = hit
                    n_cand += hit
                if n_cand >= min_count:
                    n_cand -= _protect_state(
                        cand, rate, e, t, v, buf, state, protected, cand, state_sigma, min_count
                    )
                if min_tail > 0 and n_cand >= min_tail:
                    # level to the end: the candidates after the last kept non-candidate
                    n_tail = 0
                    for i in range(n):
                        tail[i] = False
                    for i in range(n - 1, -1, -1):
                        if cand[i]:
                            tail[i] = True
                            n_tail += 1
                        elif kept[i]:
                            break
                    if n_tail >= min_tail:
                        n_cand -= _protect_state(
                            tail, rate, e, t, v, buf, state, protected, cand, state_sigma, min_tail
                        )
                if n_cand == 0:
                    break
                for i in range(n):
                    if cand[i]:
                        kept[i] = False
                        min_rejected = min(min_rejected, rate[i])
                m -= n_cand
                if min_rejected > x_low:  # the kept median's ranks are all <= low
                    # (m <= n_valid - 1, so its median's ranks are <= low)
                    center = _median_of_first(ordered, low + 1, m)
                else:
                    center = _median(rate, kept, buf)
            # the statistics of the kept samples (float64 sums)
            m = 0
            sum_t = 0.0
            sum_e = 0.0
            sum_big_e = 0.0
            for i in range(n):
                w = kept[i]
                m += w
                sum_t += t[i] if w else 0.0
                sum_e += e[i] if w else 0.0
                sum_big_e += big_e[i] if w else 0.0
            mean = sum_e / sum_t
            chi2 = 0.0
            scatter = 0.0
            for i in range(n):
                d = e[i] - mean * t[i]
                z = d / big_e[i]
                chi2 += z * z if kept[i] else 0.0
                scatter += d * d if kept[i] else 0.0
            out_mean[r, c] = mean
            out_err[r, c] = sum_big_e / sum_t
            out_nan[r, c] = n - m
            if m >= 2:
                out_stab[r, c] = math.sqrt(chi2 / (m - 1))
                rn2 = scatter / (m - 1) - max(sum_e, 0.0) / m
                out_rn[r, c] = math.sqrt(max(rn2, 0.0))
            else:
                out_stab[r, c] = np.nan
                out_rn[r, c] = np.nan


def band_properties(
    sci: Any, err: Any, dq: Any, exptime: Any, gain: Any, *, clip: ClipOptions
) -> tuple[np.ndarray, ...]:
    """The five properties of a band of rows of every frame, and its valid-sample counts.

    Parameters
    ----------
    sci, err : array_like, shape (n, rows, cols)
        Science and error values in counts, frames first (as stored and as
        :func:`stiscube.io.darks.open_darks` reads them; any strides).
    dq : array_like of int, shape (n, rows, cols), or None
        DQ flags; samples with ``dq & clip.dq_mask != 0`` are not valid.
    exptime, gain : array_like, shape (n,)
        Exposure time (s, times the temperature factor) and gain (e-/count) per frame.
    clip : ClipOptions
        The clipping clip.

    Returns
    -------
    sci_mean, err_mean, stability, nan_count, readnoise : numpy.ndarray, shape (rows, cols)
        As :func:`stiscube.properties._kernels.pixel_properties` (float32; nan_count int32).
    valid_count : numpy.ndarray of int32, shape (rows, n)
        Per row and frame, the number of pixels with a valid sample (finite SCI, finite
        ``ERR > 0``, DQ not masked).
    """
    sci = np.asarray(sci)
    err = np.asarray(err)
    if sci.ndim != 3 or sci.shape != err.shape:
        msg = (
            f"sci and err must be (n, rows, cols) arrays of one shape, got {sci.shape} and "
            f"{err.shape}"
        )
        raise ValueError(msg)
    n, rows, cols = sci.shape
    dq_mask = int(clip.dq_mask)
    if dq is None or dq_mask == 0:
        dq = np.broadcast_to(np.zeros(1, np.int16).reshape(1, 1, 1), sci.shape)
        dq_mask = 0
    else:
        dq = np.asarray(dq)
        if dq.shape != sci.shape:
            msg = f"dq must have the shape of sci {sci.shape}, got {dq.shape}"
            raise ValueError(msg)
    t = per_frame(exptime, n, "exptime")[0]
    g = per_frame(gain, n, "gain")[0]
    outputs = [np.empty((rows, cols), np.float32) for _ in range(3)]
    nan_count = np.empty((rows, cols), np.int32)
    readnoise = np.empty((rows, cols), np.float32)
    valid_count = np.zeros((rows, n), np.int32)
    k2 = _F32(min(clip.cr_sigma**2, float(np.finfo(np.float32).max)))
    _bands(
        sci.astype(_F32, copy=False),
        err.astype(_F32, copy=False),
        dq,
        t,
        g,
        np.int64(dq_mask),
        k2,
        int(clip.maxiters),
        float(clip.state_fraction),
        int(clip.min_state),
        _F32(clip.state_sigma),
        int(clip.min_tail),
        *outputs,
        nan_count,
        readnoise,
        valid_count,
    )
    return (*outputs, nan_count, readnoise, valid_count)
