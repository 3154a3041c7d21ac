"""NVIDIA GPU energy through NVML (nvidia-ml-py, imported lazily).

Volta and newer GPUs keep a cumulative energy counter (mJ); reading it at start and stop is
cheap and exact to the counter's resolution (method "counter"). Older GPUs lack it, so a
background thread polls power (mW) and integrates it (method "polling"). NVML error codes
are translated here, once, into the project's exceptions.

What is measured: exactly the GPUs the inference backend reports (opened by UUID with
``nvmlDeviceGetHandleByUUID``), or, used on its own without that list, the GPUs that
``CUDA_VISIBLE_DEVICES`` makes visible. A GPU in MIG mode is refused unless the config
allows measuring it whole. Other processes on a measured GPU are recorded.

How far a reading can be trusted: the counter only moves every ~20-100 ms, so its update
period is measured at the first start() and the reading carries the quantisation error
bound ``period / window``. In every mode power is also polled (instant power,
``NVML_FI_DEV_POWER_INSTANT``, where the GPU has it; else the averaged
``nvmlDeviceGetPowerUsage``, said so) and its integral is compared with the counter.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llenergymeasure.exceptions import ConfigError, ExperimentError, LLEMError, UnavailableError
from llenergymeasure.measurement.devices import DeviceRef, gpu_devices
from llenergymeasure.measurement.energy.base import (
    Availability,
    EnergyMethod,
    EnergyOptions,
    EnergyReading,
    PeriodicSampler,
    PowerSample,
    trapezoid_energy_j,
)
from llenergymeasure.measurement.energy.nvml_settings import gpu_settings

PROC_ROOT = Path("/proc")  # where this PID namespace's processes are listed
COUNTER_RESOLUTION_S = 0.1  # nominal update period, only until start() probes it
PERIOD_PROBE_STEPS = 4  # counter changes watched to measure its update period
PERIOD_PROBE_TIMEOUT_S = 1.0  # give up after this long (see _measure_update_period)
TARGET_ERROR_PCT = 1.0  # the counter quantisation error bound a window must reach
# Counter vs integral of polled power: above this disagreement (on top of both readings' own
# resolution) one of them is not seeing the load. NVIDIA documents board power readings to
# about +-5% and A100/H100 sensors sample only part of each 100 ms, so two honest readings
# of a steady load differ by a few %, never by 10%.
CROSSCHECK_THRESHOLD_PCT = 10.0
# A floor under K x period: >= 10 polled power samples at the default 100 ms for the
# cross-check, and the averaged-power fallback's 1-s lag is a fraction of the window.
DEFAULT_MIN_WINDOW_S = 1.0
AVERAGED_POWER_LAG_S = 1.0  # nvmlDeviceGetPowerUsage is a 1-s moving average on Ampere+
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

    def instant_power_w(self, handle: Any) -> float | None:
        """NVML_FI_DEV_POWER_INSTANT in W, or None when this GPU/driver does not report it."""
        field_id = getattr(self.module, "NVML_FI_DEV_POWER_INSTANT", None)
        if field_id is None:
            return None
        values = self.optional("nvmlDeviceGetFieldValues", handle, [field_id], doing="reading")
        if not values:
            return None
        value = values[0]
        if int(value.nvmlReturn) != 0:
            return None
        milliwatts = _field_number(self.module, value)
        return None if milliwatts is None else milliwatts / 1000.0

    def averaged_power_w(self, handle: Any) -> float:
        return float(self.call("nvmlDeviceGetPowerUsage", handle, doing="reading power")) / 1000.0

    def compute_processes(self, handle: Any) -> list[dict[str, Any]]:
        """Every compute process NVML lists on the GPU (ours included)."""
        procs = self.optional(
            "nvmlDeviceGetComputeRunningProcesses", handle, doing="listing GPU processes"
        )
        return [
            {"pid": int(p.pid), "used_gpu_memory_bytes": getattr(p, "usedGpuMemory", None)}
            for p in procs or []
        ]


class _Contention:
    """The compute processes seen on the measured GPUs at any sample of a window (a union).

    Each listed PID is ours (this process or a child, such as an engine worker), another
    process (it exists in this PID namespace), or unresolved: a PID missing from ``/proc``.
    Drivers that do not translate PIDs into a container's namespace list host PIDs
    (NVIDIA/nvidia-docker#1483), so an unresolved PID may be this very process, or a job in
    another container: it is reported as unknown, never taken to be ours. Once NVML has
    listed one of our PIDs as we know them it does translate, so an unresolved PID then is
    another namespace's process.
    """

    def __init__(self) -> None:
        self._own = _own_pids()
        self._ours_listed = False
        self._others: dict[tuple[int, int], dict[str, Any]] = {}
        self._unknown: dict[tuple[int, int], dict[str, Any]] = {}

    def observe(self, lib: _Lib, device: _Device, t_s: float) -> None:
        for p in lib.compute_processes(device.handle):
            key = (device.nvml_index, p["pid"])
            known = self._others.get(key) or self._unknown.get(key)
            if known is not None:
                known["last_seen_s"] = t_s
                continue
            if p["pid"] not in self._own:
                self._own = _own_pids()  # a child started since the last look
            if p["pid"] in self._own:
                self._ours_listed = True
                continue
            exists = (PROC_ROOT / str(p["pid"])).exists()
            record = {"device": device.label, **p, "first_seen_s": t_s, "last_seen_s": t_s}
            (self._others if exists else self._unknown)[key] = record

    def others(self) -> tuple[dict[str, Any], ...]:
        found = dict(self._others)
        if self._ours_listed:
            found.update(self._unknown)
        return tuple(found[key] for key in sorted(found))

    def unknown(self) -> tuple[dict[str, Any], ...]:
        if self._ours_listed:
            return ()
        return tuple(self._unknown[key] for key in sorted(self._unknown))


def _field_number(module: Any, value: Any) -> float | None:
    """The number in a c_nvmlFieldValue_t, read by its valueType."""
    by_type = {
        getattr(module, "NVML_VALUE_TYPE_DOUBLE", 0): "dVal",
        getattr(module, "NVML_VALUE_TYPE_UNSIGNED_INT", 1): "uiVal",
        getattr(module, "NVML_VALUE_TYPE_UNSIGNED_LONG", 2): "ulVal",
        getattr(module, "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG", 3): "ullVal",
        getattr(module, "NVML_VALUE_TYPE_SIGNED_LONG_LONG", 4): "sllVal",
        getattr(module, "NVML_VALUE_TYPE_SIGNED_INT", 5): "siVal",
    }
    attr = by_type.get(int(value.valueType))
    return None if attr is None else float(getattr(value.value, attr))


def _own_pids() -> frozenset[int]:
    """This process and its children (engines may run workers)."""
    pids = {os.getpid()}
    with suppress(Exception):
        import psutil

        pids.update(c.pid for c in psutil.Process().children(recursive=True))
    return frozenset(pids)


@dataclass(frozen=True)
class _Device:
    nvml_index: int
    label: str  # "cuda:0 NVIDIA H100 (index 3)"
    handle: Any = field(compare=False, repr=False)
    name: str = ""
    uuid: str | None = None
    cuda_index: int | None = None
    mig_enabled: bool = False

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "nvml_index": self.nvml_index,
            "cuda_index": self.cuda_index,
            "mig_enabled": self.mig_enabled,
            "label": self.label,
        }


def _mig_enabled(lib: _Lib, handle: Any) -> bool:
    modes = lib.optional("nvmlDeviceGetMigMode", handle, doing="reading the MIG mode")
    if not modes:
        return False  # MIG not supported by this GPU
    return int(modes[0]) == int(getattr(lib.module, "NVML_DEVICE_MIG_ENABLE", 1))


def _mig_refused(device_text: str) -> UnavailableError:
    return UnavailableError(
        f"{device_text} is in MIG mode: NVML's energy counter and power readings cover the "
        "whole physical GPU, every MIG instance and every tenant on it, not the instance the "
        "model runs on",
        fix="measure on a GPU without MIG (nvidia-smi -i N -mig 0), or set "
        "energy.allow_mig_whole_gpu: true to measure the whole GPU anyway (labelled in the "
        "result)",
    )


def _devices_by_uuid(
    lib: _Lib, refs: tuple[DeviceRef, ...], allow_mig: bool
) -> tuple[list[_Device], list[str]]:
    """Exactly the GPUs the backend reported, opened by UUID."""
    devices: list[_Device] = []
    notes: list[str] = []
    for ref in refs:
        if ref.uuid is None:
            raise UnavailableError(
                f"NVML cannot tell which GPU cuda:{ref.cuda_index} is: torch reported no UUID "
                "for it",
                fix="use a torch build that reports device UUIDs (torch >= 2.0), or set "
                "CUDA_VISIBLE_DEVICES to the one GPU in use",
            )
        uuid = ref.uuid
        try:
            handle = lib.module.nvmlDeviceGetHandleByUUID(uuid)
        except lib.module.NVMLError as err:
            if getattr(err, "value", None) != getattr(lib.module, "NVML_ERROR_NOT_FOUND", 6):
                raise _translate(err, f"opening GPU {uuid}") from err
            if not uuid.startswith("GPU-"):
                raise UnavailableError(f"NVML knows no GPU with UUID {uuid}") from err
            mig_uuid = "MIG-" + uuid.removeprefix("GPU-")
            try:  # torch reports a MIG instance's UUID without its prefix
                lib.module.nvmlDeviceGetHandleByUUID(mig_uuid)
            except lib.module.NVMLError:
                raise UnavailableError(
                    f"NVML knows no GPU with UUID {uuid} (the GPU torch uses as "
                    f"cuda:{ref.cuda_index})",
                    fix="check that torch and NVML see the same driver (nvidia-smi -L)",
                ) from err
            uuid = mig_uuid
        if uuid.startswith("MIG-"):
            if not allow_mig:
                raise _mig_refused(f"cuda:{ref.cuda_index} (MIG instance {uuid})")
            mig_handle = lib.call("nvmlDeviceGetHandleByUUID", uuid, doing="opening a MIG device")
            handle = lib.call(
                "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
                mig_handle,
                doing="finding the GPU of a MIG instance",
            )
            uuid = _text(lib.call("nvmlDeviceGetUUID", handle, doing="reading a GPU UUID"))
        index = int(lib.call("nvmlDeviceGetIndex", handle, doing="reading a GPU index"))
        name = _text(lib.call("nvmlDeviceGetName", handle, doing="reading a GPU name"))
        mig = _mig_enabled(lib, handle)
        if mig and not allow_mig:
            raise _mig_refused(f"GPU {index} ({name}, {uuid}, the model's cuda:{ref.cuda_index})")
        if any(d.uuid == uuid for d in devices):
            continue  # two MIG instances of one GPU: measure it once
        devices.append(
            _Device(
                index,
                f"cuda:{ref.cuda_index} {name} (index {index})",
                handle,
                name=name,
                uuid=uuid,
                cuda_index=ref.cuda_index,
                mig_enabled=mig,
            )
        )
    return devices, notes


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
        _Device(
            i,
            f"cuda:{pos} {names[i]} (index {i})",
            handles[i],
            name=names[i],
            uuid=_text(lib.optional("nvmlDeviceGetUUID", handles[i], doing="reading") or "")
            or None,
            cuda_index=pos,
        )
        for pos, i in enumerate(selected)
    ]
    return devices, notes


def _measured_devices(
    lib: _Lib, refs: tuple[DeviceRef, ...] | None, allow_mig: bool
) -> tuple[list[_Device], list[str]]:
    """The backend's GPUs by UUID when it said which; else the CUDA-visible ones."""
    if refs is not None:
        return _devices_by_uuid(lib, refs, allow_mig)
    devices, notes = _visible_devices(lib)
    marked = []
    for d in devices:
        mig = _mig_enabled(lib, d.handle)
        if mig and not allow_mig:
            raise _mig_refused(f"GPU {d.nvml_index} ({d.name}, {d.uuid})")
        marked.append(_Device(**{**d.__dict__, "mig_enabled": mig}))
    return marked, notes


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


def device_state(lib: _Lib, device: _Device) -> dict[str, Any]:
    """P-state, SM/memory clocks (current, application, max), temperature, power, as now."""
    m = lib.module
    sm, mem = getattr(m, "NVML_CLOCK_SM", 1), getattr(m, "NVML_CLOCK_MEM", 2)

    def opt(fn: str, *args: Any) -> Any:
        return lib.optional(fn, device.handle, *args, doing=f"reading the state of {device.label}")

    pstate = opt("nvmlDeviceGetPerformanceState")
    instant = lib.instant_power_w(device.handle)
    return {
        "uuid": device.uuid,
        "pstate": None
        if pstate is None or int(pstate) == getattr(m, "NVML_PSTATE_UNKNOWN", 32)
        else f"P{int(pstate)}",
        "sm_clock_mhz": opt("nvmlDeviceGetClockInfo", sm),
        "memory_clock_mhz": opt("nvmlDeviceGetClockInfo", mem),
        "application_sm_clock_mhz": opt("nvmlDeviceGetApplicationsClock", sm),
        "application_memory_clock_mhz": opt("nvmlDeviceGetApplicationsClock", mem),
        "max_sm_clock_mhz": opt("nvmlDeviceGetMaxClockInfo", sm),
        "temperature_c": lib.temperature_c(device.handle),
        "power_w": instant if instant is not None else lib.averaged_power_w(device.handle),
        "clock_event_reasons": list(throttle_reason_names(lib.reason_mask(device.handle))),
    }


def _measure_update_period(
    lib: _Lib, devices: list[_Device], timeout_s: float
) -> tuple[float | None, str]:
    """How often the energy counters move: the longest gap between their changes.

    Polls every device's counter every ~0.5 ms until each moved ``PERIOD_PROBE_STEPS`` times
    (or ``timeout_s`` passed). The longest gap (not the median) is kept, so an irregular
    counter is not credited with a finer resolution than it has. A counter too slow to
    measure is never given a nominal period: one that moved twice within the timeout updates
    at least that often, so the timeout is its period (method ``probe_timeout``); one that
    moved less has no known period (None: the error bound is unknown and flagged).
    """
    last: dict[int, int | None] = {d.nvml_index: _counter_mj(lib, d) for d in devices}
    changes: dict[int, list[float]] = {d.nvml_index: [] for d in devices}
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        now = time.perf_counter()
        for d in devices:
            value = _counter_mj(lib, d)
            if value != last[d.nvml_index]:
                last[d.nvml_index] = value
                changes[d.nvml_index].append(now)
        if all(len(c) >= PERIOD_PROBE_STEPS for c in changes.values()):
            break
        time.sleep(0.0005)
    fewest = min(len(times) for times in changes.values())
    if fewest < 2:
        return None, (
            f"unknown: a counter moved {fewest} time(s) in the {timeout_s:g} s probe, too few "
            "to bound its update period"
        )
    if fewest < 3:
        return timeout_s, (
            f"probe_timeout: a counter moved only {fewest} times in the {timeout_s:g} s probe, "
            f"too few to measure its update period; the timeout ({timeout_s * 1000:.0f} ms) is "
            "taken as the period, an upper bound for a counter that moved twice within it"
        )
    period = max(max(b - a for a, b in itertools.pairwise(times)) for times in changes.values())
    return period, (
        f"measured at source start: longest gap between {PERIOD_PROBE_STEPS} successive "
        f"counter changes, {period * 1000:.1f} ms"
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


def indices_of(uuids: list[str]) -> list[int]:
    """NVML indices of GPUs given by UUID (raises LLEMError without NVML)."""
    with _nvml_session() as lib:
        return [
            int(
                lib.call(
                    "nvmlDeviceGetIndex",
                    lib.call("nvmlDeviceGetHandleByUUID", uuid, doing=f"opening GPU {uuid}"),
                    doing="reading a GPU index",
                )
            )
            for uuid in uuids
        ]


def nvml_inventory() -> dict[str, Any]:
    """JSON-ready description of every physical GPU (for the environment snapshot): identity,
    memory, energy counter and the settings of ``gpu_settings`` (persistence, ECC, MIG,
    clocks, power limits).

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
                    "compute_capability": (
                        None if capability is None else f"{capability[0]}.{capability[1]}"
                    ),
                    "energy_counter": _counter_mj(lib, _Device(i, f"index {i}", handle))
                    is not None,
                    **gpu_settings(lib.module, handle),
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
    """What the window watches between start and stop: clock-limit reasons, power (instant
    where supported) and temperature, every ``interval_s``.

    The first and last samples are taken by the caller, so a polled integral covers the
    whole window. The time series keeps samples at least ``series_interval_s`` apart.
    """

    def __init__(
        self,
        lib: _Lib,
        devices: list[_Device],
        interval_s: float,
        t0: float,
        *,
        instant: dict[int, bool],
        series_interval_s: float | None,
    ) -> None:
        self._lib = lib
        self._devices = devices
        self._t0 = t0
        self._instant = instant
        self._series_interval_s = series_interval_s
        self._thread = PeriodicSampler(self.sample, interval_s, t0, "llem-nvml-sampler")
        self.times_s: list[float] = []
        self.device_power_w: list[dict[str, float]] = []
        self.temperatures_c: list[float | None] = []
        self.series: list[int] = []  # indices of the samples kept for the time series
        self.reason_mask = 0
        self.contention = _Contention()

    def _power_w(self, d: _Device) -> float:
        if self._instant[d.nvml_index]:
            value = self._lib.instant_power_w(d.handle)
            if value is not None:
                return value
        return self._lib.averaged_power_w(d.handle)

    def sample(self) -> None:
        t_s = time.perf_counter() - self._t0
        for d in self._devices:
            self.reason_mask |= self._lib.reason_mask(d.handle)
            self.contention.observe(self._lib, d, t_s)
        powers = {d.label: self._power_w(d) for d in self._devices}
        temps = [t for d in self._devices if (t := self._lib.temperature_c(d.handle)) is not None]
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
    lib: _Lib
    devices: list[_Device]
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
            with _nvml_session() as lib:
                devices, _ = _measured_devices(lib, self.refs, self.allow_mig_whole_gpu)
                _require_devices(devices)
            self._devices = tuple(d.label for d in devices)
        return self._devices

    def _open(self, lib: _Lib) -> tuple[list[_Device], list[str]]:
        devices, notes = _measured_devices(lib, self.refs, self.allow_mig_whole_gpu)
        _require_devices(devices)
        return devices, notes

    def device_state(self) -> list[dict[str, Any]]:
        """Each measured GPU's P-state, clocks, temperature and power, now."""
        with _nvml_session() as lib:
            devices, _ = self._open(lib)
            return [device_state(lib, d) for d in devices]

    def power_now_w(self) -> float:
        """Total power of the measured GPUs now (instant where supported)."""
        with _nvml_session() as lib:
            devices, _ = self._open(lib)
            total = 0.0
            for d in devices:
                instant = lib.instant_power_w(d.handle)
                total += instant if instant is not None else lib.averaged_power_w(d.handle)
            return total

    def start(self) -> None:
        if self._window is not None:
            raise ExperimentError("NVML energy window started twice without stop()")
        lib = _Lib(_import_pynvml())
        lib.call("nvmlInit", doing="initialising NVML")
        try:
            devices, notes = self._open(lib)
            start_mj: dict[str, int] = {}
            for d in devices:
                value = _counter_mj(lib, d)
                if value is None:
                    start_mj = {}
                    break
                start_mj[d.label] = value
            method: EnergyMethod = "counter" if start_mj else "polling"
            if method == "counter" and self.update_period_method is None:
                timeout = (
                    PERIOD_PROBE_TIMEOUT_S
                    if self.period_probe_timeout_s is None
                    else self.period_probe_timeout_s
                )
                self.update_period_s, self.update_period_method = _measure_update_period(
                    lib, devices, timeout
                )
                start_mj = {d.label: _counter_mj(lib, d) or 0 for d in devices}
            elif method == "polling":
                self.update_period_s = self.sample_interval_ms / 1000.0
                self.update_period_method = "the polling interval (no energy counter)"
            instant = {d.nvml_index: lib.instant_power_w(d.handle) is not None for d in devices}
            state_start = [device_state(lib, d) for d in devices]
            t0 = time.perf_counter()
            sampler = _Sampler(
                lib,
                devices,
                self.sample_interval_ms / 1000.0,
                t0,
                instant=instant,
                series_interval_s=self.timeseries_interval_ms / 1000.0 if self.timeseries else None,
            )
            sampler.start()
        except BaseException:
            lib.shutdown_quietly()
            raise
        self.method = method
        self._devices = tuple(d.label for d in devices)
        self._window = _Window(lib, devices, notes, method, sampler, t0, start_mj, state_start)

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
            period = self.update_period_s
            warning = (
                f"window of {duration_s:.3f} s is shorter than the NVML energy counter's "
                f"update period ({period * 1000:.0f} ms); the energy may be under- or "
                "over-counted"
                if period is not None and duration_s < period
                else None
            )
        else:
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
        unknown = w.sampler.contention.unknown()
        state_end = [device_state(w.lib, d) for d in w.devices]
        reasons = throttle_reason_names(w.sampler.reason_mask)
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
        instant = w.sampler._instant
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
            notes=tuple(notes),
            throttle_reasons=reasons,
            device_records=tuple(d.record() for d in w.devices),
            update_period_s=self.update_period_s,
            update_period_method=self.update_period_method,
            power_method=_power_method(instant),
            polled_energy_j=sum(w.sampler.energy_j(d.label) for d in w.devices),
            polled_samples=len(w.sampler.times_s),
            other_processes=w.sampler.contention.others(),
            unknown_processes=unknown,
            mig_whole_gpu=any(d.mig_enabled for d in w.devices),
            state_start=tuple(w.state_start),
            state_end=tuple(state_end),
        )


def crosscheck_allowance_pct(reading: EnergyReading) -> float | None:
    """How far counter and polled integral may disagree before the reading is flagged:
    ``CROSSCHECK_THRESHOLD_PCT`` plus both readings' own resolution over this window (the
    counter's update period, the sampling interval and, for averaged power, its 1-s lag)."""
    if reading.duration_s <= 0 or reading.sample_interval_ms is None:
        return None
    lag_s = AVERAGED_POWER_LAG_S if (reading.power_method or "").startswith("averaged") else 0.0
    period_s = reading.update_period_s or 0.0
    edge_s = period_s + reading.sample_interval_ms / 1000.0 + lag_s
    return CROSSCHECK_THRESHOLD_PCT + 100.0 * edge_s / reading.duration_s
