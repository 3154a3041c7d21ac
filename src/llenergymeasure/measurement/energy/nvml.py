"""NVIDIA GPU energy through NVML (nvidia-ml-py, imported lazily).

Volta and newer GPUs keep a cumulative energy counter (mJ); reading it at start and stop is
cheap and exact to the counter's resolution (method "counter"). Older GPUs lack it, so a
background thread polls power (mW) and integrates it (method "polling"). NVML error codes
are translated here, once, into the project's exceptions.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from llenergymeasure.exceptions import ConfigError, ExperimentError, LLEMError, UnavailableError
from llenergymeasure.measurement.energy.base import (
    Availability,
    EnergyMethod,
    EnergyOptions,
    EnergyReading,
    PeriodicSampler,
    PowerSample,
    trapezoid_energy_j,
)

COUNTER_RESOLUTION_S = 0.1  # the energy counter updates only every ~100 ms on some GPUs
MIN_POLL_SAMPLES = 3
_INSTALL_FIX = "pip install 'llenergymeasure[nvidia]' (installs nvidia-ml-py)"
_OTHER_SOURCES = "or choose energy source 'rapl' or 'estimate'"

# NVML clock event ("throttle") reason bits; stable across driver versions.
_REASON_BITS: tuple[tuple[int, str], ...] = (
    (0x2, "APPLICATIONS_CLOCKS_SETTING"),
    (0x4, "SW_POWER_CAP"),
    (0x8, "HW_SLOWDOWN"),
    (0x10, "SYNC_BOOST"),
    (0x20, "SW_THERMAL_SLOWDOWN"),
    (0x40, "HW_THERMAL_SLOWDOWN"),
    (0x80, "HW_POWER_BRAKE_SLOWDOWN"),
    (0x100, "DISPLAY_CLOCK_SETTING"),
)  # 0x1 GPU_IDLE is left out: an idle GPU is not throttled.

# NVML return codes (NVML_ERROR_*), stable ABI values.
_NOT_SUPPORTED = 3
_NO_PERMISSION = 4
_DRIVER_NOT_LOADED = 9
_LIBRARY_NOT_FOUND = 12
_FUNCTION_NOT_FOUND = 13
_GPU_IS_LOST = 15
_LIB_RM_VERSION_MISMATCH = 18
_UNSUPPORTED_CODES = frozenset({_NOT_SUPPORTED, _FUNCTION_NOT_FOUND})

_UNAVAILABLE_EXPLANATIONS: dict[int, tuple[str, str]] = {
    _LIBRARY_NOT_FOUND: (
        "the NVIDIA driver library (libnvidia-ml.so.1) was not found",
        f"install the NVIDIA driver (in a container: run with --gpus all), {_OTHER_SOURCES}",
    ),
    _DRIVER_NOT_LOADED: (
        "the NVIDIA kernel driver is not loaded",
        f"load the driver so that `nvidia-smi` works, {_OTHER_SOURCES}",
    ),
    _NO_PERMISSION: (
        "NVML refused access (NVML_ERROR_NO_PERMISSION)",
        "run as a user allowed to open /dev/nvidia* (e.g. root or the video group; in a "
        "container pass --gpus all)",
    ),
    _LIB_RM_VERSION_MISMATCH: (
        "the NVML library and the loaded kernel driver have different versions",
        "reboot, or reload the nvidia kernel module after a driver upgrade",
    ),
    _NOT_SUPPORTED: (
        "this GPU or driver does not support the NVML query",
        _OTHER_SOURCES.removeprefix("or "),
    ),
    _FUNCTION_NOT_FOUND: (
        "the installed NVIDIA driver is too old for the NVML query",
        f"upgrade the NVIDIA driver, {_OTHER_SOURCES}",
    ),
}


def throttle_reason_names(mask: int) -> tuple[str, ...]:
    """Names of the clock-limiting reasons set in an NVML reason bitmask."""
    return tuple(name for bit, name in _REASON_BITS if mask & bit)


def _translate(err: Exception, doing: str) -> LLEMError:
    """Map an NVMLError to UnavailableError (absent/refused) or ExperimentError (failed)."""
    code = getattr(err, "value", None)
    if code in _UNAVAILABLE_EXPLANATIONS:
        explanation, fix = _UNAVAILABLE_EXPLANATIONS[code]
        return UnavailableError(
            f"NVML energy is not available here: {explanation} (while {doing})", fix=fix
        )
    if code == _GPU_IS_LOST:
        return ExperimentError(
            f"the GPU fell off the bus while {doing} (NVML_ERROR_GPU_IS_LOST)",
            fix="check `nvidia-smi` and the kernel log; the GPU likely needs a reset",
        )
    return ExperimentError(f"NVML failed while {doing}: {err} (NVML error code {code})")


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as err:
        raise UnavailableError(
            "NVML energy is not available here: nvidia-ml-py (pynvml) is not installed",
            fix=_INSTALL_FIX,
        ) from err
    return pynvml


def _text(value: Any) -> str:
    """Old bindings return bytes for strings."""
    return value.decode() if isinstance(value, bytes) else str(value)


class _Lib:
    """The pynvml module, with every call's NVMLError translated at this one boundary."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def call(self, fn_name: str, *args: Any, doing: str) -> Any:
        try:
            return getattr(self.module, fn_name)(*args)
        except self.module.NVMLError as err:
            raise _translate(err, doing) from err

    def optional(self, fn_name: str, *args: Any, doing: str) -> Any | None:
        """Like call(), but None when this GPU, driver or binding lacks the query."""
        fn = getattr(self.module, fn_name, None)
        if fn is None:
            return None
        try:
            return fn(*args)
        except self.module.NVMLError as err:
            if getattr(err, "value", None) in _UNSUPPORTED_CODES:
                return None
            raise _translate(err, doing) from err

    def shutdown_quietly(self) -> None:
        """Shut NVML down; a failure here must not mask the result or the real error."""
        with suppress(self.module.NVMLError):
            self.module.nvmlShutdown()

    def reason_mask(self, handle: Any) -> int:
        mask = self.optional("nvmlDeviceGetCurrentClocksEventReasons", handle, doing="reading")
        if mask is None:  # drivers/bindings before the "event reasons" rename
            mask = self.optional(
                "nvmlDeviceGetCurrentClocksThrottleReasons", handle, doing="reading"
            )
        return int(mask or 0)

    def temperature_c(self, handle: Any) -> float | None:
        sensor = getattr(self.module, "NVML_TEMPERATURE_GPU", 0)
        value = self.optional("nvmlDeviceGetTemperature", handle, sensor, doing="reading")
        return None if value is None else float(value)


