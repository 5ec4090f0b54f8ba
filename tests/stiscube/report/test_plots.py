"""Plots: files written, and the drawn data checked against numpy on the ingested truth."""

from __future__ import annotations

import matplotlib.dates as mdates
import numpy as np
import pytest
from matplotlib.figure import Figure

from stiscube import CubeQueryError, PixelDB, UnitMismatchError
from stiscube.datasets._synthcube import random_properties
from stiscube.report.plots import plot_hot_pixel_counts, plot_pixel_history, plot_property_map
from stiscube.schema import PROPERTIES

SHAPE = (64, 64)
RATE = [20, 21, 22, 24, 25]  # 23 missing: a gap in time too
COUNTS = 30
START = np.datetime64("2018-02-01T06:00:00", "s")
DAY = np.timedelta64(86400, "s")


def _period(i: int) -> tuple[np.datetime64, np.datetime64]:
    start = START + 31 * i * DAY
    return start, start + 29 * DAY  # 2-day gaps between periods


@pytest.fixture(scope="module")
def truth():
    frames = {
        n: random_properties(SHAPE, seed=n, hot_fraction=0.01 + 0.004 * k)
        for k, n in enumerate(RATE)
    }
    counts = random_properties(SHAPE, seed=COUNTS)
    counts["sci_mean"] = counts["sci_mean"] * 1100.0
    frames[COUNTS] = counts
    return frames


@pytest.fixture(scope="module")
def dates():
    numbers = [20, 21, 22, 23, 24, 25, 26, COUNTS]
    return {n: _period(i) for i, n in enumerate(numbers)}


@pytest.fixture(scope="module")
def cube(tmp_path_factory, truth, dates):
    db = PixelDB.create(
        tmp_path_factory.mktemp("plots") / "db", shape=SHAPE, chunks={"row": 32, "col": 32}
    )
    for n in RATE:
        db.ingest_properties(truth[n], n, start=dates[n][0], end=dates[n][1])
    db.ingest_properties(
        truth[COUNTS], COUNTS, start=dates[COUNTS][0], end=dates[COUNTS][1], unit_system="counts"
    )
    return db.dataset


@pytest.fixture(scope="module")
def rate(cube):
    return cube.sel(anneal=RATE)


def _num(values):
    return mdates.date2num(np.asarray(values, dtype="datetime64[ns]"))


def _mid(dates, numbers):
    return [dates[n][0] + (dates[n][1] - dates[n][0]) / 2 for n in numbers]


def _boundary_x(collection):
    return sorted({seg[0, 0] for seg in collection.get_segments()})


def test_pixel_history_markers(rate, truth, dates, tmp_path):
    path = tmp_path / "history.png"
    fig = plot_pixel_history(rate, 7, 9, style="markers", path=path)
    assert isinstance(fig, Figure)
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == len(PROPERTIES)
    expected_edges = sorted(_num([d for n in RATE for d in dates[n]]))
    for ax, name in zip(fig.axes, PROPERTIES, strict=True):
        extra = name == "sci_mean"  # the err_mean bars and the hot level (test below)
        assert len(ax.lines) == 1 + extra and len(ax.collections) == 1 + extra
        line = ax.lines[0]
        np.testing.assert_allclose(line.get_xdata(orig=False), _num(_mid(dates, RATE)))
        np.testing.assert_array_equal(
            line.get_ydata(), [float(truth[n][name].values[7, 9]) for n in RATE]
        )
        np.testing.assert_allclose(_boundary_x(ax.collections[0]), expected_edges)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == [
        "stability [dimensionless]",
        "sci_mean [electron / s]",
        "err_mean [electron / s]",
        "nan_count [dimensionless]",
        "readnoise [electron]",
    ]
    assert fig.axes[-1].get_xlabel() == "period mid-date (UTC)"
    assert "row 7, col 9" in fig._suptitle.get_text()


def test_pixel_history_steps(rate, truth, dates, tmp_path):
    fig = plot_pixel_history(rate, 0, 63, properties=["sci_mean"], path=tmp_path / "h.pdf")
    assert (tmp_path / "h.pdf").read_bytes()[:4] == b"%PDF"
    (ax,) = fig.axes
    x = ax.lines[0].get_xdata(orig=False).reshape(-1, 3)
    y = ax.lines[0].get_ydata().reshape(-1, 3)
    np.testing.assert_allclose(x[:, 0], _num([dates[n][0] for n in RATE]))
    np.testing.assert_allclose(x[:, 1], _num([dates[n][1] for n in RATE]))
    assert np.isnan(x[:, 2]).all() and np.isnan(y[:, 2]).all()  # breaks between periods
    expected = [float(truth[n]["sci_mean"].values[0, 63]) for n in RATE]
    np.testing.assert_array_equal(y[:, 0], expected)
    np.testing.assert_array_equal(y[:, 1], expected)
    assert ax.get_xlabel() == "date (UTC)"


