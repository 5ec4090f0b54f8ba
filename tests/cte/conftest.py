"""Fixtures of the cte photometry tests: small simulated campaigns built once per session."""

from __future__ import annotations

import pytest

from cte.analysis.lossmodel import LossModel
from cte.config import load_config
from cte.datasets import FieldPhysics
from cte.datasets.simulate import simulate_campaign

#: shape of the test cut-outs (rows, columns)
SHAPE = (256, 256)


@pytest.fixture(scope="session")
def config():
    return load_config()


@pytest.fixture(scope="session")
def campaign(tmp_path_factory):
    """One epoch of NGC 104 (flash 0 and 12, long and short, FLT and FLC), the
    180-degree set, the images the monitor must skip, and three broken files."""
    root = tmp_path_factory.mktemp("campaign")
    return simulate_campaign(
        root, seed=11, shape=SHAPE, targets=("ngc104",), n_epochs=1, flashes=(0, 12),
        exptimes=(348.0, 30.0), include_excluded=True, include_180=True, bad_files=True,
        physics=FieldPhysics(n_stars=150)
    )


@pytest.fixture(scope="session")
def measured(campaign, tmp_path_factory):
    """The campaign's photometry store (all usable images measured, threaded)."""
    from cte.photometry.batch import measure_photometry

    store = tmp_path_factory.mktemp("store") / "phot"
    summary = measure_photometry(campaign.data_dir, campaign.catalogs_dir, store)
    return summary


@pytest.fixture(scope="session")
def flat_campaign(tmp_path_factory):
    """A sparse field of bright stars with no injected loss: two filters (F606W
    saturates the brightest), one flash level, FLT only."""
    root = tmp_path_factory.mktemp("flat")
    zero = LossModel({})
    return simulate_campaign(
        root, seed=5, shape=SHAPE, targets=("ngc104",), n_epochs=1, filters=("F502N", "F606W"),
        flashes=(12,), exptimes=(348.0,), ctecorr=("FLT",), include_excluded=False,
        include_180=False, loss_models={"FLT": zero, "FLC": zero},
        physics=FieldPhysics(n_stars=45, flux_range=(3000.0, 100000.0), pointing_error=3.0,
                             rotation_error=0.03)
    )


@pytest.fixture(scope="session")
def flat_measured(flat_campaign, tmp_path_factory):
    from cte.photometry.batch import measure_photometry

    store = tmp_path_factory.mktemp("flatstore") / "phot"
    return measure_photometry(flat_campaign.data_dir, flat_campaign.catalogs_dir, store)
