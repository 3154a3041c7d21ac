"""The rows each figure and the table are drawn from: pure functions of aggregated results.

Every value here was computed by ``results`` (``ConfigSummary`` statistics, Welch differences);
this module only selects, labels and, for large campaigns, trims what is drawn (and says so in
the returned caption), so that a figure stays readable with 1 config or 2,000.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llenergymeasure.config.backends import BACKENDS
from llenergymeasure.report import params as P
from llenergymeasure.report.pareto import front
from llenergymeasure.report.source import ReportSource
from llenergymeasure.results.aggregation import (
    ConfigSummary,
    RunRecord,
    energy_per_token,
    usable_results,
)

ESTIMATE = "ESTIMATE — not a measurement"

MAX_ERROR_BARS = 200
"""More configs than this and only front members keep their CI bars (the rest would be a blob)."""
MAX_LABELS = 15
"""Front members labelled on the chart; beyond this they are named in tooltips only."""
MAX_LINES = 10
"""Lines per effect panel; beyond this the lines become their median with a min-max band."""
MAX_ROWS = 40
"""Configs in a per-config bar or strip chart; beyond this the most telling ones are drawn."""


@dataclass(frozen=True)
class Metric:
    """A per-config statistic the figures draw, in ``ConfigSummary.stats``."""

    column: str
    label: str
    lower_is_better: bool
    energy: bool = False


JPT = Metric("energy_per_token_j", "energy per output token (J/token)", True, energy=True)
TPS = Metric("tokens_per_second", "throughput (tokens/s)", False)
LATENCY = Metric("latency_p50_s", "latency p50 (s)", True)
TTFT = Metric("ttft_p50_s", "TTFT p50 (s)", True)
EPR = Metric("energy_per_request_j", "energy per request (J/request)", True, energy=True)
"""Derived: the config's mean energy on the J/token basis (raw or adjusted) and its 95% CI,
divided by the requests per cycle (the same in every cycle, else withheld)."""
J1K = Metric("energy_per_1k_tokens_j", "energy per 1k output tokens (J)", True, energy=True)
"""Derived: J/token (mean and CI) x 1000."""
POWER = Metric("mean_power_w", "mean power (W)", True, energy=True)
"""Raw energy / measured window per cycle, as results aggregate it."""
METRICS = (JPT, TPS, LATENCY, TTFT, POWER)
"""Read straight from ``ConfigSummary.stats``."""
DERIVED = (EPR, J1K)
"""Linear transforms of a summary statistic (see each one), computed in ``derived``."""
ENERGY_TARGETS = (JPT, EPR)
"""The energy metrics a Pareto figure can put on its y axis."""
BATCHING = "batching"
"""Point field: requests one experiment runs at once, from its backend's batching key."""


def field_name(key: str) -> str:
    """A parameter key as a Vega field name (a dot would mean a nested field there)."""
    return "p_" + key.replace(".", "_")


