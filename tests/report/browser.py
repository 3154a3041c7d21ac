"""Open a report in real headless Chromium and read back what the page did.

No DevTools client: a copy of the page gets one extra first script that records every
``console.error``, uncaught error, unhandled rejection, failed resource and Content Security
Policy violation (a network fetch the page attempted) into attributes of ``<html>``, plus whether
the estimate banner is visible and what clicking two table headers did to the row order; ``chromium --dump-dom`` then hands back the rendered DOM.
Under ``CI=true`` a missing Chromium fails the test instead of skipping it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
TIMEOUT_S = 180

PROBE = """<script>
(function () {
  var root = document.documentElement, errors = [];
  function keep(message) {
    errors.push(String(message));
    root.setAttribute("data-console-errors", JSON.stringify(errors));
  }
  root.setAttribute("data-console-errors", "[]");
  var original = console.error;
  console.error = function () {
    keep(Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    var where = e.target && (e.target.src || e.target.href);
    keep("error: " + (e.message || where || e));
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    keep("unhandled rejection: " + e.reason);
  });
  document.addEventListener("securitypolicyviolation", function (e) {
    keep("blocked by the page's CSP: " + e.blockedURI + " (" + e.violatedDirective + ")");
  });
  var overflowCheck = setInterval(function () {
    if (document.body.dataset.figures !== "done") { return; }
    clearInterval(overflowCheck);
    var limit = document.documentElement.clientWidth, wide = [];
    document.querySelectorAll("section, figure, .chart svg, table").forEach(function (el) {
      var box = el.getBoundingClientRect();
      if (box.right > limit + 1) { wide.push((el.id || el.tagName) + ": " + Math.round(box.right)); }
    });
    if (document.documentElement.scrollWidth > limit + 1) { wide.push("page"); }
    root.setAttribute("data-overflow", JSON.stringify(wide));
  }, 50);
  window.addEventListener("load", function () {
    var table = document.getElementById("configs"), sorted = {};
    if (table) {
      table.querySelectorAll("th").forEach(function (th, i) {
        var name = th.textContent;
        if (name !== "config" && name.indexOf("J/token") !== 0) { return; }
        var first = function () { return table.tBodies[0].rows[0].cells[i].dataset.v; };
        th.click();
        var up = first();
        th.click();
        sorted[name] = [up, first()];
      });
      root.setAttribute("data-sorted", JSON.stringify(sorted));
    }
    var banner = document.getElementById("estimate-warning");
    if (!banner) { return; }
    var style = getComputedStyle(banner), box = banner.getBoundingClientRect();
    var visible = style.display !== "none" && style.visibility !== "hidden" &&
      box.height > 0 && box.width > 0 && parseFloat(style.opacity) > 0;
    root.setAttribute("data-estimate-visible", String(visible));
    root.setAttribute("data-estimate-colour", style.color);
  });
})();
</script>"""


def chromium() -> str:
    """The browser's executable; skip without one, except under CI, where it must be there."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    message = "Chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the browser tests")
    pytest.skip(message)


@dataclass
class Rendered:
    """What the browser made of the page."""

    dom: str
    errors: list[str]
    figures: dict[str, str]
    """figure id -> its data-rendered state ('true' once drawn)."""
    svg_marks: dict[str, int]
    """figure id -> how many drawn marks (paths, lines, text) its SVG holds."""
    estimate_visible: bool | None
    estimate_colour: str | None
    sorted_first: dict[str, list[str]]
    """table column -> the first row's value after one click (ascending) and a second."""
    overflow: list[str] | None = None
    """Elements whose right edge passes the window's width (None: never measured)."""

    def table_rows(self) -> int:
        table = self.dom.split('<table id="configs"', 1)[1].split("</table>", 1)[0]
        return len(re.findall(r"<tr\b", table.split("<tbody>", 1)[1]))


def _flags(browser: str, profile: Path) -> list[str]:
    return [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=60000",
    ]


def _probe_copy(page: Path) -> Path:
    text = page.read_text(encoding="utf-8")
    assert 0 < text.find("<head>") < 200  # the page's own head (the inline bundle has others)
    probe = page.with_name(f".probe-{page.name}")
    probe.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    return probe


def section_pages(page: Path, anchors: list[str]) -> dict[str, Path]:
    """A copy of ``page`` per section showing that section alone (to screenshot it)."""
    text = page.read_text(encoding="utf-8")
    copies = {}
    for anchor in anchors:
        style = f"<style>header,nav,.banner,section:not(#{anchor}){{display:none}}</style>"
        copy = page.with_name(f".section-{anchor}-{page.name}")
        copy.write_text(text.replace("</head>", style + "</head>", 1), encoding="utf-8")
        copies[anchor] = copy
    return copies


def render(
    page: Path,
    *,
    screenshots: dict[str, tuple[int, int]] | None = None,
    width: int = 1400,
    shot_pages: dict[str, Path] | None = None,
) -> Rendered:
    """Load ``page`` in headless Chromium ``width`` px wide; optionally save screenshots
    (path -> width, height), each of ``shot_pages[path]`` where given."""
    browser = chromium()
    probe = _probe_copy(page)
    profile = page.parent / ".chromium-profile"
    try:
        done = subprocess.run(
            [
                *_flags(browser, profile),
                f"--window-size={width},1000",
                "--dump-dom",
                probe.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        for path, (width, height) in (screenshots or {}).items():
            shot = subprocess.run(
                [
                    *_flags(browser, profile),
                    f"--window-size={width},{height}",
                    f"--screenshot={path}",
                    (shot_pages or {}).get(path, page).as_uri(),
                ],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
            assert shot.returncode == 0 and Path(path).is_file(), shot.stderr[-3000:]
    finally:
        probe.unlink()
        shutil.rmtree(profile, ignore_errors=True)
    return parse(done.stdout)


def _attribute(dom: str, name: str) -> str | None:
    match = re.search(rf'<html\b[^>]*\s{name}="([^"]*)"', dom)
    return html.unescape(match.group(1)) if match else None


def parse(dom: str) -> Rendered:
    """Read the probe's attributes and each figure's state and SVG out of the dumped DOM."""
    errors_text = _attribute(dom, "data-console-errors")
    figures: dict[str, str] = {}
    marks: dict[str, int] = {}
    for match in re.finditer(r'<div\b[^>]*\bid="fig-([^"]+)"[^>]*>', dom):
        stem, tag = match.group(1), match.group(0)
        state = re.search(r'data-rendered="([^"]*)"', tag)
        figures[stem] = state.group(1) if state else "pending"
        body = dom[match.end() : dom.find("<figcaption", match.end())]
        svg = body[body.find("<svg") :] if "<svg" in body else ""
        marks[stem] = len(re.findall(r"<(path|line|text)\b", svg))
    visible = _attribute(dom, "data-estimate-visible")
    overflow = _attribute(dom, "data-overflow")
    return Rendered(
        overflow=None if overflow is None else json.loads(overflow),
        dom=dom,
        errors=["probe missing: the page's scripts never ran"]
        if errors_text is None
        else json.loads(errors_text),
        figures=figures,
        svg_marks=marks,
        estimate_visible=None if visible is None else visible == "true",
        estimate_colour=_attribute(dom, "data-estimate-colour"),
        sorted_first=json.loads(_attribute(dom, "data-sorted") or "{}"),
    )


def artifacts_dir(default: Path) -> Path:
    """Where screenshots go: $LLEM_TEST_ARTIFACTS, else ``default``."""
    folder = Path(os.environ.get("LLEM_TEST_ARTIFACTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
