"""Vectorised rendering of the simulator's scenes: stars, cosmic rays, binning.

Stars are drawn as per-star stamps computed for all stars at once by broadcasting
(``(n_star, size, size)`` arrays, in chunks to bound memory) and added to the image
with one :func:`numpy.bincount` per chunk; there is no Python loop over stars or
pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bin2x2", "cosmic_rays", "moffat_alpha", "psf_profile", "render_stars"]

_CHUNK = 1024


def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat core width ``alpha = FWHM / (2 sqrt(2^(1/beta) - 1))`` in px."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def psf_profile(r2: np.ndarray, *, psf: str, fwhm: float, beta: float) -> np.ndarray:
    """Unnormalised PSF surface brightness at squared radius *r2* (px^2).

    - ``"moffat"``: ``(1 + r^2 / alpha^2) ** -beta`` with :func:`moffat_alpha`;
    - ``"gaussian"``: ``exp(-r^2 / (2 sigma^2))`` with ``sigma = FWHM / 2.3548``.
    """
    if psf == "moffat":
        alpha = moffat_alpha(fwhm, beta)
        return (1.0 + r2 / alpha**2) ** (-beta)
    if psf == "gaussian":
        sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        return np.exp(-0.5 * r2 / sigma**2)
    msg = f"psf must be 'moffat' or 'gaussian', got {psf!r}"
    raise ValueError(msg)


def render_stars(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    *,
    psf: str = "moffat",
    fwhm: float = 1.8,
    beta: float = 3.5,
    half_size: int = 12,
    subsample: int = 2,
) -> np.ndarray:
    """Image of point sources: each star's total flux spread over its stamp.

    A star at 0-based ``(x, y)`` with flux ``F`` (e-) adds ``F * P_ij / sum(P)`` to the
    pixels of a ``(2 half_size + 1)^2`` stamp centred on its nearest pixel, where
    ``P_ij`` is the PSF averaged over ``subsample x subsample`` points inside pixel
    ``ij``.  The stamp sums to exactly ``F`` (the PSF is truncated at the stamp and
    renormalised), so a star's true total flux is known exactly; pixels of the stamp
    that fall outside the image are lost.

    Returns
    -------
    ndarray of float64, shape *shape*
    """
    ny, nx = shape
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    flux = np.asarray(flux, dtype=float)
    out = np.zeros(ny * nx)
    near = (x > -half_size - 1) & (x < nx + half_size) & (y > -half_size - 1)
    near &= y < ny + half_size
    x, y, flux = x[near], y[near], flux[near]
    offsets = np.arange(-half_size, half_size + 1)
    sub = (np.arange(subsample) + 0.5) / subsample - 0.5  # subpixel centres in a pixel
    # sample points relative to the stamp's central pixel: (size * subsample,)
    grid = (offsets[:, None] + sub[None, :]).ravel()
    size = offsets.size
    for start in range(0, x.size, _CHUNK):  # chunks bound the memory of the stamps
        cx = np.rint(x[start : start + _CHUNK]).astype(np.int64)
        cy = np.rint(y[start : start + _CHUNK]).astype(np.int64)
        dx = (cx - x[start : start + _CHUNK])[:, None] + grid[None, :]  # (n, S*k)
        dy = (cy - y[start : start + _CHUNK])[:, None] + grid[None, :]
        r2 = dy[:, :, None] ** 2 + dx[:, None, :] ** 2  # (n, S*k, S*k)
        prof = psf_profile(r2, psf=psf, fwhm=fwhm, beta=beta)
        n = prof.shape[0]
        prof = prof.reshape(n, size, subsample, size, subsample).mean(axis=(2, 4))
        prof *= (flux[start : start + _CHUNK] / prof.sum(axis=(1, 2)))[:, None, None]
        px = cx[:, None, None] + offsets[None, None, :]
        py = cy[:, None, None] + offsets[None, :, None]
        inside = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
        idx = (py * nx + px)[inside]
        out += np.bincount(idx, weights=prof[inside], minlength=ny * nx)
    return out.reshape(ny, nx)


def cosmic_rays(
    shape: tuple[int, int], rng: np.random.Generator, *, expected: float, max_length: int = 5,
    mean_energy: float = 1200.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosmic-ray hits: short straight tracks of 1 to *max_length* pixels.

    The number of events is Poisson with mean *expected*; each starts at a uniformly
    random pixel, runs in a random direction, and deposits a log-normally distributed
    charge (median *mean_energy* e-) in each pixel it crosses.

    Returns
    -------
    charge : ndarray of float64, shape *shape*
        Deposited charge, e-.
    hit : ndarray of bool, shape *shape*
        Pixels hit.
    """
    ny, nx = shape
    n = rng.poisson(expected)
    x0 = rng.uniform(0, nx, n)
    y0 = rng.uniform(0, ny, n)
    angle = rng.uniform(0, np.pi, n)
    length = rng.integers(1, max_length + 1, n)
    step = np.arange(max_length)
    px = np.floor(x0[:, None] + step[None, :] * np.cos(angle)[:, None]).astype(np.int64)
    py = np.floor(y0[:, None] + step[None, :] * np.sin(angle)[:, None]).astype(np.int64)
    energy = mean_energy * rng.lognormal(0.0, 0.5, (n, max_length))
    keep = (step[None, :] < length[:, None]) & (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    idx = (py * nx + px)[keep]
    charge = np.bincount(idx, weights=energy[keep], minlength=ny * nx).reshape(ny, nx)
    hit = np.bincount(idx, minlength=ny * nx).reshape(ny, nx) > 0
    return charge, hit


def bin2x2(sci: np.ndarray, err: np.ndarray, dq: np.ndarray):
    """On-chip 2x2 binning: sums of SCI, quadrature sums of ERR, OR of DQ.

    An odd trailing row or column is dropped.
    """
    ny, nx = (sci.shape[0] // 2) * 2, (sci.shape[1] // 2) * 2

    def blocks(a):
        return a[:ny, :nx].reshape(ny // 2, 2, nx // 2, 2)

    s = blocks(sci).sum(axis=(1, 3))
    e = np.sqrt((blocks(err).astype(float) ** 2).sum(axis=(1, 3)))
    d = np.bitwise_or.reduce(np.bitwise_or.reduce(blocks(dq), axis=3), axis=1)
    return s.astype(sci.dtype), e.astype(err.dtype), d.astype(dq.dtype)
