"""The simulator's truth, pinned by hand, and the library checked against it.

The simulator computes the transfer count and the injected loss with its own
:func:`cte.datasets.simulate.true_transfers` and :func:`cte.datasets.simulate.true_loss`,
written apart from :func:`cte.io._geometry.transfers` and :mod:`cte.analysis.lossmodel` that the
measurement, the fit and ``correct`` use.  Here both are pinned with values worked out by hand,
and the library is compared with them.
"""

from __future__ import annotations

import numpy as np
import pytest

from cte.analysis.lossmodel import LossModel, basis, model_variables
from cte.datasets.simulate import true_loss, true_transfers
from cte.io._geometry import transfers

#: (chip, 0-based full-chip row, parallel transfers), by hand: chip 2 (SCI,1) reads out
#: at y = 0, so a packet at row y travels y rows; chip 1 (SCI,2) reads out at the top
#: edge y = 2051 (2051 rows, 0..2050), so it travels 2051 - y rows
GEOMETRY = [
    (2, 0, 0), (2, 1, 1), (2, 1025, 1025), (2, 2050, 2050), (2, 12.75, 12.75),
    (1, 0, 2051), (1, 1, 2050), (1, 1025, 1026), (1, 2050, 1), (1, 12.75, 2038.25),
]


@pytest.mark.parametrize(("chip", "row", "expected"), GEOMETRY)
def test_transfers_pinned_by_hand(chip, row, expected):
    assert true_transfers(row, chip) == expected
    assert transfers(row, chip) == expected


def test_transfers_broadcast_and_refuse_other_chips():
    rows = np.array([0.0, 2050.0])
    np.testing.assert_array_equal(transfers(rows, np.array([2, 1])), [0.0, 1.0])
    np.testing.assert_array_equal(true_transfers(rows, 1), [2051.0, 1.0])
    with pytest.raises(ValueError, match="chip must be 1 or 2"):
        transfers(10.0, 3)
    with pytest.raises(ValueError, match=r"chip must be one of \[1, 2\], got 0"):
        true_transfers(10.0, 0)


#: coefficients that are distinct powers of two, so that a swapped or dropped term
#: changes the sum
POWERS = {"1": 1.0, "x": 2.0, "x2": 4.0, "t": 8.0, "xt": 16.0, "b": 32.0, "bx": 64.0}

#: (flux e-, MJD, background e-/px, L) worked by hand: X = log10(F) - 3,
#: T = (MJD - 55000) / 365.25, B = log10(1 + bkg)
LOSS_CASES = [
    # X = 0, T = 0, B = 0: only the constant
    (1000.0, 55000.0, 0.0, 1.0),
    # X = 1, T = 1, B = 1: every term once, 1 + 2 + 4 + 8 + 16 + 32 + 64
    (10_000.0, 55365.25, 9.0, 127.0),
    # X = 2, T = 0.5, B = 1: 1 + 4 + 16 + 4 + 16 + 32 + 128
    (100_000.0, 55182.625, 9.0, 201.0),
    # X = 0, T = 2, B = 2: 1 + 16 + 64
    (1000.0, 55730.5, 99.0, 81.0),
    # X = -1, T = 1, B = 1: 1 - 2 + 4 + 8 - 16 + 32 - 64 = -37, clipped at 0
    (100.0, 55365.25, 9.0, 0.0),
]


@pytest.mark.parametrize(("flux", "mjd", "bkg", "expected"), LOSS_CASES)
def test_injected_loss_pinned_by_hand(flux, mjd, bkg, expected):
    assert true_loss(POWERS, flux, mjd, bkg) == pytest.approx(expected, rel=1e-12)
    assert LossModel(POWERS).loss(flux, mjd, bkg) == pytest.approx(expected, rel=1e-12)


def test_model_variables_and_basis_match_the_documented_formula():
    x, t, b = model_variables(10_000.0, 55365.25 + 365.25, 99.0)
    assert (float(x), float(t), float(b)) == pytest.approx((1.0, 2.0, 2.0), rel=1e-12)
    row = basis(1.5, -2.0, 0.5)
    # order of BASIS_TERMS: 1, x, x2, t, xt, b, bx
    np.testing.assert_allclose(row, [1.0, 1.5, 2.25, -2.0, -3.0, 0.5, 0.75])


def test_library_loss_equals_the_independent_truth_everywhere():
    rng = np.random.default_rng(3)
    flux = 10 ** rng.uniform(1.5, 5.5, 2000)
    mjd = rng.uniform(54900.0, 60000.0, 2000)
    bkg = rng.uniform(0.0, 150.0, 2000)
    coefficients = {k: float(v) for k, v in zip(POWERS, rng.normal(0, 0.05, 7), strict=True)}
    np.testing.assert_allclose(LossModel(coefficients).loss(flux, mjd, bkg),
                               true_loss(coefficients, flux, mjd, bkg), rtol=1e-10, atol=1e-15)


def test_simulated_truth_follows_the_hand_formulas(campaign):
    """Per star of the simulated images: transfers from its true row, L from its flux."""
    truth = campaign.truth("ngc104")
    images = campaign.images.set_index("image")
    coefficients = {v: m.coefficients for v, m in campaign.loss_models.items()}
    checked = set()
    for image in truth.image.values:
        row = images.loc[image]
        t = truth.sel(image=image)
        y = t.y.values
        by_hand = np.clip(y, 0, 2051) if row.chip == 2 else 2051 - np.clip(y, 0, 2051)
        np.testing.assert_allclose(t.transfers.values, by_hand, rtol=0, atol=1e-9)
        c = coefficients[row.ctecorr]
        big_x = np.log10(t.flux_true.values) - 3
        years = (row.mjd - 55000.0) / 365.25
        big_b = np.log10(1 + row.background)
        loss = np.maximum(c["1"] + c["x"] * big_x + c["x2"] * big_x**2 + c["t"] * years
                          + c["xt"] * big_x * years + c["b"] * big_b
                          + c["bx"] * big_b * big_x, 0)
        np.testing.assert_allclose(t.loss.values, loss, rtol=1e-12)
        checked.add(int(row.chip))
    assert checked == {1, 2}
