"""The CTE correction model: one joint weighted fit of the loss per configuration.

For every configuration (target x filter x exposure class x FLT/FLC x aperture) all
the measured cells (pairs x flux bins, every epoch and flash level) are fitted at once
with the loss formula of :mod:`cte.analysis.lossmodel`::

    L(x, t, b) = c0 + c1 x + c2 x^2 + c3 t + c4 x t + c5 b + c6 b x
    x = log10(F / 1000 e-),  t = (MJD - 55000) / 365.25,  b = log10(1 + B / (e-/px))

by weighted linear least squares (weights ``1 / sigma_k^2``, ``sigma_k`` the cell's
``loss_err``, optionally combined in quadrature with an extra systematic term).  The
model of a cell is the (leverage-weighted, see :mod:`cte.analysis.loss`) mean of ``L`` over its
stars, which is linear in the coefficients: the design row is ``basis(xbar, t, b)``
with the variance of the stars' ``x`` added to the ``x^2`` column
(``mean(x^2) = xbar^2 + var(x)``), where ``xbar`` and ``var(x)`` come from
:func:`cte.analysis.loss.measure_loss` (``flux``, ``log_flux_var``) and ``b`` from the cell's
mean local background.  Unlike a per-epoch polynomial this fits the time terms
directly, and no flux range is dropped (seed item 4).

The overlapping bins of the monitor (500-2000 = 500-1000 + 1000-2000, and 2000-8000)
re-use the same stars, so their errors are correlated; by default only a set of
non-overlapping bins enters the fit (narrowest first; for the default bins they still
cover the whole 250-32000 e- range and every star once), see *flux_bins* of
:func:`fit_model`.

Terms a configuration's data cannot determine are left out (coefficient 0, error NaN,
listed in ``terms`` and, with the reason, in ``dropped``):

- the time terms ``t, xt`` when the cells come from a single epoch (pairs less than
  :data:`EPOCH_GAP_DAYS` apart form one, see :func:`epochs`) or the epochs span
  less than ``min_time_span`` years;
- the flux terms by the number ``k`` of distinct flux bins with data: a polynomial of
  degree ``d`` in ``x`` needs ``k >= d + 2`` bins (one more than its parameters, so the
  shape is tested by the data): ``x2`` needs 4 bins, ``x`` (and ``xt``, ``bx``) 3;
- the background terms ``b, bx`` when ``b`` spans less than ``min_background_span`` dex;
- the interactions only where the flux slope is measured more than once: ``xt`` needs
  two epochs with 3 flux bins each, ``bx`` two flash levels with 3 flux bins each;
- then, while the cells do not outnumber the terms, ``xt``, ``bx``, ``x2``, ``x``,
  ``t``, ``b`` in this order.

A configuration with fewer than two usable cells or a rank-deficient design is skipped
with the reason (:attr:`CTEModel.skipped`); its data are shown without a model.

Coefficient covariance: ``C = (A^T W A)^-1``; the reduced chi-square
``chi2 / (n - p)`` is reported, and when it exceeds 1 the covariance is multiplied
by it (the Birge ratio; ``covariance_scale``) unless ``scale_errors=False``.  The
model uncertainty of ``L`` at a point is ``sqrt(a^T C a)`` with ``a`` its basis row.

Results are a :class:`CTEModel` (one :class:`FittedLoss` per configuration), written as
an ECSV table (:meth:`CTEModel.write`) or LaTeX (:meth:`CTEModel.to_latex`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import xarray as xr
from astropy.table import Table

from cte.analysis.lossmodel import BASIS_TERMS, FORMULA, LossModel, basis, model_variables
from cte.config import FitOptions
from cte.exceptions import FitError, ModelNotFoundError
from cte.schema import LOSS_DIMS, MODEL_CONFIG_KEYS, coefficient_columns
from stores.common.provenance import provenance
from stores.common.validate import instance_of, one_of

__all__ = ["EPOCH_GAP_DAYS", "CTEModel", "FittedLoss", "epochs", "fit_model",
           "independent_bins"]

logger = logging.getLogger(__name__)

_TIME_TERMS = ("t", "xt")
_BACKGROUND_TERMS = ("b", "bx")


@dataclass(frozen=True)
class FittedLoss:
    """The fitted loss model of one configuration.

    Parameters
    ----------
    config : dict
        ``target``, ``filter``, ``exptime_class``, ``ctecorr``, ``aperture`` (px).
    terms : tuple of str
        Terms fitted; the others have coefficient 0 and error NaN.
    coefficients : ndarray, shape (7,)
        Coefficients in the order of :data:`cte.analysis.lossmodel.BASIS_TERMS`.
    covariance : ndarray, shape (7, 7)
        Their covariance, already multiplied by ``covariance_scale``; rows and columns
        of terms not fitted are zero (a fixed term adds no model uncertainty), so
        :meth:`loss_err` and :func:`cte.correct` apply a reduced model as it is.
    chi2_red, dof, n_cells, n_stars, covariance_scale
        Fit statistics.
    flux_range : (float, float)
        Observed flux range of the stars used, e- (``flux_min``/``flux_max`` of the
        cells, or their bin edges when the loss Dataset lacks those).
    mjd_range : (float, float)
        MJD range of the pairs used, d.
    background_range : (float, float)
        Range of the cells' mean local background, e-/px.
    dropped : tuple of (str, str)
        Terms left out and why (e.g. ``("t", "one epoch")``).
    n_epochs, n_flux_bins : int
        Distinct epochs (:func:`epochs`) and flux bins among the cells fitted.
    """

    config: Mapping[str, object]
    terms: tuple[str, ...]
    coefficients: np.ndarray
    covariance: np.ndarray
    chi2_red: float
    dof: int
    n_cells: int
    n_stars: int
    covariance_scale: float
    flux_range: tuple[float, float]
    mjd_range: tuple[float, float]
    background_range: tuple[float, float]
    dropped: tuple[tuple[str, str], ...] = ()
    n_epochs: int = 0
    n_flux_bins: int = 0

    @property
    def lossmodel(self) -> LossModel:
        """The coefficients as a :class:`cte.analysis.lossmodel.LossModel`."""
        return LossModel(dict(zip(BASIS_TERMS, map(float, self.coefficients), strict=True)))

    @property
    def errors(self) -> np.ndarray:
        """1-sigma coefficient uncertainties (sqrt of the covariance diagonal); NaN for
        the terms not fitted."""
        errors = np.sqrt(np.diag(self.covariance))
        fitted = np.isin(np.array(BASIS_TERMS), self.terms)
        return np.where(fitted, errors, np.nan)

    @property
    def fitted_mask(self) -> np.ndarray:
        """Boolean mask over :data:`cte.analysis.lossmodel.BASIS_TERMS`: True for fitted terms."""
        return np.isin(np.array(BASIS_TERMS), self.terms)

    def _design(self, flux, mjd, background) -> np.ndarray:
        return basis(*model_variables(flux, mjd, background))

    def loss(self, flux, mjd, background) -> np.ndarray:
        """Model loss per 2048 transfers at flux (e-), MJD (d), background (e-/px).

        The linear formula, not clipped at zero (unlike :meth:`LossModel.loss`).

        Parameters
        ----------
        flux : array-like
            Flux, e-.
        mjd : array-like
            Exposure start, MJD.
        background : array-like
            Local background, e-/pixel.
        """
        return self._design(flux, mjd, background) @ self.coefficients

    def loss_err(self, flux, mjd, background) -> np.ndarray:
        """1-sigma model uncertainty of :meth:`loss`: ``sqrt(a^T C a)``.

        Parameters
        ----------
        flux : array-like
            Flux, e-.
        mjd : array-like
            Exposure start, MJD.
        background : array-like
            Local background, e-/pixel.
        """
        a = self._design(flux, mjd, background)
        return np.sqrt(np.einsum("...i,ij,...j->...", a, self.covariance, a))

    def describe(self) -> str:
        """One line naming the configuration."""
        return ", ".join(f"{k}={self.config[k]}" for k in MODEL_CONFIG_KEYS)


@dataclass(frozen=True)
class CTEModel:
    """Fitted loss models of several configurations.

    Parameters
    ----------
    fits : tuple of FittedLoss
    skipped : tuple of (dict, str)
        Configurations that could not be fitted, with the reason.
    meta : dict
        Provenance (options, date, versions) written into the table's metadata.
    """

    fits: tuple[FittedLoss, ...]
    skipped: tuple[tuple[Mapping[str, object], str], ...] = ()
    meta: Mapping[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.fits)

    def __iter__(self):
        return iter(self.fits)

    def select(self, **config) -> FittedLoss:
        """The single fit matching the given configuration keys.

        Keys are those of :data:`MODEL_CONFIG_KEYS`; apertures match within 1e-6 px.

        Parameters
        ----------
        **config
            Keys of :data:`cte.schema.MODEL_CONFIG_KEYS` (target, filter, exptime_class,
            ctecorr, aperture) and their values.

        Raises
        ------
        ModelNotFoundError
            When none or several fits match (lists those available).
        """
        unknown = [k for k in config if k not in MODEL_CONFIG_KEYS]
        if unknown:
            msg = f"configuration keys must be drawn from {MODEL_CONFIG_KEYS}, got {unknown}"
            raise ValueError(msg)

        def matches(fit):
            for key, want in config.items():
                have = fit.config[key]
                if key == "aperture":
                    if not np.isclose(float(have), float(want), rtol=0, atol=1e-6):
                        return False
                elif str(have) != str(want):
                    return False
            return True

        found = [fit for fit in self.fits if matches(fit)]
        if len(found) == 1:
            return found[0]
        available = "; ".join(fit.describe() for fit in self.fits) or "none"
        what = "no fitted model" if not found else f"{len(found)} fitted models"
        msg = f"{what} for {config}; specify the configuration fully (available: {available})"
        raise ModelNotFoundError(msg)

    @property
    def table(self) -> Table:
        """One row per configuration: coefficients, errors, covariance, statistics."""
        return _to_table(self)

    def write(self, path: str | PathLike, *, format: str = "ecsv", overwrite: bool = True) -> None:
        """Write the coefficient table as ECSV (``format="ecsv"``) or LaTeX (``"latex"``).

        The file is written atomically (a temporary sibling renamed over *path*).

        Parameters
        ----------
        path : path-like
            The file to write.
        format : {"ecsv", "latex"}
            The coefficient table, or the LaTeX table.
        overwrite : bool
            Replace an existing file.
        """
        from stores import atomic_write

        if format == "ecsv":
            buffer = io.StringIO()
            self.table.write(buffer, format="ascii.ecsv")
            text = buffer.getvalue()
        elif format == "latex":
            text = self.to_latex()
        else:
            one_of(format, "format", ("ecsv", "latex"))
        if not overwrite and Path(path).exists():
            msg = f"{path} exists (overwrite=False)"
            raise FileExistsError(msg)
        atomic_write(path, text)

    def to_latex(self, *, digits: int = 2) -> str:
        """LaTeX table of the coefficients as ``value \\pm error`` (significant *digits*).

        Parameters
        ----------
        digits : int
            Significant digits of the errors.
        """
        return _to_latex(self, digits)

    @classmethod
    def read(cls, path: str | PathLike) -> CTEModel:
        """Read a table written by :meth:`write` (ECSV).

        Parameters
        ----------
        path : path-like
            A table written by :meth:`write`.
        """
        return _from_table(Table.read(path, format="ascii.ecsv"), source=str(path))


def _check_loss_dataset(loss_ds, loss_var, err_var, extra_err_var) -> None:
    instance_of(loss_ds, "loss_ds", xr.Dataset, what="an xarray.Dataset from measure_loss")
    needed = [loss_var, err_var, "n_stars", "flux", "log_flux_var", "background"]
    if extra_err_var is not None:
        needed.append(extra_err_var)
    missing = [v for v in needed if v not in loss_ds.data_vars]
    missing += [c for c in ("mjd", "flux_bin_lo", "flux_bin_hi", *MODEL_CONFIG_KEYS)
                if c not in loss_ds.coords]
    if missing:
        msg = (
            f"loss_ds lacks {missing} (variables present: {sorted(loss_ds.data_vars)}); "
            "pass the Dataset returned by cte.measure_loss"
        )
        raise ValueError(msg)
    dims = set(LOSS_DIMS)
    if set(loss_ds[loss_var].dims) != dims:
        msg = f"loss_ds[{loss_var!r}] must have dims {sorted(dims)}, got {loss_ds[loss_var].dims}"
        raise ValueError(msg)


def _cells(loss_ds, loss_var, err_var, extra_err_var) -> dict[str, np.ndarray]:
    """Flatten (pair, flux_bin, aperture) to cells with their configuration keys."""
    order = ("pair", "flux_bin", "aperture")

    def var(name):
        return np.asarray(loss_ds[name].transpose(*order).values, float).ravel()

    n_pair, n_bin, n_ap = (loss_ds.sizes[d] for d in order)
    shape = (n_pair, n_bin, n_ap)

    def expand(name, axis):
        values = np.asarray(loss_ds[name].values)
        index = [None, None, None]
        index[axis] = slice(None)
        return np.broadcast_to(values[tuple(index)], shape).ravel()

    def expand_index(axis, n):
        index = [None, None, None]
        index[axis] = slice(None)
        return np.broadcast_to(np.arange(n)[tuple(index)], shape).ravel()

    cells = {
        "loss": var(loss_var),
        "err": var(err_var),
        "n_stars": var("n_stars"),
        "flux": var("flux"),
        "log_flux_var": var("log_flux_var"),
        "background": var("background"),
        "mjd": expand("mjd", 0).astype(float),
        "lo": var("flux_min") if "flux_min" in loss_ds else expand("flux_bin_lo", 1),
        "hi": var("flux_max") if "flux_max" in loss_ds else expand("flux_bin_hi", 1),
        "aperture": expand("aperture", 2).astype(float),
        "bin": expand_index(1, n_bin),
        "flash": (expand("flash", 0).astype(float) if "flash" in loss_ds.coords
                  else np.zeros(n_pair * n_bin * n_ap)),
    }
    for key in ("target", "filter", "exptime_class", "ctecorr"):
        cells[key] = expand(key, 0).astype(str)
    if extra_err_var is not None:
        extra = np.nan_to_num(var(extra_err_var), nan=0.0)
        cells["err"] = np.hypot(cells["err"], extra)
    return cells


def fit_model(loss_ds: xr.Dataset, *, fit: FitOptions | None = None) -> CTEModel:
    """Fit the loss model jointly over all epochs and bins, per configuration.

    Parameters
    ----------
    loss_ds : xarray.Dataset
        Output of :func:`cte.measure_loss` (one or several concatenated).
    fit : FitOptions, optional
        How to fit (default ``FitOptions()``; see there and the module docstring).

    Returns
    -------
    CTEModel

    Raises
    ------
    FitError
        When no configuration can be fitted (every reason is listed).
    """
    fit = FitOptions() if fit is None else instance_of(fit, "fit", FitOptions)
    terms, loss_var, err_var = fit.terms, fit.loss_var, fit.err_var
    extra_err_var, flux_bins = fit.extra_err_var, fit.bins_fitted
    min_time_span, min_background_span = fit.min_time_span, fit.min_background_span
    scale_errors = fit.scale_errors
    _check_loss_dataset(loss_ds, loss_var, err_var, extra_err_var)
    bin_ok = np.ones(loss_ds.sizes["flux_bin"], dtype=bool)
    if flux_bins == "independent":
        bin_ok = independent_bins(loss_ds["flux_bin_lo"].values, loss_ds["flux_bin_hi"].values)
        if not bin_ok.all():
            logger.info(
                "bins overlapping narrower ones left out of the fit: %s",
                [(float(lo), float(hi)) for lo, hi, ok in zip(
                    loss_ds["flux_bin_lo"].values, loss_ds["flux_bin_hi"].values, bin_ok,
                    strict=True) if not ok],
            )
    cells = _cells(loss_ds, loss_var, err_var, extra_err_var)
    cells["bin_ok"] = np.broadcast_to(
        bin_ok[None, :, None], (loss_ds.sizes["pair"], bin_ok.size, loss_ds.sizes["aperture"])
    ).ravel()
    usable = cells["bin_ok"] & np.isfinite(cells["loss"]) & np.isfinite(cells["err"])
    usable &= cells["err"] > 0
    usable &= np.isfinite(cells["flux"]) & (cells["flux"] > 0)
    usable &= np.isfinite(cells["background"]) & (cells["background"] > -1)

    keys = np.rec.fromarrays(
        [cells[k] for k in MODEL_CONFIG_KEYS], names=list(MODEL_CONFIG_KEYS)
    )
    unique, inverse = np.unique(keys, return_inverse=True)
    fits, skipped = [], []
    for g, key in enumerate(unique):  # loop over configurations (a few dozen)
        config = {k: (float(key[k]) if k == "aperture" else str(key[k])) for k in MODEL_CONFIG_KEYS}
        sel = (inverse.ravel() == g) & usable
        if not sel.any():
            reason = _why_no_usable_cell(cells, inverse.ravel() == g)
            logger.warning("CTE model not fitted for %s: %s", config, reason)
            skipped.append((config, reason))
            continue
        try:
            fits.append(_fit_one(config, cells, sel, terms, min_time_span,
                                 min_background_span, scale_errors))
        except FitError as err:
            logger.warning("CTE model not fitted for %s: %s", config, err)
            skipped.append((config, str(err)))
    if not fits:
        reasons = "; ".join(f"{c}: {r}" for c, r in skipped) or "no cells"
        msg = f"no configuration could be fitted ({reasons})"
        raise FitError(msg)
    meta = {
        "formula": FORMULA,
        "loss_var": loss_var,
        "err_var": err_var,
        "extra_err_var": extra_err_var or "",
        "scale_errors": bool(scale_errors),
        "flux_bins_fitted": [
            [float(lo), float(hi)] for lo, hi, ok in zip(
                loss_ds["flux_bin_lo"].values, loss_ds["flux_bin_hi"].values, bin_ok,
                strict=True) if ok
        ],
        "loss_options": {k: (v if isinstance(v, str | int | float) else str(v))
                         for k, v in loss_ds.attrs.items()},
        **provenance(libraries=("numpy",)),
    }
    return CTEModel(fits=tuple(fits), skipped=tuple(skipped), meta=meta)


def independent_bins(lo, hi) -> np.ndarray:
    """Mask of a set of non-overlapping bins ``[lo, hi)``, chosen narrowest first.

    Parameters
    ----------
    lo, hi : array-like
        Lower and upper bin edges, e-.
    """
    lo = np.asarray(lo, float)
    hi = np.asarray(hi, float)
    chosen = np.zeros(lo.size, dtype=bool)
    for i in np.argsort(hi - lo, kind="stable"):  # loop over the few flux bins
        overlaps = chosen & (lo < hi[i]) & (lo[i] < hi)
        if not overlaps.any():
            chosen[i] = True
    return chosen


#: order in which terms are given up when the cells do not outnumber the terms
_DROP_ORDER = ("xt", "bx", "x2", "x", "t", "b")


def choose_terms(
    terms: Sequence[str], *, n_cells: int, n_epochs: int, time_span: float,
    n_flux_bins: int, background_span: float, min_time_span: float,
    min_background_span: float, epochs_with_slope: int = 2, flashes_with_slope: int = 2,
) -> tuple[list[str], list[tuple[str, str]]]:
    """The terms the data can determine, and the others with the reason (module doc)."""
    use = list(terms)
    dropped: list[tuple[str, str]] = []

    def drop(names, reason):
        for name in names:
            if name in use:
                use.remove(name)
                dropped.append((name, reason))

    if n_epochs < 2:
        drop(_TIME_TERMS, "one epoch")
    elif time_span < min_time_span:
        drop(_TIME_TERMS, f"epochs span {time_span:.2g} yr < min_time_span {min_time_span:g}")
    if n_flux_bins < 4:
        drop(("x2",), f"{n_flux_bins} flux bins with data (x^2 needs 4)")
    if n_flux_bins < 3:
        drop(("x", "xt", "bx"), f"{n_flux_bins} flux bins with data (x needs 3)")
    if background_span < min_background_span:
        drop(_BACKGROUND_TERMS, f"background spans {background_span:.2g} dex < "
                                f"min_background_span {min_background_span:g}")
    if epochs_with_slope < 2:
        drop(("xt",), f"{epochs_with_slope} epoch(s) with 3 flux bins (xt needs 2)")
    if flashes_with_slope < 2:
        drop(("bx",), f"{flashes_with_slope} flash level(s) with 3 flux bins (bx needs 2)")
    for name in _DROP_ORDER:
        if n_cells > len(use):
            break
        drop((name,), f"{n_cells} cells do not outnumber the terms")
    return use, dropped


#: pairs closer in time than this belong to one epoch (the visits of one campaign)
EPOCH_GAP_DAYS = 30.0


def epochs(mjd, gap: float = EPOCH_GAP_DAYS) -> np.ndarray:
    """Epoch of each MJD: the earliest MJD of its group, groups split at gaps > *gap* d.

    The visits of one monitoring campaign (hours to days apart) form one epoch.

    Parameters
    ----------
    mjd : array-like
        Exposure dates, MJD.
    gap : float
        Days between dates that start a new epoch.
    """
    mjd = np.asarray(mjd, dtype=float)
    if mjd.size == 0:
        return mjd.copy()
    order = np.sort(np.unique(mjd))
    start = np.concatenate([[True], np.diff(order) > gap])
    first = order[start]
    return first[np.searchsorted(first, mjd, side="right") - 1]


def _groups_with_bins(group, bins, k) -> int:
    """How many distinct values of *group* have cells in at least *k* distinct bins."""
    pairs = np.unique(np.column_stack([group, bins]), axis=0)
    _, counts = np.unique(pairs[:, 0], return_counts=True)
    return int(np.sum(counts >= k))


def _why_no_usable_cell(cells, in_config) -> str:
    """Why none of a configuration's cells (mask *in_config*) can enter the fit."""
    finite = in_config & np.isfinite(cells["loss"])
    if not finite.any():
        return "no cell with a finite loss"
    fitted = finite & cells["bin_ok"]
    if not fitted.any():
        return (f"its {int(finite.sum())} cells with a finite loss are all in flux bins "
                "overlapping narrower ones, which are not fitted")
    with_err = fitted & np.isfinite(cells["err"]) & (cells["err"] > 0)
    if not with_err.any():
        return (f"its {int(fitted.sum())} cells with a finite loss have no finite error > 0 "
                "(too few stars per cell for a scatter)")
    return (f"its {int(with_err.sum())} cells with a finite loss and error have no finite "
            "flux > 0 and background > -1 e-/px")


