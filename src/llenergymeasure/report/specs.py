"""Vega-Lite specs (plain dicts) for each figure, from the rows in ``report.data``.

The same spec is drawn interactively in the page and rendered to SVG/PNG for papers, so a
figure that shows an estimate carries "ESTIMATE — not a measurement" in red in its own subtitle,
wherever it ends up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llenergymeasure.report.axes import Clip, axis_scale, axis_title, quantitative
from llenergymeasure.report.data import (
    ESTIMATE,
    JPT,
    MEAN_CI,
    MEDIAN_BAND,
    FigureData,
    Metric,
)
from llenergymeasure.report.scatter import interval_bars, scatter_axes

RED = "#c62828"
WIDTH = 560


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
    """The figure's title; in its subtitle, in red, the estimate warning, so that it travels
    with the figure into every SVG, PNG and PDF. (What is clipped is said beside the axis that
    clips it, in the axis title, not in red.)"""
    title: dict[str, Any] = {"text": text, "anchor": "start", "fontSize": 14}
    if estimate:
        title.update(subtitle=ESTIMATE, subtitleColor=RED, subtitleFontWeight="bold")
    return title


TICK_FORMAT = ".4~g"
"""d3 format of every quantitative axis: enough significant digits to read the value."""


def base_spec(title: str, data: FigureData) -> dict[str, Any]:
    return {
        "title": _title(title, data.estimate),
        "data": {"values": data.rows},
        "config": {
            "view": {"stroke": "#ddd"},
            "font": "sans-serif",
            # Ticks keep four significant digits (1.307 reads 1.307, never a bare "1").
            "axisQuantitative": {"format": TICK_FORMAT},
            # Text is never cut with an ellipsis, on the page and in SVG/PNG alike; long
            # legend labels are wrapped instead (``wrapped_legend``).
            "legend": {"labelLimit": 0, "titleLimit": 0},
            "axis": {"labelLimit": 0, "titleLimit": 0},
            "header": {"labelLimit": 0, "titleLimit": 0},
        },
        "background": "white",
    }


SHORT_LABEL = 8
"""x labels up to this long are written level, longer ones at a slant."""

FEW = 10
"""Up to this many configs, each gets its own colour (and legend entry)."""


def _colour(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Colour by directory in comparison mode, else by backend/model where those vary, else by
    config when there are few; one colour otherwise."""
    for field, title in (("source", "campaign"), ("group", "backend · model")):
        if len({r[field] for r in rows}) > 1:
            return {"field": field, "type": "nominal", "legend": wrapped_legend(title)}
    if len(rows) <= FEW:
        return {"field": "config", "type": "nominal", "legend": wrapped_legend("config")}
    return {"value": "#1f77b4"}


def tooltip_fields(*fields: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"field": f, "title": t} for f, t in fields]


def wrapped_legend(title: str | None) -> dict[str, Any]:
    """A legend whose labels break at each ', ' (one parameter a line): never cut, never wider
    than its longest parameter."""
    return {"title": title, "labelExpr": "split(datum.label, ', ')"}


CROWD = 200
"""More points than this and they are drawn small and translucent, so density shows."""


def _with_clip_note(caption: str, notes: list[str]) -> str:
    return " ".join([caption, *notes])


def pareto_spec(data: FigureData, against: Metric, energy: Metric = JPT) -> Figure:
    """``energy`` (y) against one metric (x): every config a point with CI bars (clipped, and
    marked, at an axis edge), the front drawn as a line through its members, front members
    labelled."""
    colour = _colour(data.rows)
    x, y = against.column, energy.column
    axes = scatter_axes(data.rows, (x, y), (against.label, energy.label), "mean, bars: 95% CI")
    crowded = len(data.rows) > CROWD
    tooltip = tooltip_fields(
        ("config", "config"),
        ("source", "campaign"),
        ("source_path", "directory"),
        ("params", "parameters"),
        (y, energy.label),
        (f"{y}_low", "95% CI low"),
        (f"{y}_high", "95% CI high"),
        (x, against.label),
        (f"{x}_low", "95% CI low"),
        (f"{x}_high", "95% CI high"),
        ("energy_label", "energy"),
        ("cycles_used", "cycles used"),
        ("front_step", "along the front"),
    )
    spec = base_spec(f"{energy.label} against {against.label}", data)
    spec.update(
        width=WIDTH,
        height=360,
        layer=[
            *interval_bars(axes, colour),
            {
                "transform": [{"filter": "datum.on_front"}],
                "mark": {"type": "line", "color": "#333", "strokeDash": [4, 3]},
                "encoding": {
                    "x": axes.at(0),
                    "y": axes.at(1),
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
                    "x": axes.at(0, title=True),
                    "y": axes.at(1, title=True),
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
                    "x": axes.at(0),
                    "y": axes.at(1),
                    "text": {"field": "config"},
                },
            },
        ],
    )
    stem = f"pareto_{x}" if energy == JPT else f"pareto_{y}_{x}"
    return Figure(
        stem,
        f"Pareto front: {energy.label} against {against.label}",
        spec,
        _with_clip_note(data.caption, axes.notes),
        data.estimate,
    )