def test_pixel_history_error_bars_hot_level_and_legend(rate, truth, dates):
    """Issue 23: sci_mean ± err_mean per period, the hot level, a legend hiding no data."""
    fig = plot_pixel_history(rate, 7, 9, properties=["sci_mean", "readnoise"])
    ax = fig.axes[0]
    bars = ax.collections[1].get_segments()
    sci = np.array([float(truth[n]["sci_mean"].values[7, 9]) for n in RATE])
    err = np.array([float(truth[n]["err_mean"].values[7, 9]) for n in RATE])
    np.testing.assert_allclose([b[0, 0] for b in bars], _num(_mid(dates, RATE)))
    np.testing.assert_allclose([b[0, 1] for b in bars], sci - err, rtol=1e-6)
    np.testing.assert_allclose([b[1, 1] for b in bars], sci + err, rtol=1e-6)
    assert ax.collections[1].get_label() == "± err_mean (1 sigma)"
    hot = ax.lines[1]
    assert list(hot.get_ydata()) == [0.1, 0.1] and hot.get_linestyle() == "--"
    assert hot.get_label() == "hot level 0.1 electron / s"
    assert not fig.axes[1].collections[1:] and len(fig.axes[1].lines) == 1
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert "± err_mean (1 sigma)" in labels and "hot level 0.1 electron / s" in labels
    fig.canvas.draw()
    box = legend.get_window_extent()
    for panel in fig.axes:  # the legend overlaps no panel, so it hides no period
        assert not box.overlaps(panel.get_window_extent()), (box, panel.get_window_extent())
    none = plot_pixel_history(rate, 7, 9, properties=["sci_mean"], hot_level=None)
    assert len(none.axes[0].lines) == 1


def test_pixel_history_units_never_mixed(cube, truth):
    with pytest.raises(UnitMismatchError, match=r"sci_mean is in different units.*\[30\]"):
        plot_pixel_history(cube, 1, 1)
    fig = plot_pixel_history(cube, 1, 1, properties=["stability", "nan_count"])
    values = fig.axes[0].lines[0].get_ydata().reshape(-1, 3)[:, 0]
    np.testing.assert_array_equal(
        values, [float(truth[n]["stability"].values[1, 1]) for n in [*RATE, COUNTS]]
    )


def test_property_map(cube, truth, dates, tmp_path):
    path = tmp_path / "map.svg"
    fig = plot_property_map(cube, "sci_mean", anneal_num=22, percentiles=(2, 98), path=path)
    assert path.read_text().lstrip().startswith("<?xml")
    ax, bar = fig.axes
    (image,) = ax.images
    frame = truth[22]["sci_mean"].values.astype(np.float64)
    np.testing.assert_array_equal(image.get_array(), frame)
    np.testing.assert_allclose(image.get_clim(), np.percentile(frame, [2, 98]))
    assert image.origin == "lower"
    assert bar.get_ylabel() == "sci_mean [electron / s]"
    assert "anneal period 22" in ax.get_title()
    assert ax.get_xlabel() == "column (0-based)" and ax.get_ylabel() == "row (0-based)"
    by_date = plot_property_map(cube, "sci_mean", date=dates[22][0] + DAY)
    np.testing.assert_array_equal(by_date.axes[0].images[0].get_array(), frame)
    counts = plot_property_map(cube, "readnoise", anneal_num=COUNTS)
    assert counts.axes[1].get_ylabel() == "readnoise [count]"


def test_hot_pixel_counts_plot(rate, truth, dates, tmp_path):
    path = tmp_path / "hot.png"
    fig = plot_hot_pixel_counts(rate, 0.1, path=path)
    assert path.is_file()
    (ax,) = fig.axes
    line = ax.lines[0]
    expected = [
        int(np.count_nonzero(truth[n]["sci_mean"].values.astype(np.float64) > 0.1)) for n in RATE
    ]
    assert line.get_ydata().tolist() == expected
    assert expected == sorted(expected) and expected[0] < expected[-1]  # more hot pixels
    np.testing.assert_allclose(line.get_xdata(orig=False), _num(_mid(dates, RATE)))
    assert ax.get_ylabel() == "hot pixels (sci_mean > 0.1 electron / s)"
    assert len(ax.collections) == 1
    assert len(plot_hot_pixel_counts(rate, 0.1, boundaries=False).axes[0].collections) == 0


