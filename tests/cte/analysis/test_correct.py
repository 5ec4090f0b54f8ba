"""Tests of cte.correct on simulated stars with known true flux."""

from __future__ import annotations

import numpy as np
import pytest

from cte import ModelNotFoundError, OutOfRangeError
from cte.analysis.correction import correct
from cte.analysis.lossmodel import BASIS_TERMS
from cte.analysis.model import FittedLoss
from cte.datasets._synthphot import DEFAULT_TRUTH
from tests.cte._analysis_fixtures import campaign_model


def _exact_model(kind="FLT"):
    """The simulator's truth as a FittedLoss with zero covariance."""
    return FittedLoss(
        config={"target": "ngc104", "filter": "F502N", "exptime_class": "long",
                "ctecorr": kind, "aperture": 3.0},
        terms=BASIS_TERMS,
        coefficients=DEFAULT_TRUTH[kind].vector,
        covariance=np.zeros((7, 7)),
        chi2_red=1.0, dof=100, n_cells=107, n_stars=10_000, covariance_scale=1.0,
        flux_range=(100.0, 50_000.0), mjd_range=(55000.0, 58000.0),
        background_range=(0.0, 150.0),
    )


def _observed(kind, true, transfers, mjd, bkg):
    """Observed flux of stars under the injected truth, written out by hand here.

    Independent of :func:`cte.analysis.lossmodel.basis`/``model_variables`` that ``correct``
    inverts: ``L = c1 + cx X + cx2 X^2 + ct T + cxt X T + cb B + cbx B X`` with
    ``X = log10(F) - 3``, ``T`` years of 365.25 d since MJD 55000, ``B = log10(1 + bkg)``.
    """
    c = DEFAULT_TRUTH[kind].coefficients
    big_x = np.log10(true) - 3.0
    years = (mjd - 55000.0) / 365.25
    big_b = np.log10(1.0 + bkg)
    loss = (c["1"] + c["x"] * big_x + c["x2"] * big_x**2 + c["t"] * years
            + c["xt"] * big_x * years + c["b"] * big_b + c["bx"] * big_b * big_x)
    loss = np.maximum(loss, 0.0)
    return true * (1.0 - loss * transfers / 2048.0), loss


def _stars(fit, n, seed):
    rng = np.random.default_rng(seed)
    lo, hi = fit.flux_range
    true = 10 ** rng.uniform(np.log10(lo * 1.5), np.log10(hi * 0.8), n)
    transfers = rng.uniform(0, 2051, n)
    mjd = rng.uniform(*fit.mjd_range, n)
    bkg = rng.uniform(*fit.background_range, n)
    return true, transfers, mjd, bkg


def test_inversion_of_the_exact_model_restores_true_flux():
    fit = _exact_model()
    true, n, mjd, bkg = _stars(fit, 5000, 1)
    observed, loss = _observed("FLT", true, n, mjd, bkg)
    out = correct(observed, n, mjd, bkg, model=fit)
    np.testing.assert_allclose(out.flux, true, rtol=1e-9)
    np.testing.assert_allclose(out.loss, loss, rtol=1e-8)
    assert np.all(out.model_err == 0)
    assert out.iterations < 20


def test_acceptance_fitted_model_restores_true_flux_within_its_uncertainty():
    """Issue 6: correct() on simulated stars gives their true flux within its error."""
    model = campaign_model()
    for kind in ("FLT", "FLC"):
        fit = model.select(ctecorr=kind, exptime_class="long", aperture=3.0)
        true, n, mjd, bkg = _stars(fit, 4000, 2)
        observed, _ = _observed(kind, true, n, mjd, bkg)
        out = correct(observed, n, mjd, bkg, model=fit)
        pull = (out.flux - true) / out.model_err
        assert np.mean(np.abs(pull) <= 2) >= 0.9, kind
        # most of the loss is removed
        before = np.abs(observed - true) / true
        after = np.abs(out.flux - true) / true
        assert np.median(after) < 0.1 * np.median(before), kind


