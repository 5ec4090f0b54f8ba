"""The CTE monitoring site (issue 11): headline numbers, interactive trends, fitted vs
data-only configurations, honest curves, tables, provenance; opened in headless chromium."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest
import xarray as xr
from astropy.table import Table
from astropy.time import Time

from cte.analysis.loss import measure_loss
from cte.analysis.lossmodel import BASIS_TERMS
from cte.analysis.model import CTEModel, fit_model
from cte.report.plots import plot_loss_vs_flux, plot_loss_vs_time
from cte.report.report import headline_numbers, write_site
from tests.browser import open_page, require_chromium
from tests.cte._analysis_fixtures import campaign, same_chip
from tests.cte._figure_checks import check_curves

pytestmark = pytest.mark.slow  # one report of the whole simulated campaign (~20 s CPU)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.metrics, self._in, self.images = [], None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if attrs.get("class") in ("label", "value", "detail"):
            self._in = attrs["class"]
            if self._in == "label":
                self.metrics.append({})

    def handle_data(self, data):
        if self._in:
            self.metrics[-1][self._in] = self.metrics[-1].get(self._in, "") + data

    def handle_endtag(self, tag):
        self._in = None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The simulated campaign (8 epochs, 4 flash levels) plus one epoch of the
    180-degree NGC 6583 set, which must be fitted without time terms."""
    synth = same_chip()
    ph = synth.photometry
    first = float(np.min(ph["mjd"].values))
    one_epoch = ph.isel(image=np.flatnonzero(np.abs(ph["mjd"].values - first) < 30))
    # its simulated image names repeat those of the campaign: make them distinct
    one_epoch = one_epoch.assign_coords(
        image=np.char.add("n6583", one_epoch["image"].values.astype(str)))
    photometry = [s.photometry for s in campaign()] + [one_epoch]
    loss = measure_loss(photometry)
    model = fit_model(loss)
    out = tmp_path_factory.mktemp("site")
    model.write(out / "coefficients.ecsv")
    # ratio-vs-y plots of the 180-degree set only (those of the campaign: test_report)
    path = write_site(out, loss=loss, model=model, photometry=[one_epoch],
                        excluded=[("ibxx01abq_flt", "charge injection")],
                        metadata={"command": "cte run --pr all"})
    return path, loss, model


def test_headline_numbers_equal_an_independent_evaluation(site):
    path, loss, _ = site
    table = Table.read(path.parent / "coefficients.ecsv", format="ascii.ecsv")
    parser = _Page()
    text = path.read_text(encoding="utf-8")
    parser.feed(text)
    labels = [m["label"] for m in parser.metrics]
    assert labels[0].startswith("FLT: loss at 1000 e- per 2048 transfers")
    assert labels[1] == "FLT: trend of the loss per year"
    assert labels[2].startswith("FLC: loss at 1000 e-") and labels[3].startswith("FLC: trend")
    for h in headline_numbers(loss, CTEModel.read(path.parent / "coefficients.ecsv"),
                              aperture=3.0):
        row = next(r for r in table if all(str(r[k]) == v for k, v in h["config"].items())
               and r["aperture"] == 3.0)
        # reference configuration: the longest baseline at this aperture
        assert h["mjd"] == row["mjd_max"] == loss["mjd"].values.max()
        c = np.array([row[f"c_{t}"] for t in BASIS_TERMS])
        x, t, b = 0.0, (h["mjd"] - 55000.0) / 365.25, np.log10(1 + h["background"])
        a = np.array([1, x, x * x, t, x * t, b, b * x])
        assert h["loss"] == pytest.approx(a @ c, rel=1e-12)
        assert h["loss_err"] == pytest.approx(np.sqrt(a @ row["covariance"] @ a), rel=1e-9)
        assert h["trend"] == row["c_t"] and h["trend_err"] == row["e_t"]
        date = Time(h["mjd"], format="mjd").to_value("iso", subfmt="date")
        value = next(m for m in parser.metrics if m["label"].startswith(h["ctecorr"]))
        assert date in value["label"]
        assert value["value"].replace("\u00b1", "+-").split(" +- ")[0] == (
            value["value"].split(" ± ")[0])
        shown, err = (float(v) for v in value["value"].split(" ± "))
        assert abs(shown - h["loss"]) <= 0.51 * 10 ** np.floor(np.log10(err) - 1)
    # the headline comes before anything else in the body
    body = text[text.index("<body>"):]
    assert body.index('id="headline"') < body.index("<h2>")


def test_single_epoch_configuration_is_fitted_without_time_terms(site):
    path, _, model = site
    fits = [f for f in model if f.config["target"] == "ngc6583"]
    assert fits and all("t" not in f.terms and "xt" not in f.terms for f in fits)
    text = path.read_text(encoding="utf-8")
    assert "t: one epoch" in text
    # configurations not fitted are listed apart, with the reason
    section = text[text.index("Shown as data only"):text.index("Figures per configuration")]
    for _config, reason in model.skipped:
        assert reason in section