def test_plot_errors_write_nothing(cube, rate, tmp_path):
    out = tmp_path / "out.png"
    cases = [
        (lambda: plot_pixel_history(rate, 64, 0, path=out), CubeQueryError, "row=64 is outside"),
        (lambda: plot_pixel_history(rate, 0, 0, style="line"), ValueError, "style must be one"),
        (
            lambda: plot_pixel_history(rate, 0, 0, properties=["dark"]),
            ValueError,
            r"properties must be drawn from \[.*\], got unknown \['dark'\]",
        ),
        (
            lambda: plot_pixel_history(rate, 0, 0, path=tmp_path / "no" / "x.png"),
            FileNotFoundError,
            "does not exist",
        ),
        (
            lambda: plot_pixel_history(rate, 0, 0, path=tmp_path / "x.xyz"),
            ValueError,
            r"the image format of .*x\.xyz must be one of \[.*'png'.*\], got 'xyz'",
        ),
        (lambda: plot_property_map(rate, "dark", anneal_num=20), ValueError, "prop must be one"),
        (
            lambda: plot_property_map(rate, anneal_num=20, percentiles=(50, 10)),
            ValueError,
            r"percentiles must be \(low, high\) with 0 <= low < high <= 100, got \(50, 10\)",
        ),
        (lambda: plot_property_map(rate, anneal_num=20, cmap="nope"), ValueError, "cmap 'nope'"),
        (lambda: plot_property_map(rate, anneal_num=23), CubeQueryError, "period 23 is not"),
        (
            lambda: plot_hot_pixel_counts(cube, 0.1, path=out),
            UnitMismatchError,
            r"periods \[30\] are in the 'counts'",
        ),
        (lambda: plot_hot_pixel_counts(rate, float("inf")), ValueError, "level must be finite"),
        (
            lambda: plot_hot_pixel_counts(rate, 0.1, figsize=(0, 3)),
            ValueError,
            r"figsize\[0\] must be > 0, got 0",
        ),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()
    assert list(tmp_path.iterdir()) == []


def test_history_readable_axes(tmp_path, dates):
    """A read noise steady to 1e-6 e- is drawn flat (no offset axis), counts get integer
    ticks, the time axis shows dates, and the legend names what the artists encode."""
    import matplotlib.dates as md

    numbers = [20, 21, 22]
    db = PixelDB.create(tmp_path / "db", shape=(8, 8))
    for k, n in enumerate(numbers):
        frame = random_properties((8, 8), seed=n)
        frame["readnoise"].values[:] = np.float32(4.0) + np.float32(1e-6) * k * 4  # ~1e-6 e-
        frame["nan_count"].values[3, 3] = [1, 2, 4][k]
        db.ingest_properties(frame, n, start=dates[n][0], end=dates[n][1])
    fig = plot_pixel_history(db.dataset, 3, 3, path=tmp_path / "h.png")
    axes = dict(zip(PROPERTIES, fig.axes, strict=True))
    fig.canvas.draw()
    rn = axes["readnoise"]
    low, high = rn.get_ylim()
    assert high - low >= 0.05 * 4.0  # the 8e-6 e- spread takes < 1e-4 of the panel
    values = rn.lines[0].get_ydata()
    assert np.nanmax(values) - np.nanmin(values) < 1e-5
    assert rn.yaxis.get_offset_text().get_text() == ""  # no "+4" / "1e-6" offset label
    labels = [t.get_text() for t in rn.get_yticklabels() if t.get_text()]
    assert labels and all("e" not in text for text in labels)
    nan_ticks = axes["nan_count"].get_yticks()
    assert np.array_equal(nan_ticks, np.round(nan_ticks))  # integer ticks only
    assert isinstance(fig.axes[-1].xaxis.get_major_formatter(), md.ConciseDateFormatter)
    (legend,) = fig.legends  # one figure legend, below the panels
    assert [t.get_text() for t in legend.get_texts()] == [
        "value in the period",
        "anneal boundaries",
        "± err_mean (1 sigma)",
        "hot level 0.1 electron / s",
    ]


def test_hot_count_axes(rate):
    import matplotlib.dates as md

    fig = plot_hot_pixel_counts(rate, 0.1)
    (ax,) = fig.axes
    fig.canvas.draw()
    ticks = ax.get_yticks()
    assert np.array_equal(ticks, np.round(ticks))
    assert isinstance(ax.xaxis.get_major_formatter(), md.ConciseDateFormatter)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["pixels with sci_mean > 0.1 electron / s", "anneal boundaries"]