@dataclass(frozen=True)
class _Device:
    nvml_index: int
    label: str  # "cuda:0 NVIDIA H100 (index 3)"
    handle: Any = field(compare=False, repr=False)


@contextmanager
def _nvml_session() -> Iterator[_Lib]:
    lib = _Lib(_import_pynvml())
    lib.call("nvmlInit", doing="initialising NVML")
    try:
        yield lib
    finally:
        lib.shutdown_quietly()


def _visible_devices(lib: _Lib) -> tuple[list[_Device], list[str]]:
    """GPUs visible to CUDA, in CUDA order, plus notes on how the selection was read.

    Honours CUDA_VISIBLE_DEVICES like CUDA does: integer indices or (prefixes of) GPU UUIDs,
    empty means none, and the list ends at the first entry that names no GPU.
    """
    count = int(lib.call("nvmlDeviceGetCount", doing="counting GPUs"))
    handles = [
        lib.call("nvmlDeviceGetHandleByIndex", i, doing="opening a GPU") for i in range(count)
    ]
    names = [_text(lib.call("nvmlDeviceGetName", h, doing="reading a GPU name")) for h in handles]
    notes: list[str] = []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        selected = list(range(count))
    else:
        selected = []
        uuids: list[str] | None = None
        for entry in (e.strip() for e in env.split(",")):
            if not entry:
                continue
            if entry.startswith("MIG-"):
                raise UnavailableError(
                    f"NVML energy is not available for MIG instances ({entry})",
                    fix="measure on a whole GPU: NVML energy counters are per physical GPU",
                )
            index: int | None = None
            if entry.startswith("GPU-"):
                if uuids is None:
                    uuids = [
                        _text(lib.call("nvmlDeviceGetUUID", h, doing="reading a GPU UUID"))
                        for h in handles
                    ]
                matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
                index = matches[0] if len(matches) == 1 else None
            elif entry.lstrip("-").isdigit() and 0 <= int(entry) < count:
                index = int(entry)
            if index is None:
                notes.append(
                    f"CUDA_VISIBLE_DEVICES entry {entry!r} names no GPU here; like CUDA, "
                    "it and the entries after it are ignored"
                )
                break
            if index not in selected:
                selected.append(index)
    if len(set(names)) > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        notes.append(
            "GPUs of different models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA may "
            "number GPUs differently from NVML; set CUDA_DEVICE_ORDER=PCI_BUS_ID"
        )
    devices = [
        _Device(i, f"cuda:{pos} {names[i]} (index {i})", handles[i])
        for pos, i in enumerate(selected)
    ]
    return devices, notes


