"""The comparison figure's rows: every later directory against the first, config by config."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llenergymeasure.report.data import MAX_ROWS, FigureData
from llenergymeasure.report.source import ReportSource
from llenergymeasure.results.compare import METRICS_BY_COLUMN, compare_configs, pair_by_config


def comparison_data(sources: Sequence[ReportSource]) -> tuple[FigureData, list[dict[str, Any]]]:
    """Every later directory against the first, config by config (paired by config hash): the
    difference in % of the first's mean with its Welch 95% interval, and each sentence."""
    reference = sources[0]
    rows: list[dict[str, Any]] = []
    sentences: list[dict[str, Any]] = []
    for other in sources[1:]:
        pairs, unpaired = pair_by_config(reference.summaries, other.summaries)
        for a, b in pairs:
            comparison = compare_configs(
                a, b, a_name=f"{a.name} ({reference.label})", b_name=f"{b.name} ({other.label})"
            )
            for m in comparison.metrics:
                energy = m.metric.column.startswith("energy")
                estimate = energy and bool(a.energy_is_estimate or b.energy_is_estimate)
                mismatch = energy and a.energy_bases != b.energy_bases
                sentence = m.sentence + (
                    f" (NOT comparable: energy bases differ, {'/'.join(a.energy_bases) or 'none'}"
                    f" vs {'/'.join(b.energy_bases) or 'none'})"
                    if mismatch
                    else ""
                )
                sentences.append(
                    {"pair": f"{other.label} vs {reference.label}", "sentence": sentence}
                )
                if m.pct is None or m.pct_half_width is None or mismatch:
                    continue
                rows.append(
                    {
                        "pair": f"{other.label} vs {reference.label}",
                        "config": a.name,
                        "metric": METRICS_BY_COLUMN[m.metric.column].label,
                        "pct": m.pct,
                        "low": m.pct - m.pct_half_width,
                        "high": m.pct + m.pct_half_width,
                        "clear": bool(m.welch and m.welch.significant),
                        "sentence": sentence,
                        "estimate": estimate,
                    }
                )
        for name in unpaired:
            sentences.append(
                {
                    "pair": f"{other.label} vs {reference.label}",
                    "sentence": f"{name} is in only one of the two directories: not compared",
                }
            )
    configs = list(dict.fromkeys(r["config"] for r in rows))
    caption = (
        f"Each later directory against {reference.label}, the same config (by config hash) "
        "in both: (B - A) / A in % with Welch's 95% interval; filled points are clear "
        "differences (the interval excludes 0). J/token is not drawn for a pair whose energy "
        "bases differ (idle baseline subtracted on one side only)."
    )
    if len(configs) > MAX_ROWS:
        keep = set(configs[:MAX_ROWS])
        rows = [r for r in rows if r["config"] in keep]
        caption += f" The first {MAX_ROWS} of {len(configs)} paired configs are drawn."
    return FigureData(rows, caption, estimate=any(r["estimate"] for r in rows)), sentences


__all__ = ["comparison_data"]