def _fit_one(config, cells, sel, terms, min_time_span, min_background_span, scale_errors):
    n = int(sel.sum())
    if n == 0:
        raise FitError("no cell with a finite loss and error")
    if n < 2:
        raise FitError("one cell: nothing to fit a model to")
    x, t, b = model_variables(cells["flux"][sel], cells["mjd"][sel], cells["background"][sel])
    epoch = epochs(cells["mjd"][sel])
    n_epochs = int(np.unique(epoch).size)
    n_flux_bins = int(np.unique(cells["bin"][sel]).size)
    epochs_with_slope = _groups_with_bins(epoch, cells["bin"][sel], 3)
    flashes_with_slope = _groups_with_bins(cells["flash"][sel], cells["bin"][sel], 3)
    use, dropped = choose_terms(
        terms, n_cells=n, n_epochs=n_epochs, time_span=float(np.ptp(t)),
        n_flux_bins=n_flux_bins, background_span=float(np.ptp(b)),
        min_time_span=min_time_span, min_background_span=min_background_span,
        epochs_with_slope=epochs_with_slope, flashes_with_slope=flashes_with_slope)
    if dropped:
        logger.info("%s: terms %s not determined by the data, left out", config, dropped)
    design = basis(x, t, b, terms=BASIS_TERMS)
    design[:, BASIS_TERMS.index("x2")] += cells["log_flux_var"][sel]
    columns = [BASIS_TERMS.index(u) for u in use]
    a = design[:, columns]
    p = len(columns)
    sigma = cells["err"][sel]
    aw = a / sigma[:, None]
    yw = cells["loss"][sel] / sigma
    q, r = np.linalg.qr(aw)
    rank = np.linalg.matrix_rank(aw)
    if rank < p:
        msg = f"design of terms {use} is rank deficient ({rank} < {p}) over {n} cells"
        raise FitError(msg)
    coef = np.linalg.solve(r, q.T @ yw)
    r_inv = np.linalg.inv(r)
    cov = r_inv @ r_inv.T
    chi2 = float(np.sum((yw - aw @ coef) ** 2))
    dof = n - p
    chi2_red = chi2 / dof
    scale = max(1.0, chi2_red) if scale_errors else 1.0
    full = np.zeros(len(BASIS_TERMS))
    full[columns] = coef
    full_cov = np.zeros((len(BASIS_TERMS), len(BASIS_TERMS)))
    full_cov[np.ix_(columns, columns)] = cov * scale
    return FittedLoss(
        config=config,
        terms=tuple(use),
        coefficients=full,
        covariance=full_cov,
        chi2_red=chi2_red,
        dof=dof,
        n_cells=n,
        n_stars=int(np.sum(cells["n_stars"][sel])),
        covariance_scale=scale,
        flux_range=(float(cells["lo"][sel].min()), float(cells["hi"][sel].max())),
        mjd_range=(float(cells["mjd"][sel].min()), float(cells["mjd"][sel].max())),
        background_range=(float(cells["background"][sel].min()),
                          float(cells["background"][sel].max())),
        dropped=tuple(dropped),
        n_epochs=n_epochs,
        n_flux_bins=n_flux_bins,
    )


