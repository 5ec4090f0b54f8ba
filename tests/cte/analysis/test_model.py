"""Tests of cte.analysis.model: the joint fit against numpy least squares and the injected truth."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr
from astropy.table import Table
from scipy import stats

from cte import FitError, ModelNotFoundError
from cte.analysis.loss import measure_loss
from cte.analysis.lossmodel import BASIS_TERMS
from cte.analysis.model import CTEModel, fit_model, independent_bins
from cte.config import FitOptions, load_config
from cte.datasets._synthphot import DEFAULT_TRUTH
from tests.cte._analysis_fixtures import campaign, campaign_loss, campaign_model, small

FLUX_BINS = load_config().flux_bins


def _grid(fit, n=(10, 6, 5)):
    flux = np.geomspace(*fit.flux_range, n[0])[:, None, None]
    mjd = np.linspace(*fit.mjd_range, n[1])[None, :, None]
    bkg = np.linspace(*fit.background_range, n[2])[None, None, :]
    return flux, mjd, bkg


def test_acceptance_model_reproduces_injected_loss_for_flt_and_flc():
    """Issue 6: within 10 % (or 2 sigma where the loss is small) over the simulated range.

    Checked on a grid spanning the fitted flux x time x background range of every
    configuration; the truth is the simulator's LossModel (per aperture flux).
    """
    model = campaign_model()
    assert len(model) == 12  # 2 classes x FLT/FLC x 3 apertures
    for kind in ("FLT", "FLC"):
        ok = []
        for fit in model:
            if fit.config["ctecorr"] != kind:
                continue
            assert fit.terms == BASIS_TERMS
            flux, mjd, bkg = _grid(fit)
            truth = DEFAULT_TRUTH[kind].loss(flux, mjd, bkg)
            assert np.all(truth > 0)
            diff = np.abs(fit.loss(flux, mjd, bkg) - truth)
            tol = np.maximum(0.10 * truth, 2 * fit.loss_err(flux, mjd, bkg))
            ok.append(diff <= tol)
        ok = np.concatenate([o.ravel() for o in ok])
        assert np.mean(ok) >= 0.95, kind


def test_coefficients_agree_with_truth_within_their_covariance():
    """(c - c_true)^T C^-1 (c - c_true) follows chi2 with 7 dof if C is honest."""
    model = campaign_model()
    limit = stats.chi2.ppf(0.999, len(BASIS_TERMS))
    values = []
    for fit in model:
        d = fit.coefficients - DEFAULT_TRUTH[fit.config["ctecorr"]].vector
        values.append(d @ np.linalg.solve(fit.covariance, d))
    values = np.array(values)
    assert np.all(values < limit), values
    # and not grossly overestimated errors either: mean of chi2_7 is 7
    assert 2 < values.mean() < 14


def test_fit_equals_numpy_weighted_least_squares():
    loss_ds = campaign_loss()
    model = campaign_model()
    fit = model.select(target="ngc104", filter="F502N", exptime_class="long",
                       ctecorr="FLT", aperture=5.0)
    # independent design, on the non-overlapping bins, written out term by term
    sel_bins = [0, 1, 3, 4, 6, 7]  # 250-500, 500-1000, 1000-2000, 2000-4000, 4000-8000, 8k-32k
    sub = loss_ds.sel(aperture=5.0).isel(flux_bin=sel_bins)
    pairs = (sub["exptime_class"] == "long") & (sub["ctecorr"] == "FLT")
    sub = sub.isel(pair=np.flatnonzero(pairs.values))
    loss = sub["loss"].values.ravel()
    err = sub["loss_err"].values.ravel()
    good = np.isfinite(loss) & np.isfinite(err)
    x = np.log10(sub["flux"].values.ravel() / 1000.0)
    x2 = x**2 + sub["log_flux_var"].values.ravel()
    t = np.repeat((sub["mjd"].values - 55000.0) / 365.25, len(sel_bins))
    b = np.log10(1.0 + sub["background"].values.ravel())
    design = np.column_stack([np.ones_like(x), x, x2, t, x * t, b, b * x])[good]
    w = 1.0 / err[good]
    coef, *_ = np.linalg.lstsq(design * w[:, None], loss[good] * w, rcond=None)
    np.testing.assert_allclose(fit.coefficients, coef, rtol=1e-7, atol=1e-12)
    cov = np.linalg.inv((design * w[:, None] ** 2).T @ design)
    chi2 = np.sum(((loss[good] - design @ coef) * w) ** 2)
    dof = good.sum() - design.shape[1]
    assert fit.dof == dof and fit.n_cells == good.sum()
    np.testing.assert_allclose(fit.chi2_red, chi2 / dof, rtol=1e-8)
    np.testing.assert_allclose(fit.covariance, cov * max(1.0, chi2 / dof), rtol=1e-6,
                               atol=1e-14)
    np.testing.assert_allclose(fit.errors, np.sqrt(np.diag(fit.covariance)))


def test_independent_bins_of_the_default_list():
    lo, hi = np.array(FLUX_BINS).T
    mask = independent_bins(lo, hi)
    chosen = [FLUX_BINS[i] for i in np.flatnonzero(mask)]
    assert chosen == [(250.0, 500.0), (500.0, 1000.0), (1000.0, 2000.0), (2000.0, 4000.0),
                      (4000.0, 8000.0), (8000.0, 32000.0)]


def test_all_bins_option_uses_every_cell():
    loss_ds = campaign_loss()
    every = fit_model(loss_ds, fit=FitOptions(bins_fitted="all"))
    indep = campaign_model()
    for a, b in zip(every, indep, strict=True):
        assert a.n_cells > b.n_cells


def test_undetermined_terms_are_left_out():
    loss_ds = measure_loss(small().photometry)  # one flash level, two epochs 400 d apart
    model = fit_model(loss_ds, fit=FitOptions(min_time_span=2.0))
    for fit in model:
        assert "b" not in fit.terms and "bx" not in fit.terms
        assert "t" not in fit.terms and "xt" not in fit.terms
        for term in ("t", "xt", "b", "bx"):
            i = BASIS_TERMS.index(term)
            # issue 11: a term not fitted has coefficient 0 and error NaN (not 0)
            assert fit.coefficients[i] == 0 and np.isnan(fit.errors[i])
            assert not fit.fitted_mask[i]
            assert np.all(fit.covariance[i] == 0) and np.all(fit.covariance[:, i] == 0)
        reasons = dict(fit.dropped)
        assert reasons["t"].startswith("epochs span 1.1 yr < min_time_span 2")
        assert reasons["b"].startswith("background spans")


def test_no_fittable_configuration_raises_with_reasons():
    loss_ds = measure_loss(small().photometry).copy()
    loss_ds["loss"] = loss_ds["loss"] * np.nan
    with pytest.raises(FitError, match="no configuration could be fitted.*no cell"):
        fit_model(loss_ds)


def test_select_names_what_is_available():
    model = campaign_model()
    with pytest.raises(ModelNotFoundError, match="12 fitted models") as info:
        model.select(target="ngc104")
    assert "exptime_class=short" in str(info.value)
    with pytest.raises(ModelNotFoundError, match="no fitted model"):
        model.select(ctecorr="FLT", exptime_class="long", aperture=4.0)
    with pytest.raises(ValueError, match="configuration keys"):
        model.select(colour="red")


def test_ecsv_round_trip_keeps_everything(tmp_path):
    model = campaign_model()
    path = tmp_path / "coefficients.ecsv"
    model.write(path)
    table = Table.read(path, format="ascii.ecsv")
    assert len(table) == len(model)
    assert str(table["flux_min"].unit) == "electron"
    assert "formula" in table.meta and "L = c_1" in table.meta["formula"]
    again = CTEModel.read(path)
    for a, b in zip(model, again, strict=True):
        assert a.config == b.config and a.terms == b.terms
        np.testing.assert_array_equal(a.coefficients, b.coefficients)
        np.testing.assert_array_equal(a.covariance, b.covariance)
        assert a.flux_range == b.flux_range and a.mjd_range == b.mjd_range
        assert a.chi2_red == b.chi2_red and a.n_stars == b.n_stars


def test_latex_table(tmp_path):
    model = campaign_model()
    text = model.to_latex()
    assert text.count(r"\pm") == len(model) * len(BASIS_TERMS)
    assert text.count(r"\\") == len(model) + 1
    model.write(tmp_path / "c.tex", format="latex")
    assert (tmp_path / "c.tex").read_text() == text


def test_reading_a_foreign_table_is_refused(tmp_path):
    path = tmp_path / "other.ecsv"
    Table({"a": [1, 2]}).write(path, format="ascii.ecsv")
    with pytest.raises(ValueError, match=r"other.ecsv: not a CTE coefficient table"):
        CTEModel.read(path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"terms": ("x", "t")}, r"terms must include '1' \(the constant term\), got \['x', 't'\]"),
        ({"terms": ("1", "y")}, r"terms must be drawn from \[.*\], got unknown \['y'\]"),
        ({"terms": ()}, "terms must be a non-empty selection"),
        ({"bins_fitted": "some"}, r"bins_fitted must be one of \['independent', 'all'\]"),
        ({"min_time_span": -1}, r"min_time_span must be >= 0 \(yr\), got -1"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_model(campaign_loss(), fit=FitOptions(**kwargs))


def test_bad_loss_dataset():
    with pytest.raises(ValueError, match="lacks.*flux"):
        fit_model(campaign_loss().drop_vars("flux"))
    with pytest.raises(TypeError, match="loss_ds must be an xarray.Dataset"):
        fit_model(campaign()[0])


def test_single_epoch_is_fitted_without_time_terms():
    """Issue 11: one epoch cannot constrain t or xt; the table says so."""
    loss_ds = measure_loss(small().photometry)
    first = np.flatnonzero(np.round(loss_ds["mjd"].values) == np.round(loss_ds["mjd"].values.min()))
    model = fit_model(loss_ds.isel(pair=first))
    for fit in model:
        assert fit.n_epochs == 1
        assert "t" not in fit.terms and "xt" not in fit.terms
        assert dict(fit.dropped)["t"] == "one epoch"
        assert fit.mjd_range[0] == fit.mjd_range[1]
    row = model.table[0]
    assert not row["fitted_t"] and not row["fitted_xt"] and row["fitted_1"]
    assert np.isnan(row["e_t"]) and row["c_t"] == 0
    assert "t: one epoch" in row["dropped"]


def test_few_flux_bins_give_fewer_flux_terms_and_the_fit_is_least_squares():
    loss_ds = measure_loss(small().photometry).copy()
    lo = loss_ds["flux_bin_lo"].values
    hi = loss_ds["flux_bin_hi"].values
    keep = ((lo == 250) & (hi == 500)) | ((lo == 1000) & (hi == 2000))
    for name in ("loss", "loss_err"):
        loss_ds[name] = loss_ds[name].where(xr.DataArray(keep, dims="flux_bin"))
    model = fit_model(loss_ds, fit=FitOptions(min_time_span=0.5))
    fit = model.select(ctecorr="FLT", exptime_class="long", aperture=3.0)
    assert fit.n_flux_bins == 2
    assert fit.terms == ("1", "t")
    assert dict(fit.dropped)["x"] == "2 flux bins with data (x needs 3)"
    # independent: weighted least squares of loss on [1, t] with numpy
    sub = loss_ds.sel(aperture=3.0)
    pick = ((sub["ctecorr"] == "FLT") & (sub["exptime_class"] == "long")).values
    sub = sub.isel(pair=pick)
    y = sub["loss"].values
    e = sub["loss_err"].values
    t = np.broadcast_to(((sub["mjd"].values - 55000.0) / 365.25)[:, None], y.shape)
    ok = np.isfinite(y) & np.isfinite(e) & (e > 0)
    a = np.column_stack([np.ones(ok.sum()), t[ok]]) / e[ok][:, None]
    coef, *_ = np.linalg.lstsq(a, y[ok] / e[ok], rcond=None)
    np.testing.assert_allclose(fit.coefficients[[0, 3]], coef, rtol=1e-9, atol=1e-12)
    assert np.all(np.isnan(fit.errors[[1, 2, 4, 5, 6]]))


def test_reduced_model_is_applied_by_correct(tmp_path):
    """A model without flux or time terms still corrects: F = F_obs / (1 - c0 k / 2048)."""
    from cte.analysis.correction import correct

    loss_ds = measure_loss(small().photometry).copy()
    lo = loss_ds["flux_bin_lo"].values
    hi = loss_ds["flux_bin_hi"].values
    keep = ((lo == 1000) & (hi == 2000)) | ((lo == 250) & (hi == 500))
    loss_ds["loss"] = loss_ds["loss"].where(xr.DataArray(keep, dims="flux_bin"))
    first = np.flatnonzero(np.round(loss_ds["mjd"].values) == np.round(loss_ds["mjd"].values.min()))
    model = fit_model(loss_ds.isel(pair=first))
    fit = model.select(ctecorr="FLT", exptime_class="long", aperture=3.0)
    assert fit.terms == ("1",)
    path = tmp_path / "c.ecsv"
    model.write(path)
    again = CTEModel.read(path).select(ctecorr="FLT", exptime_class="long", aperture=3.0)
    assert again.dropped == fit.dropped and again.terms == ("1",)
    flux = np.array([400.0, 1500.0])
    transfers = np.array([100.0, 1800.0])
    out = correct(flux, transfers, fit.mjd_range[0], np.mean(fit.background_range),
                      model=again)
    c0 = fit.coefficients[0]
    np.testing.assert_allclose(out.flux, flux / (1 - c0 * transfers / 2048), rtol=1e-9)
    assert np.all(np.isfinite(out.flux_err))


def test_failed_table_write_leaves_the_previous_file(tmp_path, monkeypatch):
    """Issue 14.14: coefficient tables are replaced atomically; a LaTeX table that fails
    while being written (unencodable text, found after an in-place open truncated the
    file) leaves the previous file."""
    model = campaign_model()
    path = tmp_path / "coefficients.tex"
    path.write_text("previous table", encoding="utf-8")
    monkeypatch.setattr(CTEModel, "to_latex", lambda self, digits=2: "x" * 5000 + "\ud800")
    with pytest.raises(UnicodeEncodeError):
        model.write(path, format="latex")
    assert path.read_text(encoding="utf-8") == "previous table"
    assert [p.name for p in tmp_path.iterdir()] == ["coefficients.tex"]
    with pytest.raises(FileExistsError, match="coefficients.tex exists"):
        model.write(path, format="ecsv", overwrite=False)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda ds: ds.assign(loss=ds["loss"] * np.nan), "no cell with a finite loss"),
        (lambda ds: ds.assign(loss_err=ds["loss_err"] * np.nan),
         r"its \d+ cells with a finite loss have no finite error > 0 \(too few stars"),
        (lambda ds: ds.assign(loss_err=ds["loss_err"] * 0),
         r"its \d+ cells with a finite loss have no finite error > 0"),
    ],
)
def test_an_unfitted_configuration_says_why_its_cells_are_unusable(edit, reason):
    """Issue 23: a configuration whose plots show finite losses was reported as having
    'no cell with a finite loss and error'; the reason now names what is missing."""
    loss_ds = edit(measure_loss(small().photometry).copy())
    with pytest.raises(FitError) as info:
        fit_model(loss_ds)
    reasons = re.findall(r"(\{[^}]*\}): ([^;]*)", str(info.value))
    assert reasons, str(info.value)
    for _config, why in reasons:
        assert re.fullmatch(reason + ".*", why), why
