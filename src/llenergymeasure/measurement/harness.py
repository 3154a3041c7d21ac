"""One experiment, measured the way an expert would.

environment snapshot -> model load (timed apart; the backend says which devices it uses) ->
energy source for exactly those devices -> warmup until throughput (and power, where the
source can read it) is steady -> idle baseline power with the model loaded, right before the
window, cached per device set and state -> the measured window (whole passes over the prompts
until it is long enough for the source's error bound; device synchronised at both ends) ->
metrics -> result with provenance and quality flags, written atomically.

A failure anywhere before the result is written leaves no result file behind.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from llenergymeasure import __version__
from llenergymeasure.config.identity import config_hash
from llenergymeasure.config.introspection import model_load_key
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import LLEMError
from llenergymeasure.files import safe_name
from llenergymeasure.log import logger
from llenergymeasure.measurement import host_lock
from llenergymeasure.measurement.energy import (
    BaselineReading,
    EnergyReading,
    EnergySource,
    measure_baseline,
    select_energy_source,
)
from llenergymeasure.measurement.energy.base import PeriodicSampler
from llenergymeasure.measurement.energy.crosscheck import crosscheck
from llenergymeasure.measurement.environment import collect_environment
from llenergymeasure.measurement.host_load import (
    BUSY_OTHER_SHARE_PCT,
    HostLoadSampler,
    machine_busy,
)
from llenergymeasure.measurement.inference.base import (
    InferenceBackend,
    ModelInfo,
    RequestRecord,
    SelfSchedulingBackend,
    plan_batches,
)
from llenergymeasure.measurement.inference.registry import create_backend
from llenergymeasure.results.schema import (
    TIMESERIES_FILE,
    EnergyProvenance,
    ExperimentResult,
    Metrics,
    QualityFlag,
    Timings,
)
from llenergymeasure.results.statistics import coefficient_of_variation, summarize

Progress = Callable[[str], None]
_PROCESS_STARTED = time.time()  # with the PID, tells this process from a later one

BASELINE_WHEN = (
    "after model load and warmup, right before the measured window (model resident, device idle)"
)
ADJUSTED_MIN_FRACTION = 0.02
"""Adjusted energy below this fraction of raw is implausibly small: idle power measured over
a few seconds varies by a few percent between idle windows, so such a difference is noise."""
WARMUP_POWER_INTERVAL_S = 0.05
DEFAULT_TARGET_ERROR_PCT = 1.0  # for a source that does not declare its own target


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
    power_cv: float | None = None
    converged_on: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Window:
    records: list[RequestRecord]
    latencies_s: list[float]
    seconds: float
    reading: EnergyReading | None
    energy_error: str | None
    arrivals_s: list[float | None]  # perf_counter arrival per record (traffic), else None
    passes: int = 1
    required_s: float = 0.0
    target_error_pct: float | None = None
    host_load: dict[str, Any] | None = None  # CPU-side sources only (see host_load.py)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_experiment_id(config: ExperimentConfig, digest: str) -> str:
    """``<UTC time>_<name>_<hash8>``: sortable, readable, unique per run, and always a valid
    directory name (the name made safe and short, see :func:`safe_name`)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = config.name or f"{config.backend}_{config.model.name.rsplit('/', 1)[-1]}"
    return f"{stamp}_{safe_name(name.replace('_', '-'))}_{digest[:8]}"


def _batches(
    config: ExperimentConfig, lengths: list[int], *, self_scheduling: bool = False
) -> list[list[int]]:
    if self_scheduling:  # the engine batches; warmup needs several groups to judge steadiness
        return plan_batches(lengths, warmup_group_size(config))
    section = config.pytorch
    if config.streaming:  # one request at a time, so each is timed per token
        return [[i] for i in range(len(lengths))]
    size = section.batch_size if section is not None else len(lengths)
    strategy = section.batching_strategy if section is not None else "static"
    if config.traffic.mode != "none":
        strategy = "static"  # requests are served in arrival order
    return plan_batches(lengths, size, strategy)


