"""Everything that needs ``vl-convert-python`` (the ``report`` extra): SVG and PNG of a spec,
and the JavaScript bundle (Vega, Vega-Lite, Vega-Embed) inlined in the page.

vl-convert renders in an embedded JavaScript engine: no browser, no network. The bundle takes
seconds to build, so it is cached under the user's cache, one file per vl-convert version.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from llenergymeasure.exceptions import UnavailableError
from llenergymeasure.files import default_cache_dir, write_atomic

REPORT_HINT = "pip install 'llenergymeasure[report]'"
PNG_SCALE = 2.0
"""PNG pixels per SVG pixel: sharp enough for print at the figure's size."""


def _vl_convert() -> Any:
    try:
        import vl_convert
    except ImportError:
        raise UnavailableError(
            "llem report needs vl-convert-python (the 'report' extra), which is not installed",
            fix=REPORT_HINT,
        ) from None
    return vl_convert


def available() -> bool:
    """True when the report extra is installed (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("vl_convert") is not None


def versions() -> dict[str, str]:
    """Library versions the figures were drawn with, for the page's provenance."""
    vlc = _vl_convert()
    import importlib.metadata

    return {
        "vl-convert-python": importlib.metadata.version("vl-convert-python"),
        "vega": vlc.get_vega_version(),
        "vega-lite": vlc.get_vegalite_versions()[-1],
        "vega-embed": vlc.get_vega_embed_version(),
    }


def javascript_bundle(cache_dir: Path | None = None) -> str:
    """Vega + Vega-Lite + Vega-Embed as one script defining ``window.vegaEmbed``."""
    vlc = _vl_convert()
    version = versions()["vl-convert-python"]
    cache = (cache_dir or default_cache_dir() / "report") / f"vega-bundle-{version}.js"
    try:
        return cache.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle: str = vlc.javascript_bundle()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, bundle)
    except OSError:  # a read-only cache only costs time next run
        pass
    return bundle


def to_svg(spec: dict[str, Any]) -> str:
    """The figure as SVG, compiled with the same (latest bundled) Vega-Lite as the page;
    no data may be fetched from anywhere."""
    svg: str = _vl_convert().vegalite_to_svg(spec, allowed_base_urls=[])
    return svg


def svg_to_png(svg: str) -> bytes:
    """The PNG of an already rendered SVG (one layout pass fewer than ``to_png``)."""
    png: bytes = _vl_convert().svg_to_png(svg, scale=PNG_SCALE)
    return png


def svg_to_pdf(svg: str) -> bytes:
    """The PDF of an SVG, its fonts embedded (subset); one SVG unit is one PDF point."""
    pdf: bytes = _vl_convert().svg_to_pdf(svg)
    return pdf


_SVG_TAG = re.compile(r"<svg\b[^>]*>")


def at_width(svg: str, width: float, unit: str = "") -> str:
    """The same drawing with its outer size set to ``width`` (``unit``: ``in`` for SVG files,
    '' for points, which is what ``svg_to_pdf`` reads), height in proportion; the viewBox keeps
    the drawing's own coordinates, so everything scales together."""
    tag = _SVG_TAG.search(svg)
    if tag is None:
        raise ValueError("not an SVG document")
    size = {k: float(v) for k, v in re.findall(r'\b(width|height)="([\d.]+)"', tag.group(0))}
    height = width * size["height"] / size["width"]
    new = re.sub(r'\bwidth="[\d.]+"', f'width="{width:g}{unit}"', tag.group(0), count=1)
    new = re.sub(r'\bheight="[\d.]+"', f'height="{height:.4g}{unit}"', new, count=1)
    if "viewBox" not in new:
        new = new.replace("<svg", f'<svg viewBox="0 0 {size["width"]:g} {size["height"]:g}"', 1)
    return svg[: tag.start()] + new + svg[tag.end() :]


def drawn_width(svg: str) -> float:
    """The width of an SVG drawing in its own units (points once it is a PDF)."""
    tag = _SVG_TAG.search(svg)
    found = re.search(r'\bwidth="([\d.]+)"', tag.group(0)) if tag else None
    if found is None:
        raise ValueError("not an SVG document with a width")
    return float(found.group(1))


POINTS_PER_INCH = 72

__all__ = [
    "POINTS_PER_INCH",
    "REPORT_HINT",
    "at_width",
    "available",
    "drawn_width",
    "javascript_bundle",
    "svg_to_pdf",
    "svg_to_png",
    "to_svg",
    "versions",
]
