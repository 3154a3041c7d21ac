"""The report never draws a negative axis for a positive metric (report/specs.py)."""

from __future__ import annotations

import json
from typing import Any

from llenergymeasure.report.axes import axis_scale
from llenergymeasure.report.data import FigureData
from llenergymeasure.report.specs import effect_spec


def _row(mean: float, low: float, high: float) -> dict[str, Any]:
    return {
        "config": f"c{mean}",
        "line": "l",
        "value": str(mean),
        "order": 0,
        "metric": "J/token",
        "group": "g",
        "mean": mean,
        "low": low,
        "high": high,
    }


def test_an_interval_reaching_below_zero_clips_the_axis_at_zero() -> None:
    busy = [{"x": 0.37, "x_low": -0.43, "x_high": 1.18}, {"x": 0.5, "x_low": 0.4, "x_high": 0.6}]
    assert axis_scale(busy, "x") == {"zero": False, "domainMin": 0, "clamp": True}
    quiet = [{"x": 0.37, "x_low": 0.3, "x_high": 0.44}]
    assert axis_scale(quiet, "x") == {"zero": False}  # not from zero: small differences show
    wide = [{"x": 0.01, "x_low": -1.0}, {"x": 10.0, "x_low": 9.0}]
    assert axis_scale(wide, "x") == {"type": "log"}  # and log bars at <= 0 are left out, as before


def test_the_effect_figure_stops_its_axis_at_zero() -> None:
    rows = [_row(0.37, -0.43, 1.18), _row(0.5, 0.4, 0.6)]
    spec = json.dumps(effect_spec(FigureData(rows, "caption"), "batch", "batch size").spec)
    assert '"domainMin": 0' in spec and '"clamp": true' in spec
    calm = json.dumps(effect_spec(FigureData([_row(0.5, 0.4, 0.6)], "c"), "b", "b").spec)
    assert "domainMin" not in calm
