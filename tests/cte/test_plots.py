"""Tests of cte.plots: files written, and the plotted data are the measured/model values."""

from __future__ import annotations

import numpy as np
import pytest
from _analysis_fixtures import campaign, campaign_loss, campaign_model, same_chip
from matplotlib.figure import Figure

from cte.loss import measure_loss
from cte.plots import (
    plot_loss_vs_flux,
    plot_loss_vs_time,
    plot_ratio_vs_y,
    plot_same_chip,
    select_configuration,
)


def _is_png(path):
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ratio_vs_y_shows_the_cell_stars_and_the_fit(tmp_path):
    synth = campaign()[1]
    loss_ds = campaign_loss()
    sub = loss_ds.isel(pair=np.flatnonzero(loss_ds["flash"].values == 12.0))
    pair = str(sub["pair"].values[3])
    path = tmp_path / "ratio.png"
    fig = plot_ratio_vs_y(synth.photometry, loss_ds, pair, aperture=5.0, path=path)
    assert isinstance(fig, Figure) and _is_png(path)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == loss_ds.sizes["flux_bin"]
    row = loss_ds.sel(pair=pair, aperture=5.0)
    ph = synth.photometry
    i = list(ph["image"].values).index(str(row["image_num"].values))
    j = list(ph["image"].values).index(str(row["image_den"].values))
    f1, f2 = ph["flux"].sel(aperture=5.0).values[i], ph["flux"].sel(aperture=5.0).values[j]
    ok = (ph["flags"].values[i] | ph["flags"].values[j]) == 0
    for b, ax in enumerate(axes):
        lo, hi = row["flux_bin_lo"].values[b], row["flux_bin_hi"].values[b]
        with np.errstate(invalid="ignore"):
            m = 0.5 * (f1 + f2)
            sel = ok & (m >= lo) & (m < hi) & (f1 > 0) & (f2 > 0)
        offsets = ax.collections[0].get_offsets()
        assert len(offsets) == sel.sum()  # all stars of the bin, before clipping
        np.testing.assert_allclose(np.sort(offsets[:, 1]), np.sort(f1[sel] / f2[sel]))
        n_kept = int(row["n_stars"].values[b])
        assert n_kept <= sel.sum()
        if np.isfinite(row["slope"].values[b]):
            line = ax.lines[0]
            xs, ys = line.get_data()
            np.testing.assert_allclose(
                ys, row["intercept"].values[b] + row["slope"].values[b] * xs, rtol=1e-12
            )
            assert f"n = {n_kept}" in ax.get_title()


def test_ratio_vs_y_unknown_pair():
    with pytest.raises(KeyError, match="not in loss_ds"):
        plot_ratio_vs_y(campaign()[0].photometry, campaign_loss(), "nope|nope", aperture=3.0,
                        path="unused.png")


def test_loss_vs_flux_plots_cells_and_model(tmp_path):
    loss_ds, model = campaign_loss(), campaign_model()
    path = tmp_path / "flux.png"
    fig = plot_loss_vs_flux(loss_ds, model, aperture=3.0, path=path, ctecorr="FLT",
                            exptime_class="long", flash=12.0)
    assert _is_png(path)
    ax = fig.axes[0]
    sub = select_configuration(loss_ds, aperture=3.0, ctecorr="FLT", exptime_class="long",
                               flash=12.0)
    n_epochs = np.unique(np.round(sub["mjd"].values)).size
    assert n_epochs == 8
    model_lines = [ln for ln in ax.lines if len(ln.get_xdata()) == 60]
    assert len(model_lines) == n_epochs
    fit = model.select(ctecorr="FLT", exptime_class="long", aperture=3.0)
    xs, ys = model_lines[0].get_data()
    mjd0 = np.unique(np.round(sub["mjd"].values))[0]
    first = sub.isel(pair=np.flatnonzero(np.round(sub["mjd"].values) == mjd0))
    bkg = np.nanmedian(first["background"].values)
    np.testing.assert_allclose(ys, fit.loss(10**xs, mjd0, bkg), rtol=1e-9)
    finite = np.isfinite(sub["loss"].values).sum()
    plotted = np.concatenate([c.lines[0].get_ydata() for c in ax.containers])
    assert plotted.size == finite
    np.testing.assert_allclose(np.sort(plotted),
                               np.sort(sub["loss"].values[np.isfinite(sub["loss"].values)]))


def test_loss_vs_time_one_panel_per_bin(tmp_path):
    loss_ds, model = campaign_loss(), campaign_model()
    path = tmp_path / "time.png"
    fig = plot_loss_vs_time(loss_ds, model, aperture=3.0, path=path, ctecorr="FLC",
                            exptime_class="short")
    assert _is_png(path)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == loss_ds.sizes["flux_bin"]
    assert visible[0].get_title() == "250-500 e-"


def test_same_chip_comparison(tmp_path):
    loss_180 = measure_loss(same_chip().photometry)
    path = tmp_path / "same.png"
    fig = plot_same_chip(loss_180, aperture=3.0, path=path, nominal=campaign_loss())
    assert _is_png(path)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["180-degree, free fit", "180-degree, through 1 at y = pivot",
                      "nominal chip 1 / chip 2"]
    with pytest.raises(ValueError, match="no 180-degree"):
        plot_same_chip(campaign_loss(), aperture=3.0, path=tmp_path / "x.png")


def test_selection_errors_name_what_exists():
    with pytest.raises(ValueError, match=r"no pair matches \{'ctecorr': 'XYZ'\}"):
        select_configuration(campaign_loss(), aperture=3.0, ctecorr="XYZ")
    with pytest.raises(ValueError, match=r"aperture 4.0 px not in loss_ds"):
        select_configuration(campaign_loss(), aperture=4.0)
    with pytest.raises(ValueError, match="selection keys"):
        select_configuration(campaign_loss(), aperture=3.0, colour="red")
