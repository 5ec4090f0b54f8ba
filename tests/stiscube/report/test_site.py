"""The STIS monitoring site: numbers vs numpy, page structure, and a real browser."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from stiscube import PixelDB
from stiscube.cli import main
from stiscube.datasets._synthcube import random_properties
from stiscube.dq import DQRules
from stiscube.report.site import SiteOptions, block_reduce, site_summary, write_site
from tests.browser import ARGS, CHROMIUM, open_page, require_chromium

SHAPE = (64, 60)
RATE = [1, 2, 3, 5, 6]  # period 4 missing on purpose
COUNTS = 9
START = np.datetime64("2021-01-01T00:00:00", "s")
DAY = np.timedelta64(86400, "s")
LEVEL = 0.1


def _dates(i):
    return START + 30 * i * DAY, START + 30 * i * DAY + 28 * DAY


@pytest.fixture(scope="module")
def truth():
    frames = {}
    for k, n in enumerate(RATE):
        ds = random_properties(SHAPE, seed=n, hot_fraction=0.01 + 0.005 * k)
        ds["sci_mean"].values[5, 7] = np.nan
        ds["readnoise"].values[:] += np.float32(0.01 * k)
        frames[n] = ds
    return frames


@pytest.fixture(scope="module")
def db(tmp_path_factory, truth):
    db = PixelDB.create(tmp_path_factory.mktemp("site") / "db", shape=SHAPE)
    for i, n in enumerate(RATE):
        start, end = _dates(i)
        darks = pd.DataFrame(
            {"rootname": [f"od{n}a{k}" for k in range(3)], "exptime": [1100.0] * 3,
             "start": [start + k * DAY for k in range(3)]}
        )
        db.ingest_properties(truth[n], n, start=start, end=end, darks=darks)
    start, end = _dates(len(RATE))
    db.ingest_properties(
        random_properties(SHAPE, seed=COUNTS), COUNTS, start=start, end=end, unit_system="counts"
    )
    return db


def _sci(truth, n):
    return truth[n]["sci_mean"].values.astype(np.float64)


def test_block_reduce_vs_loops():
    rng = np.random.default_rng(3)
    frame = rng.normal(size=(11, 7))
    frame[0:3, 0:3] = np.nan  # a whole block without data
    frame[5, 5] = np.nan
    for block in (1, 2, 3, 4):
        got_max = block_reduce(frame, block, "max")
        got_mean = block_reduce(frame, block, "mean")
        assert got_max.shape == (math.ceil(11 / block), math.ceil(7 / block))
        for i in range(got_max.shape[0]):
            for j in range(got_max.shape[1]):
                cell = frame[i * block : (i + 1) * block, j * block : (j + 1) * block]
                values = cell[np.isfinite(cell)]
                if values.size == 0:
                    assert np.isnan(got_max[i, j]) and np.isnan(got_mean[i, j])
                else:
                    assert got_max[i, j] == np.float32(values.max())
                    assert got_mean[i, j] == pytest.approx(values.mean(), rel=1e-6)
    with pytest.raises(ValueError, match=r"how must be one of \['max', 'mean'\], got 'median'"):
        block_reduce(frame, 2, "median")
    with pytest.raises(ValueError, match="block must be an integer >= 1"):
        block_reduce(frame, 0, "max")


def test_summary_numbers(db, truth):
    summary = site_summary(db, site=SiteOptions(map_size=32, track=50))
    periods = summary["periods"]
    assert [p["anneal"] for p in periods] == RATE
    assert summary["excluded"][0][0] == COUNTS and "counts" in summary["excluded"][0][1]
    hot = {n: np.nan_to_num(_sci(truth, n), nan=0) > LEVEL for n in RATE}
    for p, n in zip(periods, RATE, strict=True):
        assert p["n_hot"] == hot[n].sum()
        assert p["median_dark"] == pytest.approx(np.nanmedian(_sci(truth, n)), rel=1e-12)
        rn = truth[n]["readnoise"].values.astype(np.float64)
        assert p["median_readnoise"] == pytest.approx(np.median(rn), rel=1e-12)
        assert p["n_darks"] == 3
    for prev, n, p in zip(RATE[:-1], RATE[1:], periods[1:], strict=True):
        assert p["new_hot"] == (hot[n] & ~hot[prev]).sum()
        assert p["healed"] == (hot[prev] & ~hot[n]).sum()
    assert periods[0]["new_hot"] is None
    # trends: np.polyfit against mid-dates in years, with its covariance
    mids = np.array([p["mid"] for p in periods], dtype="datetime64[ms]")
    years = (mids - mids[0]).astype(float) / (86_400_000 * 365.25)
    counts = np.array([hot[n].sum() for n in RATE], dtype=float)
    coef, cov = np.polyfit(years, counts, 1, cov="unscaled")
    resid = counts - np.polyval(coef, years)
    err = math.sqrt(cov[0, 0] * (resid @ resid) / (len(RATE) - 2))
    assert summary["hot_trend"] == pytest.approx((coef[0], err), rel=1e-9)
    assert coef[0] > 0  # the hot fraction grows with k
    # downsampling: block 2 for a 64-row frame and map_size 32
    assert summary["map_block"] == 2 and summary["history_block"] == 2
    assert sorted(summary["maps"]) == RATE
    np.testing.assert_array_equal(summary["maps"][3], block_reduce(_sci(truth, 3), 2, "max"))
    rows, cols, values = summary["tracked"]
    newest = _sci(truth, RATE[-1])
    assert rows.size == min(50, hot[RATE[-1]].sum())
    assert np.all(np.diff(newest[rows, cols]) <= 0)  # hottest first
    np.testing.assert_array_equal(values[0], [np.float32(_sci(truth, n)[rows[0], cols[0]])
                                              for n in RATE])


def test_page_structure(db, tmp_path):
    path = write_site(db, tmp_path / "site", site=SiteOptions(map_size=32))
    html = path.read_text()
    assert path.name == "index.html"
    headline = html.index('id="headline"')
    assert headline < html.index("<section>")  # the headline block comes first
    assert html.index('id="provenance"') > html.rindex("</section>")  # provenance last
    for text in ("Hot pixels, period 6", "Hot-pixel growth", "Median dark rate",
                 "Read noise (median)", "Newest period 6 changed", "Pixel browser",
                 "Data excluded", "od1a0", "counts per frame"):
        assert text in html, text
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", html)  # self-contained
    assert '<meta name="site-figures" content="3">' in html


def test_options_validated():
    with pytest.raises(TypeError, match="rules must be a stiscube.dq.DQRules, got float"):
        SiteOptions(rules=0.1)
    with pytest.raises(ValueError, match="rules must have a hot rule"):
        SiteOptions(rules=DQRules(hot_level=None, hot_nsigma=None, unstable_level=3.0))
    with pytest.raises(ValueError, match=r"map_size must be an integer in \[16, 1024\], got 4"):
        SiteOptions(map_size=4)
    with pytest.raises(TypeError, match="track must be an integer >= 0, got 2.5"):
        SiteOptions(track=2.5)
    assert SiteOptions().rules == DQRules() and isinstance(SiteOptions().track, int)


def test_cli_report_and_reference(db, tmp_path, capsys):
    assert main(["report", str(db.location.url), "--out", str(tmp_path / "s"),
                 "--map-size", "32"]) == 0
    assert (tmp_path / "s" / "index.html").is_file()
    assert main(["dq", str(db.location.url), "--anneal", "6", "--hot-level", "0.1",
                 "--dark-reference", str(tmp_path / "d.fits"), "--last", "3",
                 "--ccdamp", "D", "--ccdgain", "1"]) == 0
    out = capsys.readouterr().out
    from astropy.io import fits

    hdr = fits.getheader(tmp_path / "d.fits")
    assert hdr["PERIODS"] == "3,5,6"
    dq = fits.getdata(tmp_path / "d.fits", "DQ")
    hot, unstable, empty = (dq & 16) != 0, (dq & 4) != 0, (dq & 512) != 0
    assert empty.any()  # 3 darks, up to 5 excluded samples: some pixels have no data
    # the printed summary states the file's own counts
    assert (
        f"d.fits (periods 3-6: {np.count_nonzero(dq)} flagged = {hot.sum()} hot + "
        f"{unstable.sum()} unstable - {(hot & unstable).sum()} both, {empty.sum()} without data)"
    ) in out
    assert main(["dq", str(db.location.url), "--anneal", "6"]) == 1
    assert "nothing to write" in capsys.readouterr().err


# -- the browser ------------------------------------------------------------------------------
@pytest.mark.slow
def test_site_in_browser(db, truth, tmp_path):
    require_chromium()
    path = write_site(db, tmp_path / "site", site=SiteOptions(map_size=32))
    report = open_page(path, screenshot="stis-site.png", full_page=True)
    report.assert_ok()  # every figure rendered, no JS error, nothing fetched
    assert report.expected_figures == 3
    assert report.headline_top is not None and report.headline_top < 200
    assert report.screenshot.stat().st_size > 10_000


#: the text of the Bokeh tooltips shown on the page (they live in open shadow roots)
_TOOLTIP_TEXT = """() => {
  const out = [];
  const walk = (node) => {
    if (node.classList && Array.from(node.classList).some(c => /tooltip/i.test(c))
        && node.offsetParent !== null) { out.push(node.innerText); }
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.children || []) walk(child);
  };
  walk(document.body);
  return out.join("\\n");
}"""


@pytest.mark.slow
def test_pixel_browser_click_shows_history(db, truth, tmp_path):
    """Clicking a map pixel fills the history plot with that block's values per period."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    path = write_site(db, tmp_path / "site", site=SiteOptions(map_size=32))
    row, col = 41, 22  # block (20, 11) of 2 x 2 pixels
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
            locate = """([x, y]) => {
              const fig = Bokeh.documents[0].get_model_by_name('pixel_map');
              const view = Bokeh.index.get_one(fig);
              view.el.scrollIntoView();
              const r = view.el.getBoundingClientRect();
              return [r.left + view.frame.x_scale.compute(x),
                      r.top + view.frame.y_scale.compute(y)];
            }"""
            page.wait_for_timeout(500)
            # near the pixel's upper corner, where rounding would name (42, 23)
            sx, sy = page.evaluate(locate, [col + 0.85, row + 0.85])
            page.mouse.move(sx, sy)
            page.wait_for_timeout(300)
            tooltip = page.evaluate(_TOOLTIP_TEXT)
            page.mouse.click(sx, sy)
            page.wait_for_timeout(300)
            data = page.evaluate("""() => {
              const h = Bokeh.documents[0].get_model_by_name('history').data;
              return [Array.from(h.block_max), Array.from(h.block_mean), Array.from(h.pixel)];
            }""")
            title = page.evaluate("""() =>
              Bokeh.documents[0].get_model_by_name('pixel_history').title.text""")
        finally:
            browser.close()
    assert not errors
    # the tooltip and the click name the same pixel; the history says it is of its block
    assert re.search(rf"column\s*:?\s*{col}\b.*row\s*:?\s*{row}\b", tooltip, re.S), tooltip
    assert title.startswith(f"History of pixel ({row}, {col}) in its 2 x 2 block rows "
                            f"{row // 2 * 2}-{row // 2 * 2 + 1}, cols {col // 2 * 2}-"
                            f"{col // 2 * 2 + 1}"), title
    block_max, block_mean, _ = (np.array(v, dtype=float) for v in data)
    r0, c0 = (row // 2) * 2, (col // 2) * 2
    cells = [_sci(truth, n)[r0 : r0 + 2, c0 : c0 + 2] for n in RATE]
    np.testing.assert_allclose(block_max, [np.nanmax(c) for c in cells], rtol=1e-6)
    np.testing.assert_allclose(block_mean, [np.nanmean(c) for c in cells], rtol=1e-6)
