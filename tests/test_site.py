"""The static-site builder (stores.presentation.site) and the browser check (tests.browser)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from stores.presentation.site import Metric, Page, bokeh_figure
from stores.storage.fs import atomic_write
from tests.browser import open_page, require_chromium


def _page(n_figures=2):
    page = Page("Monitor <test>", subtitle="subtitle")
    page.headline([Metric("hot pixels", "715", "newest period"), Metric("trend", "+3 / yr")])
    sec = page.section("Trends", intro="intro & more")
    for i in range(n_figures):
        fig = bokeh_figure(title=f"fig {i}", x_label="x", y_label="y", tooltips=[("y", "@y")])
        fig.scatter(np.arange(5), np.arange(5) ** 2)
        sec.bokeh(fig)
    sec.table(["name", "value"], [["a<b", 1], ["c", 2]], caption="used")
    sec.table(["name"], [], caption="excluded", empty="Nothing excluded.")
    page.provenance({"command": "run", "versions": {"numpy": np.__version__}})
    return page


def test_page_structure(tmp_path):
    page = _page()
    text = page.render()
    assert page.n_figures == 2
    assert '<meta name="site-figures" content="2">' in text
    assert text.count('class="site-plot"') == 2
    # headline first, provenance last
    assert text.index('id="headline"') < text.index("<h2>Trends</h2>")
    assert text.index("<h2>Trends</h2>") < text.index('id="provenance"')
    assert "<details" in text[text.index('id="provenance"') - 40:]
    # escaped text, inlined BokehJS (no external script)
    assert "Monitor &lt;test&gt;" in text and "a&lt;b" in text
    assert "Nothing excluded." in text
    assert not re.search(r'<script[^>]+src=', text)
    assert "Bokeh" in text and len(text) > 1_000_000


def test_table_rejects_ragged_rows():
    sec = Page("x").section("s")
    with pytest.raises(ValueError, match="row 1 has 1 cells, the header 2"):
        sec.table(["a", "b"], [[1, 2], [3]])


def test_long_table_is_collapsed():
    sec = Page("x").section("s")
    sec.table(["a"], [[i] for i in range(30)], caption="pairs", collapse_after=25)
    assert "pairs: 30 rows" in sec._parts[0][1] and "<details>" in sec._parts[0][1]


def test_headline_needs_metrics():
    with pytest.raises(TypeError, match="Metric"):
        Page("x").headline(["715"])


def test_atomic_write_replaces_without_temporaries(tmp_path):
    path = tmp_path / "a" / "page.html"
    atomic_write(path, "old")
    atomic_write(path, "new ü")
    assert path.read_text(encoding="utf-8") == "new ü"
    assert [p.name for p in path.parent.iterdir()] == ["page.html"]


def test_browser_renders_every_figure(tmp_path):
    require_chromium()
    path = _page(2).write(tmp_path / "index.html")
    report = open_page(path, screenshot="site-builder.png")
    report.assert_ok()
    assert report.expected_figures == 2 and report.rendered_figures == 2
    assert report.headline_top is not None and report.headline_top < 150
    assert report.screenshot.stat().st_size > 0


def test_browser_reports_errors_missing_figures_and_network(tmp_path):
    require_chromium()
    text = _page(1).render()
    broken = text.replace(
        "</body>",
        '<div class="site-plot"></div>'  # a declared figure that never renders
        "<script>throw new Error('boom from test');</script>"
        '<script src="https://example.invalid/x.js"></script></body>')
    broken = broken.replace('content="1"', 'content="2"')
    path = tmp_path / "broken.html"
    path.write_text(broken, encoding="utf-8")
    report = open_page(path, screenshot="site-builder-broken.png", timeout=5)
    assert any("boom from test" in e for e in report.page_errors)
    assert set(report.blocked_requests) == {"https://example.invalid/x.js"}
    assert report.expected_figures == 2 and report.rendered_figures == 1
    with pytest.raises(AssertionError, match="1 of 2 figures rendered"):
        report.assert_ok()
