"""The measured window: whole passes over the prompts inside one energy window, until it is
long enough for the source's error bound; the device synchronised at both ends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import LLEMError
from llenergymeasure.log import logger
from llenergymeasure.measurement.energy import EnergyReading, EnergySource
from llenergymeasure.measurement.host_load import HostLoadSampler
from llenergymeasure.measurement.inference.base import (
    InferenceBackend,
    RequestRecord,
    SelfSchedulingBackend,
)
from llenergymeasure.measurement.workload import arrival_offsets_s, request_batches


@dataclass(frozen=True)
class MeasuredWindow:
    """What the measured window ran and read (the reading is None when energy failed)."""

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


@dataclass
class _Requests:
    """The window's requests so far, each with its arrival time and latency."""

    records: list[RequestRecord] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    arrivals_s: list[float | None] = field(default_factory=list)

    def add(self, record: RequestRecord, arrived: float | None) -> None:
        self.arrivals_s.append(arrived)
        self.latencies_s.append(record.end_s - (arrived or record.start_s))
        self.records.append(record)


def _run_pass(
    backend: InferenceBackend,
    config: ExperimentConfig,
    prompts: list[str],
    batches: list[list[int]],
    requests: _Requests,
) -> None:
    """One whole pass over the prompts; with traffic, each request once it has arrived."""
    pass_opened = time.perf_counter()
    arrivals = arrival_offsets_s(config, len(prompts))
    if isinstance(backend, SelfSchedulingBackend):  # the whole pass: the engine batches
        arrived_at = [pass_opened + a for a in arrivals] if arrivals is not None else None
        for index, record in enumerate(backend.generate_pass(prompts, arrived_at)):
            requests.add(record, arrived_at[index] if arrived_at is not None else None)
    for batch in batches:
        if arrivals is not None:  # dispatch once the batch's last request has arrived
            wait = pass_opened + max(arrivals[i] for i in batch) - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        batch_records = backend.generate([prompts[i] for i in batch])
        for index, record in zip(batch, batch_records, strict=True):
            requests.add(record, pass_opened + arrivals[index] if arrivals is not None else None)


def measure_window(
    backend: InferenceBackend, source: EnergySource, config: ExperimentConfig, prompts: list[str]
) -> MeasuredWindow:
    """Whole passes over the prompts, inside one energy window, until it is long enough."""
    own_batches = isinstance(backend, SelfSchedulingBackend)
    batches = [] if own_batches else request_batches(config, [len(p) for p in prompts])
    requests = _Requests()
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
            _run_pass(backend, config, prompts, batches, requests)
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
    return MeasuredWindow(
        requests.records,
        requests.latencies_s,
        closed - opened,
        reading,
        energy_error,
        requests.arrivals_s,
        passes,
        required_s,
        target,
        host_load,
    )
