"""Open a generated web page in headless Debian Chromium and report what happened.

Used by the site tests of both monitors::

    from tests.browser import open_page, require_chromium

    require_chromium()                      # fails the test, saying how to get it, if absent
    report = open_page(path, screenshot="cte-site.png")
    report.assert_ok()                      # no JS error, every figure rendered, offline
    assert report.headline_top is not None and report.headline_top < 200

API
---
``CHROMIUM``
    ``/usr/bin/chromium`` (the Debian package; ``make test`` installs it with apt when
    missing and possible).
``ARTIFACTS``
    Directory of screenshots: ``$STISCUBE_TEST_ARTIFACTS`` or ``test-artifacts/`` at the
    repository root (git-ignored).
``require_chromium()``
    ``pytest.fail`` with one line saying how to get the browser when it is missing: the
    browser tests are part of ``make test``, never skipped.
``open_page(path, *, screenshot, expected_figures=None, timeout=30.0, width=1280,
height=900, full_page=False) -> PageReport``
    Loads ``file://path`` with every non-``file:`` request blocked (so a page that
    needs the network fails), waits until every ``div.site-plot`` holds a rendered
    canvas (or *timeout*), collects console errors and uncaught page errors, and saves
    a screenshot to ``ARTIFACTS / screenshot``.  *expected_figures* defaults to the
    page's ``<meta name="site-figures">``.
``PageReport``
    ``console_errors``, ``page_errors``, ``blocked_requests`` (lists of str),
    ``expected_figures``, ``rendered_figures`` (figures whose container holds as many
    painted canvases of nonzero size as it has Bokeh plots, ``data-plots``),
    ``figure_sizes`` (``(w, h)`` px of each figure's largest canvas),
    ``headline_top`` (y of ``#headline`` in px, None if absent), ``title``,
    ``screenshot`` (Path); ``assert_ok()`` raises AssertionError listing every problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("STISCUBE_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / "test-artifacts"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

__all__ = ["ARTIFACTS", "CHROMIUM", "PageReport", "open_page", "require_chromium"]

# For one figure container: [width, height] of its largest canvas and whether at least
# data-plots canvases hold painted pixels (searching open shadow roots, where Bokeh 3
# renders), or null when it has no canvas of nonzero size yet.
_FIGURE_STATE = """
(container) => {
  const canvases = [];
  const walk = (node) => {
    if (node.tagName === 'CANVAS') canvases.push(node);
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.children || []) walk(child);
  };
  walk(container);
  let best = null, inkedCount = 0;
  for (const c of canvases) {
    const r = c.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    let inked = false;
    try {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 3; i < d.length; i += 4 * 7) { if (d[i] !== 0) { inked = true; break; } }
    } catch (e) { inked = false; }
    if (inked) inkedCount += 1;
    if (best === null || r.width * r.height > best[0] * best[1]) best = [r.width, r.height];
  }
  if (best === null) return null;
  const want = parseInt(container.dataset.plots || '1');
  return [best[0], best[1], inkedCount >= want];
}
"""


@dataclass
class PageReport:
    """What a page did in the browser (see module docstring)."""

    path: Path
    title: str = ""
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    expected_figures: int = 0
    rendered_figures: int = 0
    figure_sizes: list[tuple[float, float]] = field(default_factory=list)
    headline_top: float | None = None
    screenshot: Path | None = None

    def problems(self) -> list[str]:
        out = [f"console error: {m}" for m in self.console_errors]
        out += [f"page error: {m}" for m in self.page_errors]
        out += [f"network request blocked (page is not self-contained): {u}"
                for u in self.blocked_requests]
        if self.rendered_figures != self.expected_figures:
            out.append(f"{self.rendered_figures} of {self.expected_figures} figures rendered "
                       f"(sizes {self.figure_sizes})")
        return out

    def assert_ok(self) -> None:
        problems = self.problems()
        if problems:
            raise AssertionError(f"{self.path}: " + "; ".join(problems)
                                 + f" (screenshot {self.screenshot})")


def require_chromium() -> None:
    """Fail the calling test, saying how to get the browser, when it is not installed."""
    import pytest

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; "
                    "`make test` does this itself where apt-get and root or sudo are available)",
                    pytrace=False)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the playwright package is missing: `make install` installs the test extras",
                    pytrace=False)


def open_page(
    path: str | os.PathLike,
    *,
    screenshot: str,
    expected_figures: int | None = None,
    timeout: float = 30.0,
    width: int = 1280,
    height: int = 900,
    full_page: bool = False,
) -> PageReport:
    """Load *path* in headless chromium; return a :class:`PageReport` (see module doc)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    path = Path(path).resolve()
    if not path.is_file():
        msg = f"page {path} does not exist"
        raise FileNotFoundError(msg)
    report = PageReport(path=path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: report.console_errors.append(m.text)
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: report.page_errors.append(str(e)))

            def route(r):
                if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
                    r.continue_()
                else:
                    report.blocked_requests.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(path.as_uri(), wait_until="load", timeout=timeout * 1000)
            report.title = page.title()
            meta = page.locator('meta[name="site-figures"]')
            declared = int(meta.get_attribute("content")) if meta.count() else 0
            report.expected_figures = declared if expected_figures is None else expected_figures
            containers = page.locator("div.site-plot")
            n = containers.count()
            if n:
                try:  # wait until every container holds a painted canvas
                    page.wait_for_function(
                        "([n, f]) => { const cs = document.querySelectorAll('div.site-plot');"
                        " const st = eval(f); return cs.length === n && "
                        "Array.from(cs).every(c => { const s = st(c); return s && s[2]; }); }",
                        arg=[n, _FIGURE_STATE], timeout=timeout * 1000, polling=200)
                except PlaywrightTimeout:
                    pass  # the figures that did not render are counted and reported below
            for i in range(n):
                state = containers.nth(i).evaluate(_FIGURE_STATE)
                if state is None:
                    report.figure_sizes.append((0.0, 0.0))
                    continue
                report.figure_sizes.append((state[0], state[1]))
                if state[2]:
                    report.rendered_figures += 1
            headline = page.locator("#headline")
            if headline.count():
                box = headline.first.bounding_box()
                report.headline_top = None if box is None else box["y"]
            report.screenshot = ARTIFACTS / screenshot
            page.screenshot(path=str(report.screenshot), full_page=full_page)
        finally:
            browser.close()
    return report
