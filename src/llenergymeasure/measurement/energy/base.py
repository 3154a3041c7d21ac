"""The energy-source contract: what a reading is and what every source must provide.

A reading says *how* it was obtained (``method``) and whether it is an estimate, so a result
can never pass off a guess as a measurement. Units live in field names.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from llenergymeasure.devices.base import DeviceRef

if TYPE_CHECKING:
    from llenergymeasure.config.models import ExperimentConfig

EnergyMethod = Literal["counter", "polling", "rapl", "zeus", "codecarbon", "estimate"]


@dataclass(frozen=True)
class PowerSample:
    """One point of the optional power time series."""

    t_s: float  # seconds since start()
    power_w: float  # total across the source's devices
    device_power_w: dict[str, float] = field(default_factory=dict)
    temperature_c: float | None = None  # hottest device, when the source can tell

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_s": self.t_s,
            "power_w": self.power_w,
            "device_power_w": dict(self.device_power_w),
            "temperature_c": self.temperature_c,
        }


@dataclass(frozen=True)
class EnergyReading:
    """Energy over one start()/stop() window, with everything needed to judge it."""

    source: str  # "nvml" | "rapl" | "zeus" | "codecarbon" | "estimate"
    method: EnergyMethod
    energy_j: float  # total over all devices in the window
    duration_s: float  # window length
    devices: tuple[str, ...]
    per_device_energy_j: dict[str, float]
    sample_interval_ms: float | None  # None for counters read only at start/stop
    is_estimate: bool
    resolution_warning: str | None  # set when the window is too short for the source
    samples: tuple[PowerSample, ...] = ()  # only when a time series was requested
    notes: tuple[str, ...] = ()  # anything else a reader must know (wraps, throttling, ...)
    throttle_reasons: tuple[str, ...] = ()  # GPU clock-limit reasons seen during the window
    device_records: tuple[dict[str, Any], ...] = ()  # name, uuid, nvml_index, cuda_index
    update_period_s: float | None = None  # how often the reading can change (see method)
    update_period_method: str | None = None  # "measured ..." or "nominal ..."
    power_method: str | None = None  # how polled power was read (instant or averaged)
    polled_energy_j: float | None = None  # integral of the polled power samples
    polled_samples: int = 0
    other_processes: tuple[dict[str, Any], ...] = ()  # other processes on measured devices
    unknown_processes: tuple[dict[str, Any], ...] = ()  # listed PIDs that could not be resolved
    mig_whole_gpu: bool = False  # a MIG-enabled GPU measured as a whole (config allowed it)
    state_start: tuple[dict[str, Any], ...] = ()  # per device: P-state, clocks, temperature
    state_end: tuple[dict[str, Any], ...] = ()

    def error_bound_pct(self) -> float | None:
        """Worst-case counter quantisation error of ``energy_j``, in % (constant power).

        Each end of the window reads a counter that may be stale by up to one update period,
        so the energy covers a span within ``duration_s +- update_period_s``.
        """
        if self.update_period_s is None or self.duration_s <= 0:
            return None
        return 100.0 * self.update_period_s / self.duration_s

    @property
    def mean_power_w(self) -> float | None:
        """Mean power over the window; None for a zero-length window (no honest value)."""
        if self.duration_s <= 0:
            return None
        return self.energy_j / self.duration_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (no NaN/inf: those become None)."""
        return {
            "source": self.source,
            "method": self.method,
            "energy_j": _finite_or_none(self.energy_j),
            "duration_s": self.duration_s,
            "mean_power_w": _finite_or_none(self.mean_power_w),
            "devices": list(self.devices),
            "per_device_energy_j": dict(self.per_device_energy_j),
            "sample_interval_ms": self.sample_interval_ms,
            "is_estimate": self.is_estimate,
            "resolution_warning": self.resolution_warning,
            "throttle_reasons": list(self.throttle_reasons),
            "notes": list(self.notes),
            "samples": [s.to_dict() for s in self.samples],
            "device_records": [dict(d) for d in self.device_records],
            "update_period_s": self.update_period_s,
            "update_period_method": self.update_period_method,
            "error_bound_pct": _finite_or_none(self.error_bound_pct()),
            "power_method": self.power_method,
            "polled_energy_j": _finite_or_none(self.polled_energy_j),
            "polled_samples": self.polled_samples,
            "other_processes": [dict(p) for p in self.other_processes],
            "unknown_processes": [dict(p) for p in self.unknown_processes],
            "mig_whole_gpu": self.mig_whole_gpu,
        }


