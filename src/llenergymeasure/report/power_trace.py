"""The power-over-time figure's rows: each chosen experiment's polled power across its
measured window, with its warmup and idle baseline to mark (read from the CSV beside its
result)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llenergymeasure.report.data import JPT, FigureData
from llenergymeasure.report.source import ReportSource
from llenergymeasure.results.aggregation import RunRecord

MAX_SAMPLES = 2_000
"""Power samples drawn per experiment (evenly strided beyond this)."""
MAX_SERIES = 4
"""Experiments whose power over time is drawn when none are chosen."""


def read_timeseries(path: Path) -> list[tuple[float, float]]:
    """(t_s, power_w) pairs of a result's time series CSV (empty when unreadable)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return [(float(r["t_s"]), float(r["power_w"])) for r in csv.DictReader(handle)]
    except (OSError, KeyError, ValueError, TypeError):
        return []


def series_records(source: ReportSource) -> list[RunRecord]:
    """Completed records whose result says a time series was written beside it."""
    return [
        r
        for r in source.records
        if r.status == "completed"
        and r.result is not None
        and r.result.timeseries_file
        and r.result_path
    ]


def choose_series(sources: Sequence[ReportSource], wanted: Sequence[str]) -> list[RunRecord]:
    """The experiments to draw power for: those asked for by exp_id, else the first cycle of
    up to MAX_SERIES configs, lowest J/token first."""
    available = [(s, r) for s in sources for r in series_records(s)]
    if wanted:
        return [r for _, r in available if r.exp_id in wanted]
    means = {
        (s.label, x.config_hash): (x.stats[JPT.column].mean if x.stats.get(JPT.column) else 0.0)  # type: ignore[union-attr]
        for s in sources
        for x in s.summaries
    }
    first: dict[tuple[str, str], RunRecord] = {}
    for source, record in available:
        first.setdefault((source.label, record.config_hash), record)
    ranked = sorted(first.items(), key=lambda item: means.get(item[0], 0.0))
    return [record for _, record in ranked[:MAX_SERIES]]


def power_data(sources: Sequence[ReportSource], wanted: Sequence[str] = ()) -> FigureData:
    """Power over the measured window for the chosen experiments, with each one's warmup (before
    the window, not sampled) and idle-baseline level to mark."""
    by_record = {id(r): s for s in sources for r in s.records}
    rows: list[dict[str, Any]] = []
    for record in choose_series(sources, wanted):
        source = by_record[id(record)]
        result = record.result
        assert result is not None and result.timeseries_file and record.result_path
        path = source.directory / Path(record.result_path).parent / result.timeseries_file
        samples = read_timeseries(path)
        stride = max(1, -(-len(samples) // MAX_SAMPLES))
        common = {
            "experiment": record.exp_id,
            "estimate": bool(result.energy.is_estimate),
            "window_s": result.metrics.measured_window_s,
            "warmup_s": result.timings.warmup_s,
            "baseline_w": result.energy.baseline_power_w,
            "method": result.energy.method,
        }
        for t_s, power_w in samples[::stride]:
            rows.append({**common, "t_s": t_s, "power_w": power_w})
    caption = (
        "Power polled during the measured window (shaded, t = 0 at its start); the warmup ran "
        "just before it (the band left of 0, not sampled) and the dashed line is the idle "
        "baseline subtracted, where one was measured."
    )
    return FigureData(rows, caption, estimate=any(r["estimate"] for r in rows))


__all__ = ["choose_series", "power_data", "read_timeseries", "series_records"]
