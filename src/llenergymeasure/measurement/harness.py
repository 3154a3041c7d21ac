"""One experiment, measured the way an expert would.

environment snapshot -> idle baseline power (cached per device) -> model load (timed apart) ->
warmup until throughput is steady -> the measured window (energy source running, device
synchronised at both ends) -> metrics -> result with provenance, written atomically.

A failure anywhere before the result is written leaves no result file behind.
"""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loguru import logger

from llenergymeasure import __version__
from llenergymeasure.config.identity import config_hash
from llenergymeasure.config.introspection import model_load_key
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import LLEMError
from llenergymeasure.files import write_atomic
from llenergymeasure.measurement.energy import (
    BaselineReading,
    EnergyReading,
    EnergySource,
    measure_baseline,
    select_energy_source,
)
from llenergymeasure.measurement.environment import collect_environment
from llenergymeasure.measurement.inference.base import (
    InferenceBackend,
    ModelInfo,
    RequestRecord,
    plan_batches,
)
from llenergymeasure.measurement.inference.registry import create_backend
from llenergymeasure.results.schema import (
    TIMESERIES_FILE,
    EnergyProvenance,
    ExperimentResult,
    Metrics,
    Timings,
)
from llenergymeasure.results.statistics import coefficient_of_variation, summarize

Progress = Callable[[str], None]

FLOPS_METHOD = (
    "estimate: 2 x parameters x (input + output tokens), the forward-pass matmul cost with a KV "
    "cache; ignores attention's sequence-length term"
)


class ModelPool:
    """Holds at most one loaded model and hands it out again while experiments share its load key.

    With ``reuse=False`` (cold start) every experiment loads afresh.
    """

    def __init__(self, *, reuse: bool = True) -> None:
        self.reuse = reuse
        self._backend: InferenceBackend | None = None
        self._info: ModelInfo | None = None
        self._key: tuple[Any, ...] | None = None

    def acquire(self, config: ExperimentConfig) -> tuple[InferenceBackend, ModelInfo, bool]:
        """A backend with the config's model loaded, and whether it was reused."""
        key = model_load_key(config)
        if self.reuse and self._backend is not None and self._info is not None and key == self._key:
            self._backend.prepare(config)
            return self._backend, self._info, True
        self.release()
        backend = create_backend(config.backend)
        info = backend.load(config)
        self._backend, self._info, self._key = backend, info, key
        return backend, info, False

    def release(self) -> None:
        """Unload whatever is loaded."""
        if self._backend is not None:
            self._backend.unload()
        self._backend = self._info = self._key = None

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class _Warmup:
    seconds: float
    prompts: int
    converged: bool
    final_cv: float | None


@dataclass(frozen=True)
class _Window:
    records: list[RequestRecord]
    latencies_s: list[float]
    seconds: float
    reading: EnergyReading | None
    energy_error: str | None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_experiment_id(config: ExperimentConfig, digest: str) -> str:
    """``<UTC time>_<name>_<hash8>``: sortable, readable, unique per run."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = config.name or f"{config.backend}_{config.model.name.rsplit('/', 1)[-1]}"
    safe = "".join(c if c.isalnum() or c in "-." else "-" for c in name)
    return f"{stamp}_{safe}_{digest[:8]}"


def _batches(config: ExperimentConfig, lengths: list[int]) -> list[list[int]]:
    section = config.pytorch
    if config.streaming:  # one request at a time, so each is timed per token
        return [[i] for i in range(len(lengths))]
    size = section.batch_size if section is not None else len(lengths)
    strategy = section.batching_strategy if section is not None else "static"
    if config.traffic.mode != "none":
        strategy = "static"  # requests are served in arrival order
    return plan_batches(lengths, size, strategy)


def arrival_offsets_s(config: ExperimentConfig, count: int) -> list[float] | None:
    """Seconds after the window opens at which each request arrives; None without traffic."""
    traffic = config.traffic
    if traffic.mode == "none" or traffic.target_qps is None:
        return None
    if traffic.mode == "constant":
        return [i / traffic.target_qps for i in range(count)]
    rng = random.Random(config.random_seed)
    offsets, t = [], 0.0
    for _ in range(count):
        offsets.append(t)
        t += rng.expovariate(traffic.target_qps)
    return offsets


def _warmup(backend: InferenceBackend, config: ExperimentConfig, prompts: list[str]) -> _Warmup:
    """Run batches until throughput's CV over ``window_size`` batches is below the threshold."""
    settings = config.warmup
    if not settings.enabled or not prompts:
        return _Warmup(0.0, 0, False, None)
    started = time.perf_counter()
    throughputs: list[float] = []
    used, cv = 0, None
    for batch in _batches(config, [len(p) for p in prompts]):
        records = backend.generate([prompts[i] for i in batch])
        elapsed = max(r.end_s for r in records) - min(r.start_s for r in records)
        throughputs.append(sum(r.output_tokens for r in records) / elapsed if elapsed > 0 else 0.0)
        used += len(batch)
        if len(throughputs) >= settings.window_size:
            cv = coefficient_of_variation(throughputs[-settings.window_size :])
            steady = cv is not None and cv < settings.cv_threshold
            if settings.convergence_detection and steady and used >= settings.min_prompts:
                return _Warmup(time.perf_counter() - started, used, True, cv)
        if used >= settings.max_prompts:
            break
    return _Warmup(time.perf_counter() - started, used, False, cv)


