"""Across cycles: per config, mean / std / CV and a seeded 95% bootstrap CI of each key metric.

Input is a flat list of :class:`RunRecord` (one per experiment-cycle, with its loaded result
when it completed); whoever owns the bookkeeping (the campaign manifest, or a folder of
results) builds them. Energy figures keep their provenance: a config whose cycles mix energy
methods, or whose energy is an estimate, says so in its row, so an estimate is never read as a
measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llenergymeasure.results.schema import ExperimentResult
from llenergymeasure.results.statistics import CycleStats, cycle_stats

MIN_CYCLES = 3
"""Fewer completed cycles than this and the spread figures (std, CV, CI) are flagged."""

BOOTSTRAP_RESAMPLES = 10_000


def _pct(attr: str, q: str) -> Callable[[ExperimentResult], float | None]:
    def get(result: ExperimentResult) -> float | None:
        dist = getattr(result.metrics, attr)
        return None if dist is None else float(getattr(dist, q))

    return get


CYCLE_METRICS: dict[str, Callable[[ExperimentResult], float | None]] = {
    "energy_per_token_j": lambda r: r.metrics.energy_per_token_j,
    "energy_j": lambda r: r.metrics.energy_j,
    "tokens_per_second": lambda r: r.metrics.tokens_per_second,
    "latency_p50_s": _pct("latency_s", "p50"),
    "latency_p90_s": _pct("latency_s", "p90"),
    "latency_p99_s": _pct("latency_s", "p99"),
    "ttft_p50_s": _pct("ttft_s", "p50"),
    "itl_p50_s": _pct("itl_s", "p50"),
}
"""Metric column prefix -> how to read it from one result (None when the result lacks it)."""

STAT_FIELDS = ("n", "mean", "std", "cv", "ci95_low", "ci95_high")


@dataclass(frozen=True)
class RunRecord:
    """One experiment-cycle as the bookkeeping knows it."""

    exp_id: str
    name: str
    config_hash: str
    backend: str
    cycle: int
    status: str
    model: str | None = None
    precision: str | None = None
    error: str | None = None
    result: ExperimentResult | None = None
    result_path: str | None = None


@dataclass
class ConfigSummary:
    """One config across its cycles."""

    name: str
    config_hash: str
    backend: str
    model: str | None
    precision: str | None
    cycles_planned: int
    cycles_completed: int
    cycles_failed: int
    stats: dict[str, CycleStats | None]
    energy_sources: list[str]
    energy_methods: list[str]
    energy_is_estimate: bool | None
    energy_bases: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def low_cycles(self) -> bool:
        return self.cycles_completed < MIN_CYCLES

    def row(self) -> dict[str, Any]:
        """A flat, table-ready row (one column per metric statistic)."""
        row: dict[str, Any] = {
            "name": self.name,
            "config_hash": self.config_hash,
            "backend": self.backend,
            "model": self.model,
            "precision": self.precision,
            "cycles_completed": self.cycles_completed,
            "cycles_planned": self.cycles_planned,
            "cycles_failed": self.cycles_failed,
            "low_cycles": self.low_cycles,
            "energy_source": "/".join(self.energy_sources) or None,
            "energy_method": "/".join(self.energy_methods) or None,
            "energy_is_estimate": self.energy_is_estimate,
            "energy_basis": "/".join(self.energy_bases) or None,
            "warnings": "; ".join(self.warnings) or None,
        }
        for metric in CYCLE_METRICS:
            stats = self.stats.get(metric)
            values = (
                (stats.n, stats.mean, stats.std, stats.cv, stats.ci_low, stats.ci_high)
                if stats is not None
                else (0, None, None, None, None, None)
            )
            for stat, value in zip(STAT_FIELDS, values, strict=True):
                row[f"{metric}_{stat}"] = value
        return row


def summary_columns() -> list[str]:
    """The column order of a summary row (stable, whatever the data)."""
    head = [
        "name",
        "config_hash",
        "backend",
        "model",
        "precision",
        "cycles_completed",
        "cycles_planned",
        "cycles_failed",
        "low_cycles",
        "energy_source",
        "energy_method",
        "energy_is_estimate",
        "energy_basis",
        "warnings",
    ]
    return head + [f"{m}_{s}" for m in CYCLE_METRICS for s in STAT_FIELDS]


def _unique(values: Iterable[str | None]) -> list[str]:
    return sorted({v for v in values if v})


def summarize_config(
    records: Sequence[RunRecord], *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> ConfigSummary:
    """Statistics of one config's records (all with the same config hash)."""
    first = records[0]
    done = [r.result for r in records if r.status == "completed" and r.result is not None]
    stats: dict[str, CycleStats | None] = {}
    for metric, get in CYCLE_METRICS.items():
        values = [v for v in (get(result) for result in done) if v is not None]
        stats[metric] = cycle_stats(values, seed=seed, resamples=resamples) if values else None
    sources = _unique(r.energy.source for r in done)
    methods = _unique(r.energy.method for r in done)
    bases = _unique(r.metrics.energy_basis for r in done)
    estimate = any(r.energy.is_estimate for r in done) if done else None
    warnings: list[str] = []
    if len(done) < MIN_CYCLES:
        warnings.append(
            f"only {len(done)} completed cycle{'s' if len(done) != 1 else ''} "
            f"(< {MIN_CYCLES}): std, CV and CI are unreliable"
        )
    if len(methods) > 1 or len(sources) > 1:
        warnings.append(f"energy methods differ across cycles ({', '.join(sources + methods)})")
    if len(bases) > 1:
        warnings.append("energy basis differs across cycles (adjusted and raw mixed)")
    if estimate:
        warnings.append("energy is an ESTIMATE, not a measurement")
    model = next((r.result.config["model"]["name"] for r in records if r.result), first.model)
    precision = next(
        (r.result.config["fp_precision"] for r in records if r.result), first.precision
    )
    return ConfigSummary(
        name=records[-1].name,
        config_hash=first.config_hash,
        backend=first.backend,
        model=model,
        precision=precision,
        cycles_planned=len(records),
        cycles_completed=len(done),
        cycles_failed=sum(r.status in ("failed", "interrupted") for r in records),
        stats=stats,
        energy_sources=sources,
        energy_methods=methods,
        energy_is_estimate=estimate,
        energy_bases=bases,
        warnings=warnings,
    )


