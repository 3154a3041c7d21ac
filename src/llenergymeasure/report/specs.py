"""Vega-Lite specs (plain dicts) for each figure, from the rows in ``report.data``.

The same spec is drawn interactively in the page and rendered to SVG/PNG for papers, so a
figure that shows an estimate carries "ESTIMATE — not a measurement" in red in its own subtitle,
wherever it ends up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llenergymeasure.report.data import ESTIMATE, JPT, TPS, FigureData, Metric

RED = "#c62828"
WIDTH = 560
MEAN_CI = "mean (bars: 95% CI)"


@dataclass(frozen=True)
class Figure:
    """One figure: where it goes on the page, its spec, and what it shows."""

    stem: str
    """File name of its static SVG/PNG, and its anchor in the page."""
    title: str
    spec: dict[str, Any]
    caption: str
    estimate: bool


def _title(text: str, estimate: bool) -> dict[str, Any]:
    title: dict[str, Any] = {"text": text, "anchor": "start", "fontSize": 14}
    if estimate:
        title.update(subtitle=ESTIMATE, subtitleColor=RED, subtitleFontWeight="bold")
    return title


TICK_FORMAT = ".4~g"
"""d3 format of every quantitative axis: enough significant digits to read the value."""


def _base(title: str, data: FigureData) -> dict[str, Any]:
    return {
        "title": _title(title, data.estimate),
        "data": {"values": data.rows},
        "config": {
            "view": {"stroke": "#ddd"},
            "font": "sans-serif",
            # Ticks keep four significant digits (1.307 reads 1.307, never a bare "1").
            "axisQuantitative": {"format": TICK_FORMAT},
            # Legend text is never cut with an ellipsis, on the page and in SVG/PNG alike.
            "legend": {"labelLimit": 0, "titleLimit": 0},
        },
        "background": "white",
    }


def _q(field: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    encoding = {"field": field, "type": "quantitative", "scale": {"zero": False}, **extra}
    if title is not None:
        encoding["title"] = title
    return encoding


FEW = 10
"""Up to this many configs, each gets its own colour (and legend entry)."""


def _colour(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Colour by directory in comparison mode, else by backend/model where those vary, else by
    config when there are few; one colour otherwise."""
    for field, title in (("source", "directory"), ("group", "backend · model")):
        if len({r[field] for r in rows}) > 1:
            return {"field": field, "type": "nominal", "title": title}
    if len(rows) <= FEW:
        return {"field": "config", "type": "nominal", "title": "config"}
    return {"value": "#1f77b4"}


def _tooltip(*fields: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"field": f, "title": t} for f, t in fields]


def _scale(rows: list[dict[str, Any]], field: str, low: str | None = None) -> dict[str, Any]:
    """A log scale where the values span more than two decades (else linear, not from zero).

    Every plotted metric is positive: where an interval's low end (``low``, by default
    ``<field>_low``) is below zero the linear axis stops at zero and the bar is clipped there,
    so the axis never runs below zero."""
    values = [r[field] for r in rows if r.get(field) is not None]
    if values and min(values) > 0 and max(values) / min(values) > LOG_SPAN:
        return {"type": "log"}
    lows = [r.get(low or f"{field}_low") for r in rows]
    if any(v is not None and v < 0 for v in lows):
        return {"zero": False, "domainMin": 0, "clamp": True}
    return {"zero": False}


def _positive(scale: dict[str, Any], field: str) -> str:
    """On a log scale a bar reaching 0 or below cannot be drawn: such bars are left out."""
    return f" && datum['{field}'] > 0" if scale.get("type") == "log" else ""


LOG_SPAN = 100.0
CROWD = 200
"""More points than this and they are drawn small and translucent, so density shows."""