def test_photometric_errors_are_propagated():
    model = campaign_model()
    fit = model.select(ctecorr="FLT", exptime_class="long", aperture=3.0)
    true, n, mjd, bkg = _stars(fit, 20_000, 3)
    rng = np.random.default_rng(4)
    observed, _ = _observed("FLT", true, n, mjd, bkg)
    sigma = np.sqrt(observed + 28 * (bkg + 9))
    noisy = observed + rng.normal(0, sigma)
    keep = (noisy > fit.flux_range[0]) & (noisy < fit.flux_range[1])
    out = correct(noisy[keep], n[keep], mjd[keep], bkg[keep], model=fit, flux_err=sigma[keep])
    pull = (out.flux - true[keep]) / out.flux_err
    assert 0.9 <= np.std(pull) <= 1.1
    assert abs(np.mean(pull)) < 0.05
    assert np.all(out.flux_err >= out.model_err)


def test_model_given_as_collection_or_file(tmp_path):
    model = campaign_model()
    fit = model.select(ctecorr="FLC", exptime_class="short", aperture=5.0)
    true, n, mjd, bkg = _stars(fit, 10, 5)
    config = {"ctecorr": "FLC", "exptime_class": "short", "aperture": 5.0}
    a = correct(true, n, mjd, bkg, model=fit)
    b = correct(true, n, mjd, bkg, model=model, config=config)
    path = tmp_path / "coefficients.ecsv"
    model.write(path)
    c = correct(true, n, mjd, bkg, model=str(path), config=config)
    np.testing.assert_array_equal(a.flux, b.flux)
    np.testing.assert_array_equal(a.flux, c.flux)
    with pytest.raises(ModelNotFoundError):
        correct(true, n, mjd, bkg, model=model)
    with pytest.raises(ValueError, match="does not match the model"):
        correct(true, n, mjd, bkg, model=fit, config={"ctecorr": "FLT"})


def test_hand_computed_inversion():
    """One star worked by hand: F = 10 000 e-, 1024 transfers, one year, B = 9 e-/px.

    X = 1, T = 1, B = 1 with the FLT truth coefficients of ``cte.datasets._synthphot``:
    L = 0.10 - 0.06 + 0.012 + 0.015 - 0.002 - 0.03 + 0.014 = 0.049;
    observed = 10 000 (1 - 0.049 / 2) = 9755 e-.
    """
    out = correct(9755.0, 1024.0, 55365.25, 9.0, model=_exact_model())
    np.testing.assert_allclose(out.flux, 10_000.0, rtol=1e-10)
    np.testing.assert_allclose(out.loss, 0.049, rtol=1e-10)


def test_broadcasting_of_scalars():
    fit = _exact_model()
    out = correct([1000.0, 2000.0], 1000, 56000.0, 12.0, model=fit)
    assert out.flux.shape == (2,)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1000.0, -1.0, 56000.0, 12.0), r"transfers must lie in \[0, 2051\]: 1 of 1"),
        ((1000.0, 2052.0, 56000.0, 12.0), r"transfers must lie in \[0, 2051\]"),
        ((-5.0, 100.0, 56000.0, 12.0), r"flux must lie in \(0, inf\)"),
        ((np.nan, 100.0, 56000.0, 12.0), r"flux must lie in \(0, inf\)"),
        ((60_000.0, 100.0, 56000.0, 12.0), r"flux must lie in the fitted range \[100, 50000\]"),
        ((1000.0, 100.0, 59000.0, 12.0), r"mjd must lie in the fitted range \[55000, 58000\]"),
        ((1000.0, 100.0, 56000.0, 200.0), r"background must lie in the fitted range"),
    ],
)
def test_out_of_range_inputs_are_refused(args, match):
    with pytest.raises(OutOfRangeError, match=match):
        correct(*args, model=_exact_model())


def test_error_names_first_offender_and_count():
    flux = np.array([1000.0, 2000.0, 80_000.0, 90_000.0])
    with pytest.raises(OutOfRangeError, match=r"2 of 4 value\(s\) outside, first 80000.0 at "
                                              r"index \(2,\)"):
        correct(flux, 100.0, 56000.0, 12.0, model=_exact_model())


