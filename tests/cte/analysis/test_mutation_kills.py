"""Cases of the CTE geometry and loss formula that the mutation run
(benchmarks/MUTATION.md) found unpinned.

Expected values are written out by hand (or with :mod:`math` in float64), never taken
from the functions under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cte.analysis.lossmodel import LossModel, model_variables
from cte.io._geometry import transfers


def test_transfers_of_unsigned_row_indices():
    # Row indices read as uint8/uint16 (e.g. from a catalogue) must not wrap or overflow:
    # chip 1 has n = 2051 - y, chip 2 has n = y.
    y = np.array([0, 200, 255], dtype=np.uint8)
    np.testing.assert_array_equal(transfers(y, 1), [2051.0, 1851.0, 1796.0])
    np.testing.assert_array_equal(transfers(y, 2), [0.0, 200.0, 255.0])
    y16 = np.array([0, 2050], dtype=np.uint16)
    np.testing.assert_array_equal(transfers(y16, 1), [2051.0, 1.0])


def test_transfers_error_names_the_bad_chips():
    with pytest.raises(ValueError, match=r"chip must be 1 or 2, got \[0, 3\]"):
        transfers([10, 20, 30], [3, 1, 0])


def test_model_variables_keep_float64_precision_for_float32_columns():
    # float32 catalogue columns: the variables are computed in float64 from the float32
    # values, x = log10(f / 1000), t = (mjd - 55000) / 365.25, b = log10(1 + bkg).
    flux = np.array([1234.5678, 98765.43], dtype=np.float32)
    mjd = np.array([58123.456, 60000.5], dtype=np.float32)
    bkg = np.array([3.3, 47.1], dtype=np.float32)
    x, t, b = model_variables(flux, mjd, bkg)
    for i in range(2):
        # float(): a float32 result would otherwise be compared in float32
        expected_x = math.log10(float(flux[i]) / 1000.0)
        assert float(x[i]) == pytest.approx(expected_x, rel=1e-14, abs=1e-15)
        assert float(t[i]) == pytest.approx((float(mjd[i]) - 55000.0) / 365.25, rel=1e-14)
        assert float(b[i]) == pytest.approx(math.log10(1.0 + float(bkg[i])), rel=1e-14)


def test_unknown_coefficient_is_refused_by_name():
    with pytest.raises(ValueError, match=r"got unknown \['z'\]"):
        LossModel({"1": 0.1, "z": 1.0})


def test_surviving_fraction_by_hand():
    # L = 0.1 - 0.05 x with x = log10(flux / 1000): flux 10^4 e- gives x = 1, L = 0.05;
    # after n transfers the star keeps 1 - L n / 2048.
    model = LossModel({"1": 0.1, "x": -0.05})
    kept = model.surviving_fraction([1.0e4, 1.0e4, 1.0e3], 56000.0, 10.0, [2048, 1024, 512])
    np.testing.assert_allclose(kept, [1 - 0.05, 1 - 0.05 / 2, 1 - 0.1 / 4], rtol=1e-12)
    # a negative loss is clipped to 0: nothing is lost, nothing gained
    gain = LossModel({"1": -0.2})
    np.testing.assert_array_equal(gain.surviving_fraction(1.0e4, 56000.0, 10.0, 2051), [1.0])


def test_chip_origins_by_hand():
    from cte.io._geometry import chip_origin_y

    assert chip_origin_y(2) == 0.0
    assert chip_origin_y(1) == 2051.0 + 31.0  # chip height plus the gap


def test_rotation_matrix_is_counter_clockwise():
    from cte.io._geometry import rotation_matrix

    np.testing.assert_allclose(rotation_matrix(90.0) @ [1.0, 0.0], [0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(rotation_matrix(90.0) @ [0.0, 1.0], [-1.0, 0.0], atol=1e-15)
    c, s = math.sqrt(3) / 2, 0.5
    np.testing.assert_allclose(rotation_matrix(30.0), [[c, -s], [s, c]], rtol=1e-15)


@pytest.mark.parametrize(("orientat", "east", "north"), [(0.0, 0.0, 1.0), (90.0, 1.0, 0.0)])
def test_tan_wcs_reference_pixel_scale_and_orientation(orientat, east, north):
    # The reference pixel (0-based crpix0) maps to crval; one pixel along +y moves the
    # position by `scale` arcsec towards the position angle orientat (east of north):
    # (east, north) offsets of (0, 1) at orientat 0 and (1, 0) at orientat 90.
    from cte.io._geometry import tan_wcs

    scale = 0.04
    ra0, dec0 = 150.0, 2.0
    wcs = tan_wcs((ra0, dec0), (100.0, 300.0), orientat=orientat, scale=scale)
    assert wcs.wcs.radesys == "ICRS"
    ra, dec = wcs.all_pix2world([[100.0, 300.0], [100.0, 301.0], [101.0, 300.0]], 0).T
    assert ra[0] == pytest.approx(ra0, abs=1e-12) and dec[0] == pytest.approx(dec0, abs=1e-12)
    step = scale / 3600.0
    cosd = math.cos(math.radians(dec0))
    # +y: (east, north) * step;  +x: 90 deg clockwise of +y on the sky, (-north, east)
    assert (ra[1] - ra0) * cosd == pytest.approx(east * step, abs=1e-4 * step)
    assert dec[1] - dec0 == pytest.approx(north * step, abs=1e-4 * step)
    assert (ra[2] - ra0) * cosd == pytest.approx(-north * step, abs=1e-4 * step)
    assert dec[2] - dec0 == pytest.approx(east * step, abs=1e-4 * step)


def test_segment_median_of_one_entry_and_of_none():
    from cte.analysis._linefit import segment_median

    np.testing.assert_array_equal(segment_median(np.array([0]), [5.0], [True], 1), [5.0])
    empty = segment_median(np.array([], dtype=np.intp), np.array([]), np.array([], bool), 3)
    assert empty.shape == (3,) and np.isnan(empty).all()


def test_line_fit_errors_equal_linregress_with_small_x_spread_and_offset():
    # x spread 0.3 (Sxx = 0.05 < 1) and a large intercept: slope, intercept and both
    # standard errors must equal scipy.stats.linregress; the outlier at index 5 is clipped
    # by the default 3-sigma cut.
    from scipy.stats import linregress

    from cte.analysis._linefit import segmented_line_fit

    rng = np.random.default_rng(15)
    x = np.linspace(0.0, 0.3, 40)
    y = 100.0 + 2.0 * x + rng.normal(0.0, 0.01, x.size)
    y[5] += 1.0  # 100 sigma
    fit = segmented_line_fit(np.zeros(x.size, np.intp), x, y, 1)
    good = np.ones(x.size, bool)
    good[5] = False
    np.testing.assert_array_equal(fit.keep, good)
    ref = linregress(x[good], y[good])
    assert fit.slope[0] == pytest.approx(ref.slope, rel=1e-9)
    assert fit.intercept[0] == pytest.approx(ref.intercept, rel=1e-12)
    assert fit.slope_err[0] == pytest.approx(ref.stderr, rel=1e-7)
    assert fit.intercept_err[0] == pytest.approx(ref.intercept_stderr, rel=1e-7)


# -- _linefit.invert_ratio_slope: the loss whose noise-free ratio curve has the slope ------
def _ratio_slope(a: float, x: np.ndarray, total: float) -> float:
    """Least-squares slope of r(x; a) = (1 - a (N - x)) / (1 - a x) against x (numpy)."""
    ratio = (1 - a * (total - x)) / (1 - a * x)
    return float(np.polyfit(x, ratio, 1)[0])


@pytest.mark.parametrize("span", [(40.0, 2000.0), (40.0, 600.0)], ids=["chip", "near-amp"])
@pytest.mark.parametrize("loss", [0.02, 0.15, 0.3])
def test_invert_ratio_slope_recovers_the_loss_and_its_derivative(loss, span):
    from cte.analysis._linefit import invert_ratio_slope

    total = 2051.0
    x = np.linspace(*span, 25)  # one segment: stars over the chip, or near one amplifier
    a_true = loss / 2048  # per transfer
    slope = _ratio_slope(a_true, x, total)
    args = (np.zeros(x.size, int), x, np.full(x.size, total), np.ones(x.size, bool))
    a, dadb = invert_ratio_slope(*args, np.array([slope]), np.array([x.mean()]), 1)
    assert a[0] == pytest.approx(a_true, rel=1e-9)
    # da/d(slope) from the forward map by central differences (independent of g'(a))
    h = 1e-3 * a_true
    dslope = (_ratio_slope(a_true + h, x, total) - _ratio_slope(a_true - h, x, total)) / (2 * h)
    assert dadb[0] == pytest.approx(1 / dslope, rel=1e-5)
    # the closed-form start alone (no Newton step) is within 2 % of the root for L <= 0.3
    start, _ = invert_ratio_slope(
        *args, np.array([slope]), np.array([x.mean()]), 1, iterations=0
    )
    assert start[0] == pytest.approx(a_true, rel=0.02)


def test_a_segment_of_one_abscissa_has_no_line():
    """All stars at one y: no slope can be fitted, so every statistic is NaN (not inf)."""
    from cte.analysis._linefit import segmented_line_fit

    segment = np.repeat([0, 1], 6)
    x = np.r_[np.full(6, 700.0), np.linspace(100.0, 1900.0, 6)]
    y = np.r_[np.linspace(0.9, 1.1, 6), 1.0 + 1e-4 * np.linspace(100.0, 1900.0, 6)]
    fit = segmented_line_fit(segment, x, y, 2, sigma=None)
    for name in ("slope", "intercept", "slope_err", "intercept_err", "rms"):
        assert np.isnan(getattr(fit, name)[0]), name
    assert fit.slope[1] == pytest.approx(1e-4, rel=1e-9)  # the other segment is a line


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sigma": 0}, ValueError, r"^sigma must be > 0, got 0$"),
        ({"sigma": "3"}, TypeError, r"^sigma must be a number or None, got '3'$"),
        ({"maxiters": -1}, ValueError, r"^maxiters must be an integer >= 0, got -1$"),
        ({"maxiters": 1.5}, TypeError, r"^maxiters must be an integer >= 0, got 1.5$"),
    ],
)
def test_line_fit_refuses_bad_options(kwargs, error, match):
    from cte.analysis._linefit import segmented_line_fit

    x = np.arange(10.0)
    with pytest.raises(error, match=match):
        segmented_line_fit(np.zeros(10, np.intp), x, 1 + 0.1 * x, 1, **kwargs)