def pareto_spec(data: FigureData, against: Metric) -> Figure:
    """J/token (y) against one metric (x): every config a point with CI bars, the front drawn
    as a line through its members, front members labelled."""
    colour = _colour(data.rows)
    x, y = against.column, JPT.column
    xs, ys = _scale(data.rows, x), _scale(data.rows, y)
    x_title = against.label + (" (log scale)" if xs.get("type") == "log" else "")
    y_title = JPT.label + (" (log scale)" if ys.get("type") == "log" else "")
    crowded = len(data.rows) > CROWD
    tooltip = _tooltip(
        ("config", "config"),
        ("source", "directory"),
        ("params", "parameters"),
        (y, JPT.label),
        (f"{y}_low", "J/token 95% CI low"),
        (f"{y}_high", "J/token 95% CI high"),
        (x, against.label),
        (f"{x}_low", "95% CI low"),
        (f"{x}_high", "95% CI high"),
        ("energy_label", "energy"),
        ("cycles_used", "cycles used"),
        ("front_step", "along the front"),
    )
    bars = {"filter": f"datum.show_bars && datum['{y}_low'] != null" + _positive(ys, f"{y}_low")}
    xbars = {"filter": f"datum.show_bars && datum['{x}_low'] != null" + _positive(xs, f"{x}_low")}
    spec = _base(f"J/token against {against.label}", data)
    spec.update(
        width=WIDTH,
        height=360,
        layer=[
            {
                "transform": [xbars],
                "mark": {"type": "rule", "opacity": 0.5},
                "encoding": {
                    "x": {**_q(f"{x}_low", x_title), "scale": xs},
                    "x2": {"field": f"{x}_high"},
                    "y": {**_q(y), "scale": ys},
                    "color": colour,
                },
            },
            {
                "transform": [bars],
                "mark": {"type": "rule", "opacity": 0.5},
                "encoding": {
                    "y": {**_q(f"{y}_low", y_title), "scale": ys},
                    "y2": {"field": f"{y}_high"},
                    "x": {**_q(x), "scale": xs},
                    "color": colour,
                },
            },
            {
                "transform": [{"filter": "datum.on_front"}],
                "mark": {"type": "line", "color": "#333", "strokeDash": [4, 3]},
                "encoding": {
                    "x": {**_q(x), "scale": xs},
                    "y": {**_q(y), "scale": ys},
                    "detail": {"field": "source"},
                    "order": {"field": x, "type": "quantitative"},
                },
            },
            {
                "mark": {
                    "type": "point",
                    "filled": True,
                    "size": 14 if crowded else 60,
                    "opacity": 0.45 if crowded else 0.9,
                    "tooltip": True,
                },
                "encoding": {
                    "x": {**_q(x, x_title), "scale": xs},
                    "y": {**_q(y, y_title), "scale": ys},
                    "color": colour,
                    # Shape by backend only where colour does not already say the backend.
                    "shape": {"field": "backend", "type": "nominal", "title": "backend"}
                    if len({r["backend"] for r in data.rows}) > 1
                    and colour.get("field") not in ("group", "backend")
                    else {"value": "circle"},
                    "stroke": {
                        "condition": {"test": "datum.on_front", "value": "#000"},
                        "value": None,
                    },
                    "tooltip": tooltip,
                },
            },
            {
                "transform": [{"filter": "datum.show_label"}],
                "mark": {"type": "text", "align": "left", "dx": 7, "dy": -7, "fontSize": 10},
                "encoding": {
                    "x": {**_q(x), "scale": xs},
                    "y": {**_q(y), "scale": ys},
                    "text": {"field": "config"},
                },
            },
        ],
    )
    return Figure(
        f"pareto_{against.column}",
        f"Pareto front: J/token against {against.label}",
        spec,
        data.caption,
        data.estimate,
    )