def test_acceptance_no_curve_off_its_data(site):
    """No drawn model curve outside its data's flux range or > 3 sigma from all its
    points, for every configuration of the site (including the single-epoch set)."""
    _, loss, model = site
    n = 0
    for config in {tuple(str(loss[k].values[i]) for k in ("target", "filter",
                                                          "exptime_class", "ctecorr"))
                   for i in range(loss.sizes["pair"])}:
        kw = dict(zip(("target", "filter", "exptime_class", "ctecorr"), config, strict=True))
        n += check_curves(plot_loss_vs_flux(loss, model, aperture=3.0, path=None, **kw), True)
        n += check_curves(plot_loss_vs_time(loss, model, aperture=3.0, path=None, **kw), False)
    assert n > 30


def test_tables_and_provenance(site):
    path, loss, _ = site
    text = path.read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(text)
    for src in parser.images:
        assert (path.parent / src).read_bytes()[:4] == b"\x89PNG"
    for pair in loss["pair"].values:
        assert str(pair).replace("|", "|") in text
    assert "charge injection" in text
    prov = text[text.index('<details class="provenance"'):]
    assert "cte run --pr all" in prov and "bokeh" in prov and "min_stars" in prov
    assert not re.search(r'<script[^>]+src=', text)  # self-contained
    assert not list(path.parent.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_site_in_headless_chromium(site):
    require_chromium()
    path, _, _ = site
    report = open_page(path, screenshot="cte-site.png")
    report.assert_ok()
    assert report.expected_figures == 4 and report.rendered_figures == 4
    assert report.headline_top is not None and report.headline_top < 150


def test_interactive_axes_span_the_data_in_chromium(site):
    """Issue 23: each interactive loss-vs-flux plot, as drawn by the browser, shows every
    point it holds (the axis once showed 5 000-20 000 e- with most points at 250-2 000)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    from tests.browser import ARGS, CHROMIUM

    path, _, _ = site
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(path.as_uri())
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
            page.wait_for_timeout(1500)
            spans = page.evaluate("""() => {
              const out = [];
              for (const doc of Bokeh.documents) {
                for (const m of doc.all_models) {
                  if (m.type !== 'Figure' && m.type !== 'Plot') continue;
                  const title = m.title ? m.title.text : '';
                  if (!title.startsWith('Loss vs flux')) continue;
                  const xs = [];
                  for (const r of m.renderers) {
                    const d = r.data_source && r.data_source.data;
                    if (d && d.flux && r.glyph.type === 'Scatter') xs.push(...Array.from(d.flux));
                  }
                  const ticks = Array.from(Bokeh.index.get_one(m.below[0]).tick_coords.major[0]);
                  out.push([title, m.x_range.start, m.x_range.end, Math.min(...xs),
                            Math.max(...xs), xs.length, ticks]);
                }
              }
              return out;
            }""")
        finally:
            browser.close()
    assert len(spans) >= 2
    for title, start, end, low, high, n, ticks in spans:
        assert n > 0, title
        assert start <= low and end >= high, (title, start, end, low, high)
        assert end / start < 30 * high / low, (title, start, end, low, high)  # not lost in it
        # the labelled ticks the browser drew reach the lowest and highest points
        # (within one 1-2-5 step)
        assert len(ticks) >= 3 and ticks[0] <= 2.5 * low and ticks[-1] >= high / 2.5, (
            title, ticks, low, high)


def test_the_page_says_whether_fluxes_are_corrected_for_pixel_area(site):
    """Issue 23: the page's photometry (the synthetic set) has pam_corrected = 1 for every
    image, and the page says so; the other cases from the note's function."""
    from cte.report.report import _pam_note

    path, _, _ = site
    assert same_chip().photometry["pam_corrected"].values.all()
    text = " ".join(path.read_text(encoding="utf-8").split())
    assert "Fluxes are corrected for pixel area (pixel-area maps applied)." in text
    none = xr.Dataset(coords={"pam_corrected": ("image", np.array([0, 0], np.int8))})
    assert _pam_note([none]) == ("Fluxes are not corrected for pixel area (no pixel-area maps "
                                 "were given), which varies by a few per cent across each "
                                 "chip.")
    one = xr.Dataset(coords={"pam_corrected": ("image", np.array([1, 1], np.int8))})
    other = xr.Dataset(coords={"pam_corrected": ("image", np.array([0], np.int8))})
    assert _pam_note([one]) == "Fluxes are corrected for pixel area (pixel-area maps applied)."
    assert _pam_note({"a": one, "b": other}).startswith("Fluxes of 2 of 3 images are corrected")
    assert "not recorded" in _pam_note(None)
