"""``experiments.csv``: one row per run (every cycle of every config, failures included), with
its metrics, energy method and whether the summary left it out."""

from __future__ import annotations

from typing import Any

from llenergymeasure.results.aggregation import CYCLE_METRICS, RunRecord, withheld_by

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
    "mean_power_w",
    "quality_flags",
    "excluded_from_summary",
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
        mean_power_w=m.mean_power_w,
        quality_flags="; ".join(f"{f.code} ({f.severity})" for f in result.flags) or None,
        excluded_from_summary=bool(withheld_by(result)),
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


__all__ = ["EXPERIMENT_COLUMNS", "experiment_row"]