def effect_spec(
    data: FigureData, key: str, label: str, *, stem: str | None = None, title: str | None = None
) -> Figure:
    """Each metric in the rows (a block each, J/token first) against one parameter's values, a
    line per combination of the other parameters, a column per backend/model. The y title
    names the statistic drawn (a mean with its 95% CI, or a crowded panel's median with its
    min-max band)."""
    short = all(len(str(r["value"])) <= SHORT_LABEL for r in data.rows)
    encoding_x: dict[str, Any] = {
        "field": "value",
        "type": "ordinal",
        "title": label,
        "sort": {"field": "order", "op": "min"},
        "scale": {"paddingInner": 0.5},
        "axis": {"labelAngle": 0} if short else {"labelAngle": -40, "labelAlign": "right"},
    }
    # Lines at the same x stand side by side within its band, so no bar hides another's.
    offset: dict[str, Any] = {"xOffset": {"field": "line", "type": "nominal"}}
    colour = {"field": "line", "type": "nominal", "legend": wrapped_legend("other parameters")}
    tooltip = tooltip_fields(
        ("config", "config"),
        ("line", "other parameters"),
        ("value", label),
        ("stat", "statistic"),
        ("mean", "value"),
        ("low", "95% CI low (or min)"),
        ("high", "95% CI high (or max)"),
    )
    metrics = sorted(dict.fromkeys(r["metric"] for r in data.rows), key=lambda m: m != JPT.label)
    columns = len({r["group"] for r in data.rows}) > 1
    blocks, notes = [], []
    for metric in metrics:
        rows = [r for r in data.rows if r["metric"] == metric]
        scale = axis_scale(rows, "mean", "low", "high")
        clip = Clip.of(rows, "mean", "low", scale)
        barred = [r for r in rows if r.get("low") is not None]
        note = clip.note(barred, "low", "high", metric)
        if note:
            notes.append(note)
        y_title = axis_title(
            metric,
            _statistic(rows),
            scale.get("type") == "log",
            clip.axis_note(barred, "low", "high"),
        )
        y = {**quantitative("mean", y_title), "scale": scale}
        inner = {
            "width": 260,
            "height": 170,
            "layer": [
                {
                    "mark": {"type": "line", "point": True},
                    "encoding": {
                        "x": encoding_x,
                        **offset,
                        "y": y,
                        "color": colour,
                        "tooltip": tooltip,
                    },
                },
                {
                    "transform": [{"filter": "datum.low != null"}, *clip.transforms("low", "high")],
                    "mark": {"type": "rule", "opacity": 0.6},
                    "encoding": {
                        "x": encoding_x,
                        "y": {**quantitative("low_drawn", y_title), "scale": scale},
                        "y2": {"field": "high_drawn"},
                        "color": colour,
                    }
                    | offset,
                },
                *clip.markers("y", "low", "high", encoding_x, scale, offset),
            ],
        }
        block: dict[str, Any] = {"transform": [{"filter": {"field": "metric", "equal": metric}}]}
        if columns:
            block.update(
                facet={"column": {"field": "group", "type": "nominal", "title": None}},
                spec=inner,
            )
        else:
            block.update(inner)
        blocks.append(block)
    spec = base_spec(title or f"Effect of {label}", data)
    spec.update(vconcat=blocks, resolve={"scale": {"y": "independent"}})
    return Figure(
        stem or f"effect_{key.replace('.', '_')}",
        title or f"Effect of {label} on {' and '.join(metrics)}",
        spec,
        _with_clip_note(data.caption, notes),
        data.estimate,
    )


def _statistic(rows: list[dict[str, Any]]) -> str:
    """The y title's statistic: what every point and bar of these rows is."""
    stats = set(r.get("stat", MEAN_CI) for r in rows)
    if stats == {MEDIAN_BAND}:
        return MEDIAN_BAND
    if stats == {MEAN_CI}:
        return MEAN_CI
    return f"{MEAN_CI} ('median of' lines: {MEDIAN_BAND})"


def batching_spec(data: FigureData) -> Figure:
    """J/token and J/request against requests run at once (the ML.ENERGY view)."""
    return effect_spec(
        data,
        "batching",
        "requests run at once (the backend's batching setting)",
        stem="energy_by_batch",
        title="Energy against requests run at once",
    )


def _rows_height(data: FigureData, field: str) -> dict[str, Any]:
    return {"step": 18} if len({r[field] for r in data.rows}) > 1 else {"step": 40}


def accounting_spec(data: FigureData) -> Figure:
    """Per config, raw energy stacked as idle baseline + above baseline."""
    spec = base_spec("Energy accounting: raw = idle baseline + above baseline", data)
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
            "tooltip": tooltip_fields(
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
    spec = base_spec("Variability: J/token of every cycle", data)
    spec.update(
        width=WIDTH,
        height=_rows_height(data, "config"),
        mark={"type": "point", "filled": True, "size": 50, "tooltip": True},
        encoding={
            "y": {"field": "config", "type": "nominal", "sort": None, "title": None},
            "x": {
                **quantitative("energy_per_token_j", JPT.label),
                "scale": axis_scale(data.rows, "energy_per_token_j"),
            },
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
            "tooltip": tooltip_fields(
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
    spec = base_spec("Power over time", data)
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
    spec = base_spec("Comparison: (B - A) / A, with Welch 95% intervals", data)
    del spec["data"]
    tooltip = tooltip_fields(("sentence", "comparison"), ("pct", "B - A (%)"))
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
    "WIDTH",
    "Figure",
    "accounting_spec",
    "base_spec",
    "batching_spec",
    "comparison_spec",
    "effect_spec",
    "pareto_spec",
    "power_spec",
    "tooltip_fields",
    "variability_spec",
    "wrapped_legend",
]
