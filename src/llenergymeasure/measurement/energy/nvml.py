"""NVIDIA GPU energy through NVML, over the GPUs of ``devices.nvidia``.

Volta and newer GPUs keep a cumulative energy counter (mJ); reading it at start and stop is
cheap and exact to the counter's resolution (method "counter"). Older GPUs lack it, so a
background thread polls power (mW) and integrates it (method "polling").

What is measured: exactly the GPUs the inference backend reports or, used on its own without
that list, the GPUs that ``CUDA_VISIBLE_DEVICES`` makes visible (``devices.nvidia``). A GPU
in MIG mode is refused unless the config allows measuring it whole. Other processes on a
measured GPU are recorded.

How far a reading can be trusted: the counter only moves every ~20-100 ms, so its update
period is measured at the first start() and the reading carries the quantisation error
bound ``period / window``. In every mode power is also polled (instant power,
``NVML_FI_DEV_POWER_INSTANT``, where the GPU has it; else the averaged
``nvmlDeviceGetPowerUsage``, said so) and its integral is compared with the counter.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llenergymeasure.devices.base import GPU, DeviceRef, gpu_devices
from llenergymeasure.devices.counter_period import measure_update_period
from llenergymeasure.devices.nvidia import (
    NVML,
    NvidiaGPU,
    measured_gpus,
    nvml_session,
    open_nvml,
    require_gpus,
    throttle_reason_names,
    visible_gpus,
)
from llenergymeasure.devices.processes import ProcessAttribution
from llenergymeasure.exceptions import ConfigError, ExperimentError, LLEMError
from llenergymeasure.measurement.energy.base import (
    Availability,
    EnergyMethod,
    EnergyOptions,
    EnergyReading,
    PeriodicSampler,
    PowerSample,
    trapezoid_energy_j,
)

COUNTER_RESOLUTION_S = 0.1  # nominal update period, only until start() probes it
PERIOD_PROBE_TIMEOUT_S = 1.0  # give up after this long (see measure_update_period)
TARGET_ERROR_PCT = 1.0  # the counter quantisation error bound a window must reach
# A floor under K x period: >= 10 polled power samples at the default 100 ms for the
# cross-check, and the averaged-power fallback's 1-s lag is a fraction of the window.
DEFAULT_MIN_WINDOW_S = 1.0
MIN_POLL_SAMPLES = 3


@functools.lru_cache(maxsize=8)
def _probe_for(cuda_visible_devices: str | None) -> Availability:
    try:
        with nvml_session() as nvml:
            gpus, notes = visible_gpus(nvml)
            require_gpus(gpus)
            has_counter = all(g.energy_mj() is not None for g in gpus)
    except LLEMError as err:
        return Availability(False, err.what, err.fix)
    labels = ", ".join(g.label for g in gpus)
    how = (
        "energy counter supported"
        if has_counter
        else "no energy counter (pre-Volta GPU?): power will be polled and integrated"
    )
    return Availability(True, "; ".join([f"NVIDIA GPU(s) visible: {labels}", how, *notes]))


def probe() -> Availability:
    """Can NVML measure energy here? Cached per CUDA_VISIBLE_DEVICES value; never raises."""
    return _probe_for(os.environ.get("CUDA_VISIBLE_DEVICES"))


def clear_probe_cache() -> None:
    """Forget cached probe results (tests, or after the driver state changed)."""
    _probe_for.cache_clear()


class _Sampler:
    """What the window watches between start and stop: clock-limit reasons, power (instant
    where supported) and temperature, every ``interval_s``.

    The first and last samples are taken by the caller, so a polled integral covers the
    whole window. The time series keeps samples at least ``series_interval_s`` apart.
    """

    def __init__(
        self,
        gpus: Sequence[GPU],
        interval_s: float,
        t0: float,
        *,
        instant: dict[int, bool],
        series_interval_s: float | None,
    ) -> None:
        self._gpus = gpus
        self._t0 = t0
        self.instant = instant
        self._series_interval_s = series_interval_s
        self._thread = PeriodicSampler(self.sample, interval_s, t0, "llem-nvml-sampler")
        self.times_s: list[float] = []
        self.device_power_w: list[dict[str, float]] = []
        self.temperatures_c: list[float | None] = []
        self.series: list[int] = []  # indices of the samples kept for the time series
        self.reason_mask = 0
        self.contention = ProcessAttribution()

    def _power_w(self, gpu: GPU) -> float:
        return gpu.power_w() if self.instant[gpu.index] else gpu.averaged_power_w()

    def sample(self) -> None:
        t_s = time.perf_counter() - self._t0
        for g in self._gpus:
            self.reason_mask |= g.clock_limit_mask()
            self.contention.observe(g, t_s)
        powers = {g.label: self._power_w(g) for g in self._gpus}
        temps = [t for g in self._gpus if (t := g.temperature_c()) is not None]
        self.times_s.append(t_s)
        self.device_power_w.append(powers)
        self.temperatures_c.append(max(temps) if temps else None)
        if self._series_interval_s is not None:
            last = self.times_s[self.series[-1]] if self.series else None
            # 5% slack: a sampler deadline a hair early must not drop every other sample
            if last is None or t_s - last >= 0.95 * self._series_interval_s:
                self.series.append(len(self.times_s) - 1)

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def halt(self) -> None:
        """Stop the thread; the caller takes the final sample when it chooses."""
        self._thread.halt()

    def energy_j(self, label: str) -> float:
        return trapezoid_energy_j(self.times_s, [p[label] for p in self.device_power_w])

    def power_samples(self) -> tuple[PowerSample, ...]:
        return tuple(
            PowerSample(
                t_s=self.times_s[i],
                power_w=sum(self.device_power_w[i].values()),
                device_power_w=self.device_power_w[i],
                temperature_c=self.temperatures_c[i],
            )
            for i in self.series
        )


@dataclass
class _Window:
    nvml: NVML
    devices: list[NvidiaGPU]
    notes: list[str]
    method: EnergyMethod
    sampler: _Sampler
    t0: float
    start_mj: dict[str, int]
    state_start: list[dict[str, Any]]


def _power_method(instant: dict[int, bool]) -> str:
    if all(instant.values()):
        return "instant: nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)"
    return (
        "averaged: nvmlDeviceGetPowerUsage (this GPU or driver has no instant power field; "
        "on Ampere (except GA100) and newer it is a 1-s moving average, so it lags the load)"
    )


class NVMLEnergySource:
    """GPU energy of exactly the backend's GPUs (or the CUDA-visible ones) over a
    start()/stop() window.

    A background thread reads clock-limit ("throttle") reasons, power and temperature every
    ``sample_interval_ms``; the power integral is the energy when the GPU has no counter and
    the cross-check when it has. NVML is initialised in start() and shut down in stop().
    """

    name = "nvml"
    target_error_pct = TARGET_ERROR_PCT
    default_min_window_s = DEFAULT_MIN_WINDOW_S

    def __init__(
        self,
        *,
        sample_interval_ms: float = 100.0,
        timeseries: bool = False,
        timeseries_interval_ms: float | None = None,
        devices: tuple[DeviceRef, ...] | None = None,
        allow_mig_whole_gpu: bool = False,
        period_probe_timeout_s: float | None = None,
    ) -> None:
        if sample_interval_ms <= 0:
            raise ConfigError(f"sample_interval_ms must be > 0, got {sample_interval_ms}")
        if timeseries_interval_ms is not None and timeseries_interval_ms <= 0:
            raise ConfigError(f"timeseries interval must be > 0, got {timeseries_interval_ms}")
        self.timeseries = timeseries
        self.timeseries_interval_ms = timeseries_interval_ms or sample_interval_ms
        # one sampler thread serves both, at the finer interval
        self.sample_interval_ms = (
            min(sample_interval_ms, self.timeseries_interval_ms)
            if timeseries
            else sample_interval_ms
        )
        self.refs = gpu_devices(devices)
        self.allow_mig_whole_gpu = allow_mig_whole_gpu
        self.period_probe_timeout_s = period_probe_timeout_s
        self.method: EnergyMethod = "counter"
        self.update_period_s: float | None = COUNTER_RESOLUTION_S
        self.update_period_method: str | None = None
        self._devices: tuple[str, ...] | None = None
        self._window: _Window | None = None

    @classmethod
    def from_options(cls, options: EnergyOptions) -> NVMLEnergySource:
        return cls(
            sample_interval_ms=options.sample_interval_ms,
            timeseries=options.timeseries,
            timeseries_interval_ms=options.timeseries_interval_ms,
            devices=options.devices,
            allow_mig_whole_gpu=options.allow_mig_whole_gpu,
        )

    @staticmethod
    def availability(options: EnergyOptions) -> Availability:
        refs = gpu_devices(options.devices)
        if refs is not None and not refs:
            return Availability(
                False,
                "the model runs on no NVIDIA GPU, so NVML would measure GPUs that do none of "
                "the work",
                fix="run the model on a GPU (pytorch.device: cuda), or choose energy source "
                "'rapl' or 'estimate'",
            )
        return probe()

    @property
    def devices(self) -> tuple[str, ...]:
        """Labels of the GPUs this source measures (queries NVML once if not yet started)."""
        if self._devices is None:
            with nvml_session() as nvml:
                gpus, _ = self._open(nvml)
            self._devices = tuple(g.label for g in gpus)
        return self._devices

    def _open(self, nvml: NVML) -> tuple[list[NvidiaGPU], list[str]]:
        return measured_gpus(nvml, self.refs, self.allow_mig_whole_gpu)

    def device_state(self) -> list[dict[str, Any]]:
        """Each measured GPU's P-state, clocks, temperature and power, now."""
        with nvml_session() as nvml:
            gpus, _ = self._open(nvml)
            return [g.state() for g in gpus]

    def power_now_w(self) -> float:
        """Total power of the measured GPUs now (instant where supported)."""
        with nvml_session() as nvml:
            gpus, _ = self._open(nvml)
            return sum((g.power_w() for g in gpus), 0.0)

    def _counter_start(self, gpus: list[NvidiaGPU]) -> dict[str, int]:
        """Each GPU's counter at the window's start (probing its update period the first
        time); empty when a GPU has no counter, so power is polled instead."""
        start_mj: dict[str, int] = {}
        for g in gpus:
            value = g.energy_mj()
            if value is None:
                self.update_period_s = self.sample_interval_ms / 1000.0
                self.update_period_method = "the polling interval (no energy counter)"
                return {}
            start_mj[g.label] = value
        if self.update_period_method is None:
            timeout = (
                PERIOD_PROBE_TIMEOUT_S
                if self.period_probe_timeout_s is None
                else self.period_probe_timeout_s
            )
            self.update_period_s, self.update_period_method = measure_update_period(gpus, timeout)
            start_mj = {g.label: g.energy_mj() or 0 for g in gpus}
        return start_mj

    def start(self) -> None:
        if self._window is not None:
            raise ExperimentError("NVML energy window started twice without stop()")
        nvml = open_nvml()
        try:
            gpus, notes = self._open(nvml)
            start_mj = self._counter_start(gpus)
            method: EnergyMethod = "counter" if start_mj else "polling"
            instant = {g.index: g.instant_power_w() is not None for g in gpus}
            state_start = [g.state() for g in gpus]
            t0 = time.perf_counter()
            sampler = _Sampler(
                gpus,
                self.sample_interval_ms / 1000.0,
                t0,
                instant=instant,
                series_interval_s=self.timeseries_interval_ms / 1000.0 if self.timeseries else None,
            )
            sampler.start()
        except BaseException:
            nvml.shutdown_quietly()
            raise
        self.method = method
        self._devices = tuple(g.label for g in gpus)
        self._window = _Window(nvml, gpus, notes, method, sampler, t0, start_mj, state_start)

    def stop(self) -> EnergyReading:
        window = self._window
        if window is None:
            raise ExperimentError("NVML energy window stopped without start()")
        self._window = None
        try:
            return self._finish(window)
        finally:
            window.nvml.shutdown_quietly()

    def _counter_energy(self, w: _Window) -> tuple[float, dict[str, float], str | None]:
        """The window's length, each GPU's counter delta in J, and a resolution warning."""
        end_mj = {d.label: d.energy_mj() for d in w.devices}
        duration_s = time.perf_counter() - w.t0
        w.sampler.sample()
        per_device_j: dict[str, float] = {}
        for label, start in w.start_mj.items():
            end = end_mj[label]
            if end is None:
                raise ExperimentError(
                    f"the NVML energy counter of {label} stopped answering during the window"
                )
            if end < start:
                raise ExperimentError(
                    f"the NVML energy counter of {label} went backwards during the window",
                    fix="the driver was reloaded or the GPU reset; repeat the measurement",
                )
            per_device_j[label] = (end - start) / 1000.0
        period = self.update_period_s
        warning = (
            f"window of {duration_s:.3f} s is shorter than the NVML energy counter's "
            f"update period ({period * 1000:.0f} ms); the energy may be under- or "
            "over-counted"
            if period is not None and duration_s < period
            else None
        )
        return duration_s, per_device_j, warning

    def _polled_energy(self, w: _Window) -> tuple[float, dict[str, float], str | None]:
        """The window's length, each GPU's integral of polled power, and a warning when too
        few samples make the integral meaningless."""
        w.sampler.sample()
        times = w.sampler.times_s
        duration_s = times[-1] - times[0]
        per_device_j = {d.label: w.sampler.energy_j(d.label) for d in w.devices}
        warning = (
            f"only {len(times)} power samples in a {duration_s:.3f} s window at "
            f"{self.sample_interval_ms:g} ms; at least {MIN_POLL_SAMPLES} are needed for a "
            "meaningful integral (lengthen the window or shorten sample_interval_ms)"
            if len(times) < MIN_POLL_SAMPLES
            else None
        )
        return duration_s, per_device_j, warning

    def _finish(self, w: _Window) -> EnergyReading:
        w.sampler.halt()
        read = self._counter_energy if w.method == "counter" else self._polled_energy
        duration_s, per_device_j, warning = read(w)
        unknown = w.sampler.contention.unknown()
        state_end = [d.state() for d in w.devices]
        reasons = throttle_reason_names(w.sampler.reason_mask)
        return EnergyReading(
            source=self.name,
            method=w.method,
            energy_j=sum(per_device_j.values()),
            duration_s=duration_s,
            devices=tuple(d.label for d in w.devices),
            per_device_energy_j=per_device_j,
            sample_interval_ms=self.sample_interval_ms,
            is_estimate=False,
            resolution_warning=warning,
            samples=w.sampler.power_samples() if self.timeseries else (),
            notes=tuple(_window_notes(w, unknown, reasons)),
            throttle_reasons=reasons,
            device_records=tuple(d.record() for d in w.devices),
            update_period_s=self.update_period_s,
            update_period_method=self.update_period_method,
            power_method=_power_method(w.sampler.instant),
            polled_energy_j=sum(w.sampler.energy_j(d.label) for d in w.devices),
            polled_samples=len(w.sampler.times_s),
            other_processes=w.sampler.contention.others(),
            unknown_processes=unknown,
            mig_whole_gpu=any(d.mig_enabled for d in w.devices),
            state_start=tuple(w.state_start),
            state_end=tuple(state_end),
        )


def _window_notes(
    w: _Window, unknown: tuple[dict[str, Any], ...], reasons: tuple[str, ...]
) -> list[str]:
    """What a reader of the reading must know: the devices' selection, unresolved PIDs, clock
    limits, MIG."""
    notes = list(w.notes)
    if unknown:
        notes.append(
            f"NVML listed PID(s) {', '.join(str(p['pid']) for p in unknown)} on a measured "
            "GPU that do not exist in this PID namespace, and none of ours: this process "
            "under its host PID (a container whose driver does not translate PIDs) or "
            "another container's job; reported as unknown"
        )
    if reasons:
        notes.append(f"clock limit reasons seen during the window: {', '.join(reasons)}")
    if any(d.mig_enabled for d in w.devices):
        notes.append(
            "MIG mode is on: the whole physical GPU was measured (every instance and "
            "tenant), as energy.allow_mig_whole_gpu allows"
        )
    return notes
