"""The Vega-Lite specs themselves: readable ticks, legends never cut, one encoding per variable."""

from __future__ import annotations

import json
import re
from typing import Any

from llenergymeasure.report import data as D
from llenergymeasure.report import specs as Sp
from llenergymeasure.report import static as Sp_static
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


def _noisy() -> list[Any]:
    """A campaign whose cycles spread with CV ~80%: intervals far wider than the means."""
    records = S.grid_records((1, 4, 16), (32, 64), cycles=3)
    spread = {1: 0.2, 2: 1.0, 3: 2.4}
    for r in records:
        assert r.result is not None
        m = r.result.metrics
        m.energy_per_token_j = (m.energy_per_token_j or 0) * spread[r.cycle]
        m.energy_j = (m.energy_j or 0) * spread[r.cycle]
        m.tokens_per_second = m.tokens_per_second * spread[4 - r.cycle]
    return records


def _domains(spec: Any) -> list[dict[str, Any]]:
    """Every quantitative scale in a spec, with the field it scales."""
    found = []
    if isinstance(spec, dict):
        if spec.get("type") == "quantitative" and isinstance(spec.get("scale"), dict):
            found.append({"field": spec.get("field") or spec.get("datum"), **spec["scale"]})
        for value in spec.values():
            found += _domains(value)
    elif isinstance(spec, list):
        for value in spec:
            found += _domains(value)
    return found


def test_a_noisy_campaign_never_draws_a_positive_metric_below_zero() -> None:
    figures = _figures(_noisy())
    clipped = 0
    for fig in figures:
        if fig.stem in ("comparison", "power_over_time", "energy_accounting"):
            continue
        for scale in _domains(fig.spec):
            assert scale.get("domainMin", 0) >= 0, (fig.stem, scale)
            assert scale.get("type") == "log" or scale.get("zero") is False or "domainMin" in scale
        text = json.dumps(fig.spec)
        if "triangle-" in text:
            clipped += 1
            assert "clipped" in fig.caption and "clipped" in text, fig.stem  # said, in and under
    assert clipped, "a CV ~80% campaign clips some interval at an axis edge"


def test_the_rendered_noisy_figures_have_no_negative_tick() -> None:
    for fig in _figures(_noisy()):
        if not fig.stem.startswith(("pareto", "effect", "variability")):
            continue
        svg = Sp_static.to_svg(fig.spec)
        ticks = re.findall(r'<text[^>]*class="[^"]*"[^>]*>(-[\d.]+)</text>', svg)
        negative = [t for t in re.findall(r">(−?-?[\d.]+(?:e-?\d+)?)</text>", svg) if t[0] in "-−"]
        assert not ticks and not negative, (fig.stem, negative)
        assert "…" not in svg, fig.stem  # no label cut with an ellipsis


def test_titles_name_the_statistic_drawn(monkeypatch: Any) -> None:
    records = S.grid_records((1, 4), (16, 32, 64), ("float16", "bfloat16"))
    figures = {f.stem: f for f in _figures(records)}
    titles = json.dumps(figures["effect_pytorch_batch_size"].spec)
    assert D.MEAN_CI in titles and D.MEDIAN_BAND not in titles
    monkeypatch.setattr(D, "MAX_LINES", 1)
    merged = json.dumps({f.stem: f.spec for f in _figures(records)}["effect_pytorch_batch_size"])
    assert D.MEDIAN_BAND in merged and D.MEAN_CI not in merged


def test_long_legend_labels_are_wrapped_one_parameter_a_line() -> None:
    records = S.grid_records((1, 4), (16, 32), ("float16", "bfloat16"))
    fig = next(f for f in _figures(records) if f.stem == "effect_pytorch_batch_size")
    svg = Sp_static.to_svg(fig.spec)
    texts = re.findall(r"<text\b[^>]*>(.*?)</text>", svg)
    assert not [t for t in texts if "fp_precision=bfloat16, max_output" in t]  # not one line
    assert re.search(r"<tspan[^>]*>max_output_tokens=16</tspan>", svg), svg[-3000:]
    assert "…" not in svg


def _axis_titles(spec: Any) -> list[tuple[str, list[str]]]:
    """(channel, title lines) of every encoding channel with a title in a spec."""
    found: list[tuple[str, list[str]]] = []
    if isinstance(spec, dict):
        for channel, value in (spec.get("encoding") or {}).items():
            if isinstance(value, dict) and "title" in value:
                title = value["title"]
                found.append((channel, title if isinstance(title, list) else [title]))
        for value in spec.values():
            found += _axis_titles(value)
    elif isinstance(spec, list):
        for value in spec:
            found += _axis_titles(value)
    return found


def test_clip_notes_stand_beside_their_axis_not_in_the_red_banner() -> None:
    seen = set()
    for fig in _figures(_noisy()):
        title = fig.spec["title"]
        assert title.get("subtitle") == D.ESTIMATE, fig.stem  # the banner says that alone
        for channel, lines in _axis_titles(fig.spec):
            notes = [line for line in lines if line and "clipped" in line]
            for note in notes:
                seen.add(channel)
                marks = "▼▲" if channel == "y" else "◄►"
                assert any(m in note for m in marks), (fig.stem, channel, note)
                assert not any(m in note for m in "▼▲◄►" if m not in marks), (fig.stem, note)
    assert seen == {"x", "y"}, "the noisy campaign clips intervals on both axes"


def test_bars_of_lines_at_one_value_stand_side_by_side() -> None:
    fig = next(f for f in _figures(_noisy()) if f.stem == "effect_pytorch_batch_size")
    layers = [layer for block in fig.spec["vconcat"] for layer in block["layer"]]
    bars = [layer for layer in layers if "y2" in layer["encoding"]]
    points = [layer for layer in layers if layer["mark"].get("type") in ("line", "point")]
    assert bars and points
    for layer in bars + points:
        assert layer["encoding"]["xOffset"]["field"] == "line", layer["mark"]