def _measured_window(
    backend: InferenceBackend, source: EnergySource, config: ExperimentConfig, prompts: list[str]
) -> _Window:
    arrivals = arrival_offsets_s(config, len(prompts))
    batches = _batches(config, [len(p) for p in prompts])
    records: list[RequestRecord] = []
    latencies: list[float] = []
    backend.reset_peak_memory()
    backend.synchronize()
    source.start()
    opened = time.perf_counter()
    try:
        for batch in batches:
            if arrivals is not None:  # dispatch once the batch's last request has arrived
                wait = opened + max(arrivals[i] for i in batch) - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            batch_records = backend.generate([prompts[i] for i in batch])
            for index, record in zip(batch, batch_records, strict=True):
                arrived = opened + arrivals[index] if arrivals is not None else record.start_s
                latencies.append(record.end_s - arrived)
            records.extend(batch_records)
    finally:
        backend.synchronize()
        closed = time.perf_counter()
        reading: EnergyReading | None = None
        energy_error: str | None = None
        try:
            reading = source.stop()
        except LLEMError as err:  # keep the throughput figures; say why energy is missing
            energy_error = err.render()
            logger.warning("energy reading failed: {}", energy_error)
    return _Window(records, latencies, closed - opened, reading, energy_error)


def _metrics(
    window: _Window, baseline: BaselineReading | None, info: ModelInfo, backend: InferenceBackend
) -> Metrics:
    records = window.records
    output_tokens = sum(r.output_tokens for r in records)
    input_tokens = sum(r.input_tokens for r in records)
    seconds = window.seconds
    reading = window.reading
    energy = reading.energy_j if reading is not None else None
    energy_window_s = reading.duration_s if reading is not None else seconds
    adjusted = None
    if energy is not None and baseline is not None:  # idle power over the energy window only
        adjusted = energy - baseline.power_w * energy_window_s
    basis_energy = adjusted if adjusted is not None else energy
    ttfts = [r.ttft_s for r in records if r.ttft_s is not None]
    itls = [gap for r in records for gap in r.inter_token_s]
    method = getattr(backend, "peak_memory_method", "unavailable")
    latency = summarize(window.latencies_s)
    assert latency is not None, "a measured window always holds at least one request"
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
        energy_basis=None
        if basis_energy is None
        else ("adjusted" if adjusted is not None else "raw"),
        tokens_per_joule=output_tokens / basis_energy if basis_energy else None,
        mean_power_w=energy / energy_window_s
        if energy is not None and energy_window_s > 0
        else None,
        latency_s=latency,
        ttft_s=summarize(ttfts),
        itl_s=summarize(itls),
        peak_memory_bytes=backend.peak_memory_bytes(),
        peak_memory_method=method() if callable(method) else str(method),
        flops=2.0 * info.num_parameters * (input_tokens + output_tokens),
        flops_method=FLOPS_METHOD,
    )


