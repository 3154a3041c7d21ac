"""Warmup: batches until throughput (and power, where the source can read it) is steady, so
the measured window starts in the state it measures."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement.energy.base import PeriodicSampler
from llenergymeasure.measurement.inference.base import InferenceBackend, SelfSchedulingBackend
from llenergymeasure.measurement.workload import request_batches
from llenergymeasure.results.statistics import coefficient_of_variation

WARMUP_POWER_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Warmup:
    """How warmup went: what it ran, and whether it reached a steady state."""

    seconds: float
    prompts: int
    converged: bool
    final_cv: float | None
    power_cv: float | None = None
    converged_on: str | None = None
    notes: tuple[str, ...] = ()


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


def run_warmup(
    backend: InferenceBackend,
    config: ExperimentConfig,
    prompts: list[str],
    power_w: Callable[[], float] | None = None,
) -> Warmup:
    """Run batches until throughput's CV over ``window_size`` batches is below the threshold,
    and, when ``power_w`` can read the measured devices' power, power's CV too."""
    settings = config.warmup
    if not settings.enabled or not prompts:
        return Warmup(0.0, 0, False, None)
    started = time.perf_counter()
    throughputs: list[float] = []
    powers: list[float] = []
    used, cv, power_cv = 0, None, None
    watch = _PowerWatch(power_w) if power_w is not None else None
    own_batches = isinstance(backend, SelfSchedulingBackend)
    run = backend.generate_pass if isinstance(backend, SelfSchedulingBackend) else backend.generate
    with watch if watch is not None else contextlib.nullcontext():
        for batch in request_batches(
            config, [len(p) for p in prompts], self_scheduling=own_batches
        ):
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
    return Warmup(
        time.perf_counter() - started,
        used,
        converged,
        cv,
        power_cv,
        "throughput and power" if power_checked else "throughput",
        notes,
    )
