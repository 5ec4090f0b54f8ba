"""The CTE-loss formula shared by the simulator (as its truth) and the fitted model.

The loss ``L`` is the fraction of a star's flux lost per 2048 parallel transfers.  It
is modelled as a linear combination of basis terms in three variables:

- ``x = log10(flux / 1000 e-)`` — the star's (unattenuated) flux;
- ``t = (mjd - 55000) / 365.25`` — years since MJD 55000 (2009-06-18, shortly after
  WFC3 was installed);
- ``b = log10(1 + background / (1 e-/px))`` — the local sky plus flash background.

::

    L(x, t, b) = c0 + c1 x + c2 x^2 + c3 t + c4 x t + c5 b + c6 b x

Faint stars lose more (``c1 < 0``), the loss grows with time (``c3 > 0``) and shrinks
with background (``c5 < 0``).  A star that crosses ``n`` transfers keeps the fraction
``1 - L n / 2048`` of its flux.  Because ``L`` is linear in the coefficients, the fit is
a single weighted linear least-squares problem over all epochs, fluxes and backgrounds
at once (see :mod:`cte.analysis.model`), and the simulator's truth is a member of the same family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BASIS_TERMS", "FORMULA", "LossModel", "basis", "model_variables"]

#: MJD origin of the time variable ``t`` (years since this date)
MJD_ORIGIN = 55000.0
#: flux scale of ``x = log10(flux / FLUX_SCALE)``, in e-
FLUX_SCALE = 1000.0
#: names of the basis terms, in the order of the coefficients
BASIS_TERMS: tuple[str, ...] = ("1", "x", "x2", "t", "xt", "b", "bx")
#: the formula in one line of text, for the headers, tables and pages that record it
FORMULA: str = (
    "L = c_1 + c_x x + c_x2 x^2 + c_t t + c_xt x t + c_b b + c_bx b x; "
    f"x = log10(flux / {FLUX_SCALE:g} e-), t = (MJD - {MJD_ORIGIN:g}) / 365.25 yr, "
    "b = log10(1 + background / (e-/px)); L = fraction of flux lost per 2048 parallel "
    "transfers; a star crossing n transfers keeps 1 - L n / 2048 of its flux"
)


def model_variables(flux, mjd, background) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(x, t, b)`` for flux in e-, MJD in days and background in e-/px.

    Parameters
    ----------
    flux : array-like
        Flux, e-.
    mjd : array-like
        Exposure start, MJD.
    background : array-like
        Local background, e-/pixel.
    """
    flux = np.asarray(flux, dtype=float)
    x = np.log10(flux / FLUX_SCALE)
    t = (np.asarray(mjd, dtype=float) - MJD_ORIGIN) / 365.25
    b = np.log10(1.0 + np.asarray(background, dtype=float))
    return x, t, b


def basis(x, t, b, terms: Sequence[str] = BASIS_TERMS) -> np.ndarray:
    """Design matrix of the loss model: shape ``(*broadcast(x, t, b).shape, len(terms))``.

    Parameters
    ----------
    x, t, b : array-like
        The model variables of :func:`model_variables`.
    terms : sequence of str
        Terms of :data:`BASIS_TERMS`, the columns in this order.
    """
    x, t, b = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t, b)))
    columns = {
        "1": np.ones_like(x),
        "x": x,
        "x2": x * x,
        "t": t,
        "xt": x * t,
        "b": b,
        "bx": b * x,
    }
    unknown = [term for term in terms if term not in columns]
    if unknown:
        msg = f"terms must be drawn from {BASIS_TERMS}, got unknown {unknown}"
        raise ValueError(msg)
    return np.stack([columns[term] for term in terms], axis=-1)


@dataclass(frozen=True)
class LossModel:
    """Coefficients of the loss formula (see the module docstring).

    Parameters
    ----------
    coefficients : dict of str to float
        Coefficient of each basis term; terms not given are zero.
    """

    coefficients: Mapping[str, float]

    def __post_init__(self) -> None:
        unknown = [t for t in self.coefficients if t not in BASIS_TERMS]
        if unknown:
            msg = f"coefficients must be keyed by terms of {BASIS_TERMS}, got unknown {unknown}"
            raise ValueError(msg)

    @property
    def vector(self) -> np.ndarray:
        return np.array([float(self.coefficients.get(t, 0.0)) for t in BASIS_TERMS])

    def loss(self, flux, mjd, background) -> np.ndarray:
        """Fraction of flux lost per 2048 transfers (clipped at 0 from below).

        Parameters
        ----------
        flux : array-like
            Flux, e-.
        mjd : array-like
            Exposure start, MJD.
        background : array-like
            Local background, e-/pixel.
        """
        design = basis(*model_variables(flux, mjd, background))
        return np.clip(design @ self.vector, 0.0, None)

    def surviving_fraction(self, flux, mjd, background, transfers) -> np.ndarray:
        """Fraction of flux a star keeps after ``transfers`` parallel transfers.

        Parameters
        ----------
        flux : array-like
            Flux, e-.
        mjd : array-like
            Exposure start, MJD.
        background : array-like
            Local background, e-/pixel.
        transfers : array-like
            Parallel transfers of the star.
        """
        return 1.0 - self.loss(flux, mjd, background) * np.asarray(transfers, float) / 2048.0
