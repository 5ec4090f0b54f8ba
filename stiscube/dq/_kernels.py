"""Numpy kernels of the DQ rules: sigma-clipped statistics, hot masks, persistence.

No xarray, no dask, no I/O: :mod:`stiscube.dq` wraps these for the cube.

Sigma clipping
--------------
:func:`clipped_stats` reproduces :func:`astropy.stats.sigma_clipped_stats` with
``cenfunc="median"``, ``stdfunc="std"`` (population std, ddof = 0), symmetric limits
``sigma`` and at most ``maxiters`` iterations, on the finite values of a sample
(NaN and inf excluded), following astropy's C implementation step by step.  Writing
``K_0`` for the finite values, iteration ``i = 0, 1, ...`` computes::

    m_i  = median(K_i),   s_i = sqrt(mean((K_i - mean(K_i))**2))
    lo_i = m_i - sigma * s_i,   hi_i = m_i + sigma * s_i
    K_{i+1} = {x in K_i : lo_i <= x <= hi_i}

and stops when ``K_{i+1} == K_i`` or ``K_{i+1}`` is empty, or after ``maxiters``
iterations (None: until one of the first two).  The result is the median and std of
*all* finite values within the last ``[lo, hi]`` (astropy masks the whole sample with
the last bounds).  All statistics are float64; a float32 sample is clipped in its own
values (compared exactly in float64), as astropy does after converting it.

Each ``K_i`` is the intersection of intervals, so it is itself a value interval
``[A_i, B_i]``: the loop never needs the values themselves, only order statistics and
interval sums.  Those come from :class:`_RankIndex`, a one-pass radix index: every value
goes to one of at most 2**20 buckets by the top 20 bits of its float32 image (sign,
exponent and 11 mantissa bits, made order-preserving), each bucket keeping its count and
the sums of ``d = x - c`` and ``d**2`` about a centre ``c`` (the first median).  An
order statistic or an interval sum then costs one search over the occupied buckets plus
an exact look into the one or two buckets that hold the boundary (their members,
extracted once and sorted).  Rounding to float32 is monotone, so bucket order never
contradicts value order; values inside a bucket are compared in full precision.  The
medians are therefore exact; the std inside the loop is
``sqrt(S2/n - (S1/n)**2)`` from the shifted sums (relative error below ~1e-10; when the
kept values have drifted so far from the centre that cancellation would spoil that, it
is computed exactly from the values instead, as it is when a value lies within 1e-9 of a
bound, where the last bits of the std decide whether it is kept); the returned std
comes from the sums when their relative error is below ~1e-14, else from the values
(two-pass, as numpy).  On a 1024x1024 float32 frame this costs ~15-20 ms against
~60-65 ms for astropy's C path, which copies the kept values and selects their median
anew at every iteration (2-core VM under load; see ``benchmarks/bench_dq.py``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "clipped_stats",
    "clipped_threshold",
    "hot_mask",
    "persistent",
]

_SHIFT = 12  # bucket = top 32 - 12 = 20 bits of the order-preserving float32 key
_SIGN = np.uint32(0x80000000)


def _bucket_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving bucket ids (uint32, < 2**20) of float values.

    ``f = float32(x) + 0`` (monotone rounding, values beyond the float32 range become
    +-inf; ``-0.0`` becomes ``+0.0``), then the IEEE bits ``u`` of ``f`` map to ``~u``
    for negative and ``u | 2**31`` for positive numbers, which sorts like the numbers;
    the bucket is that key's top 20 bits.
    """
    with np.errstate(over="ignore"):
        f = np.add(values, np.float32(0.0), dtype=np.float32)
    u = f.view(np.uint32)
    key = np.where(u >= _SIGN, ~u, u | _SIGN)
    return key >> np.uint32(_SHIFT)