def _require_devices(devices: list[_Device]) -> None:
    if devices:
        return
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        raise UnavailableError(
            f"NVML energy is not available here: CUDA_VISIBLE_DEVICES={env!r} makes no GPU visible",
            fix="set CUDA_VISIBLE_DEVICES to the GPUs to measure, or unset it",
        )
    raise UnavailableError(
        "NVML energy is not available here: NVML found no NVIDIA GPU",
        fix=f"run on a machine with an NVIDIA GPU, {_OTHER_SOURCES}",
    )


def _counter_mj(lib: _Lib, device: _Device) -> int | None:
    """The device's cumulative energy counter in mJ, or None when the GPU has none."""
    value = lib.optional(
        "nvmlDeviceGetTotalEnergyConsumption",
        device.handle,
        doing=f"reading the energy counter of {device.label}",
    )
    return None if value is None else int(value)


@functools.lru_cache(maxsize=8)
def _probe_for(cuda_visible_devices: str | None) -> Availability:
    try:
        with _nvml_session() as lib:
            devices, notes = _visible_devices(lib)
            _require_devices(devices)
            has_counter = all(_counter_mj(lib, d) is not None for d in devices)
    except LLEMError as err:
        return Availability(False, err.what, err.fix)
    labels = ", ".join(d.label for d in devices)
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


def gpu_temperatures_c() -> dict[int, float]:
    """Current temperature of each visible GPU, keyed by NVML index (for thermal waits).

    GPUs that do not report a temperature are left out. Raises UnavailableError without NVML.
    """
    with _nvml_session() as lib:
        devices, _ = _visible_devices(lib)
        _require_devices(devices)
        temps = {d.nvml_index: lib.temperature_c(d.handle) for d in devices}
    return {index: t for index, t in temps.items() if t is not None}


def power_limits_w() -> dict[int, float]:
    """Enforced power limit of each visible GPU in W, keyed by NVML index."""
    limits: dict[int, float] = {}
    with _nvml_session() as lib:
        devices, _ = _visible_devices(lib)
        _require_devices(devices)
        for d in devices:
            limit_mw = lib.optional(
                "nvmlDeviceGetEnforcedPowerLimit", d.handle, doing="reading the power limit"
            )
            if limit_mw is not None:
                limits[d.nvml_index] = limit_mw / 1000.0
    return limits


