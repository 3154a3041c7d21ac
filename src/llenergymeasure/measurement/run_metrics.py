"""A run's metrics from its measured window: tokens, throughput, energy (raw and minus the
idle baseline, and which one the per-token figures use), latencies, memory and FLOPs."""

from __future__ import annotations

from typing import Any

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement.energy import BaselineReading
from llenergymeasure.measurement.inference.base import InferenceBackend, ModelInfo, RequestRecord
from llenergymeasure.measurement.window import MeasuredWindow
from llenergymeasure.results.schema import Metrics
from llenergymeasure.results.statistics import summarize

ADJUSTED_MIN_FRACTION = 0.02
"""Adjusted energy below this fraction of raw is implausibly small: idle power measured over
a few seconds varies by a few percent between idle windows, so such a difference is noise."""


def flops_estimate(
    records: list[RequestRecord], info: ModelInfo, *, use_cache: bool
) -> tuple[float, str]:
    """Forward-pass matmul FLOPs of the window's requests, and how they were counted.

    Per request: ``2 x N x T + 2 x H x output`` with N the non-embedding parameters (an
    embedding lookup costs no FLOPs), H the LM head (a matmul for each generated token, tied
    or not) and T the token positions run through the layers: ``input + output - 1`` with a
    KV cache, ``sum over steps of (input + step)`` without one (each step recomputes the
    prefix). Ignores attention's sequence-length term and padding positions of a batch.
    """
    cache = "with a KV cache" if use_cache else "without a KV cache (use_cache: false)"
    positions = 0
    outputs = 0
    for r in records:
        out, inp = r.output_tokens, r.input_tokens
        outputs += out
        if out <= 0:
            continue
        positions += inp + out - 1 if use_cache else out * inp + out * (out - 1) // 2
    body = info.non_embedding_parameters
    head = info.output_projection_parameters or 0
    if body is None:
        return 2.0 * info.num_parameters * positions, (
            f"estimate {cache}: 2 x all {info.num_parameters} parameters x token positions "
            "(the backend did not report its non-embedding count, so embeddings are counted); "
            "ignores attention's sequence-length term"
        )
    return 2.0 * body * positions + 2.0 * head * outputs, (
        f"estimate {cache}: 2 x {body} non-embedding parameters x token positions "
        f"({'input + output - 1' if use_cache else 'sum of input + step over output steps'} "
        f"per request) + 2 x {head} LM-head parameters x output tokens; embedding lookups "
        "cost nothing; ignores attention's sequence-length term and batch padding"
    )


def adjusted_energy(
    energy: float | None, window_s: float, baseline: BaselineReading | None
) -> tuple[float | None, str | None]:
    """Energy minus idle baseline x window, or None with the reason it is no figure."""
    if energy is None or baseline is None:
        return None, None
    adjusted = energy - baseline.power_w * window_s  # idle power over the energy window only
    if adjusted <= 0:
        return None, (
            f"energy minus idle baseline is {adjusted:.4g} J (raw {energy:.4g} J, baseline "
            f"{baseline.power_w:.4g} W x {window_s:.3g} s): the workload's energy is not "
            "above idle, so the baseline was not taken in the window's state"
        )
    if adjusted < ADJUSTED_MIN_FRACTION * energy:
        return None, (
            f"energy minus idle baseline is {adjusted:.4g} J, under {ADJUSTED_MIN_FRACTION:.0%} "
            f"of raw {energy:.4g} J: inside the baseline's own variation, so not a figure"
        )
    return adjusted, None


def window_metrics(
    window: MeasuredWindow,
    baseline: BaselineReading | None,
    info: ModelInfo,
    backend: InferenceBackend,
    config: ExperimentConfig,
) -> Metrics:
    """The metrics of ``window``; energy per token is null (with a reason) rather than raw when
    the adjusted energy is no figure."""
    records = window.records
    output_tokens = sum(r.output_tokens for r in records)
    input_tokens = sum(r.input_tokens for r in records)
    seconds = window.seconds
    reading = window.reading
    energy = reading.energy_j if reading is not None else None
    energy_window_s = reading.duration_s if reading is not None else seconds
    adjusted, null_reason = adjusted_energy(energy, energy_window_s, baseline)
    basis, basis_energy = _energy_basis(energy, adjusted, null_reason)
    method = getattr(backend, "peak_memory_method", "unavailable")
    section = config.pytorch
    flops, flops_method = flops_estimate(
        records, info, use_cache=section.use_cache if section is not None else True
    )
    total_tokens = input_tokens + output_tokens
    return Metrics(
        num_requests=len(records),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        measured_window_s=seconds,
        tokens_per_second=output_tokens / seconds if seconds > 0 else 0.0,
        requests_per_second=len(records) / seconds if seconds > 0 else 0.0,
        energy_j=energy,
        energy_adjusted_j=adjusted,
        energy_per_token_j=basis_energy / output_tokens
        if basis_energy is not None and output_tokens
        else None,
        energy_per_request_j=basis_energy / len(records)
        if basis_energy is not None and records
        else None,
        energy_basis=basis,
        tokens_per_joule=output_tokens / basis_energy if basis_energy else None,
        mean_power_w=energy / energy_window_s
        if energy is not None and energy_window_s > 0
        else None,
        peak_memory_bytes=backend.peak_memory_bytes(),
        peak_memory_method=method() if callable(method) else str(method),
        flops=flops,
        flops_method=flops_method,
        energy_per_total_token_j=basis_energy / total_tokens
        if basis_energy is not None and total_tokens
        else None,
        energy_per_token_raw_j=energy / output_tokens
        if energy is not None and output_tokens
        else None,
        energy_adjusted_null_reason=null_reason,
        **_latencies(window),
    )


def _energy_basis(
    energy: float | None, adjusted: float | None, null_reason: str | None
) -> tuple[str | None, float | None]:
    """Which energy the per-token figures use ("adjusted" or "raw"), and its value."""
    if null_reason is not None:  # never fall back to raw silently: the figures are null
        return "adjusted", None
    if adjusted is not None:
        return "adjusted", adjusted
    if energy is not None:
        return "raw", energy
    return None, None


def _latencies(window: MeasuredWindow) -> dict[str, Any]:
    """Request latency, TTFT (from the call and from arrival), TPOT and inter-token gaps."""
    records = window.records
    latency = summarize(window.latencies_s)
    assert latency is not None, "a measured window always holds at least one request"
    ttfts = [r.ttft_s for r in records if r.ttft_s is not None]
    ttfts_arrival = [
        r.first_token_s - (arrived if arrived is not None else r.start_s)
        for r, arrived in zip(records, window.arrivals_s, strict=True)
        if r.first_token_s is not None
    ]
    tpots = [
        (r.end_s - r.first_token_s) / (r.output_tokens - 1)
        for r in records
        if r.first_token_s is not None and r.output_tokens > 1
    ]
    return {
        "latency_s": latency,
        "ttft_s": summarize(ttfts),
        "itl_s": summarize([gap for r in records for gap in r.inter_token_s]),
        "ttft_from_arrival_s": summarize(ttfts_arrival),
        "tpot_s": summarize(tpots),
    }