def warmup_group_size(config: ExperimentConfig) -> int:
    """Prompts per warmup call for an engine that schedules its own batches: a group of
    ``max_prompts / (2 x window_size)``, so steadiness is judged on at least two windows."""
    warmup = config.warmup
    return max(1, warmup.prompt_limit // (2 * warmup.window_size))


def arrival_offsets_s(config: ExperimentConfig, count: int) -> list[float] | None:
    """Seconds after the window opens at which each request arrives; None without traffic."""
    traffic = config.traffic
    if traffic.mode == "bursty" and traffic.burst_size and traffic.burst_interval_s:
        return [(i // traffic.burst_size) * traffic.burst_interval_s for i in range(count)]
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


class _PowerWatch:
    """Reads a source's power every ``WARMUP_POWER_INTERVAL_S`` in a thread, so warmup can
    average power over each batch; stops itself (with a note) if the reading fails."""

    def __init__(self, read_w: Callable[[], float]) -> None:
        self._read_w = read_w
        self.samples: list[tuple[float, float]] = []
        self.error: str | None = None
        self._thread = PeriodicSampler(
            self._sample, WARMUP_POWER_INTERVAL_S, time.perf_counter(), "llem-warmup-power"
        )

    def _sample(self) -> None:
        self.samples.append((time.perf_counter(), self._read_w()))

    def __enter__(self) -> _PowerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._thread.halt()
        except Exception as err:  # the power check is lost, not the experiment
            self.error = f"{type(err).__name__}: {err}"

    def mean_w(self, start_s: float, end_s: float) -> float | None:
        inside = [w for t, w in list(self.samples) if start_s <= t <= end_s]
        if inside:
            return sum(inside) / len(inside)
        try:  # a batch shorter than the interval: one reading now
            return self._read_w()
        except Exception as err:
            self.error = f"{type(err).__name__}: {err}"
            return None


def _warmup(
    backend: InferenceBackend,
    config: ExperimentConfig,
    prompts: list[str],
    power_w: Callable[[], float] | None = None,
) -> _Warmup:
    """Run batches until throughput's CV over ``window_size`` batches is below the threshold,
    and, when ``power_w`` can read the measured devices' power, power's CV too."""
    settings = config.warmup
    if not settings.enabled or not prompts:
        return _Warmup(0.0, 0, False, None)
    started = time.perf_counter()
    throughputs: list[float] = []
    powers: list[float] = []
    used, cv, power_cv = 0, None, None
    watch = _PowerWatch(power_w) if power_w is not None else None
    own_batches = isinstance(backend, SelfSchedulingBackend)
    run = backend.generate_pass if isinstance(backend, SelfSchedulingBackend) else backend.generate
    with watch if watch is not None else contextlib.nullcontext():
        for batch in _batches(config, [len(p) for p in prompts], self_scheduling=own_batches):
            records = run([prompts[i] for i in batch])
            begin, end = min(r.start_s for r in records), max(r.end_s for r in records)
            elapsed = end - begin
            throughputs.append(
                sum(r.output_tokens for r in records) / elapsed if elapsed > 0 else 0.0
            )
            if watch is not None and watch.error is None:
                mean = watch.mean_w(begin, end)
                if mean is not None:
                    powers.append(mean)
            used += len(batch)
            if len(throughputs) >= settings.window_size:
                cv = coefficient_of_variation(throughputs[-settings.window_size :])
                steady = cv is not None and cv < settings.cv_threshold
                if watch is not None and watch.error is None:
                    power_cv = (
                        coefficient_of_variation(powers[-settings.window_size :])
                        if len(powers) >= settings.window_size
                        else None
                    )
                    steady = steady and power_cv is not None and power_cv < settings.cv_threshold
                if settings.convergence_detection and steady and used >= settings.min_prompts:
                    break
            if used >= settings.prompt_limit:
                break
    power_checked = watch is not None and watch.error is None
    notes: tuple[str, ...] = ()
    if watch is not None and watch.error is not None:
        notes = (f"warmup power could not be read ({watch.error}); steady state on throughput",)
    converged = bool(
        settings.convergence_detection
        and len(throughputs) >= settings.window_size
        and cv is not None
        and cv < settings.cv_threshold
        and (not power_checked or (power_cv is not None and power_cv < settings.cv_threshold))
        and used >= settings.min_prompts
    )
    return _Warmup(
        time.perf_counter() - started,
        used,
        converged,
        cv,
        power_cv,
        "throughput and power" if power_checked else "throughput",
        notes,
    )


def window_requirement(
    config: ExperimentConfig, source: EnergySource
) -> tuple[float, float | None]:
    """(required window in s, target error bound in %) for this source and config.

    The window must last ``max(min_window_s, K x update period)`` with ``K = 100 / target``:
    each end of a counter window may be stale by one update period, so the error bound is
    ``100 x period / window`` and K periods bring it to the target. Call after ``start()``:
    sources that measure their update period do it there.
    """
    energy = config.energy
    target = energy.max_error_pct or getattr(source, "target_error_pct", None)
    floor = energy.min_window_s
    if floor is None:
        floor = float(getattr(source, "default_min_window_s", 0.0))
    period = getattr(source, "update_period_s", None)
    if period is None or target is None:
        return floor, target
    return max(floor, (100.0 / target) * period), target


def _measured_window(
    backend: InferenceBackend, source: EnergySource, config: ExperimentConfig, prompts: list[str]
) -> _Window:
    """Whole passes over the prompts, inside one energy window, until it is long enough."""
    own_batches = isinstance(backend, SelfSchedulingBackend)
    batches = [] if own_batches else _batches(config, [len(p) for p in prompts])
    records: list[RequestRecord] = []
    latencies: list[float] = []
    arrivals_s: list[float | None] = []
    backend.reset_peak_memory()
    backend.synchronize()
    # CPU-side energy covers the whole host CPU: watch what else ran on it
    host = HostLoadSampler() if getattr(source, "covers_host_cpu", False) else None
    if host is not None:
        host.start()
    source.start()
    opened = time.perf_counter()
    required_s, target = window_requirement(config, source)
    passes = 0
    try:
        while True:
            pass_opened = time.perf_counter()
            arrivals = arrival_offsets_s(config, len(prompts))
            if isinstance(backend, SelfSchedulingBackend):  # the whole pass: the engine batches
                arrived_at = [pass_opened + a for a in arrivals] if arrivals is not None else None
                pass_records = backend.generate_pass(prompts, arrived_at)
                for index, record in enumerate(pass_records):
                    arrived = arrived_at[index] if arrived_at is not None else None
                    arrivals_s.append(arrived)
                    latencies.append(record.end_s - (arrived or record.start_s))
                records.extend(pass_records)
            for batch in batches:
                if arrivals is not None:  # dispatch once the batch's last request has arrived
                    wait = pass_opened + max(arrivals[i] for i in batch) - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                batch_records = backend.generate([prompts[i] for i in batch])
                for index, record in zip(batch, batch_records, strict=True):
                    arrived = pass_opened + arrivals[index] if arrivals is not None else None
                    arrivals_s.append(arrived)
                    latencies.append(record.end_s - (arrived or record.start_s))
                records.extend(batch_records)
            passes += 1
            if time.perf_counter() - opened >= required_s:
                break
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
        host_load = host.stop() if host is not None else None
    return _Window(
        records,
        latencies,
        closed - opened,
        reading,
        energy_error,
        arrivals_s,
        passes,
        required_s,
        target,
        host_load,
    )


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


def _adjusted_energy(
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


def _metrics(
    window: _Window,
    baseline: BaselineReading | None,
    info: ModelInfo,
    backend: InferenceBackend,
    config: ExperimentConfig,
) -> Metrics:
    records = window.records
    output_tokens = sum(r.output_tokens for r in records)
    input_tokens = sum(r.input_tokens for r in records)
    seconds = window.seconds
    reading = window.reading
    energy = reading.energy_j if reading is not None else None
    energy_window_s = reading.duration_s if reading is not None else seconds
    adjusted, null_reason = _adjusted_energy(energy, energy_window_s, baseline)
    if null_reason is not None:  # never fall back to raw silently: the figures are null
        basis, basis_energy = "adjusted", None
    elif adjusted is not None:
        basis, basis_energy = "adjusted", adjusted
    elif energy is not None:
        basis, basis_energy = "raw", energy
    else:
        basis, basis_energy = None, None
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
    itls = [gap for r in records for gap in r.inter_token_s]
    method = getattr(backend, "peak_memory_method", "unavailable")
    latency = summarize(window.latencies_s)
    assert latency is not None, "a measured window always holds at least one request"
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
        latency_s=latency,
        ttft_s=summarize(ttfts),
        itl_s=summarize(itls),
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
        ttft_from_arrival_s=summarize(ttfts_arrival),
        tpot_s=summarize(tpots),
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
            passes=window.passes,
            required_window_s=window.required_s,
            target_error_pct=window.target_error_pct,
            host_load=window.host_load,
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
        device_info=[dict(d) for d in reading.device_records],
        update_period_s=reading.update_period_s,
        update_period_method=reading.update_period_method,
        error_bound_pct=reading.error_bound_pct(),
        target_error_pct=window.target_error_pct,
        required_window_s=window.required_s,
        passes=window.passes,
        power_method=reading.power_method,
        crosscheck=crosscheck(reading),
        other_processes=[dict(p) for p in reading.other_processes],
        unknown_processes=[dict(p) for p in reading.unknown_processes],
        host_load=window.host_load,
        mig_whole_gpu=reading.mig_whole_gpu,
        state_start=[dict(d) for d in reading.state_start],
        state_end=[dict(d) for d in reading.state_end],
    )


def quality_flags(
    metrics: Metrics,
    energy: EnergyProvenance,
    warmup: _Warmup,
    baseline: BaselineReading | None,
    config: ExperimentConfig,
) -> list[QualityFlag]:
    """What limits how far this result can be trusted (codes: see QualityFlag)."""
    flags: list[QualityFlag] = []

    def flag(code: str, severity: Literal["warning", "untrusted"], message: str) -> None:
        flags.append(QualityFlag(code=code, severity=severity, message=message))

    if energy.unavailable_reason:
        flag("energy_unavailable", "warning", f"no energy reading: {energy.unavailable_reason}")
    if metrics.energy_adjusted_null_reason:
        # a warning, not untrusted: the raw energy stands, and dropping these cycles would
        # leave the config summarised on the subset whose baseline happened to be lower
        flag("adjusted_energy_nonpositive", "warning", metrics.energy_adjusted_null_reason)
    bound, target = energy.error_bound_pct, energy.target_error_pct
    if energy.unavailable_reason is None:
        if bound is not None and target is not None and bound > target * 1.001:
            flag(
                "window_too_short",
                "untrusted",
                f"the {energy.window_s or 0:.3g} s window has a quantisation error bound of "
                f"{bound:.2g}% (update period {(energy.update_period_s or 0) * 1000:.0f} ms), "
                f"above the {target:g}% target; lengthen it (energy.min_window_s) or allow a "
                "larger error (energy.max_error_pct)",
            )
        elif bound is None and target is not None:
            flag(
                "error_bound_unknown",
                "warning",
                f"the {energy.source} source's update period is not known "
                f"({energy.update_period_method or 'the source does not report it'}), so its "
                "quantisation error is not bounded",
            )
    others = list(energy.other_processes)
    if baseline is not None:
        others += [{**p, "seen": "during the baseline"} for p in baseline.other_processes]
    if others:
        pids = sorted({int(p["pid"]) for p in others})
        flag(
            "gpu_contended",
            "untrusted",
            f"other processes used a measured GPU (pids {', '.join(map(str, pids))}): their "
            "energy is in the reading",
        )
    adjusted = metrics.energy_adjusted_j
    if baseline is not None and baseline.error_bound_pct is not None and adjusted is not None:
        spread_j = baseline.power_w * baseline.error_bound_pct / 100.0 * (energy.window_s or 0)
        if spread_j >= adjusted:
            flag(
                "baseline_error_unresolvable",
                "warning",
                f"the idle baseline's own error bound ({baseline.error_bound_pct:.2g}% counter "
                f"quantisation over its {baseline.duration_s:.3g} s) is {spread_j:.4g} J over "
                f"this window, not less than the adjusted energy {adjusted:.4g} J: lengthen "
                "baseline.duration_sec; the raw energy stands",
            )
    if baseline is not None and machine_busy(baseline.host_load):
        flag(
            "machine_busy",
            "warning",
            "other processes used "
            f"{(baseline.host_load or {}).get('other_cpu_share_pct', 0):.0f}% of all CPU time "
            "while the idle baseline was taken: it is not an idle baseline of the whole host CPU",
        )
    if machine_busy(energy.host_load):
        load = energy.host_load or {}
        flag(
            "machine_busy",
            "warning",
            f"other processes used {load['other_cpu_share_pct']:.0f}% of all CPU time during "
            f"the window (worst {load['other_cpu_share_max_pct']:.0f}%, above "
            f"{BUSY_OTHER_SHARE_PCT:g}%; load average {load['load_average_1m_min']}-"
            f"{load['load_average_1m_max']}): the {energy.source} energy covers the whole host "
            "CPU, so their work is in it, and throughput may be slowed",
        )
    if energy.unknown_processes:
        pids = sorted({int(p["pid"]) for p in energy.unknown_processes})
        flag(
            "gpu_process_unknown",
            "warning",
            f"NVML listed PID(s) {', '.join(map(str, pids))} on a measured GPU that do not "
            "exist in this PID namespace: this process under its host PID (a container whose "
            "driver does not translate PIDs) or another job, whose energy would be in the "
            "reading",
        )
    check = energy.crosscheck
    if (
        check is not None
        and check["allowance_pct"] is not None
        and check["disagreement_pct"] > check["allowance_pct"]
    ):
        flag(
            "energy_crosscheck_disagreement",
            "untrusted",
            f"energy counter {check['counter_j']:.4g} J vs integral of polled power "
            f"{check['polled_j']:.4g} J: {check['disagreement_pct']:.1f}% apart, more than "
            f"the {check['allowance_pct']:.1f}% allowed; one of them is not seeing the load",
        )
    if energy.mig_whole_gpu:
        flag(
            "mig_whole_gpu",
            "warning",
            "a MIG-enabled GPU was measured whole: every instance and tenant on it is counted",
        )
    if warmup.prompts and config.warmup.convergence_detection and not warmup.converged:
        flag(
            "warmup_not_converged",
            "warning",
            f"warmup ended after {warmup.prompts} prompts without steady {warmup.converged_on} "
            f"(CV {f'{warmup.final_cv:.1%}' if warmup.final_cv is not None else 'n/a'})",
        )
    return flags


def _device_state(source: EnergySource) -> list[dict[str, Any]] | None:
    """The measured devices' P-state, clocks and temperature now, if the source can tell."""
    read = getattr(source, "device_state", None)
    if read is None:
        return None
    try:
        state: list[dict[str, Any]] = read()
    except LLEMError as err:
        logger.warning("device state unavailable: {}", err.what)
        return None
    return state


def _temperature_bucket(value: Any) -> str:
    return "?" if not isinstance(value, (int, float)) else f"{int(value) // 10 * 10}s"


def baseline_scope(config: ExperimentConfig) -> str:
    """This process and the model it holds: a baseline is reused only by them unless
    ``baseline.reuse_across_runs`` (another process or model may leave the GPU otherwise)."""
    return f"process={os.getpid()}@{_PROCESS_STARTED}|model={model_load_key(config)}"


def _local_hhmm(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M")
    except ValueError:
        return iso


def baseline_cache_key(
    info: ModelInfo, state: list[dict[str, Any]] | None, scope: str | None = None
) -> str:
    """The device set (UUIDs) and the state the baseline was taken in: model resident,
    P-state and temperature in 10 C steps per device (clocks follow the P-state), and the
    ``scope`` (see baseline_scope) when reuse is limited to it."""
    devices = ",".join(d.uuid or d.label for d in info.devices) or "devices unreported"
    parts = [f"devices={devices}", "model-resident", *([scope] if scope else [])]
    for entry in state or []:
        parts.append(
            f"{entry.get('uuid')}:{entry.get('pstate')}:{_temperature_bucket(entry.get('temperature_c'))}C"
        )
    return "|".join(parts)


def _timeseries_csv(reading: EnergyReading) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["t_s", "power_w", "temperature_c"])
    for sample in reading.samples:
        writer.writerow([f"{sample.t_s:.4f}", f"{sample.power_w:.3f}", sample.temperature_c])
    return buffer.getvalue()


ENGINE_MODULES: dict[str, tuple[str, ...]] = {
    "pytorch": ("torch", "transformers"),
    "vllm": ("torch", "vllm"),
    "tensorrt": ("tensorrt_llm",),
}
"""The libraries each backend imports: timed on their own, not hidden in the model load."""


def import_engine(backend: str) -> float:
    """Seconds to import ``backend``'s libraries (~0 when this process already has them). One
    that fails to import is left to the backend, whose load says why."""
    started = time.perf_counter()
    for module in ENGINE_MODULES.get(backend, ()):
        try:
            importlib.import_module(module)
        except Exception:  # the backend's load() turns this into one clear message
            break
    return time.perf_counter() - started


def _load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _threads() -> dict[str, Any]:
    """The thread settings the window ran with: on a shared CPU they change timings many-fold."""
    import sys

    torch = sys.modules.get("torch")
    return {
        "torch_num_threads": torch.get_num_threads() if torch is not None else None,
        "torch_num_interop_threads": torch.get_num_interop_threads() if torch is not None else None,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
    }


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

    host = host_lock.acquire(host_lock.energy_scope(config.energy.source), say)
    try:
        say(f"importing {config.backend}'s libraries")
        import_s = import_engine(config.backend)
        say("environment")
        environment = collect_environment()  # after the import: torch can say if CUDA works
        say(f"loading {config.model.name} ({config.backend}, {config.fp_precision})")
        backend, info, reused = pool.acquire(config)
        source = select_energy_source(
            config.energy.source,
            sample_interval_ms=config.energy.sample_interval_ms,
            timeseries=config.timeseries.enabled,
            timeseries_interval_ms=config.timeseries.sample_interval_ms,
            tdp_w=config.energy.tdp_w,
            devices=info.devices or None,
            allow_mig_whole_gpu=config.energy.allow_mig_whole_gpu,
        )
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
                count=config.warmup.prompt_limit,
            )
            if config.warmup.enabled
            else []
        )
        say(f"warmup (up to {len(warmup_prompts)} prompts)")
        warmup = _warmup(backend, config, warmup_prompts, getattr(source, "power_now_w", None))
        baseline, baseline_started = None, time.perf_counter()
        if config.baseline.enabled:
            backend.synchronize()
            state = _device_state(source)
            scope = None if config.baseline.reuse_across_runs else baseline_scope(config)
            baseline = measure_baseline(
                source,
                config.baseline.duration_sec,
                ttl_sec=config.baseline.cache_ttl_sec,
                cache_key=baseline_cache_key(info, state, scope),
                when=BASELINE_WHEN,
                state=state,
                read_state=lambda: _device_state(source),
                host=HostLoadSampler() if getattr(source, "covers_host_cpu", False) else None,
                on_measure=lambda: say(
                    f"idle baseline ({config.baseline.duration_sec:g} s, {source.name})"
                ),
            )
            if baseline.from_cache:
                say(f"idle baseline cached from {_local_hhmm(baseline.measured_at)}")
        baseline_s = time.perf_counter() - baseline_started
        say(f"measuring {len(prompts)} prompts")
        load_before = _load_average()
        window = _measured_window(backend, source, config, prompts)
        environment["load_average_1m"] = {
            "window_start": load_before,
            "window_end": _load_average(),
        }
        environment["threads"] = _threads()
        metrics = _metrics(window, baseline, info, backend, config)
    finally:
        if models is None:
            pool.release()
        host.release()
    energy = _provenance(window, baseline, source)

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
            "non_embedding_parameters": info.non_embedding_parameters,
            "devices": [d.to_dict() for d in info.devices],
            "notes": [*info.notes, *warmup.notes],
        },
        metrics=metrics,
        energy=energy,
        timings=Timings(
            started_at=started_at,
            finished_at=_now(),
            total_s=time.perf_counter() - started,
            baseline_s=baseline_s,
            import_s=import_s,
            model_load_s=0.0 if reused else info.load_time_s,
            model_reused=reused,
            warmup_s=warmup.seconds,
            warmup_prompts=warmup.prompts,
            warmup_converged=warmup.converged,
            warmup_final_cv=warmup.final_cv,
            measured_window_s=window.seconds,
            warmup_power_cv=warmup.power_cv,
            warmup_converged_on=warmup.converged_on,
            measured_passes=window.passes,
            host_wait_s=host.waited_s,
            host_lock=host.scope,
        ),
        flags=quality_flags(metrics, energy, warmup, baseline, config),
        timeseries_file=TIMESERIES_FILE
        if window.reading is not None and window.reading.samples
        else None,
    )
    series = (
        _timeseries_csv(window.reading)
        if result.timeseries_file and window.reading is not None
        else None
    )
    result.save(output_dir / experiment_id, timeseries_csv=series)
    return result
