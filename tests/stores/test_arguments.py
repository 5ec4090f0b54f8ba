"""Argument errors of stores' plumbing (flags, style, site, datasets, fs, dates).

Each names the parameter and the rule in the shape of :mod:`stores.common.validate`
(``"<name> must be <rule>, got <value>"``), with TypeError for a wrong type and
ValueError for a bad value, and nothing is written.
"""

from __future__ import annotations

import numpy as np
import pytest

from stores import DatasetStore, atomic_write
from stores.common.dates import to_mjd
from stores.common.flags import Flag, FlagRegistry
from stores.presentation.site import Metric, Page, bokeh_figure
from stores.presentation.style import date_axis, integer_ticks, log_axis, new_figure
from stores.storage.fs import Location
from stores.storage.locks import WriterLock


def test_new_figure_grid():
    with pytest.raises(ValueError, match=r"^nrows must be an integer >= 1, got 0$"):
        new_figure(0, 2, size=(4, 3))
    with pytest.raises(TypeError, match=r"^ncols must be an integer >= 1, got 2.0$"):
        new_figure(1, 2.0, size=(4, 3))


def test_axis_choices():
    _, axes = new_figure(1, 1, size=(4, 3))
    with pytest.raises(ValueError, match=r"^axis must be one of \['x', 'y', 'both'\], got 'z'$"):
        integer_ticks(axes[0], "z")
    for func in (log_axis, date_axis):
        with pytest.raises(ValueError, match=r"^axis must be one of \['x', 'y'\], got 'both'$"):
            func(axes[0], "both")


def test_site_checks_models_and_metrics():
    page = Page("t")
    page.headline(m for m in [Metric("hot pixels", "715")])  # any iterable of Metric
    with pytest.raises(TypeError, match=r"^headline\(\) metrics\[1\] must be a Metric, got str$"):
        page.headline([Metric("hot pixels", "715"), "x"])
    model = r"^bokeh\(\) model must be a Bokeh model \(figure or layout\), got int$"
    with pytest.raises(TypeError, match=model):
        page.section("s").bokeh(3)
    page.section("s").bokeh(bokeh_figure(title="f", x_label="x", y_label="y"))
    assert page.n_figures == 1


def test_dataset_store_mode(tmp_path):
    with pytest.raises(ValueError, match=r"^mode must be one of \['r', 'a', 'w-'\], got 'w'$"):
        DatasetStore(tmp_path / "d", mode="w")
    assert not (tmp_path / "d").exists()


def test_fs_location_data_and_timeout(tmp_path):
    with pytest.raises(TypeError, match=r"^store location must be a path or URL string, got int$"):
        Location.parse(3)
    target = tmp_path / "x.txt"
    with pytest.raises(TypeError, match=rf"^atomic_write: data for {target} must be bytes or str"):
        atomic_write(target, 3)
    assert not target.exists()
    loc = Location.parse(tmp_path)
    with pytest.raises(ValueError, match=r"^lock_timeout must be >= 0 \(seconds\), got -0.5$"):
        WriterLock(loc, ".lock", timeout=-0.5, purpose="test")
    with pytest.raises(TypeError, match=r"^lock_timeout must be a number, got '1'$"):
        WriterLock(loc, ".lock", timeout="1", purpose="test")


def test_flag_registry_width():
    rule = r"^width must be an integer in \[1, 63\] or None, got "
    with pytest.raises(TypeError, match=rule + "8.0$"):
        FlagRegistry([Flag(1, "a")], name="demo", width=8.0)
    with pytest.raises(ValueError, match=rule + "64$"):
        FlagRegistry([Flag(1, "a")], name="demo", width=64)
    assert FlagRegistry([Flag(1, "a")], name="demo", width=np.int64(8)).width == 8


@pytest.mark.parametrize("value", [True, np.True_, None])
def test_to_mjd_refuses_booleans_and_none(value):
    with pytest.raises(TypeError, match=r"^date .* has an unsupported type (bool|NoneType);"):
        to_mjd(value)