def params_by_config(records: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """config hash -> its flattened resolved config, from the first record with a result."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.result is not None and record.config_hash not in found:
            found[record.config_hash] = P.flatten(record.result.config)
    return found


def energy_label(summary: ConfigSummary) -> str:
    """How this config's energy was obtained, with the estimate warning where it applies."""
    method = "/".join(dict.fromkeys(summary.energy_sources + summary.energy_methods))
    method = method or "no energy reading"
    return f"{ESTIMATE} ({method})" if summary.energy_is_estimate else method


def requests_per_cycle(records: Sequence[RunRecord]) -> dict[str, int | None]:
    """config hash -> requests each usable cycle ran (None where cycles disagree)."""
    seen: dict[str, set[int]] = {}
    for record in records:
        for result in usable_results([record]):
            seen.setdefault(record.config_hash, set()).add(result.metrics.num_requests)
    return {h: next(iter(n)) if len(n) == 1 else None for h, n in seen.items()}


def derived(summary: ConfigSummary, requests: int | None) -> dict[str, Any]:
    """The DERIVED metrics' columns: exact linear transforms of one summary statistic, so the
    interval transforms with the mean (n and CV are the source statistic's)."""
    basis = summary.energy_bases[0] if summary.energy_bases else None
    energy = summary.stats.get("energy_adjusted_j" if basis == "adjusted" else "energy_j")
    sources = (
        (EPR, energy if basis and requests else None, 1 / requests if requests else 0.0),
        (J1K, summary.stats.get(JPT.column), 1000.0),
    )
    row: dict[str, Any] = {}
    for metric, stats, factor in sources:
        row[metric.column] = stats.mean * factor if stats else None
        for end in ("low", "high"):
            value = getattr(stats, f"ci_{end}") if stats else None
            row[f"{metric.column}_{end}"] = None if value is None else value * factor
        row[f"{metric.column}_n"] = stats.n if stats else 0
        row[f"{metric.column}_cv"] = stats.cv if stats else None
    return row


def batching(backend: str, params: dict[str, Any]) -> Any:
    """How many requests this config runs at once: its backend's batching key (the section's
    default where the config leaves it unset); None for a backend without one."""
    spec = BACKENDS.get(backend)
    if spec is None or "batching" not in spec.roles:
        return None
    value = params.get(spec.batching_key)
    if value is None:
        value = spec.section.model_fields[spec.roles["batching"]].default
    return value


def swept_parameters(per_source: Sequence[Sequence[dict[str, Any]]]) -> list[str]:
    """The keys some source varies within itself (the user's sweep), in first-seen order.

    A key constant within every source but different between them (a comparison of two
    campaigns run with another baseline duration) is a setting of those campaigns, not a
    swept parameter: ``setting_differences`` names it."""
    if len(per_source) == 1:
        return P.varied_parameters(per_source[0])
    keys: dict[str, None] = {}
    for params in per_source:
        keys.update(dict.fromkeys(P.varied_parameters(params)))
    between = P.varied_parameters([p for params in per_source for p in params])
    facets = [k for k in P.FACETS if k in between]
    return [k for k in between if k in keys or k in facets]


def setting_differences(
    sources: Sequence[ReportSource], swept: Sequence[str]
) -> list[tuple[str, dict[str, str]]]:
    """(key, source label -> value) of the settings that differ between sources only."""
    per_source = [list(params_by_config(s.records).values()) for s in sources]
    every = P.varied_parameters([p for params in per_source for p in params])
    found = []
    for key in every:
        if key in swept:
            continue
        values = {
            s.label: "/".join(dict.fromkeys(P.show(p.get(key)) for p in params))
            for s, params in zip(sources, per_source, strict=True)
        }
        found.append((key, values))
    return found


def config_points(
    sources: Sequence[ReportSource],
) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per config per source (the table and every per-config figure), and the swept
    parameter keys (see ``swept_parameters``)."""
    configs: list[tuple[ReportSource, ConfigSummary, dict[str, Any]]] = []
    requests: dict[str, dict[str, int | None]] = {}
    for source in sources:
        params = params_by_config(source.records)
        requests[source.label] = requests_per_cycle(source.records)
        configs.extend((source, s, params.get(s.config_hash, {})) for s in source.summaries)
    varied = swept_parameters([[p for s, _, p in configs if s is source] for source in sources])
    facets = [k for k in P.FACETS if k in varied]
    rows = []
    for source, summary, params in configs:
        row: dict[str, Any] = {
            "source": source.label,
            "source_path": str(source.directory),
            "config": summary.name,
            "config_hash": summary.config_hash,
            "backend": summary.backend,
            "model": summary.model,
            "group": " · ".join(P.show(params.get(k)) for k in facets) or "all",
            "params": P.describe(params, P.axes(varied)),
            "estimate": bool(summary.energy_is_estimate),
            "energy_label": energy_label(summary),
            "energy_basis": "/".join(summary.energy_bases) or None,
            "cycles_used": summary.cycles_used,
            "cycles_planned": summary.cycles_planned,
            "cycles_failed": summary.cycles_failed,
            "cycles_excluded": summary.cycles_excluded,
            "excluded": "; ".join(f"{c} x{n}" for c, n in sorted(summary.excluded.items())),
            "ci_method": "/".join(summary.ci_methods) or "none (1 cycle)",
            "converged": summary.extra.get("converged"),
            "adaptive_stop": summary.extra.get("adaptive_stop"),
            "warnings": "; ".join(summary.warnings),
        }
        for key in varied:
            row[field_name(key)] = P.show(params.get(key))
        for metric in METRICS:
            stats = summary.stats.get(metric.column)
            row[metric.column] = stats.mean if stats else None
            row[f"{metric.column}_low"] = stats.ci_low if stats else None
            row[f"{metric.column}_high"] = stats.ci_high if stats else None
            row[f"{metric.column}_n"] = stats.n if stats else 0
            row[f"{metric.column}_cv"] = stats.cv if stats else None
        row.update(derived(summary, requests[source.label].get(summary.config_hash)))
        row[BATCHING] = batching(summary.backend, params)
        for column in ("energy_j", "energy_adjusted_j"):
            stats = summary.stats.get(column)
            row[column] = stats.mean if stats else None
        rows.append(row)
    return rows, varied


@dataclass(frozen=True)
class FigureData:
    """Rows for one figure, and the sentence under it saying what is (and is not) drawn."""

    rows: list[dict[str, Any]]
    caption: str
    estimate: bool = False
    """An estimate is among the energy figures drawn: the figure says so in red."""


def _usable(points: Sequence[dict[str, Any]], *columns: str) -> list[dict[str, Any]]:
    return [p for p in points if all(p.get(c) is not None for c in columns)]


def pareto_data(
    points: Sequence[dict[str, Any]],
    against: Metric,
    varied: Sequence[str],
    energy: Metric = JPT,
) -> FigureData:
    """``energy`` (J/token by default) against ``against``, with front membership per source
    and, for front members, what changes from the previous config along the front."""
    keep = (
        "source",
        "source_path",
        "config",
        "group",
        "backend",
        "params",
        "energy_label",
        "cycles_used",
    )
    stats = [f"{m.column}{s}" for m in (energy, against) for s in ("", "_low", "_high")]
    rows: list[dict[str, Any]] = [
        {k: p.get(k) for k in (*keep, *stats, *map(field_name, varied), "estimate")}
        for p in _usable(points, energy.column, against.column)
    ]
    for label in dict.fromkeys(r["source"] for r in rows):
        mine = [r for r in rows if r["source"] == label]
        on = front(
            [r[against.column] for r in mine],
            [r[energy.column] for r in mine],
            minimize_x=against.lower_is_better,
            minimize_y=True,
        )
        for row, member in zip(mine, on, strict=True):
            row["on_front"] = member
        members = sorted(
            (r for r in mine if r["on_front"]),
            key=lambda r: r[against.column] * (1 if against.lower_is_better else -1),
        )
        previous: dict[str, Any] | None = None
        for row in members:
            row["front_step"] = (
                "best on " + against.label
                if previous is None
                else f"vs {previous['config']}: "
                + P.difference(_params_of(previous, varied), _params_of(row, varied), varied)
            )
            previous = row
    big = len(rows) > MAX_ERROR_BARS
    for row in rows:
        row.setdefault("front_step", "")
        row["show_bars"] = row["on_front"] or not big
        row["show_label"] = False
    front_rows = [r for r in rows if r["on_front"]]
    for row in front_rows[:MAX_LABELS]:
        row["show_label"] = True
    caption = (
        f"{len(rows)} config(s); {len(front_rows)} on the Pareto front (no other config has "
        f"both lower {energy.label} and {'lower' if against.lower_is_better else 'higher'} "
        f"{against.label}). Points are means over usable cycles; bars are 95% CIs."
    )
    if big:
        caption += f" With more than {MAX_ERROR_BARS} configs only front members show CI bars."
    if len(front_rows) > MAX_LABELS:
        caption += f" The first {MAX_LABELS} front members are labelled; hover for the rest."
    missing = len(points) - len(rows)
    if missing:
        caption += f" {missing} config(s) lack {energy.label} or {against.label} and are not drawn."
    return FigureData(rows, caption, estimate=any(r["estimate"] for r in rows))


def _params_of(row: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: row.get(field_name(k)) for k in keys}


def pareto_targets(points: Sequence[dict[str, Any]]) -> list[Metric]:
    """The metrics J/token is drawn against: tokens/s always, latency and TTFT when measured."""
    return [m for m in (TPS, LATENCY, TTFT) if _usable(points, JPT.column, m.column)]


def pareto_pairs(points: Sequence[dict[str, Any]]) -> list[tuple[Metric, Metric]]:
    """Every (energy, against) pair a Pareto figure can draw, J/token against tokens/s first."""
    return [
        (energy, against)
        for energy in ENERGY_TARGETS
        for against in (TPS, LATENCY, TTFT)
        if _usable(points, energy.column, against.column)
    ]


MEAN_CI = "mean, bars: 95% CI"
MEDIAN_BAND = "median, band: min to max"
"""What a line's point and bar are (the effect figures' ``stat`` field and y titles)."""


def _lines(
    points: Sequence[dict[str, Any]],
    name: str,
    others: Sequence[str],
    metrics: Sequence[Metric],
) -> list[dict[str, Any]]:
    """One row per config and metric: its value of point field ``name`` (x) and the metric's
    mean and CI, on the line of its ``others`` parameters."""
    chosen = [p for p in points if p.get(name) not in (None, "unset")]
    order = {v: i for i, v in enumerate(P.sort_values([p[name] for p in chosen]))}
    prefix = len(_sources(points)) > 1
    rows: list[dict[str, Any]] = []
    for metric in metrics:
        for p in _usable(chosen, metric.column):
            rows.append(
                {
                    "source": p["source"],
                    "group": p["group"],
                    "config": p["config"],
                    "value": P.show(p[name]),
                    "order": order[p[name]],
                    "line": (p["source"] + ": " if prefix else "")
                    + P.describe({k: _unfield(p, k) for k in others}, others),
                    "metric": metric.label,
                    "stat": MEAN_CI,
                    "mean": p[metric.column],
                    "low": p[f"{metric.column}_low"],
                    "high": p[f"{metric.column}_high"],
                    "estimate": p["estimate"] and metric.energy,
                }
            )
    return rows


def effect_data(points: Sequence[dict[str, Any]], key: str, varied: Sequence[str]) -> FigureData:
    """J/token and tokens/s against the values of one swept parameter, one line per combination
    of the other swept parameters, a panel per backend/model (when those vary)."""
    others = [k for k in P.axes(varied) if k != key]
    rows = _lines(points, field_name(key), others, (JPT, TPS))
    caption = (
        f"Each line holds the other swept parameters fixed; points are means over usable "
        f"cycles, bars 95% CIs. Configs where {P.short(key)} does not apply are left out."
    )
    return _crowded(rows, caption)


def batching_data(points: Sequence[dict[str, Any]], varied: Sequence[str]) -> FigureData:
    """J/token and J/request against requests run at once (each backend's batching key, e.g.
    pytorch.batch_size or vllm.max_num_seqs), a line per combination of the other swept
    parameters, a panel per backend/model: the ML.ENERGY leaderboard's view."""
    keys = {spec.batching_key for spec in BACKENDS.values() if "batching" in spec.roles}
    others = [k for k in P.axes(varied) if k not in keys]
    rows = _lines(points, BATCHING, others, (JPT, EPR))
    caption = (
        "Requests run at once is each backend's batching setting ("
        + ", ".join(sorted(keys))
        + "; its default where a config leaves it unset). Each line holds the other swept "
        "parameters fixed; points are means over usable cycles, bars 95% CIs."
    )
    return _crowded(rows, caption)


