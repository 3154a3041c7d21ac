"""The one builder of hand-made results: a schema-valid ``ExperimentResult`` from the few
numbers a test chooses (no model run). Campaign and report tests derive theirs from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llenergymeasure.results.schema import (
    EnergyProvenance,
    ExperimentResult,
    Metrics,
    Percentiles,
    QualityFlag,
    Timings,
)


def percentiles(value: float, count: int) -> Percentiles:
    """A latency distribution around ``value`` (p90 1.5x, p99 2x)."""
    return Percentiles(mean=value, p50=value, p90=value * 1.5, p99=value * 2, count=count)


def experiment_result(
    exp_id: str,
    name: str,
    config: dict[str, Any],
    config_hash: str,
    *,
    requests: int,
    tokens: int,
    window_s: float,
    energy_j: float | None,
    energy: EnergyProvenance,
    energy_adjusted_j: float | None = None,
    latency_s: float = 0.1,
    ttft_s: float | None = None,
    mean_power_w: float | None = None,
    environment: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    warmup: tuple[float, int, bool, float | None] = (0.0, 0, False, None),
    flags: Sequence[QualityFlag] = (),
    timeseries_file: str | None = None,
) -> ExperimentResult:
    """``requests`` requests of ``tokens`` output tokens in all over ``window_s``, costing
    ``energy_j`` (raw; ``energy_adjusted_j`` baseline-adjusted, the basis when given);
    ``warmup`` is (seconds, prompts, converged, final CV)."""
    basis_j = energy_adjusted_j if energy_adjusted_j is not None else energy_j
    warmup_s, warmup_prompts, converged, final_cv = warmup
    return ExperimentResult(
        experiment_id=exp_id,
        name=name,
        llem_version="test",
        config=config,
        config_hash=config_hash,
        environment=environment or {},
        model=model or {"source": "test"},
        metrics=Metrics(
            num_requests=requests,
            input_tokens=8 * requests,
            output_tokens=tokens,
            measured_window_s=window_s,
            tokens_per_second=tokens / window_s,
            requests_per_second=requests / window_s,
            energy_j=energy_j,
            energy_adjusted_j=energy_adjusted_j,
            energy_per_token_j=None if basis_j is None else basis_j / tokens,
            energy_per_request_j=None if energy_j is None else energy_j / requests,
            energy_basis=None
            if energy_j is None
            else ("adjusted" if energy_adjusted_j is not None else "raw"),
            tokens_per_joule=None if basis_j is None else tokens / basis_j,
            mean_power_w=mean_power_w,
            latency_s=percentiles(latency_s, requests),
            ttft_s=None if ttft_s is None else percentiles(ttft_s, requests),
            itl_s=None,
            peak_memory_bytes=None,
            peak_memory_method="unavailable",
            flops=None,
            flops_method="test",
        ),
        energy=energy,
        timings=Timings(
            started_at="2026-01-01T00:00:00+00:00",
            finished_at="2026-01-01T00:00:01+00:00",
            total_s=1.0,
            baseline_s=0.0,
            model_load_s=0.0,
            model_reused=False,
            warmup_s=warmup_s,
            warmup_prompts=warmup_prompts,
            warmup_converged=converged,
            warmup_final_cv=final_cv,
            measured_window_s=window_s,
        ),
        timeseries_file=timeseries_file,
        flags=list(flags),
    )