# --- tables ----------------------------------------------------------------------


def _term_column(term: str) -> str:
    return f"c_{term}"


def _to_table(model: CTEModel) -> Table:
    fits = model.fits
    cols: dict[str, object] = {}
    for key in MODEL_CONFIG_KEYS:
        values = [fit.config[key] for fit in fits]
        cols[key] = np.array(values, dtype=float if key == "aperture" else str)
    cols["terms"] = np.array([" ".join(fit.terms) for fit in fits], dtype=str)
    cols["dropped"] = np.array(["; ".join(f"{t}: {r}" for t, r in fit.dropped) or "-"
                                for fit in fits], dtype=str)
    for term in BASIS_TERMS:
        cols[f"fitted_{term}"] = np.array([term in fit.terms for fit in fits], dtype=bool)
    for i, term in enumerate(BASIS_TERMS):
        cols[_term_column(term)] = np.array([fit.coefficients[i] for fit in fits])
        cols[f"e_{term}"] = np.array([fit.errors[i] for fit in fits])
    cols["covariance"] = np.array([fit.covariance for fit in fits]).reshape(
        len(fits), len(BASIS_TERMS), len(BASIS_TERMS)
    )
    for name in ("chi2_red", "covariance_scale"):
        cols[name] = np.array([getattr(fit, name) for fit in fits], dtype=float)
    for name in ("dof", "n_cells", "n_stars", "n_epochs", "n_flux_bins"):
        cols[name] = np.array([getattr(fit, name) for fit in fits], dtype=np.int64)
    for name, attr in (("flux", "flux_range"), ("mjd", "mjd_range"),
                       ("background", "background_range")):
        cols[f"{name}_min"] = np.array([getattr(fit, attr)[0] for fit in fits], dtype=float)
        cols[f"{name}_max"] = np.array([getattr(fit, attr)[1] for fit in fits], dtype=float)
    table = Table(cols)
    for name, (unit, description, _) in coefficient_columns(BASIS_TERMS).items():
        if unit is not None:
            table[name].unit = unit
        if description is not None:
            table[name].description = description
    table.meta.update(
        {
            "formula": FORMULA,
            "terms": list(BASIS_TERMS),
            "skipped": [{"config": dict(c), "reason": r} for c, r in model.skipped],
            **{k: v for k, v in model.meta.items() if k != "formula"},
        }
    )
    return table