def batching_varies(points: Sequence[dict[str, Any]]) -> bool:
    """Whether the configs run different numbers of requests at once (the figure has a use)."""
    return len({p[BATCHING] for p in points if p.get(BATCHING) is not None}) > 1


def _crowded(rows: list[dict[str, Any]], caption: str) -> FigureData:
    merged = _merge_crowded(rows)
    if merged:
        caption += (
            f" Panels with more than {MAX_LINES} lines show their median (band: min to max "
            f"across the {merged} combinations) instead."
        )
    return FigureData(rows, caption, estimate=any(r["estimate"] for r in rows))


def _unfield(point: dict[str, Any], key: str) -> Any:
    return point.get(field_name(key))


def _sources(points: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(p["source"] for p in points))


def _merge_crowded(rows: list[dict[str, Any]]) -> int:
    """In place: a panel with too many lines becomes one median line with a min-max band.
    Returns the most combinations merged in one panel (0: none was crowded)."""
    most = 0
    panels: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        panels.setdefault((row["group"], row["metric"]), []).append(row)
    kept: list[dict[str, Any]] = []
    for panel in panels.values():
        lines = {r["line"] for r in panel}
        if len(lines) <= MAX_LINES:
            kept.extend(panel)
            continue
        most = max(most, len(lines))
        by_value: dict[Any, list[dict[str, Any]]] = {}
        for row in panel:
            by_value.setdefault(row["value"], []).append(row)
        for value, group in by_value.items():
            means = [r["mean"] for r in group]
            kept.append(
                {
                    **group[0],
                    "value": value,
                    "config": f"{len(group)} configs",
                    "line": f"median of {len(lines)} combinations",
                    "stat": MEDIAN_BAND,
                    "mean": statistics.median(means),
                    "low": min(means),
                    "high": max(means),
                    "estimate": any(r["estimate"] for r in group),
                }
            )
    rows[:] = kept
    return most