def aggregate(
    records: Iterable[RunRecord], *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> list[ConfigSummary]:
    """One summary per config hash, in first-seen order; skipped records are left out."""
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.status != "skipped":
            groups.setdefault(record.config_hash, []).append(record)
    return [
        summarize_config(sorted(group, key=lambda r: r.cycle), seed=seed, resamples=resamples)
        for group in groups.values()
    ]


EXPERIMENT_COLUMNS = [
    "exp_id",
    "name",
    "cycle",
    "status",
    "backend",
    "model",
    "precision",
    "config_hash",
    "output_tokens",
    "measured_window_s",
    "tokens_per_second",
    "energy_j",
    "energy_adjusted_j",
    "energy_per_token_j",
    "energy_basis",
    "energy_source",
    "energy_method",
    "energy_is_estimate",
    "latency_p50_s",
    "latency_p90_s",
    "latency_p99_s",
    "ttft_p50_s",
    "itl_p50_s",
    "model_load_s",
    "model_reused",
    "baseline_s",
    "warmup_s",
    "total_s",
    "started_at",
    "finished_at",
    "error",
    "result_path",
]


def _headline(error: str | None) -> str | None:
    if not error:
        return None
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[0] if lines else None


def experiment_row(record: RunRecord) -> dict[str, Any]:
    """A row per experiment-cycle: identity, status, key metrics and energy provenance."""
    row: dict[str, Any] = dict.fromkeys(EXPERIMENT_COLUMNS)
    row.update(
        exp_id=record.exp_id,
        name=record.name,
        cycle=record.cycle,
        status=record.status,
        backend=record.backend,
        model=record.model,
        precision=record.precision,
        config_hash=record.config_hash,
        error=_headline(record.error),
        result_path=record.result_path,
    )
    result = record.result
    if result is None:
        return row
    m, e, t = result.metrics, result.energy, result.timings
    row.update(
        model=result.config["model"]["name"],
        precision=result.config["fp_precision"],
        output_tokens=m.output_tokens,
        measured_window_s=m.measured_window_s,
        tokens_per_second=m.tokens_per_second,
        energy_j=m.energy_j,
        energy_adjusted_j=m.energy_adjusted_j,
        energy_per_token_j=m.energy_per_token_j,
        energy_basis=m.energy_basis,
        energy_source=e.source,
        energy_method=e.method,
        energy_is_estimate=e.is_estimate,
        model_load_s=t.model_load_s,
        model_reused=t.model_reused,
        baseline_s=t.baseline_s,
        warmup_s=t.warmup_s,
        total_s=t.total_s,
        started_at=t.started_at,
        finished_at=t.finished_at,
    )
    for metric in ("latency_p50_s", "latency_p90_s", "latency_p99_s", "ttft_p50_s", "itl_p50_s"):
        row[metric] = CYCLE_METRICS[metric](result)
    return row


__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CYCLE_METRICS",
    "EXPERIMENT_COLUMNS",
    "MIN_CYCLES",
    "ConfigSummary",
    "RunRecord",
    "aggregate",
    "experiment_row",
    "summarize_config",
    "summary_columns",
]
