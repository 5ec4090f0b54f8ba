"""Tests of cte.report.report: a self-contained static page with what was used and left out."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from cte.analysis.loss import measure_loss
from cte.analysis.model import fit_model
from cte.config import FitOptions
from cte.report.report import write_site
from tests.cte._analysis_fixtures import small


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "a":
            self.links.append(attrs["href"])


@pytest.fixture(scope="module")
def analysis():
    synth = small()
    # drop one chip-1 image so that the pairing reports its partner as unpaired
    ph = synth.photometry
    drop = str(ph["image"].values[np.flatnonzero(ph["chip"].values == 1)[0]])
    ph = ph.sel(image=[i for i in ph["image"].values if i != drop])
    loss = measure_loss(ph)
    model = fit_model(loss, fit=FitOptions(min_time_span=5.0))
    return ph, loss, model


@pytest.mark.slow
def test_report_page_and_plots(tmp_path, analysis):
    ph, loss, model = analysis
    model.write(tmp_path / "coefficients.ecsv")
    path = write_site(
        tmp_path,
        loss=loss,
        model=model,
        photometry=[ph],
        excluded=[("ibxx01abq_flt", "charge injection <CHINJECT=LINE>")],
        metadata={"command": "cte run --data d", "data": "/some/dir"},
    )
    assert path == tmp_path / "index.html"
    text = path.read_text(encoding="utf-8")
    parser = _Images()
    parser.feed(text)
    # every image exists and is a PNG under plots/, links are relative
    assert len(parser.images) == 2 * 4 + 4  # flux+time per configuration, ratio per config
    for src in parser.images:
        assert src.startswith("plots/")
        assert (tmp_path / src).read_bytes()[:4] == b"\x89PNG"
    assert "coefficients.ecsv" in parser.links
    # the coefficients as value ± error, with the not-fitted terms marked
    fit = model.select(ctecorr="FLT", exptime_class="long", aperture=3.0)
    digits = max(0, 1 - int(np.floor(np.log10(fit.errors[0]))))
    assert f"{fit.coefficients[0]:.{digits}f} ± {fit.errors[0]:.{digits}f}" in text
    assert "0 (not fitted)" in text  # time and background terms: one flash, 400 days
    # data used: every pair listed; data excluded with reasons, HTML-escaped
    for pair in loss["pair"].values:
        assert str(pair) in text
    assert "charge injection &lt;CHINJECT=LINE&gt;" in text
    assert str(loss["unpaired_image"].values[0]) in text
    assert "no chip 1 image left" in text
    assert "cte run --data d" in text
    assert re.search(r"cells with fewer than 10 stars", text)
    # issue 11: headline first, terms left out with their reasons, provenance collapsed last
    assert text.index('id="headline"') < text.index("<h2>Trends</h2>")
    assert text.index("<h2>Data excluded</h2>") < text.index('<details class="provenance"')
    assert "t: epochs span 1.1 yr &lt; min_time_span 5" in text
    assert text.count('class="site-plot"') == 4  # loss vs date and vs flux, FLT and FLC


def test_report_without_photometry_and_bad_aperture(tmp_path, analysis):
    _, loss, model = analysis
    path = write_site(tmp_path / "out", loss=loss, model=model, aperture=5.0)
    parser = _Images()
    parser.feed(path.read_text(encoding="utf-8"))
    assert len(parser.images) == 8
    assert all("ap5" in src for src in parser.images)
    with pytest.raises(ValueError, match=r"aperture 4.0 px not in loss \(apertures: "):
        write_site(tmp_path / "bad", loss=loss, model=model, aperture=4.0)
    with pytest.raises(ValueError, match=r"^ratio_plots must be an integer >= 0, got -1$"):
        write_site(tmp_path / "bad", loss=loss, model=model, ratio_plots=-1)
    assert not (tmp_path / "bad").exists()  # refused before anything is written


def test_failed_report_leaves_the_previous_page(tmp_path, analysis, monkeypatch):
    """Issue 14.14: index.html is replaced in one atomic step.  A page that fails while
    being written (here: text that cannot be encoded, which an in-place write_text
    discovers after truncating the file) leaves the previous page and no temporary."""
    import cte.report.report
    from stores.presentation.site import Page

    _, loss, model = analysis
    page = tmp_path / "index.html"
    page.write_text("previous report", encoding="utf-8")
    monkeypatch.setattr(cte.report.report, "_figure_section", lambda *a, **k: None)  # fast
    monkeypatch.setattr(Page, "render", lambda self: "<html>" + "x" * 10_000 + "\ud800")
    with pytest.raises(UnicodeEncodeError):
        write_site(tmp_path, loss=loss, model=model)
    assert page.read_text(encoding="utf-8") == "previous report"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
