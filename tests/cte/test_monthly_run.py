"""The monthly CTE update: the same `cte run` each time an epoch arrives measures only the
new images and re-fits the whole campaign; a failed run leaves the outputs as they were
(issue 19)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

import cte.pipeline
from cte.cli import main
from cte.datasets import FieldPhysics
from cte.datasets.simulate import load_campaign, simulate_campaign
from cte.io import ImageSelection
from cte.photometry.store import PhotometryStore
from stores.common.testing import tree_digest
from tests.cte.test_run import _injected_per_cell


@pytest.mark.slow
def test_monthly_run_is_incremental_and_all_or_nothing(tmp_path, monkeypatch, capsys):
    sim = simulate_campaign(
        tmp_path / "sim", seed=5, shape=(2051, 96), targets=("ngc104",), n_epochs=3, flashes=(12,),
        exptimes=(348.0,), include_180=False, include_excluded=False,
        physics=FieldPhysics(n_stars=1500)
    )
    campaign = load_campaign(tmp_path / "sim")
    epochs = sorted(p.name for p in sim.data_dir.iterdir())  # one proposal per epoch
    assert len(epochs) == 3
    data, store, out = tmp_path / "data", tmp_path / "store", tmp_path / "out"
    data.mkdir()
    argv = ["run", str(store), "--data", str(data), "--catalogs", str(sim.catalogs_dir),
            "--out", str(out)]  # the same command every month
    for k, proposal in enumerate(epochs, start=1):
        shutil.copytree(sim.data_dir / proposal, data / proposal)  # this month's epoch arrives
        result = cte.pipeline.run(data, sim.catalogs_dir, store, out)
        new = len(list((sim.data_dir / proposal).glob("*_fl?.fits")))
        assert len(result.photometry.measured) == new  # only the new epoch is measured ...
        assert len(result.photometry.reused) == sum(
            len(list((sim.data_dir / p).glob("*_fl?.fits"))) for p in epochs[: k - 1]
        )
        loss = xr.load_dataset(out / "loss.nc", engine="h5netcdf")
        assert np.unique(np.round(loss["mjd"].values)).size == k  # ... the campaign re-fitted
        assert len(result.model) > 0
        if k >= 2:  # every month's loss within errors of the simulator's truth
            photometry = PhotometryStore(store, mode="r").read_all()
            injected = _injected_per_cell(loss, photometry, campaign)
            small = loss["aperture"].values <= 5.0  # as test_run: 10 px holds neighbours
            measured, err = loss["loss"].values[..., small], loss["loss_err"].values[..., small]
            injected = injected[..., small]
            use = np.isfinite(measured) & np.isfinite(injected) & (err > 0)
            pull = (measured[use] - injected[use]) / err[use]
            assert use.sum() >= 10 * k, (k, use.sum())
            assert np.mean(np.abs(pull) <= 2) >= 0.8, (k, pull)
    # the CLI: the same command twice exits 0 and measures nothing new
    assert main(argv) == 0
    capsys.readouterr()
    before = tree_digest(out)
    # a run failing at its last step (the page) leaves every previous output unchanged
    def broken(*args, **kwargs):
        raise OSError("disk full while writing the report")

    monkeypatch.setattr("cte.report.report.write_site", broken)
    assert main([*argv, "--latex"]) == 1  # a new output, so not up to date: it runs
    assert "disk full" in capsys.readouterr().err
    assert tree_digest(out) == before
    assert not list(out.glob(".cte-run-*"))  # no staging directory left


def test_a_fit_failure_under_proposals_last_says_to_select_all(tmp_path, monkeypatch):
    """The seed's `--pr last` (proposals='last') selects one proposal, often one epoch: the
    error says so."""
    from types import SimpleNamespace

    import pandas as pd

    from cte.exceptions import FitError

    summary = SimpleNamespace(
        measured=pd.DataFrame({"image": ["i0po0101q_flt"]}), reused=pd.DataFrame({"image": []}),
        skipped=pd.DataFrame(columns=["image", "path", "category", "reason"]),
    )
    monkeypatch.setattr("cte.photometry.batch.measure_photometry",
                        lambda *args, **kwargs: summary)

    def no_fit(*args, **kwargs):
        raise FitError("no configuration could be fitted (one epoch)")

    monkeypatch.setattr(cte.pipeline, "analyse_store", no_fit)
    paths = (tmp_path, tmp_path, tmp_path / "store", tmp_path / "out")
    with pytest.raises(FitError, match=r"\(one epoch\); only the newest proposal was selected "
                       r"\(proposals='last'\).*select 'all' \(the default\)"):
        cte.pipeline.run(*paths, selection=ImageSelection(proposals="last"))
    with pytest.raises(FitError, match=r"^no configuration could be fitted \(one epoch\)$"):
        cte.pipeline.run(*paths)  # the default, all: the error as it is