def _bucket_of(value: float) -> int:
    """:func:`_bucket_keys` of one number."""
    with np.errstate(over="ignore"):
        u = int((np.float32(value) + np.float32(0.0)).view(np.uint32))
    key = (~u & 0xFFFFFFFF) if u >= 0x80000000 else (u | 0x80000000)
    return key >> _SHIFT


class _RankIndex:
    """Order statistics and interval sums of a 1-D sample of finite float values.

    *x* is float32 or float64 (values are compared exactly in their own precision; sums
    are float64).  Bucket members are extracted lazily, in blocks of neighbouring
    buckets (one pass over the sample and one small sort per block): the ``n / 64``
    smallest and largest values together on the first request in either tail (where the
    clipping bounds fall), and about ``n / 64`` values around any other position.
    """

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        keys = _bucket_keys(x)
        self.base = int(keys.min())
        keys -= np.uint32(self.base)
        self.keys = keys  # uint32 bucket ids relative to base, for block extraction
        idx = keys.astype(np.intp)  # the same for np.bincount
        counts = np.bincount(idx)
        self.occupied = np.flatnonzero(counts)  # bucket ids (minus base), ascending
        self.cum = np.cumsum(counts[self.occupied])  # values in buckets <= position
        self.n = int(self.cum[-1])
        self.budget = max(4096, self.n // 64)
        self.tail = max(1024, self.n // 64)
        self._blocks: list[tuple[int, int, int, np.ndarray]] = []  # p1, p2, rank0, values
        self._tails_done = False
        self._idx = idx
        self.centre = math.nan
        self.s1 = self.s2 = np.empty(0)

    def set_centre(self, centre: float) -> None:
        """Per-bucket sums of ``d = x - centre`` and ``d**2`` (called once)."""
        self.centre = float(centre)
        d = np.subtract(self.x, self.centre, dtype=np.float64)
        self.s1 = np.bincount(self._idx, weights=d)[self.occupied]
        d *= d
        self.s2 = np.bincount(self._idx, weights=d)[self.occupied]
        del self._idx  # not needed any more

    # -- buckets ---------------------------------------------------------------------------
    def members(self, pos: int) -> np.ndarray:
        """Sorted values of the *pos*-th occupied bucket."""
        block = next((b for b in self._blocks if b[0] <= pos <= b[1]), None)
        if block is None:
            block = self._extract(pos)
        _, _, rank0, values = block
        return values[self._before(pos) - rank0 : int(self.cum[pos]) - rank0]

    def _block(self, p1: int, p2: int, inside: np.ndarray) -> tuple[int, int, int, np.ndarray]:
        block = (p1, p2, self._before(p1), np.sort(self.x[inside]))
        self._blocks.append(block)
        return block

    def _extract(self, pos: int) -> tuple[int, int, int, np.ndarray]:
        """Sort the values of the buckets around *pos*."""
        lo_end = int(np.searchsorted(self.cum, self.tail, side="left"))  # low tail: 0..lo_end
        hi_start = int(np.searchsorted(self.cum, self.n - self.tail, side="left")) + 1
        in_tails = pos <= lo_end or pos >= hi_start
        if in_tails and not self._tails_done and lo_end + 1 < hi_start:
            self._tails_done = True
            high = np.uint32(self.occupied[hi_start]) if hi_start < self.occupied.size else None
            low = self.keys <= np.uint32(self.occupied[lo_end])
            inside = low if high is None else low | (self.keys >= high)
            both = np.sort(self.x[inside])
            n_low = int(self.cum[lo_end])
            self._blocks.append((0, lo_end, 0, both[:n_low]))
            if high is not None:
                last = self.occupied.size - 1
                self._blocks.append((hi_start, last, self._before(hi_start), both[n_low:]))
            return next(b for b in self._blocks if b[0] <= pos <= b[1])
        half = self.budget // 2
        low_rank = self._before(pos) - half
        p1 = 0 if low_rank <= 0 else min(pos, int(np.searchsorted(self.cum, low_rank)) + 1)
        p2 = max(pos, int(np.searchsorted(self.cum, int(self.cum[pos]) + half, side="right")) - 1)
        b1 = np.uint32(self.occupied[p1])
        width = np.uint32(self.occupied[p2] - self.occupied[p1])
        return self._block(p1, p2, (self.keys - b1) <= width)  # b1 <= key <= b2, wrapping

    def _position(self, value: float) -> tuple[int, bool]:
        """First occupied bucket >= the bucket of *value*, and whether it is that bucket."""
        bucket = _bucket_of(value) - self.base
        pos = int(np.searchsorted(self.occupied, bucket, side="left"))
        same = pos < self.occupied.size and int(self.occupied[pos]) == bucket
        return pos, same

    def _before(self, pos: int) -> int:
        return int(self.cum[pos - 1]) if pos > 0 else 0

    # -- queries ---------------------------------------------------------------------------
    def kth(self, k: int) -> float:
        """The *k*-th smallest value (0-based)."""
        pos = int(np.searchsorted(self.cum, k, side="right"))
        return float(self.members(pos)[k - self._before(pos)])

    def median(self, a: int, b: int) -> float:
        """Median of the values of ranks ``a..b-1`` (mean of the middle two if even)."""
        count = b - a
        if count % 2:
            return self.kth(a + (count - 1) // 2)
        return 0.5 * (self.kth(a + count // 2) + self.kth(a + count // 2 - 1))

    def rank(self, value: float, *, inclusive: bool) -> int:
        """Number of values ``< value`` (or ``<= value`` when *inclusive*)."""
        if math.isnan(value):
            msg = "rank of NaN"
            raise ValueError(msg)
        pos, same = self._position(value)
        count = self._before(pos)
        if same:  # exact comparisons in float64 (a Python float would round to float32)
            side = "right" if inclusive else "left"
            count += int(np.searchsorted(self.members(pos), np.float64(value), side=side))
        return count

    def moments(self, lo: float, hi: float) -> tuple[int, float, float]:
        """Count and sums of ``x - centre`` and its square over values in ``[lo, hi]``."""
        plo, same_lo = self._position(lo)
        phi, same_hi = self._position(hi)
        if not same_hi:
            phi -= 1  # last occupied bucket below hi's bucket: wholly <= hi
        if phi < plo:
            return 0, 0.0, 0.0
        parts = []
        first, last = plo, phi
        if same_lo:
            parts.append(self._part(plo, lo, hi))
            first += 1
        if same_hi and phi >= first:
            parts.append(self._part(phi, lo, hi))
            last -= 1
        n = sum(p[0] for p in parts)
        s1 = sum(p[1] for p in parts)
        s2 = sum(p[2] for p in parts)
        if last >= first:
            n += int(self.cum[last]) - self._before(first)
            s1 += float(np.sum(self.s1[first : last + 1]))
            s2 += float(np.sum(self.s2[first : last + 1]))
        return n, s1, s2

    def _part(self, pos: int, lo: float, hi: float) -> tuple[int, float, float]:
        values = self.members(pos)
        i = int(np.searchsorted(values, np.float64(lo), side="left"))
        j = int(np.searchsorted(values, np.float64(hi), side="right"))
        d = np.subtract(values[i:j], self.centre, dtype=np.float64)
        return d.size, float(np.sum(d)), float(np.sum(d * d))


#: largest (mean - centre)**2 / variance for which the shifted sums keep ~1e-10 precision
#: (inside the loop) and ~1e-14 (for the returned std)
_MAX_OFFSET2 = 1e6
_MAX_OFFSET2_FINAL = 1e2


def _std_from(n: int, s1: float, s2: float, limit: float = _MAX_OFFSET2) -> float | None:
    """Population std from shifted sums, or None when cancellation would spoil it.

    ``var = S2/n - (S1/n)**2`` with ``S1/n = mean - centre``; its rounding error is about
    ``eps * (var + (mean - centre)**2)``, so it is trusted only while
    ``(mean - centre)**2 <= limit * var``.
    """
    if n == 0:
        return None
    offset = s1 / n
    var = s2 / n - offset * offset
    if offset * offset > limit * var:
        return None
    return math.sqrt(var)


def _exact_std(x: np.ndarray, lo: float, hi: float) -> float:
    """Two-pass float64 std of the values of *x* in ``[lo, hi]`` (numpy's, as astropy)."""
    lo, hi = np.float64(lo), np.float64(hi)  # compare in float64 even for float32 *x*
    return float(np.std(x[(x >= lo) & (x <= hi)], dtype=np.float64))


def _near(index: _RankIndex, value: float, tol: float) -> bool:
    """Whether some value lies within *tol* of *value*."""
    return index.rank(value + tol, inclusive=True) > index.rank(value - tol, inclusive=False)


def _bounds(
    index: _RankIndex, x: np.ndarray, median: float, sigma: float, lower: float, upper: float
) -> tuple[float, float]:
    """Clipping bounds ``median -+ sigma * std`` of the kept values (those in [lower, upper]).

    The std comes from the index's shifted sums unless those are imprecise, or a value
    lies so close to a bound (within 1e-9 of the bounds' scale) that the last bits of the
    std decide whether it is kept: then it is computed as numpy (and astropy) do, two-pass
    over the kept values.
    """
    std = _std_from(*index.moments(lower, upper))
    if std is not None:
        lo, hi = median - sigma * std, median + sigma * std
        tol = 1e-9 * (abs(median) + sigma * std)
        if not (_near(index, lo, tol) or _near(index, hi, tol)):
            return lo, hi
    std = _exact_std(x, lower, upper)
    return median - sigma * std, median + sigma * std


def clipped_stats(
    values: np.ndarray, *, sigma: float = 3.0, maxiters: int | None = 40
) -> tuple[float, float]:
    """Sigma-clipped median and std of the finite values of *values* (any shape).

    The same numbers as ``astropy.stats.sigma_clipped_stats(values, sigma=sigma,
    maxiters=maxiters, cenfunc="median", stdfunc="std")[1:]`` (see the module
    docstring for the algorithm), in float64.

    Parameters
    ----------
    values : numpy.ndarray
        The sample, any float or integer dtype; NaN and inf are excluded.
    sigma : float
        Clipping limit in standard deviations (> 0).
    maxiters : int or None
        Maximum number of clipping iterations (>= 1); None iterates to convergence.

    Returns
    -------
    median, std : float
        NaN, NaN when no value is finite.
    """
    if not (isinstance(sigma, int | float | np.floating | np.integer) and sigma > 0):
        msg = f"sigma must be a number > 0, got {sigma!r}"
        raise ValueError(msg)
    if maxiters is not None and (isinstance(maxiters, bool) or int(maxiters) < 1):
        msg = f"maxiters must be an integer >= 1 or None, got {maxiters!r}"
        raise ValueError(msg)
    x = np.asarray(values)
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False).ravel()
    finite = np.isfinite(x)
    if not finite.all():
        x = x[finite]
    if x.size == 0:
        return math.nan, math.nan
    index = _RankIndex(x)
    a, b = 0, index.n  # the kept set: ranks a..b-1, values in [A, B]
    lower, upper = -math.inf, math.inf
    median = index.median(a, b)
    index.set_centre(median)
    iteration = 0
    while True:
        lo, hi = _bounds(index, x, median, sigma, lower, upper)
        new_lower, new_upper = max(lower, lo), min(upper, hi)
        new_a = index.rank(new_lower, inclusive=False)
        new_b = index.rank(new_upper, inclusive=True)
        if new_b - new_a in (b - a, 0):
            break
        a, b, lower, upper = new_a, new_b, new_lower, new_upper
        iteration += 1
        if maxiters is not None and iteration >= maxiters:
            break
        median = index.median(a, b)
    # astropy's final statistics: every finite value within the last bounds
    a, b = index.rank(lo, inclusive=False), index.rank(hi, inclusive=True)
    if b <= a:  # only when the std overflowed to inf or NaN
        return math.nan, math.nan
    std = _std_from(*index.moments(lo, hi), limit=_MAX_OFFSET2_FINAL)
    return index.median(a, b), _exact_std(x, lo, hi) if std is None else std


def clipped_threshold(
    frames: np.ndarray,
    nsigma: float,
    *,
    clip_sigma: float = 3.0,
    maxiters: int | None = 40,
    axis: int | tuple[int, ...] = (-2, -1),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped median, std and the hot threshold ``median + nsigma * std``.

    :func:`clipped_stats` of the values over *axis*, separately for every index of the
    other axes (e.g. each frame of a ``(period, row, col)`` stack with
    ``axis=(1, 2)``).  Where all values along *axis* are non-finite, the outputs are NaN.

    Returns
    -------
    median, std, threshold : numpy.ndarray
        float64 arrays of the shape of *frames* without *axis*, in the units of
        *frames*.
    """
    data = np.asarray(frames)
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    axes = tuple(int(a) % data.ndim for a in axes)
    keep = tuple(a for a in range(data.ndim) if a not in axes)
    moved = np.moveaxis(data, axes, tuple(range(data.ndim - len(axes), data.ndim)))
    out_shape = tuple(data.shape[a] for a in keep)
    flat = moved.reshape(math.prod(out_shape), -1)
    median = np.full(flat.shape[0], np.nan)
    std = np.full(flat.shape[0], np.nan)
    for i, frame in enumerate(flat):  # one clip per frame
        median[i], std[i] = clipped_stats(frame, sigma=clip_sigma, maxiters=maxiters)
    median, std = median.reshape(out_shape), std.reshape(out_shape)
    return median, std, median + nsigma * std


def hot_mask(
    sci: np.ndarray,
    *,
    level: float | None = None,
    threshold: np.ndarray | float | None = None,
    combine: str = "or",
    axis: tuple[int, int] = (-2, -1),
) -> np.ndarray:
    """Hot-pixel mask of dark-rate frames: ``sci > level`` and/or ``sci > threshold``.

    Parameters
    ----------
    sci : numpy.ndarray
        ``sci_mean`` frames; *axis* are the frame (row, col) axes.
    level : float, optional
        Absolute level, in the units of *sci*: ``sci > level``.
    threshold : numpy.ndarray or float, optional
        Per-frame relative threshold (shape of *sci* without *axis*), e.g. from
        :func:`clipped_threshold`: ``sci > threshold``.
    combine : {"or", "and"}
        How the two tests combine when both are given.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as *sci*; all False when neither test is given.  NaN is never hot.
        The comparisons are made in float64 whatever the dtype of *sci* (exact for
        float32 values).
    """
    if combine not in ("or", "and"):
        msg = f"combine must be 'or' or 'and', got {combine!r}"
        raise ValueError(msg)
    sci = np.asarray(sci)
    parts = []
    with np.errstate(invalid="ignore"):  # float64 levels: compared in double precision
        if level is not None:
            parts.append(sci > np.float64(level))
        if threshold is not None:
            axes = tuple(int(a) % sci.ndim for a in axis)
            parts.append(sci > np.expand_dims(np.asarray(threshold, dtype=np.float64), axes))
    if not parts:
        return np.zeros(sci.shape, dtype=bool)
    if len(parts) == 1:
        return parts[0]
    return (parts[0] | parts[1]) if combine == "or" else (parts[0] & parts[1])


def persistent(masks: np.ndarray, k: int, *, axis: int = 0) -> np.ndarray:
    """True where *masks* holds in at least *k* entries along *axis*: ``sum(masks) >= k``."""
    return np.count_nonzero(masks, axis=axis) >= k
