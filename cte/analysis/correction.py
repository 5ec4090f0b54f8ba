"""Apply a fitted CTE loss model to a user's photometry.

A star of true (unattenuated) flux ``F`` that crosses ``n`` parallel transfers is
observed with flux::

    F_obs = F (1 - L(F, mjd, B) n / 2048)

where ``L`` is the fitted model (:class:`cte.analysis.model.FittedLoss`, the formula of
:mod:`cte.analysis.lossmodel`; the linear formula, not clipped at 0).  Because ``L`` depends on
the true flux, the equation is solved for ``F`` by the fixed-point iteration::

    F_0 = F_obs,   F_{k+1} = F_obs / (1 - L(F_k) n / 2048)

which converges fast: its contraction factor is ``|dL/dx| n / (2048 ln 10) / (1 - L n
/ 2048)``, a few per cent for realistic coefficients (``x = log10(F / 1000 e-)``).

Uncertainties, from the implicit function ``g(F) = F (1 - L k) - F_obs = 0`` with
``k = n / 2048`` and ``D = 1 - L k - k (dL/dx) / ln 10``::

    model:       sigma_F = F k sigma_L / |D|,   sigma_L = sqrt(a^T C a)
    photometric: sigma_F = sigma_obs / |D|

combined in quadrature (``flux_err``); ``C`` is the coefficient covariance of the fit
and ``a`` the basis row at the solution.

Inputs outside the model's domain are refused before anything is computed: transfers
outside ``[0, 2051]``, non-finite or non-positive fluxes, and fluxes (observed),
MJDs or backgrounds outside the ranges the model was fitted on (with
``out_of_range="nan"`` the latter give NaN instead).  A model fitted without the background
terms ``b, bx`` (dropped when the cells' backgrounds span too little) does not depend on the
background, so any finite background >= 0 is accepted.
"""

from __future__ import annotations

import logging
from os import PathLike
from typing import NamedTuple

import numpy as np

from cte.analysis.lossmodel import BASIS_TERMS, basis, model_variables
from cte.analysis.model import _BACKGROUND_TERMS, CTEModel, FittedLoss
from cte.exceptions import OutOfRangeError
from stores.common.validate import as_float, as_int, one_of

__all__ = ["Correction", "correct"]

logger = logging.getLogger(__name__)

#: rows of a UVIS chip: the largest possible number of parallel transfers
MAX_TRANSFERS = 2051


class Correction(NamedTuple):
    """Result of :func:`correct` (arrays of the broadcast input shape).

    Parameters
    ----------
    flux : ndarray
        CTE-corrected (true) flux, e-.
    flux_err : ndarray
        Its 1-sigma uncertainty, e- (model and, if given, photometric, in quadrature).
    model_err : ndarray
        The part of ``flux_err`` due to the model's coefficient uncertainty, e-.
    loss : ndarray
        Model loss per 2048 transfers at the corrected flux.
    iterations : int
        Fixed-point iterations made.
    """

    flux: np.ndarray
    flux_err: np.ndarray
    model_err: np.ndarray
    loss: np.ndarray
    iterations: int


def _resolve_model(model, config) -> FittedLoss:
    if isinstance(model, str | PathLike):
        model = CTEModel.read(model)
    if isinstance(model, FittedLoss):
        if config:
            wrong = {k: v for k, v in config.items() if str(model.config.get(k)) != str(v)
                     and not (k == "aperture" and np.isclose(float(model.config[k]), float(v)))}
            if wrong:
                msg = f"config {wrong} does not match the model given ({model.describe()})"
                raise ValueError(msg)
        return model
    if isinstance(model, CTEModel):
        return model.select(**(config or {}))
    msg = (
        "model must be a cte.FittedLoss, a cte.CTEModel (with config=...) or "
        f"the path of a coefficient table, got {type(model).__name__}"
    )
    raise TypeError(msg)


def _first_bad(name: str, values: np.ndarray, bad: np.ndarray, allowed: str) -> str:
    index = tuple(int(i) for i in np.argwhere(bad)[0]) if values.ndim else ()
    return (
        f"{name} must lie in {allowed}: {int(bad.sum())} of {values.size} value(s) "
        f"outside, first {float(values[index])!r} at index {index}"
    )


def _mjd_values(mjd) -> np.ndarray:
    """MJD (d, float) of numbers (kept as given, NaN included) or of date-likes."""
    from astropy.time import Time

    from stores.common.dates import to_mjd

    if not isinstance(mjd, Time) and np.asarray(mjd).dtype.kind in "iufb":
        return np.asarray(mjd, dtype=float)
    return np.asarray(to_mjd(mjd), dtype=float)  # Time, datetime, datetime64, str