@dataclass(frozen=True)
class Availability:
    """Whether a source can be used here, and if not, why and what to do about it."""

    available: bool
    reason: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason, "fix": self.fix}


@dataclass(frozen=True)
class EnergyOptions:
    """Construction options shared by every source; each source uses what applies to it."""

    sample_interval_ms: float = 100.0
    timeseries: bool = False
    tdp_w: float | None = None
    rapl_root: Path | None = None
    timeseries_interval_ms: float | None = None  # None: the time series uses sample_interval_ms
    devices: tuple[DeviceRef, ...] | None = None  # what the model runs on; None: not known
    allow_mig_whole_gpu: bool = False

    @classmethod
    def for_experiment(
        cls, config: ExperimentConfig, devices: tuple[DeviceRef, ...] | None
    ) -> EnergyOptions:
        """The options an experiment's ``energy`` and ``timeseries`` sections ask for."""
        energy, series = config.energy, config.timeseries
        return cls(
            sample_interval_ms=energy.sample_interval_ms,
            timeseries=series.enabled,
            tdp_w=energy.tdp_w,
            timeseries_interval_ms=series.sample_interval_ms,
            devices=devices,
            allow_mig_whole_gpu=energy.allow_mig_whole_gpu,
        )


@runtime_checkable
class EnergySource(Protocol):
    """Measure energy over a window: ``start()``, do the work, ``stop()``.

    Sources do not synchronise the GPU: the caller must finish queued GPU work (e.g.
    ``torch.cuda.synchronize()``) before ``start()`` and before ``stop()``. ``method`` is the
    source's expected method; the reading's ``method`` is authoritative.

    Optional, duck-typed extras the harness uses when a source has them: ``devices`` (labels
    of what it measures, keyed into the baseline cache), ``update_period_s`` (how often its
    reading can change, nominal until ``start()`` measured it), ``target_error_pct`` (the
    quantisation error bound the window must reach), ``power_now_w()`` (one power reading,
    for warmup's steady-state check), ``device_state()`` (P-state, clocks, temperature) and
    ``covers_host_cpu`` (True when the energy covers the host CPU, so other processes' CPU
    use during the window is sampled and flagged: see measurement/host_load.py).
    """

    name: str
    method: EnergyMethod

    def start(self) -> None: ...

    def stop(self) -> EnergyReading: ...


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


def trapezoid_energy_j(times_s: Sequence[float], powers_w: Sequence[float]) -> float:
    """Integrate power samples over time (trapezoid rule); needs at least two samples."""
    if len(times_s) != len(powers_w):
        raise ValueError("times_s and powers_w must have the same length")
    return sum(
        (times_s[i] - times_s[i - 1]) * (powers_w[i] + powers_w[i - 1]) / 2.0
        for i in range(1, len(times_s))
    )


def module_available(name: str) -> bool:
    """Is a top-level module importable, without importing it (fakes in sys.modules count)?"""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class PeriodicSampler:
    """Call ``sample()`` in a daemon thread every ``interval_s``, on deadlines from ``t0``.

    Deadlines are absolute so the period does not drift; a slow sample skips missed slots
    instead of bursting. An exception in the thread stops it and is re-raised by ``halt()``
    in the caller's thread, so a failed sample is never silently dropped.
    """

    def __init__(self, sample: Callable[[], None], interval_s: float, t0: float, name: str):
        self._sample = sample
        self._interval_s = interval_s
        self._t0 = t0
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def halt(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        deadline = self._t0 + self._interval_s
        while not self._stop.wait(max(0.0, deadline - time.perf_counter())):
            try:
                self._sample()
            except Exception as err:  # re-raised by halt()
                self._error = err
                return
            deadline += self._interval_s
            now = time.perf_counter()
            if deadline < now:
                deadline = now + self._interval_s
