"""Tests of cte.report.plots: files written, and the plotted data are the measured/model values."""

from __future__ import annotations

import matplotlib.dates as mdates
import numpy as np
import pytest
from astropy.time import Time
from matplotlib.figure import Figure

from cte.analysis.loss import measure_loss
from cte.analysis.model import CTEModel, fit_model
from cte.report.plots import (
    plot_loss_vs_flux,
    plot_loss_vs_time,
    plot_ratio_vs_y,
    plot_same_chip,
    select_configuration,
)
from tests.cte._analysis_fixtures import campaign, campaign_loss, campaign_model, same_chip
from tests.cte._figure_checks import by_gid as _by_gid
from tests.cte._figure_checks import check_curves as _check_curves


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
    e1 = ph["flux_err"].sel(aperture=5.0).values[i]
    e2 = ph["flux_err"].sel(aperture=5.0).values[j]
    ok = (ph["flags"].values[i] | ph["flags"].values[j]) == 0
    # every line and marker that encodes something is in the figure's legend
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    drawn = {label for ax in axes for label in ax.get_legend_handles_labels()[1]}
    assert len(legend) == len(set(legend)) and set(legend) == drawn
    assert {"stars (before clipping)", "ratio 1 (no loss)", "free fit"} <= drawn
    has_forced = np.isfinite(row["slope_fixed"].values).any()
    assert ("forced through 1 at y = pivot" in drawn) == has_forced
    for b, ax in enumerate(axes):
        lo, hi = row["flux_bin_lo"].values[b], row["flux_bin_hi"].values[b]
        with np.errstate(invalid="ignore"):
            m = 0.5 * (f1 + f2)
            sel = ok & (m >= lo) & (m < hi) & (f1 > 0) & (f2 > 0)
        (stars,) = _by_gid(ax, "data:")["stars"]
        x, y = stars.get_data()
        assert len(y) == sel.sum()  # all stars of the bin, before clipping
        np.testing.assert_allclose(np.sort(y), np.sort(f1[sel] / f2[sel]))
        # per-star error bars: the ratio's photometric error, computed independently
        (container,) = [c for c in ax.containers if c.lines[0] is stars]
        segments = container.lines[2][0].get_segments()
        half = np.array([0.5 * (seg[1][1] - seg[0][1]) for seg in segments])
        expected = (f1 / f2 * np.hypot(e1 / f1, e2 / f2))[sel]
        np.testing.assert_allclose(np.sort(half), np.sort(expected), rtol=1e-9)
        n_kept = int(row["n_stars"].values[b])
        assert n_kept <= sel.sum()
        if np.isfinite(row["slope"].values[b]):
            (line,) = _by_gid(ax, "model:")["free"]
            xs, ys = line.get_data()
            np.testing.assert_allclose(
                ys, row["intercept"].values[b] + row["slope"].values[b] * xs, rtol=1e-12
            )
            # drawn over the stars only
            assert xs.min() == pytest.approx(x.min()) and xs.max() == pytest.approx(x.max())
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
    epochs = np.unique(np.round(sub["mjd"].values))
    assert epochs.size == 8
    curves = _by_gid(ax, "model:")
    assert len(curves) == epochs.size
    fit = model.select(ctecorr="FLT", exptime_class="long", aperture=3.0)
    mjd0 = epochs[0]
    first = sub.isel(pair=np.flatnonzero(np.round(sub["mjd"].values) == mjd0))
    ((line,),) = [v for k, v in curves.items() if k.startswith(f"{mjd0:.0f}/")]
    xs, ys = line.get_data()
    bkg = np.nanmedian(first["background"].values)
    np.testing.assert_allclose(ys, fit.loss(xs, np.median(first["mjd"].values), bkg),
                               rtol=1e-9)
    finite = np.isfinite(sub["loss"].values).sum()
    plotted = np.concatenate([c.lines[0].get_ydata() for c in ax.containers])
    assert plotted.size == finite
    np.testing.assert_allclose(np.sort(plotted),
                               np.sort(sub["loss"].values[np.isfinite(sub["loss"].values)]))
    # epochs as calendar dates (astropy, independently), flux on a plain-number log axis
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for m in epochs:
        date = Time(m, format="mjd").to_value("iso", subfmt="date")
        assert f"{date} (MJD {m:.0f})" in legend
    assert "model at the epoch, flash 12 e-/px" in legend
    assert ax.get_xscale() == "log"
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "1000" in labels and not any("10^" in t or "e+" in t for t in labels)


