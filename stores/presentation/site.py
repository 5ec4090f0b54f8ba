"""A small static-site builder for the monitors' web pages (self-contained, offline).

A :class:`Page` is a headline block (the numbers a reader wants first), then sections
of text, tables, images and interactive Bokeh figures, then a collapsible provenance
section (``<details>``) at the end.  :meth:`Page.write` renders it to one HTML file
with BokehJS **inlined** (:data:`bokeh.resources.INLINE`), so the page works from a
copied directory or ``file://`` without network access; the write is atomic.

Build a page with :class:`Page`, :class:`Section` and :class:`Metric`; make its figures
with :func:`bokeh_figure`.

Each embedded figure sits in ``<div class="site-plot" data-plots="k">`` (*k* the Bokeh
plots it holds, several for a grid layout) and the page carries
``<meta name="site-figures" content="N">``; :mod:`tests.browser` uses both to check
that every figure rendered.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from os import PathLike
from pathlib import Path

from stores.common.validate import as_sequence_of, instance_of
from stores.storage.fs import atomic_write

__all__ = ["Metric", "Page", "Section", "bokeh_figure"]

TOOLS = "pan,box_zoom,wheel_zoom,hover,reset,save"

_CSS = """
:root { --fg: #1d2329; --muted: #5b6670; --line: #d5dbe1; --accent: #1f5f99; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       margin: 0 auto; padding: 1.2em 2em 3em; max-width: 1200px; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 0.2em 0 0.1em; }
.subtitle { color: var(--muted); margin: 0 0 0.8em; }
h2 { font-size: 1.25em; border-bottom: 1px solid var(--line); padding-bottom: 0.2em;
     margin-top: 1.6em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
#headline { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr));
            gap: 0.8em; margin: 0.8em 0 0.4em; }
.metric { border: 1px solid var(--line); border-left: 4px solid var(--accent);
          border-radius: 4px; padding: 0.6em 0.8em; background: #f7f9fb; }
.metric .label { font-size: 0.85em; color: var(--muted); }
.metric .value { font-size: 1.35em; font-weight: 600; margin: 0.15em 0; }
.metric .detail { font-size: 0.8em; color: var(--muted); }
.note { font-size: 0.9em; color: var(--muted); }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid var(--line); padding: 0.2em 0.5em; text-align: right; }
th { background: #eef1f4; } td.l, th.l { text-align: left; }
caption { caption-side: top; text-align: left; color: var(--muted); padding: 0.2em 0; }
img { max-width: 100%; border: 1px solid var(--line); margin: 0.4em 0; }
.site-plot { margin: 0.6em 0 1em; }
details { margin: 0.6em 0; } summary { cursor: pointer; color: var(--accent); }
details.provenance { margin-top: 2.5em; border-top: 1px solid var(--line);
                     padding-top: 0.6em; font-size: 0.9em; }
"""


def _e(value) -> str:
    return html.escape(str(value))


@dataclass(frozen=True)
class Metric:
    """One headline number of a page.

    Parameters
    ----------
    label : str
        What the number is.
    value : str
        The number, already formatted (e.g. ``"0.052 ± 0.003"``).
    detail : str
        An optional line under it.
    """

    label: str
    value: str
    detail: str = ""

    def render(self) -> str:
        """The metric as HTML."""
        detail = f'<div class="detail">{_e(self.detail)}</div>' if self.detail else ""
        return (f'<div class="metric"><div class="label">{_e(self.label)}</div>'
                f'<div class="value">{_e(self.value)}</div>{detail}</div>')


@dataclass
class Section:
    """A titled part of a :class:`Page` (made by :meth:`Page.section`); each method adds
    content after the previous one and returns the section.

    Parameters
    ----------
    title : str
        The section's heading.
    intro : str
        A paragraph under the heading.
    _parts : list
        The content added so far (internal).
    """

    title: str
    intro: str = ""
    _parts: list[tuple[str, object]] = field(default_factory=list, repr=False)

    def text(self, text: str) -> Section:
        """Add *text* as an escaped paragraph.

        Parameters
        ----------
        text : str
            Plain text.
        """
        self._parts.append(("html", f"<p>{_e(text)}</p>"))
        return self

    def html(self, markup: str) -> Section:
        """Add trusted *markup*, inserted as is.

        Parameters
        ----------
        markup : str
            HTML.
        """
        self._parts.append(("html", str(markup)))
        return self

    def subsection(self, title: str) -> Section:
        """Add a sub-heading (``<h3>``).

        Parameters
        ----------
        title : str
            Its text.
        """
        self._parts.append(("html", f"<h3>{_e(title)}</h3>"))
        return self

    def table(
        self,
        header: Sequence[str],
        rows: Iterable[Sequence],
        *,
        caption: str = "",
        left: int = 1,
        collapse_after: int = 25,
        empty: str = "None.",
    ) -> Section:
        """Add a table.

        Parameters
        ----------
        header : sequence of str
            Column titles.
        rows : iterable of sequence
            The rows' cells.
        caption : str
            Shown above the table.
        left : int
            The first *left* columns are left-aligned (text), the others right-aligned.
        collapse_after : int
            Longer tables are folded in a ``<details>`` element saying how many rows it
            holds.
        empty : str
            Shown instead of a table without rows.
        """
        rows = [list(r) for r in rows]
        if not rows:
            self._parts.append(("html", f'<p class="note">{_e(caption + ": " if caption else "")}'
                                        f"{_e(empty)}</p>"))
            return self
        width = len(header)
        bad = [i for i, r in enumerate(rows) if len(r) != width]
        if bad:
            msg = (f"table {caption or self.title!r}: row {bad[0]} has {len(rows[bad[0]])} "
                   f"cells, the header {width}")
            raise ValueError(msg)

        def cls(i):
            return ' class="l"' if i < left else ""

        head = "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(header))
        body = "".join("<tr>" + "".join(f"<td{cls(i)}>{_e(v)}</td>" for i, v in enumerate(r))
                       + "</tr>" for r in rows)
        cap = f"<caption>{_e(caption)}</caption>" if caption else ""
        markup = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        if len(rows) > collapse_after:
            markup = (f"<details><summary>{_e(caption or 'table')}: {len(rows)} rows "
                      f"(click to show)</summary>{markup}</details>")
        self._parts.append(("html", markup))
        return self

    def bokeh(self, model, *, caption: str = "") -> Section:
        """Add an interactive Bokeh figure (embedded with inlined BokehJS).

        Parameters
        ----------
        model : bokeh.model.Model
            A figure or a layout.
        caption : str
            Shown under it.
        """
        from bokeh.model import Model

        instance_of(model, "bokeh() model", Model, what="a Bokeh model (figure or layout)")
        self._parts.append(("bokeh", (model, caption)))
        return self

    def image(self, src: str, alt: str) -> Section:
        """Add an image by relative link.

        Parameters
        ----------
        src : str
            The link, e.g. ``plots/x.png``.
        alt : str
            Its alternative text.
        """
        self._parts.append(("html", f'<img src="{_e(src)}" alt="{_e(alt)}">'))
        return self

    def _models(self):
        return [p[1][0] for p in self._parts if p[0] == "bokeh"]


class Page:
    """One self-contained HTML page: headline, sections, provenance (see module doc).

    Parameters
    ----------
    title : str
        The page title.
    subtitle : str
        A line under it.
    """

    def __init__(self, title: str, *, subtitle: str = "") -> None:
        self.title = str(title)
        self.subtitle = str(subtitle)
        self._metrics: list[Metric] = []
        self._note = ""
        self._sections: list[Section] = []
        self._provenance: tuple[str, list[tuple[str, object]]] | None = None

    def headline(self, metrics: Iterable[Metric], *, note: str = "") -> Page:
        """Set the headline block (shown first, ``id="headline"``); return the page.

        Parameters
        ----------
        metrics : iterable of Metric
            The numbers.
        note : str
            A line under them.
        """
        metric = partial(instance_of, cls=Metric, what="a Metric")
        self._metrics = list(as_sequence_of(metrics, "headline() metrics", metric, min_len=0))
        self._note = str(note)
        return self

    def section(self, title: str, *, intro: str = "") -> Section:
        """Append a section and return it.

        Parameters
        ----------
        title, intro : str
            As for :class:`Section`.
        """
        sec = Section(str(title), str(intro))
        self._sections.append(sec)
        return sec

    def provenance(self, items: Mapping | Iterable[tuple[str, object]], *,
                   title: str = "Provenance") -> Page:
        """Set the collapsible last section (run options, versions, inputs); return the page.

        Parameters
        ----------
        items : mapping or iterable of (str, object)
            Keys and values; values may be nested mappings.
        title : str
            Its heading.
        """
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        self._provenance = (str(title), pairs)
        return self

    @property
    def n_figures(self) -> int:
        """Bokeh root models embedded in the page."""
        return sum(len(s._models()) for s in self._sections)

    def render(self) -> str:
        """The page as one HTML string."""
        models = [m for s in self._sections for m in s._models()]
        script, divs, resources = "", [], ""
        if models:
            from bokeh.embed import components
            from bokeh.resources import INLINE

            script, divs = components(models)
            resources = INLINE.render()
        divs = list(divs)
        body = [f"<h1>{_e(self.title)}</h1>"]
        if self.subtitle:
            body.append(f'<p class="subtitle">{_e(self.subtitle)}</p>')
        if self._metrics:
            body.append('<div id="headline">' + "".join(m.render() for m in self._metrics)
                        + "</div>")
            if self._note:
                body.append(f'<p class="note">{_e(self._note)}</p>')
        for sec in self._sections:
            body.append(f"<section><h2>{_e(sec.title)}</h2>")
            if sec.intro:
                body.append(f"<p>{_e(sec.intro)}</p>")
            for kind, content in sec._parts:
                if kind == "html":
                    body.append(content)
                else:
                    model, caption = content
                    cap = f'<p class="note">{_e(caption)}</p>' if caption else ""
                    body.append(f'<div class="site-plot" data-plots="{_n_plots(model)}">'
                                f"{divs.pop(0)}</div>{cap}")
            body.append("</section>")
        if self._provenance is not None:
            title, pairs = self._provenance
            body.append(f'<details class="provenance" id="provenance"><summary>{_e(title)}'
                        f"</summary>{_dl(pairs)}</details>")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="site-figures" content="{len(models)}">'
            f"<title>{_e(self.title)}</title><style>{_CSS}</style>{resources}</head>"
            "<body>\n" + "\n".join(body) + f"\n{script}\n</body></html>\n"
        )

    def write(self, path: str | PathLike) -> Path:
        """Render and write the page to *path* atomically; return *path*.

        Parameters
        ----------
        path : str or path-like
            The HTML file.
        """
        atomic_write(path, self.render())
        return Path(path)


def _n_plots(model) -> int:
    from bokeh.models import Plot

    return max(1, len(list(model.select({"type": Plot}))))


def _dl(pairs) -> str:
    rows = []
    for key, value in pairs:
        if isinstance(value, Mapping):
            value_html = _dl(list(value.items()))
        elif isinstance(value, list | tuple) and len(value) > 8:
            value_html = ("<details><summary>" + _e(f"{len(value)} items") + "</summary>"
                          + "<br>".join(_e(v) for v in value) + "</details>")
        else:
            value_html = _e(", ".join(map(str, value)) if isinstance(value, list | tuple)
                            else value)
        rows.append(f'<tr><th class="l">{_e(key)}</th><td class="l">{value_html}</td></tr>')
    return "<table>" + "".join(rows) + "</table>"


def bokeh_figure(*, title: str, x_label: str, y_label: str, x_axis_type: str = "linear",
                 height: int = 320, **kwargs):
    """A Bokeh figure with the shared tools (pan, zooms, hover, reset, save), stretching
    to the page width.

    Parameters
    ----------
    title, x_label, y_label : str
        The figure's title and axis labels (with units).
    x_axis_type : str
        ``"linear"``, ``"log"`` or ``"datetime"``.
    height : int
        Height in screen pixels.
    **kwargs
        Passed to :func:`bokeh.plotting.figure` (e.g. ``y_axis_type="log"``).
    """
    from bokeh.plotting import figure

    kwargs.setdefault("tools", TOOLS)
    kwargs.setdefault("active_scroll", "wheel_zoom")
    fig = figure(title=title, x_axis_label=x_label, y_axis_label=y_label,
                 x_axis_type=x_axis_type, height=height, sizing_mode="stretch_width",
                 **kwargs)
    fig.toolbar.logo = None
    return fig