def accounting_data(points: Sequence[dict[str, Any]]) -> FigureData:
    """Raw energy per measured window split into idle baseline and the rest (mean over cycles)."""
    usable = _usable(points, "energy_j")
    shown = _best(usable, JPT.column)
    rows = []
    many = len(_sources(points)) > 1
    for p in shown:
        raw, adjusted = p["energy_j"], p["energy_adjusted_j"]
        label = f"{p['source']}: {p['config']}" if many else p["config"]
        base = {"source": p["source"], "config": label, "estimate": p["estimate"]}
        if adjusted is None:
            rows.append({**base, "part": "raw (no baseline subtracted)", "energy_j": raw})
            continue
        share = 100 * (raw - adjusted) / raw if raw else None
        rows.append({**base, "part": "idle baseline", "energy_j": raw - adjusted, "share": share})
        rows.append({**base, "part": "above baseline", "energy_j": adjusted, "share": share})
    caption = (
        "Raw energy over the measured window, mean over usable cycles: the idle-baseline part "
        "(baseline power x window) and what inference added above it. Configs without a "
        "baseline show raw energy only."
    )
    if len(shown) < len(usable):
        caption += f" The {len(shown)} configs with the lowest J/token of {len(usable)} are drawn."
    return FigureData(rows, caption, estimate=any(r["estimate"] for r in rows))