def effect_spec(data: FigureData, key: str, label: str) -> Figure:
    """J/token and tokens/s (rows) against one parameter's values, a line per combination of
    the other parameters, a column per backend/model."""
    encoding_x = {
        "field": "value",
        "type": "ordinal",
        "title": label,
        "sort": {"field": "order", "op": "min"},
    }
    colour = {"field": "line", "type": "nominal", "title": "other parameters"}
    tooltip = _tooltip(
        ("config", "config"),
        ("line", "other parameters"),
        ("value", label),
        ("mean", "mean"),
        ("low", "95% CI low (or min)"),
        ("high", "95% CI high (or max)"),
    )
    spec = _base(f"Effect of {label}", data)
    del spec["data"]
    spec.update(
        data={"values": data.rows},
        facet={
            "row": {"field": "metric", "type": "nominal", "title": None, "sort": [JPT.label]},
            **(
                {"column": {"field": "group", "type": "nominal", "title": None}}
                if len({r["group"] for r in data.rows}) > 1
                else {}
            ),
        },
        spec={
            "width": 260,
            "height": 170,
            "layer": [
                {
                    "mark": {"type": "line", "point": True},
                    "encoding": {
                        "x": encoding_x,
                        "y": {**_q("mean", MEAN_CI), "scale": _scale(data.rows, "mean", "low")},
                        "color": colour,
                        "tooltip": tooltip,
                    },
                },
                {
                    "transform": [{"filter": "datum.low != null"}],
                    "mark": {"type": "rule", "opacity": 0.6},
                    "encoding": {
                        "x": encoding_x,
                        "y": {**_q("low", MEAN_CI), "scale": _scale(data.rows, "mean", "low")},
                        "y2": {"field": "high"},
                        "color": colour,
                    },
                },
            ],
        },
        resolve={"scale": {"y": "independent"}},
    )
    return Figure(
        f"effect_{key.replace('.', '_')}",
        f"Effect of {label} on {JPT.label} and {TPS.label}",
        spec,
        data.caption,
        data.estimate,
    )


def _rows_height(data: FigureData, field: str) -> dict[str, Any]:
    return {"step": 18} if len({r[field] for r in data.rows}) > 1 else {"step": 40}


def accounting_spec(data: FigureData) -> Figure:
    """Per config, raw energy stacked as idle baseline + above baseline."""
    spec = _base("Energy accounting: raw = idle baseline + above baseline", data)
    spec.update(
        width=WIDTH,
        height=_rows_height(data, "config"),
        mark={"type": "bar", "tooltip": True},
        encoding={
            "y": {"field": "config", "type": "nominal", "sort": None, "title": None},
            "x": {"field": "energy_j", "type": "quantitative", "title": "energy per window (J)"},
            "color": {
                "field": "part",
                "type": "nominal",
                "title": None,
                "scale": {
                    "domain": ["idle baseline", "above baseline", "raw (no baseline subtracted)"],
                    "range": ["#bbb", "#1f77b4", "#9467bd"],
                },
            },
            "tooltip": _tooltip(
                ("config", "config"),
                ("part", "part"),
                ("energy_j", "J (mean over cycles)"),
                ("share", "idle baseline share of raw (%)"),
            ),
        },
    )
    return Figure("energy_accounting", "Energy accounting", spec, data.caption, data.estimate)


def variability_spec(data: FigureData) -> Figure:
    """Per-cycle J/token per config (strip plot), left-out cycles as red crosses."""
    spec = _base("Variability: J/token of every cycle", data)
    spec.update(
        width=WIDTH,
        height=_rows_height(data, "config"),
        mark={"type": "point", "filled": True, "size": 50, "tooltip": True},
        encoding={
            "y": {"field": "config", "type": "nominal", "sort": None, "title": None},
            "x": _q("energy_per_token_j", JPT.label),
            "shape": {
                "field": "used",
                "type": "nominal",
                "scale": {"domain": [True, False], "range": ["circle", "cross"]},
                "legend": None,
            },
            "color": {
                "field": "used",
                "type": "nominal",
                "title": "cycle",
                "scale": {"domain": [True, False], "range": ["#1f77b4", RED]},
                "legend": {"labelExpr": "datum.value ? 'used' : 'left out (untrusted)'"},
            },
            "tooltip": _tooltip(
                ("config", "config"),
                ("cycle", "cycle"),
                ("energy_per_token_j", "J/token"),
                ("kind", "in the aggregates?"),
                ("cv", "CV of the used cycles"),
            ),
        },
    )
    return Figure("variability", "Variability across cycles", spec, data.caption, data.estimate)


