"""Shared synthetic data for the analysis tests (pairs, loss, model, correct, plots).

Built once per test process with :mod:`cte.datasets._synthphot` and cached; tests must not
modify the cached objects (use ``.copy()``).  The independent reference computations
(the injected loss of a cell, bin membership) are written here in plain numpy.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from cte.analysis.loss import measure_loss
from cte.analysis.model import fit_model
from cte.datasets._synthphot import SyntheticPhotometry, make_photometry

#: flash levels of the simulated campaign: b = log10(1 + B) spans 0.1 .. 2.1 dex
CAMPAIGN_FLASHES = (0.0, 12.0, 55.0, 116.0)


@cache
def campaign() -> tuple[SyntheticPhotometry, ...]:
    """Four flash levels x 8 epochs x short/long x FLT/FLC, 1500 stars, 3 apertures."""
    return tuple(
        make_photometry(flash=f, n_stars=1500, seed=100 + i)
        for i, f in enumerate(CAMPAIGN_FLASHES)
    )


@cache
def campaign_loss():
    """:func:`cte.measure_loss` of the whole campaign with default options."""
    return measure_loss([s.photometry for s in campaign()])


@cache
def campaign_model():
    """:func:`cte.fit_model` of :func:`campaign_loss`."""
    return fit_model(campaign_loss())


@cache
def small() -> SyntheticPhotometry:
    """One flash level, 2 epochs, 300 stars: for fast structural tests."""
    return make_photometry(n_stars=300, epochs=((11924, 55120.0), (12379, 55520.0)), seed=7)


@cache
def same_chip() -> SyntheticPhotometry:
    """A 180-degree (same-chip) set of NGC 6583: 3 epochs, 1500 stars."""
    return make_photometry(
        target="ngc6583",
        layout="180",
        n_stars=1500,
        epochs=((12692, 55850.0), (13083, 56240.0), (13566, 56680.0)),
        flash=0.0,
        seed=11,
    )


def reference_cells(synth: SyntheticPhotometry, loss_ds, *, flux_var="flux"):
    """Independent per-cell reference: stars, their leverage-weighted injected loss.

    For each (pair, flux bin, aperture) of *loss_ds* the cell's stars are those with
    no flag in either image, positive fluxes and mean flux ``(F_num + F_den) / 2`` in
    ``[lo, hi)``.  The injected loss of a cell is the weighted mean of the stars'
    true ``L`` (average of the two images), with the weight a least-squares slope
    gives each star to first order in L: ``w = (x - xbar) (2 x - N)``, ``x`` the
    denominator transfers and ``N`` the total transfers of the star.

    Returns a dict of arrays shaped (pair, flux_bin, aperture): ``injected``, ``n``
    and the plain mean ``injected_plain``.
    """
    ph, truth = synth.photometry, synth.truth
    ids = list(ph["image"].values)
    num = np.array([ids.index(i) for i in loss_ds["image_num"].values])
    den = np.array([ids.index(i) for i in loss_ds["image_den"].values])
    flux = ph[flux_var].transpose("image", "star", "aperture").values
    f1, f2 = flux[num], flux[den]
    loss_true = 0.5 * (truth["loss"].values[num] + truth["loss"].values[den])
    x = ph["transfers"].values[den]
    total = x + ph["transfers"].values[num]
    ok = (ph["flags"].values[num] | ph["flags"].values[den]) == 0
    lo = loss_ds["flux_bin_lo"].values
    hi = loss_ds["flux_bin_hi"].values
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = 0.5 * (f1 + f2)
        member = (
            (mean[..., None] >= lo) & (mean[..., None] < hi)
            & ok[:, :, None, None] & (f1 > 0)[..., None] & (f2 > 0)[..., None]
        )  # pair, star, aperture, bin
        n = member.sum(axis=1)
        xbar = (x[:, :, None, None] * member).sum(axis=1) / n
        w = (x[:, :, None, None] - xbar[:, None]) * (2 * x - total)[:, :, None, None] * member
        injected = (loss_true[..., None] * w).sum(axis=1) / w.sum(axis=1)
        plain = (loss_true[..., None] * member).sum(axis=1) / n
    order = (0, 2, 1)  # -> pair, bin, aperture
    return {
        "injected": injected.transpose(order),
        "injected_plain": plain.transpose(order),
        "n": n.transpose(order),
    }
