"""Which figures a report holds, section by section, and why a section can be empty."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llenergymeasure.report import data as D
from llenergymeasure.report import params as P
from llenergymeasure.report import specs as S
from llenergymeasure.report.comparison import comparison_data
from llenergymeasure.report.power_trace import power_data
from llenergymeasure.report.serving import serving_figure
from llenergymeasure.report.source import ReportSource


@dataclass
class Section:
    """A heading, its figures, and what to say when it has none."""

    anchor: str
    heading: str
    figures: list[S.Figure] = field(default_factory=list)
    empty: str = ""
    sentences: list[str] = field(default_factory=list)
    """Plain-text findings listed under the figures (the comparison's sentences)."""
    selectable: bool = False
    """The page shows one figure at a time, chosen in a menu (the Pareto metric pairs)."""


def sections(
    sources: Sequence[ReportSource],
    points: Sequence[dict[str, Any]],
    varied: Sequence[str],
    *,
    power: Sequence[str] = (),
) -> list[Section]:
    """Every figure section of the page, in reading order."""
    pareto = Section("pareto", "Energy against throughput and latency")
    pareto.figures = [
        S.pareto_spec(D.pareto_data(points, against, varied, energy), against, energy)
        for energy, against in D.pareto_pairs(points)
    ]
    pareto.selectable = True
    pareto.empty = "No config has both J/token and tokens/s (no energy was measured)."

    effects = Section("effects", "Effect of each swept parameter")
    effects.figures = [
        S.effect_spec(D.effect_data(points, key, varied), key, P.short(key))
        for key in P.axes(varied)
    ]
    if D.batching_varies(points):
        effects.figures.append(S.batching_spec(D.batching_data(points, varied)))
    effects.empty = (
        "No parameter varies across these configs (one config, or configs that differ only "
        "in backend or model): nothing to draw an effect of."
    )

    timeline = Section("power", "Power over time")
    series = power_data(sources, power)
    if series.rows:
        timeline.figures = [S.power_spec(series)]
    timeline.empty = (
        "No time series was recorded (set `timeseries: {enabled: true}` with an energy source "
        "that polls power, e.g. nvml)."
        if not power
        else "None of the chosen experiments (--power) has a time series."
    )

    accounting = Section("accounting", "Energy accounting")
    energy = D.accounting_data(points)
    if energy.rows:
        accounting.figures = [S.accounting_spec(energy)]
    accounting.empty = "No config has an energy reading."

    variability = Section("variability", "Variability across cycles")
    cycles = D.cycle_data(sources)
    if cycles.rows:
        variability.figures = [S.variability_spec(cycles)]
    variability.empty = "No cycle has a J/token value."

    found = [pareto, effects, timeline, accounting, variability]
    served = serving_figure(sources)  # served runs only (report/serving.py)
    if served is not None:
        found.append(Section("serving", "Served: energy against latency", [served]))
    if len(sources) > 1:
        comparison = Section("comparison", "Comparison across directories")
        diff, sentences = comparison_data(sources)
        if diff.rows:
            comparison.figures = [S.comparison_spec(diff)]
        comparison.sentences = [f"{s['pair']}: {s['sentence']}" for s in sentences] + [
            f"Not a swept parameter, set differently per campaign: {P.short(key)} = "
            + ", ".join(f"{value} ({label})" for label, value in values.items())
            for key, values in D.setting_differences(sources, varied)
        ]
        comparison.empty = (
            "No config with at least 2 usable cycles is in more than one directory "
            "(configs are paired by config hash)."
        )
        found.append(comparison)
    return found


__all__ = ["Section", "sections"]