def power_spec(data: FigureData) -> Figure:
    """Power over time per chosen experiment: warmup band, window band, baseline rule."""
    per_experiment = {
        "aggregate": [
            {"op": "max", "field": "window_s", "as": "window_s"},
            {"op": "max", "field": "warmup_s", "as": "warmup_s"},
            {"op": "max", "field": "baseline_w", "as": "baseline_w"},
        ],
        "groupby": ["experiment"],
    }
    spec = _base("Power over time", data)
    del spec["data"]
    spec.update(
        data={"values": data.rows},
        facet={"row": {"field": "experiment", "type": "nominal", "title": None}},
        spec={
            "width": WIDTH,
            "height": 140,
            "layer": [
                {
                    "transform": [
                        per_experiment,
                        {"calculate": "-datum.warmup_s", "as": "warmup_start"},
                        {"calculate": "0", "as": "zero"},
                    ],
                    "mark": {"type": "rect", "color": "#fdd49e", "opacity": 0.5},
                    "encoding": {
                        "x": {"field": "warmup_start", "type": "quantitative"},
                        "x2": {"field": "zero"},
                    },
                },
                {
                    "transform": [per_experiment, {"calculate": "0", "as": "zero"}],
                    "mark": {"type": "rect", "color": "#c6dbef", "opacity": 0.5},
                    "encoding": {
                        "x": {"field": "zero", "type": "quantitative"},
                        "x2": {"field": "window_s"},
                    },
                },
                {
                    "transform": [
                        per_experiment,
                        {"fold": ["warmup", "measured window"], "as": ["band", "unused"]},
                        {
                            "calculate": "datum.band == 'warmup' ? -datum.warmup_s : 0",
                            "as": "start",
                        },
                        {"calculate": "datum.band == 'warmup' ? 2 : 14", "as": "row_px"},
                    ],
                    "mark": {"type": "text", "align": "left", "baseline": "top", "dx": 2},
                    "encoding": {
                        "x": {"field": "start", "type": "quantitative"},
                        "y": {"field": "row_px", "type": "quantitative", "scale": None},
                        "text": {"field": "band"},
                        "size": {"value": 10},
                    },
                },
                {
                    "mark": {"type": "line", "color": "#1f77b4", "tooltip": True},
                    "encoding": {
                        "x": {"field": "t_s", "type": "quantitative", "title": "time (s)"},
                        "y": {"field": "power_w", "type": "quantitative", "title": "power (W)"},
                    },
                },
                {
                    "transform": [per_experiment, {"filter": "datum.baseline_w != null"}],
                    "mark": {"type": "rule", "strokeDash": [6, 4], "color": "#555"},
                    "encoding": {"y": {"field": "baseline_w", "type": "quantitative"}},
                },
            ],
        },
    )
    return Figure("power_over_time", "Power over time", spec, data.caption, data.estimate)


def comparison_spec(data: FigureData) -> Figure:
    """Difference in % per paired config and metric, with its Welch 95% interval."""
    spec = _base("Comparison: (B - A) / A, with Welch 95% intervals", data)
    del spec["data"]
    tooltip = _tooltip(("sentence", "comparison"), ("pct", "B - A (%)"))
    spec.update(
        data={"values": data.rows},
        facet={"column": {"field": "metric", "type": "nominal", "title": None}},
        spec={
            "width": 240,
            "height": _rows_height(data, "config"),
            "layer": [
                {
                    "mark": {"type": "rule", "color": "#999"},
                    "encoding": {"x": {"datum": 0, "type": "quantitative"}},
                },
                {
                    "mark": {"type": "rule"},
                    "encoding": {
                        "y": {"field": "config", "type": "nominal", "title": None},
                        "x": {"field": "low", "type": "quantitative", "title": "B - A (% of A)"},
                        "x2": {"field": "high"},
                        "color": {"field": "pair", "type": "nominal", "title": None},
                    },
                },
                {
                    "mark": {"type": "point", "size": 60, "tooltip": True},
                    "encoding": {
                        "y": {"field": "config", "type": "nominal"},
                        "x": {"field": "pct", "type": "quantitative"},
                        "color": {"field": "pair", "type": "nominal"},
                        "fill": {
                            "field": "pair",
                            "type": "nominal",
                            "condition": {"test": "!datum.clear", "value": "white"},
                            "legend": None,
                        },
                        "tooltip": tooltip,
                    },
                },
            ],
        },
        resolve={"scale": {"x": "independent"}},
    )
    return Figure("comparison", "Comparison across directories", spec, data.caption, data.estimate)


__all__ = [
    "Figure",
    "accounting_spec",
    "comparison_spec",
    "effect_spec",
    "pareto_spec",
    "power_spec",
    "variability_spec",
]
