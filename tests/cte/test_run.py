"""`cte run` and its companions (fit, plot, report) on a small simulated campaign."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from astropy.table import Table

from cte.cli import main
from cte.model import CTEModel
from cte.simulate import simulate_campaign


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    """Two epochs of NGC 104 on full-height strips (every transfer count present),
    with the images the monitor must skip."""
    root = tmp_path_factory.mktemp("run")
    campaign = simulate_campaign(
        root / "sim", seed=4, shape=(2051, 96), n_stars=400, targets=("ngc104",), n_epochs=2,
        flashes=(12,), exptimes=(348.0,), include_excluded=True, include_180=False,
    )
    argv = [
        "run", "--data", str(campaign.data_dir), "--catalogs", str(campaign.catalogs_dir),
        "--store", str(root / "store"), "--out", str(root / "out"), "--pr", "all", "--latex",
    ]
    assert main(argv) == 0
    return root


@pytest.mark.slow
def test_run_writes_the_contracted_outputs(run_dirs):
    out = run_dirs / "out"
    loss = xr.load_dataset(out / "loss.nc", engine="h5netcdf")
    for name in ("loss", "loss_err", "n_stars"):
        assert loss[name].dims == ("pair", "flux_bin", "aperture")
    for coord in ("target", "filter", "flash", "exptime_class", "mjd", "ctecorr",
                  "flux_bin_lo", "flux_bin_hi"):
        assert coord in loss.coords
    np.testing.assert_array_equal(
        loss["flux_bin_lo"].values, [250, 500, 500, 1000, 2000, 2000, 4000, 8000]
    )
    table = Table.read(out / "coefficients.ecsv", format="ascii.ecsv")
    assert len(table) == len(CTEModel.read(out / "coefficients.ecsv")) > 0
    assert (out / "coefficients.tex").read_text().count("\\pm") > 0
    html = (out / "report.html").read_text()
    assert "Data excluded" in html
    # the images the monitor must skip are listed with their reasons
    assert "charge injection" in html.lower() or "chinject" in html.lower()
    assert list((out / "plots").glob("*.png"))
    # photometry kept in the store: a second run reuses it
    assert (run_dirs / "store").exists()


@pytest.mark.slow
def test_fit_plot_report_from_stored_results(run_dirs, tmp_path, capsys):
    out = run_dirs / "out"
    assert main(["fit", "--loss", str(out / "loss.nc"), "--out", str(tmp_path / "c.ecsv")]) == 0
    refit = Table.read(tmp_path / "c.ecsv", format="ascii.ecsv")
    original = Table.read(out / "coefficients.ecsv", format="ascii.ecsv")
    assert refit.colnames == original.colnames and len(refit) == len(original)
    assert main(["plot", "--loss", str(out / "loss.nc"), "--coefficients",
                 str(out / "coefficients.ecsv"), "--out", str(tmp_path / "plots")]) == 0
    assert len(list((tmp_path / "plots").glob("*.png"))) >= 2
    assert main(["report", "--store", str(run_dirs / "store"), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").exists()
    capsys.readouterr()
    assert main(["fit", "--loss", str(tmp_path / "nope.nc"), "--out", str(tmp_path / "x")]) == 1
    assert "not a readable loss.nc" in capsys.readouterr().err


@pytest.mark.slow
def test_analysis_options_come_from_the_configuration(run_dirs, tmp_path, capsys):
    from cte._exceptions import ConfigError
    from cte.pipeline import analysis_options

    user = tmp_path / "user.toml"
    user.write_text("[analysis.loss]\nmin_stars = 12\nsigma = 3.5\n")
    loss_options, model_options = analysis_options(user)
    assert loss_options["min_stars"] == 12 and loss_options["sigma"] == 3.5
    assert model_options["flux_bins"] == "independent"  # shipped default kept
    out = tmp_path / "r"
    argv = ["report", "--store", str(run_dirs / "store"), "--out", str(out), "--config", str(user)]
    assert main(argv) == 0
    loss = xr.load_dataset(out / "loss.nc", engine="h5netcdf")
    assert loss.attrs["min_stars"] == 12 and loss.attrs["sigma"] == 3.5
    measured = loss["n_stars"].values[np.isfinite(loss["loss"].values)]
    assert measured.min() >= 12
    bad = tmp_path / "bad.toml"
    bad.write_text("[analysis.loss]\nmin_star = 25\n")
    with pytest.raises(ConfigError, match=r"unknown options \['min_star'\]"):
        analysis_options(bad)
    capsys.readouterr()
    assert main(["report", "--store", str(run_dirs / "store"), "--out", str(out),
                 "--config", str(bad)]) == 1
    assert "min_star" in capsys.readouterr().err