def _label(point: dict[str, Any], points: Sequence[dict[str, Any]]) -> str:
    return (
        point["config"] if len(_sources(points)) == 1 else f"{point['source']}: {point['config']}"
    )


def _best(points: Sequence[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """Up to MAX_ROWS points, lowest ``column`` first (points without it last)."""
    ranked = sorted(points, key=lambda p: (p.get(column) is None, p.get(column) or 0.0))
    return ranked[:MAX_ROWS]


def cycle_data(sources: Sequence[ReportSource]) -> FigureData:
    """Per-cycle J/token per config, on the table's energy basis; untrusted cycles drawn apart
    (they are not in the means). Beyond MAX_ROWS configs, the most variable ones."""
    per_config: list[tuple[float, list[dict[str, Any]]]] = []
    many = len(sources) > 1
    for source in sources:
        records: dict[str, list[RunRecord]] = {}
        for record in source.records:
            records.setdefault(record.config_hash, []).append(record)
        for summary in source.summaries:
            basis = summary.energy_bases[0] if summary.energy_bases else None
            stats = summary.stats.get(JPT.column)
            label = f"{source.label}: {summary.name}" if many else summary.name
            rows = []
            for record in records.get(summary.config_hash, []):
                result = record.result
                if record.status != "completed" or result is None or basis is None:
                    continue
                value = energy_per_token(result, basis)
                if value is None:
                    continue
                codes = ", ".join(f.code for f in result.untrusted)
                rows.append(
                    {
                        "config": label,
                        "cycle": record.cycle,
                        "energy_per_token_j": value,
                        "kind": f"left out: {codes}" if codes else "used",
                        "used": not codes,
                        "cv": stats.cv if stats else None,
                        "estimate": bool(result.energy.is_estimate),
                    }
                )
            if rows:
                per_config.append((stats.cv if stats and stats.cv is not None else -1.0, rows))
    per_config.sort(key=lambda item: -item[0])
    shown = per_config[:MAX_ROWS]
    rows = [row for _, group in shown for row in group]
    caption = (
        "Each point is one cycle's J/token (the table's energy basis); crosses are cycles "
        "left out of the aggregates as untrusted, with the flag that excluded them."
    )
    if len(shown) < len(per_config):
        caption += (
            f" The {len(shown)} most variable configs (highest CV) of {len(per_config)} are "
            "drawn; every config's CV is in the table."
        )
    return FigureData(rows, caption, estimate=any(r["estimate"] for r in rows))


__all__ = [
    "BATCHING",
    "DERIVED",
    "ENERGY_TARGETS",
    "EPR",
    "ESTIMATE",
    "J1K",
    "JPT",
    "LATENCY",
    "MAX_ERROR_BARS",
    "MAX_LINES",
    "MAX_ROWS",
    "MEAN_CI",
    "MEDIAN_BAND",
    "METRICS",
    "POWER",
    "TPS",
    "TTFT",
    "FigureData",
    "Metric",
    "accounting_data",
    "batching",
    "batching_data",
    "batching_varies",
    "config_points",
    "cycle_data",
    "derived",
    "effect_data",
    "energy_label",
    "field_name",
    "params_by_config",
    "pareto_data",
    "pareto_pairs",
    "pareto_targets",
    "requests_per_cycle",
    "setting_differences",
    "swept_parameters",
]