def test_out_of_range_nan_option():
    flux = np.array([1000.0, 80_000.0])
    out = correct(flux, 100.0, 56000.0, 12.0, model=_exact_model(), out_of_range="nan")
    assert np.isfinite(out.flux[0]) and np.isnan(out.flux[1]) and np.isnan(out.flux_err[1])
    # invalid transfers are refused regardless
    with pytest.raises(OutOfRangeError, match="transfers"):
        correct(flux, -3.0, 56000.0, 12.0, model=_exact_model(), out_of_range="nan")


def test_bad_options():
    with pytest.raises(ValueError, match=r"out_of_range must be one of \['raise', 'nan'\]"):
        correct(1000.0, 1.0, 56000.0, 1.0, model=_exact_model(), out_of_range="clip")
    with pytest.raises(ValueError, match="rtol must be > 0, got 0"):
        correct(1000.0, 1.0, 56000.0, 1.0, model=_exact_model(), rtol=0)
    with pytest.raises(ValueError, match="rtol must be finite, got nan"):
        correct(1000.0, 1.0, 56000.0, 1.0, model=_exact_model(), rtol=float("nan"))
    with pytest.raises(ValueError, match="maxiter must be an integer >= 1, got 2.5"):
        correct(1000.0, 1.0, 56000.0, 1.0, model=_exact_model(), maxiter=2.5)
    with pytest.raises(TypeError, match="maxiter must be an integer >= 1, got '9'"):
        correct(1000.0, 1.0, 56000.0, 1.0, model=_exact_model(), maxiter="9")
    with pytest.raises(TypeError, match="model must be"):
        correct(1000.0, 1.0, 56000.0, 1.0, model={"1": 0.1})
    with pytest.raises(ValueError, match="must broadcast"):
        correct([1.0, 2.0], [1.0, 2.0, 3.0], 56000.0, 1.0, model=_exact_model())


def test_cte_correct_is_the_function_whatever_the_import_order():
    """Importing the submodule first must not turn ``cte.correct`` into a module (issue 13)."""
    import subprocess
    import sys

    code = (
        "import cte.analysis.correction as mod\n"
        "from cte.analysis.correction import correct as corrected\n"
        "import cte\n"
        "assert cte.correct is corrected is mod.correct, cte.correct\n"
        "try:\n"
        "    cte.correct(1000.0, 100, 56000.0, 10.0, model=1)\n"
        "except TypeError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("model must be a cte.FittedLoss"), proc.stdout


def test_a_model_without_background_terms_accepts_any_background():
    """Issue 23: the b, bx terms dropped (one flash level), the background is not refused."""
    c1 = 0.12
    fit = FittedLoss(
        config={"target": "ngc104", "filter": "F502N", "exptime_class": "long",
                "ctecorr": "FLT", "aperture": 3.0},
        terms=("1",), coefficients=np.array([c1, 0, 0, 0, 0, 0, 0]), covariance=np.zeros((7, 7)),
        chi2_red=1.0, dof=10, n_cells=11, n_stars=500, covariance_scale=1.0,
        flux_range=(100.0, 50_000.0), mjd_range=(55000.0, 58000.0),
        background_range=(1.6028, 1.6059),
    )
    out = correct([1000.0, 1000.0], 1024.0, 56000.0, [0.0, 25.0], model=fit)
    np.testing.assert_allclose(out.flux, 1000.0 / (1.0 - c1 * 1024.0 / 2048.0), rtol=1e-12)
    for bad in (-1.0, np.nan):
        with pytest.raises(OutOfRangeError, match=r"background must lie in \[0, inf\) e-/px"):
            correct(1000.0, 1024.0, 56000.0, bad, model=fit)
    # with the background terms fitted the range still holds
    fitted_b = FittedLoss(**{**fit.__dict__, "terms": ("1", "b")})
    with pytest.raises(OutOfRangeError, match=r"background must lie in the fitted range"):
        correct(1000.0, 1024.0, 56000.0, 25.0, model=fitted_b)