def _from_table(table: Table, *, source: str) -> CTEModel:
    required = [c for c, (_, _, needed) in coefficient_columns(BASIS_TERMS).items() if needed]
    missing = [c for c in required if c not in table.colnames]
    if missing:
        msg = f"{source}: not a CTE coefficient table, missing columns {missing}"
        raise ValueError(msg)
    fits = []
    for row in table:  # loop over configurations
        config = {k: (float(row[k]) if k == "aperture" else str(row[k])) for k in MODEL_CONFIG_KEYS}
        fits.append(
            FittedLoss(
                config=config,
                terms=tuple(str(row["terms"]).split()),
                coefficients=np.array([float(row[_term_column(t)]) for t in BASIS_TERMS]),
                covariance=np.array(row["covariance"], dtype=float),
                chi2_red=float(row["chi2_red"]),
                dof=int(row["dof"]),
                n_cells=int(row["n_cells"]),
                n_stars=int(row["n_stars"]),
                covariance_scale=float(row["covariance_scale"]),
                flux_range=(float(row["flux_min"]), float(row["flux_max"])),
                mjd_range=(float(row["mjd_min"]), float(row["mjd_max"])),
                background_range=(float(row["background_min"]), float(row["background_max"])),
                dropped=_parse_dropped(row["dropped"]) if "dropped" in table.colnames else (),
                n_epochs=int(row["n_epochs"]) if "n_epochs" in table.colnames else 0,
                n_flux_bins=int(row["n_flux_bins"]) if "n_flux_bins" in table.colnames else 0,
            )
        )
    skipped = tuple(
        (dict(s["config"]), str(s["reason"])) for s in table.meta.get("skipped", [])
    )
    meta = {k: v for k, v in table.meta.items() if k not in ("skipped", "terms")}
    return CTEModel(fits=tuple(fits), skipped=skipped, meta=meta)