def nvml_inventory() -> dict[str, Any]:
    """JSON-ready description of every physical GPU (for the environment snapshot).

    Raises UnavailableError when NVML cannot be used; queries a GPU lacks become None.
    """
    with _nvml_session() as lib:
        visible, notes = _visible_devices(lib)
        visible_index = {d.nvml_index for d in visible}
        cuda_version = lib.optional("nvmlSystemGetCudaDriverVersion", doing="reading")
        gpus = []
        for i in range(int(lib.call("nvmlDeviceGetCount", doing="counting GPUs"))):
            handle = lib.call("nvmlDeviceGetHandleByIndex", i, doing="opening a GPU")
            memory = lib.optional("nvmlDeviceGetMemoryInfo", handle, doing="reading memory")
            limit_mw = lib.optional(
                "nvmlDeviceGetPowerManagementLimit", handle, doing="reading the power limit"
            )
            enforced_mw = lib.optional(
                "nvmlDeviceGetEnforcedPowerLimit", handle, doing="reading the power limit"
            )
            capability = lib.optional(
                "nvmlDeviceGetCudaComputeCapability", handle, doing="reading the capability"
            )
            uuid = lib.optional("nvmlDeviceGetUUID", handle, doing="reading a GPU UUID")
            gpus.append(
                {
                    "index": i,
                    "name": _text(lib.call("nvmlDeviceGetName", handle, doing="reading")),
                    "uuid": None if uuid is None else _text(uuid),
                    "visible": i in visible_index,
                    "memory_total_bytes": None if memory is None else int(memory.total),
                    "power_limit_w": None if limit_mw is None else limit_mw / 1000.0,
                    "enforced_power_limit_w": None if enforced_mw is None else enforced_mw / 1000.0,
                    "compute_capability": (
                        None if capability is None else f"{capability[0]}.{capability[1]}"
                    ),
                    "energy_counter": _counter_mj(lib, _Device(i, f"index {i}", handle))
                    is not None,
                }
            )
        driver = lib.optional("nvmlSystemGetDriverVersion", doing="reading the driver version")
        return {
            "driver_version": None if driver is None else _text(driver),
            "cuda_driver_version": (
                None
                if cuda_version is None
                else f"{int(cuda_version) // 1000}.{int(cuda_version) % 1000 // 10}"
            ),
            "gpus": gpus,
            "notes": notes,
        }


class _Sampler:
    """What the window watches between start and stop: clock-limit reasons always, and power
    and temperature when polling or when a time series was asked for.

    The first and last samples are taken by the caller, so a polled integral covers the
    whole window.
    """

    def __init__(
        self, lib: _Lib, devices: list[_Device], interval_s: float, t0: float, power: bool
    ) -> None:
        self._lib = lib
        self._devices = devices
        self._t0 = t0
        self._power = power
        self._thread = PeriodicSampler(self.sample, interval_s, t0, "llem-nvml-sampler")
        self.times_s: list[float] = []
        self.device_power_w: list[dict[str, float]] = []
        self.temperatures_c: list[float | None] = []
        self.reason_mask = 0

    def sample(self) -> None:
        t_s = time.perf_counter() - self._t0
        for d in self._devices:
            self.reason_mask |= self._lib.reason_mask(d.handle)
        if not self._power:
            return
        powers = {
            d.label: self._lib.call("nvmlDeviceGetPowerUsage", d.handle, doing="reading power")
            / 1000.0
            for d in self._devices
        }
        temps = [t for d in self._devices if (t := self._lib.temperature_c(d.handle)) is not None]
        self.times_s.append(t_s)
        self.device_power_w.append(powers)
        self.temperatures_c.append(max(temps) if temps else None)

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def halt(self) -> None:
        """Stop the thread; the caller takes the final sample when it chooses."""
        self._thread.halt()

    def power_samples(self) -> tuple[PowerSample, ...]:
        return tuple(
            PowerSample(t_s=t, power_w=sum(p.values()), device_power_w=p, temperature_c=temp)
            for t, p, temp in zip(
                self.times_s, self.device_power_w, self.temperatures_c, strict=True
            )
        )


@dataclass
class _Window:
    lib: _Lib
    devices: list[_Device]
    notes: list[str]
    method: EnergyMethod
    sampler: _Sampler
    t0: float
    start_mj: dict[str, int]