def correct(
    flux,
    transfers,
    mjd,
    background,
    *,
    model,
    config: dict | None = None,
    flux_err=None,
    out_of_range: str = "raise",
    rtol: float = 1e-10,
    maxiter: int = 100,
) -> Correction:
    """Correct observed aperture fluxes for CTE loss with a fitted model.

    Parameters
    ----------
    flux : array_like
        Observed background-subtracted aperture flux, e- (same aperture as the model).
    transfers : array_like
        Parallel transfers: y (0-based row) on chip 2, ``2051 - y`` on chip 1.
    mjd : array_like or date-like
        Exposure start: MJD (d) numbers, or dates as :mod:`stiscube` accepts them
        (:class:`astropy.time.Time`, :class:`datetime.datetime`, ``numpy.datetime64``,
        ``'YYYY-MM-DD[ HH:MM:SS]'`` strings, scalar or array-like; see
        :func:`stores.common.dates.to_mjd`).
    background : array_like
        Local background (sky + flash), e-/px.
    model : FittedLoss, CTEModel or path
        The fitted model, a collection plus *config*, or an ECSV coefficient table.
    config : dict, optional
        Selects the configuration in a :class:`CTEModel` (keys of
        :data:`cte.schema.MODEL_CONFIG_KEYS`: target, filter, exptime_class, ctecorr,
        aperture).
    flux_err : array_like, optional
        1-sigma error of *flux*, e-; propagated into ``flux_err`` of the result.
    out_of_range : {"raise", "nan"}
        What to do with flux, MJD or background outside the fitted range.
    rtol : float
        Relative convergence tolerance of the iteration.
    maxiter : int
        Maximum number of iterations.

    Returns
    -------
    Correction

    Raises
    ------
    OutOfRangeError
        For invalid transfers or fluxes, or (``out_of_range="raise"``) inputs outside
        the fitted ranges; the message names the parameter, the allowed range, the
        number of offending values and the first of them.
    """
    out_of_range = one_of(out_of_range, "out_of_range", ("raise", "nan"))
    rtol = as_float(rtol, "rtol", min=0, strict_min=True)
    maxiter = as_int(maxiter, "maxiter", min=1, allow_integral_float=True)
    fit = _resolve_model(model, config)
    arrays = [np.asarray(v, dtype=float) for v in (flux, transfers)]
    arrays += [_mjd_values(mjd), np.asarray(background, dtype=float)]
    if flux_err is not None:
        arrays.append(np.asarray(flux_err, dtype=float))
    try:
        arrays = np.broadcast_arrays(*arrays)
    except ValueError as err:
        shapes = [np.shape(a) for a in arrays]
        msg = f"flux, transfers, mjd, background (and flux_err) must broadcast, got {shapes}"
        raise ValueError(msg) from err
    f_obs, n, mjd_a, bkg = arrays[:4]
    f_err = arrays[4] if flux_err is not None else None

    # --- validation, before computing anything ---------------------------------
    bad_n = ~np.isfinite(n) | (n < 0) | (n > MAX_TRANSFERS)
    if bad_n.any():
        raise OutOfRangeError(_first_bad("transfers", n, bad_n, f"[0, {MAX_TRANSFERS}]"))
    bad_f = ~np.isfinite(f_obs) | (f_obs <= 0)
    if bad_f.any():
        raise OutOfRangeError(_first_bad("flux", f_obs, bad_f, "(0, inf) e- and be finite"))
    if f_err is not None:
        bad_e = ~np.isfinite(f_err) | (f_err < 0)
        if bad_e.any():
            raise OutOfRangeError(_first_bad("flux_err", f_err, bad_e, "[0, inf) e-"))
    ranges = [("flux", f_obs, fit.flux_range, "e-"), ("mjd", mjd_a, fit.mjd_range, "d")]
    if set(fit.terms) & set(_BACKGROUND_TERMS):
        ranges.append(("background", bkg, fit.background_range, "e-/px"))
    else:  # the model does not depend on the background: any level it can be computed at
        bad_b = ~np.isfinite(bkg) | (bkg < 0)
        if bad_b.any():
            raise OutOfRangeError(_first_bad("background", bkg, bad_b, "[0, inf) e-/px"))
    outside = np.zeros(f_obs.shape, dtype=bool)
    for name, values, (lo, hi), unit in ranges:
        bad = ~np.isfinite(values) | (values < lo) | (values > hi)
        if bad.any():
            allowed = f"the fitted range [{lo:.6g}, {hi:.6g}] {unit} of {fit.describe()}"
            text = _first_bad(name, values, bad, allowed)
            if out_of_range == "raise":
                raise OutOfRangeError(text)
            logger.info("correct(): %s; set to NaN", text)
            outside |= bad

    # --- fixed-point solution --------------------------------------------------
    k = n / 2048.0
    f_true = f_obs.copy()
    iterations = 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        while True:  # fixed-point iterations, not a loop over stars
            if iterations == maxiter:
                msg = f"correct() did not converge to rtol={rtol} in {maxiter} iterations"
                raise RuntimeError(msg)
            iterations += 1
            kept = 1.0 - fit.loss(f_true, mjd_a, bkg) * k
            if np.any(kept[~outside] <= 0):
                msg = (
                    f"the model of {fit.describe()} predicts a total loss (1 - L n / 2048 "
                    "<= 0) for some inputs; cannot correct"
                )
                raise OutOfRangeError(msg)
            f_new = f_obs / kept
            change = np.abs(f_new - f_true) / f_new
            f_true = f_new
            if not np.any(change[~outside] > rtol):
                break

        x, t, b = model_variables(f_true, mjd_a, bkg)
        design = basis(x, t, b)
        loss = design @ fit.coefficients
        loss_err = np.sqrt(np.einsum("...i,ij,...j->...", design, fit.covariance, design))
        c = dict(zip(BASIS_TERMS, fit.coefficients, strict=True))
        dl_dx = c["x"] + 2.0 * c["x2"] * x + c["xt"] * t + c["bx"] * b
        d = np.abs(1.0 - loss * k - k * dl_dx / np.log(10.0))
        model_err = f_true * k * loss_err / d
        total_err = model_err if f_err is None else np.hypot(model_err, f_err / d)

    def finish(values):
        return np.where(outside, np.nan, values)

    return Correction(
        flux=finish(f_true),
        flux_err=finish(total_err),
        model_err=finish(model_err),
        loss=finish(loss),
        iterations=iterations,
    )
