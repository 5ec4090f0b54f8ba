"""The shared plotting style (stores.presentation.style): no offsets, integer and date
ticks, legends, empty panels, atomic saves."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from stores.common.dates import mjd_to_datetime64
from stores.presentation import style


def _tick_labels(fig, axis):
    fig.canvas.draw()
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


def test_no_offset_on_tiny_variation():
    fig, (ax,) = style.new_figure()
    y = 4.0 + 1e-6 * np.array([0.0, 1.0, 2.0, 3.0])
    ax.plot([0, 1, 2, 3], y)
    fig.canvas.draw()
    assert ax.yaxis.get_offset_text().get_text() == ""
    labels = _tick_labels(fig, ax.yaxis)
    # every label carries the full value (about 4), none is an offset remainder
    values = [float(t.replace("\u2212", "-")) for t in labels]
    assert all(abs(v - 4.0) < 1e-5 for v in values), labels


def test_integer_ticks():
    fig, (ax,) = style.new_figure()
    ax.plot([0, 1, 2], [0, 1, 2])
    style.integer_ticks(ax, "y")
    fig.canvas.draw()
    ticks = ax.get_yticks()
    assert len(ticks) >= 2
    np.testing.assert_array_equal(ticks, np.round(ticks))
    with pytest.raises(ValueError, match="axis must be"):
        style.integer_ticks(ax, "z")


def test_date_axis_shows_calendar_years():
    fig, (ax,) = style.new_figure()
    ax.plot(mjd_to_datetime64([55000, 56000, 57000, 58000]), [1, 2, 3, 4])
    style.date_axis(ax)
    labels = " ".join(_tick_labels(fig, ax.xaxis))
    assert "2010" in labels or "2012" in labels, labels
    assert "55000" not in labels


def test_legend_only_for_labelled_artists():
    _fig, (ax,) = style.new_figure()
    ax.plot([0, 1], [0, 1])
    assert style.legend(ax) is None
    ax.plot([0, 1], [1, 0], label="fit")
    leg = style.legend(ax)
    assert [t.get_text() for t in leg.get_texts()] == ["fit"]


def test_no_data_panel():
    _fig, (ax,) = style.new_figure()
    style.no_data(ax, "no data in this flux bin")
    assert [t.get_text() for t in ax.texts] == ["no data in this flux bin"]
    assert len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0


def test_new_figure_hides_unused_panels():
    fig, axes = style.new_figure(2, 3, n_panels=4)
    assert len(axes) == 4
    assert sum(ax.get_visible() for ax in fig.axes) == 4


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    fig, (ax,) = style.new_figure(size=(2, 2))
    ax.plot([0, 1], [0, 1])
    path = tmp_path / "sub" / "f.png"
    path.parent.mkdir()
    path.write_bytes(b"old")
    style.save(fig, path, dpi=50)
    image = imread(path)
    assert image.shape[:2] == (100, 100)
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.png"]


def test_save_failure_keeps_the_previous_file(tmp_path):
    from matplotlib.artist import Artist

    class Broken(Artist):
        def draw(self, renderer):
            raise RuntimeError("cannot draw")

    fig, (ax,) = style.new_figure(size=(2, 2))
    ax.add_artist(Broken())
    path = tmp_path / "f.png"
    path.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="cannot draw"):
        style.save(fig, path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]