def _provenance(
    window: _Window, baseline: BaselineReading | None, source: EnergySource
) -> EnergyProvenance:
    reading = window.reading
    if reading is None:
        return EnergyProvenance(
            source=source.name,
            method=source.method,
            is_estimate=source.method == "estimate",
            window_s=window.seconds,
            unavailable_reason=window.energy_error,
        )
    return EnergyProvenance(
        source=reading.source,
        method=reading.method,
        is_estimate=reading.is_estimate,
        devices=list(reading.devices),
        sample_interval_ms=reading.sample_interval_ms,
        window_s=reading.duration_s,
        resolution_warning=reading.resolution_warning,
        baseline_power_w=baseline.power_w if baseline is not None else None,
        baseline=baseline.to_dict() if baseline is not None else None,
        throttle_reasons=list(reading.throttle_reasons),
        notes=list(reading.notes),
    )


def _timeseries_csv(reading: EnergyReading) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["t_s", "power_w", "temperature_c"])
    for sample in reading.samples:
        writer.writerow([f"{sample.t_s:.4f}", f"{sample.power_w:.3f}", sample.temperature_c])
    return buffer.getvalue()


def run_experiment(
    config: ExperimentConfig,
    output_dir: Path,
    *,
    experiment_id: str | None = None,
    models: ModelPool | None = None,
    progress: Progress | None = None,
) -> ExperimentResult:
    """Measure one experiment and write ``output_dir/<experiment_id>/result.json``."""
    say = progress or (lambda _message: None)
    started_at, started = _now(), time.perf_counter()
    digest = config_hash(config)
    experiment_id = experiment_id or default_experiment_id(config, digest)
    pool = models or ModelPool(reuse=False)

    say("environment")
    environment = collect_environment()
    source = select_energy_source(
        config.energy.source,
        sample_interval_ms=config.energy.sample_interval_ms,
        timeseries=config.timeseries.enabled,
        tdp_w=config.energy.tdp_w,
    )
    baseline, baseline_started = None, time.perf_counter()
    if config.baseline.enabled:
        say(f"idle baseline ({config.baseline.duration_sec:g} s, {source.name})")
        baseline = measure_baseline(
            source, config.baseline.duration_sec, ttl_sec=config.baseline.cache_ttl_sec
        )
    baseline_s = time.perf_counter() - baseline_started

    say(f"loading {config.model.name} ({config.backend}, {config.fp_precision})")
    try:
        backend, info, reused = pool.acquire(config)
        from llenergymeasure.measurement.datasets import load_prompts

        tokenizer = backend.tokenizer()
        prompts = load_prompts(
            config.dataset,
            tokenizer=tokenizer,
            max_input_tokens=config.max_input_tokens,
            seed=config.random_seed,
        )
        warmup_prompts = (
            load_prompts(
                config.dataset,
                tokenizer=tokenizer,
                max_input_tokens=config.max_input_tokens,
                seed=config.random_seed + 1,
                count=config.warmup.max_prompts,
            )
            if config.warmup.enabled
            else []
        )
        say(f"warmup (up to {len(warmup_prompts)} prompts)")
        warmup = _warmup(backend, config, warmup_prompts)
        say(f"measuring {len(prompts)} prompts")
        window = _measured_window(backend, source, config, prompts)
        metrics = _metrics(window, baseline, info, backend)
    finally:
        if models is None:
            pool.release()

    result = ExperimentResult(
        experiment_id=experiment_id,
        name=config.name or experiment_id,
        llem_version=__version__,
        config=config.model_dump(mode="json"),
        config_hash=digest,
        environment=environment,
        model={
            "source": info.source,
            "device": info.device,
            "dtype": info.dtype,
            "num_parameters": info.num_parameters,
            "notes": list(info.notes),
        },
        metrics=metrics,
        energy=_provenance(window, baseline, source),
        timings=Timings(
            started_at=started_at,
            finished_at=_now(),
            total_s=time.perf_counter() - started,
            baseline_s=baseline_s,
            model_load_s=0.0 if reused else info.load_time_s,
            model_reused=reused,
            warmup_s=warmup.seconds,
            warmup_prompts=warmup.prompts,
            warmup_converged=warmup.converged,
            warmup_final_cv=warmup.final_cv,
            measured_window_s=window.seconds,
        ),
        timeseries_file=TIMESERIES_FILE
        if window.reading is not None and window.reading.samples
        else None,
    )
    directory = output_dir / experiment_id
    if result.timeseries_file and window.reading is not None:
        write_atomic(directory / TIMESERIES_FILE, _timeseries_csv(window.reading))
    result.save(directory)
    return result
