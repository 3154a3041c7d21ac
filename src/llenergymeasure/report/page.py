"""The HTML page: one file, every script and style inline, nothing fetched (a Content Security
Policy in the page forbids it, so a figure can never quietly depend on a network)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import Any

from llenergymeasure.files import finite
from llenergymeasure.report.data import ESTIMATE
from llenergymeasure.report.figures import Section

CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data:"
)
"""Inline scripts and styles only (Vega compiles its expressions, hence 'unsafe-eval')."""

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1280px;
padding:0 24px 48px;color:#222}
h1{font-size:22px;margin:20px 0 4px}h2{margin-top:36px;border-bottom:1px solid #ddd}
nav a{margin-right:14px}.muted{color:#666}.warn{color:#8a5a00}
.banner{border:2px solid #c62828;background:#fdecea;color:#c62828;padding:10px 14px;
font-weight:600;margin:14px 0}.estimate{color:#c62828;font-weight:700}
.untrusted{color:#c62828;font-weight:600}.warning{color:#8a5a00}
figure{margin:18px 0}figcaption{color:#555;max-width:900px}.chart{min-height:60px}
.files{font-size:12px;color:#666}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 5px;text-align:left;vertical-align:top}
th{background:#f4f4f4}table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" ▲"}
table.sortable th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right}td.notes{min-width:14em;max-width:28em}
th{font-weight:600}td,th{overflow-wrap:normal}.wide{overflow-x:auto}
.select{margin:10px 0}select{font:inherit;padding:2px 4px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{color:#666}dd{margin:0}
"""

SCRIPT = """
(function () {
  var specs = JSON.parse(document.getElementById("llem-figures").textContent);
  var pending = Object.keys(specs).map(function (id) {
    var el = document.getElementById("fig-" + id);
    return vegaEmbed(el, specs[id], {renderer: "svg", actions: false})
      .then(function () { el.dataset.rendered = "true"; })
      .catch(function (err) {
        el.dataset.rendered = "error";
        el.textContent = "This figure could not be drawn: " + err;
        console.error(err);
      });
  });
  Promise.all(pending).then(function () { document.body.dataset.figures = "done"; });
  document.querySelectorAll("select.figure-select").forEach(function (menu) {
    function show() {
      menu.closest("section").querySelectorAll("figure").forEach(function (fig) {
        fig.hidden = fig.id !== menu.value;
      });
    }
    menu.addEventListener("change", show);
    show();
  });
  function key(cell) {
    var v = cell.dataset.v === undefined ? cell.textContent : cell.dataset.v;
    var n = parseFloat(v);
    return v !== "" && !isNaN(n) && isFinite(v) ? n : v.toLowerCase();
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, i) {
      th.addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[i]), y = key(b.cells[i]);
          if (typeof x !== typeof y) { x = String(x); y = String(y); }
          return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""


def script_text(code: str) -> str:
    """JavaScript safe inside ``<script>``: no ``</script`` can end it early."""
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)


def json_text(data: Any) -> str:
    """JSON safe inside ``<script>``: ``</`` escaped (still valid JSON), non-finite -> null."""
    return json.dumps(finite(data), default=str, allow_nan=False).replace("</", "<\\/")


def _figure(figure: Any, figure_dir: str) -> str:
    folder = html.escape(figure_dir)
    groups = [
        ("as shown", [("SVG", ".svg"), ("PNG", ".png")]),
        ("1-column", [("PDF", ".1col.pdf"), ("SVG", ".1col.svg")]),
        ("2-column", [("PDF", ".2col.pdf"), ("SVG", ".2col.svg")]),
        ("data", [("CSV", ".csv")]),
    ]
    files = (
        '<p class="files">for papers: '
        + " · ".join(
            f"{label} "
            + " / ".join(
                f'<a href="{folder}/{html.escape(figure.stem + suffix)}">{text}</a>'
                for text, suffix in links
            )
            for label, links in groups
        )
        + "</p>"
    )
    return (
        f'<figure id="{figure.stem}"><div class="chart" id="fig-{figure.stem}" '
        f'role="img" aria-label="{html.escape(figure.title)}"></div>'
        f"<figcaption>{html.escape(figure.caption)}</figcaption>{files}</figure>"
    )


OPEN_SENTENCES = 30
"""Up to this many findings are listed open; more are folded away (still all there)."""


def _sentences(sentences: Sequence[str]) -> str:
    if not sentences:
        return ""
    items = "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>"
    if len(sentences) <= OPEN_SENTENCES:
        return items
    return f"<details><summary>All {len(sentences)} comparisons</summary>{items}</details>"


def _menu(section: Section) -> str:
    """A menu choosing which of the section's figures the page shows (all stay in the page,
    drawn, and in the figure folder; without scripts every one is shown)."""
    if not section.selectable or len(section.figures) < 2:
        return ""
    options = "".join(
        f'<option value="{html.escape(f.stem)}">{html.escape(f.title)}</option>'
        for f in section.figures
    )
    return (
        f'<p class="select"><label>Figure: <select class="figure-select" '
        f'aria-label="which {html.escape(section.heading)} figure">{options}</select></label> '
        f'<span class="muted">({len(section.figures)} metric pairs)</span></p>'
    )


def _section(section: Section, figure_dir: str) -> str:
    body = (
        _menu(section)
        + (
            "".join(_figure(f, figure_dir) for f in section.figures)
            if section.figures
            else f'<p class="muted">{html.escape(section.empty)}</p>'
        )
        + _sentences(section.sentences)
    )
    return f'<section id="{section.anchor}"><h2>{html.escape(section.heading)}</h2>{body}</section>'


def page(
    *,
    title: str,
    intro: Sequence[str],
    estimate_note: str | None,
    sections: Sequence[Section],
    table: str,
    provenance: Sequence[str],
    bundle: str,
    figure_dir: str,
) -> str:
    """The whole page. ``intro`` lines and ``estimate_note`` are plain text (escaped here);
    ``table`` and ``provenance`` are HTML built by their modules."""
    specs = {f.stem: f.spec for s in sections for f in s.figures}
    nav = [(s.anchor, s.heading) for s in sections] + [
        ("configs-section", "Every config"),
        ("provenance", "Provenance"),
    ]
    banner = (
        f'<div class="banner" id="estimate-warning"><span class="estimate">{ESTIMATE}.</span> '
        f"{html.escape(estimate_note)}</div>"
        if estimate_note
        else ""
    )
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
            f"<header><h1>{html.escape(title)}</h1>",
            *(f'<p class="muted">{html.escape(line)}</p>' for line in intro),
            "</header>",
            banner,
            "<nav>" + "".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h in nav) + "</nav>",
            *(_section(s, figure_dir) for s in sections),
            '<section id="configs-section"><h2>Every config</h2>',
            '<p class="muted">Click a column to sort. Means over usable cycles; ± is the 95% CI '
            "half-width (its method under Provenance). Untrusted cycles are left out and "
            "counted.</p>",
            f'<div class="wide">{table}</div></section>',
            '<section id="provenance"><h2>Provenance</h2>',
            *provenance,
            "</section>",
            '<script type="application/json" id="llem-figures">' + json_text(specs) + "</script>",
            f"<script>{script_text(bundle)}</script>",
            f"<script>{SCRIPT}</script>",
            "</body></html>",
        ]
    )


__all__ = ["CSP", "finite", "json_text", "page", "script_text"]
