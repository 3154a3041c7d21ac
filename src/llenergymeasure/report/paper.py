"""Figures laid out for papers: one column (3.5 in) or two (7 in) wide, text at print size.

The spec is the page's, with narrower and shorter plots and smaller text; the drawing is then
scaled to the column's width exactly (SVG in inches, PDF in points, fonts embedded)."""

from __future__ import annotations

import textwrap
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from llenergymeasure.report import static


@dataclass(frozen=True)
class PaperLayout:
    """A paper's figure width: the spec is laid out for it, then drawn exactly that wide."""

    name: str
    inches: float
    height_factor: float
    """Plot heights relative to the page's (a column is short of height as well as width)."""
    font_size: float
    """Text size in points, as printed: the plots' widths are fitted so that the drawing is
    about as wide as the column before it is scaled to it exactly."""
    legend_below: bool


MIN_PLOT = 40
"""No plot drawn narrower or shorter than this (points) in a paper layout."""

PAPER_LAYOUTS = (
    PaperLayout("1col", 3.5, 0.6, 8, True),
    PaperLayout("2col", 7.0, 0.8, 9, False),
)
"""One-column (3.5 in) and two-column (7 in) figures."""


def paper_spec(
    spec: dict[str, Any], layout: PaperLayout, width_factor: float = 1.0
) -> dict[str, Any]:
    """A copy of a figure's spec laid out for ``layout``: plots ``width_factor`` as wide as
    on the page and shorter, smaller text and, in one column, the legend below the plot;
    data, scales and marks unchanged."""
    copy = deepcopy(spec)
    for view in _views(copy):
        for side, factor in (("width", width_factor), ("height", layout.height_factor)):
            if isinstance(view.get(side), int | float):
                view[side] = max(MIN_PLOT, round(view[side] * factor))
    size = layout.font_size
    config = copy.setdefault("config", {})
    config["axis"] = {**config.get("axis", {}), "labelFontSize": size, "titleFontSize": size}
    config["legend"] = {
        **config.get("legend", {}),
        "labelFontSize": size,
        "titleFontSize": size,
        **({"orient": "bottom", "direction": "vertical"} if layout.legend_below else {}),
    }
    config["header"] = {**config.get("header", {}), "labelFontSize": size}
    title = copy.get("title")
    if isinstance(title, dict):
        title.update(fontSize=size + 2, subtitleFontSize=size - 1)
        if isinstance(title.get("text"), str):  # a title no wider than the column
            per_line = round(layout.inches * static.POINTS_PER_INCH / (CHAR_EM * (size + 2)))
            title["text"] = textwrap.wrap(title["text"], per_line)
    return copy


CHAR_EM = 0.55
"""An average character's width in ems (sans-serif): how many fit on a title line."""


def _views(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The spec and every view nested in it (facet specs, concatenated blocks)."""
    found = [spec]
    if isinstance(spec.get("spec"), dict):
        found += _views(spec["spec"])
    for block in spec.get("vconcat", []) + spec.get("hconcat", []):
        found += _views(block)
    return found


FIT_TOLERANCE = 0.08
"""A paper drawing within 8% of the column's width is scaled to it as is (text within 8% of
its intended size); otherwise its plots are resized first."""

NARROWEST = 0.1
"""The plots are never narrower than this fraction of their width on the page."""


def paper_drawing(spec: dict[str, Any], layout: PaperLayout) -> str:
    """The SVG of ``spec`` laid out for ``layout``, its plots as wide as makes the whole
    drawing the column's width at the layout's font size (it is then scaled to it exactly).

    The drawing's width is linear in the plots' width (legends and axis titles do not grow
    with it): two drawings give the line, a third is drawn at the width it predicts."""
    target = layout.inches * static.POINTS_PER_INCH
    full = static.to_svg(paper_spec(spec, layout, 1.0))
    full_width = static.drawn_width(full)
    if abs(full_width - target) <= FIT_TOLERANCE * target:
        return full
    half_width = static.drawn_width(static.to_svg(paper_spec(spec, layout, 0.5)))
    growth = (full_width - half_width) / 0.5
    if growth <= 0:  # nothing in it resizes: the scaling alone fits it
        return full
    factor = max(NARROWEST, 1.0 + (target - full_width) / growth)
    return static.to_svg(paper_spec(spec, layout, factor))


__all__ = ["PAPER_LAYOUTS", "PaperLayout", "paper_drawing", "paper_spec"]