def test_loss_vs_time_panels_only_for_bins_with_data(tmp_path):
    loss_ds, model = campaign_loss(), campaign_model()
    path = tmp_path / "time.png"
    sub_all = select_configuration(loss_ds, aperture=3.0, ctecorr="FLC", exptime_class="short")
    with_data = np.isfinite(sub_all["loss"].values).any(axis=0)
    fig = plot_loss_vs_time(loss_ds, model, aperture=3.0, path=path, ctecorr="FLC",
                            exptime_class="short")
    assert _is_png(path)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == int(with_data.sum())
    assert visible[0].get_title() == "250-500 e-"
    # dates on the x axis: the points' x are the pairs' MJD as calendar dates
    ax = visible[0]
    x = ax.containers[0].lines[0].get_xdata()
    got = np.sort(np.unique(np.asarray(mdates.date2num(x))))
    expected = np.sort(np.unique(mdates.date2num(
        Time(sub_all["mjd"].values, format="mjd").datetime64)))
    assert np.all(np.isin(np.round(got, 3), np.round(expected, 3)))
    fig.canvas.draw()
    years = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert any(t.startswith("20") for t in years), years
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {f"flash {f:g} e-/px" for f in np.unique(sub_all["flash"].values)} <= set(legend)
    # an empty bin gets no panel and is named
    empty = loss_ds.copy(deep=True)
    empty["loss"][:, 0, :] = np.nan
    fig = plot_loss_vs_time(empty, model, aperture=3.0, path=tmp_path / "t2.png",
                            ctecorr="FLC", exptime_class="short")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == int(with_data.sum()) - 1
    assert "no measured loss in 250-500 e-" in fig.get_suptitle()


def test_acceptance_curves_stay_on_their_data(tmp_path):
    """Issue 11: no drawn model curve lies outside its data's flux range or more than
    3 sigma from all of its binned points (checked on the plotted artists' data), for
    every configuration, including a single-epoch subset fitted without time terms."""
    loss_ds, model = campaign_loss(), campaign_model()
    first = np.flatnonzero(np.round(loss_ds["mjd"].values) == np.round(loss_ds["mjd"].values
                                                                        .min()))
    one_epoch = loss_ds.isel(pair=first)
    cases = [(loss_ds, model), (one_epoch, fit_model(one_epoch))]
    drawn = 0
    for ds, mdl in cases:
        for fit in mdl:
            if fit.config["aperture"] != 3.0:
                continue
            config = {k: fit.config[k] for k in ("target", "filter", "exptime_class",
                                                 "ctecorr")}
            fig = plot_loss_vs_flux(ds, mdl, aperture=3.0, path=None, **config)
            drawn += _check_curves(fig, log_x=True)
            fig = plot_loss_vs_time(ds, mdl, aperture=3.0, path=None, **config)
            drawn += _check_curves(fig, log_x=False)
    assert drawn > 40


def test_unfitted_configuration_is_shown_as_data_only(tmp_path):
    loss_ds = campaign_loss()
    model = CTEModel(fits=(), skipped=(({"target": "ngc104", "filter": "F502N",
                                          "exptime_class": "long", "ctecorr": "FLT",
                                          "aperture": 3.0}, "3 cells"),))
    fig = plot_loss_vs_flux(loss_ds, model, aperture=3.0, path=tmp_path / "f.png",
                            ctecorr="FLT", exptime_class="long")
    ax = fig.axes[0]
    assert not _by_gid(ax, "model:")
    assert any("data only (not fitted: 3 cells)" in t.get_text() for t in ax.texts)
    fig = plot_loss_vs_time(loss_ds, model, aperture=3.0, path=tmp_path / "t.png",
                            ctecorr="FLT", exptime_class="long")
    assert "data only (not fitted: 3 cells)" in fig.get_suptitle()


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


def test_single_epoch_data_only_time_plot_is_readable():
    """Issue 23: a data-only loss-vs-date figure of one epoch keeps its whole title inside
    the figure and spans months, not the hours between the epoch's visits."""
    import xarray as xr

    from cte.datasets._synthphot import make_photometry

    one = make_photometry(n_stars=300, epochs=((11924, 55120.0),), seed=7).photometry
    loss = measure_loss(one).isel(flux_bin=[0])  # one panel: the narrowest figure
    later = loss.assign_coords(mjd=loss["mjd"] + 0.2,  # a second visit 5 hours later
                               pair=[f"{p}b" for p in loss["pair"].values])
    loss = xr.concat([loss, later], dim="pair")
    config = {k: str(loss[k].values[0]) for k in ("target", "filter", "exptime_class",
                                                   "ctecorr")}
    fig = plot_loss_vs_time(loss, None, aperture=3.0, path=None, **config)
    fig.canvas.draw()
    title = fig._suptitle
    assert "data only" in title.get_text()
    box, page = title.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1, (box, page)
    for ax in fig.axes:
        if ax.lines:
            low, high = ax.get_xlim()  # matplotlib date numbers: days
            assert high - low >= 180, (low, high)
            mjd = loss["mjd"].values
            dates = mdates.date2num(Time(mjd, format="mjd").datetime64)
            assert low <= dates.min() and dates.max() <= high