class NVMLEnergySource:
    """GPU energy of the CUDA-visible GPUs over a start()/stop() window.

    A background thread checks clock-limit ("throttle") reasons every ``sample_interval_ms``
    in every mode; it also samples power and temperature when polling or when ``timeseries``
    is set. NVML is initialised in start() and shut down in stop().
    """

    name = "nvml"

    def __init__(self, *, sample_interval_ms: float = 100.0, timeseries: bool = False) -> None:
        if sample_interval_ms <= 0:
            raise ConfigError(f"sample_interval_ms must be > 0, got {sample_interval_ms}")
        self.sample_interval_ms = sample_interval_ms
        self.timeseries = timeseries
        self.method: EnergyMethod = "counter"
        self._devices: tuple[str, ...] | None = None
        self._window: _Window | None = None

    @classmethod
    def from_options(cls, options: EnergyOptions) -> NVMLEnergySource:
        return cls(sample_interval_ms=options.sample_interval_ms, timeseries=options.timeseries)

    @staticmethod
    def availability(options: EnergyOptions) -> Availability:
        return probe()

    @property
    def devices(self) -> tuple[str, ...]:
        """Labels of the GPUs this source measures (queries NVML once if not yet started)."""
        if self._devices is None:
            with _nvml_session() as lib:
                devices, _ = _visible_devices(lib)
                _require_devices(devices)
            self._devices = tuple(d.label for d in devices)
        return self._devices

    def start(self) -> None:
        if self._window is not None:
            raise ExperimentError("NVML energy window started twice without stop()")
        lib = _Lib(_import_pynvml())
        lib.call("nvmlInit", doing="initialising NVML")
        try:
            devices, notes = _visible_devices(lib)
            _require_devices(devices)
            start_mj: dict[str, int] = {}
            for d in devices:
                value = _counter_mj(lib, d)
                if value is None:
                    start_mj = {}
                    break
                start_mj[d.label] = value
            t0 = time.perf_counter()
            method: EnergyMethod = "counter" if start_mj else "polling"
            sampler = _Sampler(
                lib,
                devices,
                self.sample_interval_ms / 1000.0,
                t0,
                power=method == "polling" or self.timeseries,
            )
            sampler.start()
        except BaseException:
            lib.shutdown_quietly()
            raise
        self.method = method
        self._devices = tuple(d.label for d in devices)
        self._window = _Window(lib, devices, notes, method, sampler, t0, start_mj)

    def stop(self) -> EnergyReading:
        window = self._window
        if window is None:
            raise ExperimentError("NVML energy window stopped without start()")
        self._window = None
        try:
            return self._finish(window)
        finally:
            window.lib.shutdown_quietly()

    def _finish(self, w: _Window) -> EnergyReading:
        w.sampler.halt()
        if w.method == "counter":
            end_mj = {d.label: _counter_mj(w.lib, d) for d in w.devices}
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
            warning = (
                f"window of {duration_s:.3f} s is shorter than the NVML energy counter's "
                f"update period (~{COUNTER_RESOLUTION_S * 1000:.0f} ms on some GPUs); the "
                "energy may be under- or over-counted"
                if duration_s < COUNTER_RESOLUTION_S
                else None
            )
        else:
            w.sampler.sample()
            times = w.sampler.times_s
            duration_s = times[-1] - times[0]
            per_device_j = {
                d.label: trapezoid_energy_j(times, [p[d.label] for p in w.sampler.device_power_w])
                for d in w.devices
            }
            warning = (
                f"only {len(times)} power samples in a {duration_s:.3f} s window at "
                f"{self.sample_interval_ms:g} ms; at least {MIN_POLL_SAMPLES} are needed for a "
                "meaningful integral (lengthen the window or shorten sample_interval_ms)"
                if len(times) < MIN_POLL_SAMPLES
                else None
            )
        reasons = throttle_reason_names(w.sampler.reason_mask)
        notes = list(w.notes)
        if reasons:
            notes.append(f"clock limit reasons seen during the window: {', '.join(reasons)}")
        sampled_power = self.timeseries or w.method == "polling"
        return EnergyReading(
            source=self.name,
            method=w.method,
            energy_j=sum(per_device_j.values()),
            duration_s=duration_s,
            devices=tuple(d.label for d in w.devices),
            per_device_energy_j=per_device_j,
            sample_interval_ms=self.sample_interval_ms if sampled_power else None,
            is_estimate=False,
            resolution_warning=warning,
            samples=w.sampler.power_samples() if self.timeseries else (),
            notes=tuple(notes),
            throttle_reasons=reasons,
        )
