"""The Vega-Lite specs themselves: readable ticks, legends never cut, one encoding per variable."""

from __future__ import annotations

from typing import Any

from llenergymeasure.report import data as D
from llenergymeasure.report import specs as Sp
from llenergymeasure.report.figures import sections

from . import synthetic as S


def _figures(records: list[Any]) -> list[Sp.Figure]:
    points, varied = D.config_points([S.source(records)])
    return [f for sec in sections([S.source(records)], points, varied) for f in sec.figures]


def test_every_figure_keeps_legend_text_whole_and_ticks_readable() -> None:
    figures = _figures(S.grid_records((1, 4), backends=("pytorch", "vllm")))
    assert figures
    for fig in figures:
        config = fig.spec["config"]
        assert config["legend"]["labelLimit"] == 0, fig.stem
        assert config["axisQuantitative"]["format"] == Sp.TICK_FORMAT, fig.stem


def test_backend_is_not_drawn_twice_when_colour_already_says_it() -> None:
    figures = _figures(S.grid_records((1, 4), backends=("pytorch", "vllm")))
    pareto = [f for f in figures if f.stem.startswith("pareto")]
    assert pareto
    for fig in pareto:
        points = [layer for layer in fig.spec["layer"] if layer["mark"].get("type") == "point"]
        assert points, fig.stem
        for layer in points:
            enc = layer["encoding"]
            assert enc["color"]["field"] == "group"
            assert enc["shape"] == {"value": "circle"}, fig.stem