def _parse_dropped(text) -> tuple[tuple[str, str], ...]:
    text = str(text)
    if text in ("", "-"):
        return ()
    return tuple(tuple(part.split(": ", 1)) for part in text.split("; "))


def _format_pm(value: float, error: float, digits: int) -> str:
    if not np.isfinite(error) or error <= 0:
        return f"${value:.4g}$" if value != 0 else "--"
    decimals = max(0, digits - 1 - int(np.floor(np.log10(error))))
    return f"${value:.{decimals}f} \\pm {error:.{decimals}f}$"


def _to_latex(model: CTEModel, digits: int) -> str:
    header = ["Target", "Filter", "Exp.", "Corr.", "Ap.", *(f"$c_{{{t}}}$" for t in BASIS_TERMS),
              r"$\chi^2_\nu$"]
    lines = [
        r"\begin{table}",
        r"\centering",
        r"\caption{CTE loss model coefficients: " + FORMULA.replace("^", r"\^{}") + "}",
        r"\begin{tabular}{" + "l" * 5 + "c" * (len(BASIS_TERMS) + 1) + "}",
        r"\hline",
        " & ".join(header) + r" \\",
        r"\hline",
    ]
    for fit in model.fits:
        cells = [str(fit.config[k]).replace("_", r"\_") for k in MODEL_CONFIG_KEYS[:4]]
        cells.append(f"{fit.config['aperture']:g}")
        cells += [_format_pm(c, e, digits) for c, e in zip(fit.coefficients, fit.errors,
                                                           strict=True)]
        cells.append(f"{fit.chi2_red:.2f}")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)
