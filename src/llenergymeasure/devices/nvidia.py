"""NVIDIA GPUs through NVML (nvidia-ml-py, imported lazily, only here).

Every NVML call goes through ``NVML``, which translates NVML error codes once into the
project's exceptions. GPUs are found exactly as the inference backend reports them (opened by
UUID with ``nvmlDeviceGetHandleByUUID``) or, without that list, as ``CUDA_VISIBLE_DEVICES``
makes them visible; a GPU in MIG mode is refused unless the caller allows measuring it whole.
``NvidiaGPU`` is one opened GPU, implementing ``devices.base.GPU``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from llenergymeasure.devices.base import DeviceRef
from llenergymeasure.exceptions import ExperimentError, LLEMError, UnavailableError

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


def text(value: Any) -> str:
    """Old bindings return bytes for strings."""
    return value.decode() if isinstance(value, bytes) else str(value)


class NVML:
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


def open_nvml() -> NVML:
    """NVML, initialised; the caller shuts it down (``shutdown_quietly``) when done."""
    nvml = NVML(_import_pynvml())
    nvml.call("nvmlInit", doing="initialising NVML")
    return nvml


@contextmanager
def nvml_session() -> Iterator[NVML]:
    nvml = open_nvml()
    try:
        yield nvml
    finally:
        nvml.shutdown_quietly()


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


@dataclass(frozen=True)
class NvidiaGPU:
    """One physical NVIDIA GPU, opened in an NVML session (see ``devices.base.GPU``)."""

    index: int  # NVML's index
    label: str  # "cuda:0 NVIDIA H100 (index 3)"
    handle: Any = field(compare=False, repr=False)
    nvml: NVML = field(compare=False, repr=False)
    name: str = ""
    uuid: str | None = None
    cuda_index: int | None = None
    mig_enabled: bool = False

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "nvml_index": self.index,
            "cuda_index": self.cuda_index,
            "mig_enabled": self.mig_enabled,
            "label": self.label,
        }

    def energy_mj(self) -> int | None:
        value = self.nvml.optional(
            "nvmlDeviceGetTotalEnergyConsumption",
            self.handle,
            doing=f"reading the energy counter of {self.label}",
        )
        return None if value is None else int(value)

    def clock_limit_mask(self) -> int:
        nvml = self.nvml
        mask = nvml.optional("nvmlDeviceGetCurrentClocksEventReasons", self.handle, doing="reading")
        if mask is None:  # drivers/bindings before the "event reasons" rename
            mask = nvml.optional(
                "nvmlDeviceGetCurrentClocksThrottleReasons", self.handle, doing="reading"
            )
        return int(mask or 0)

    def temperature_c(self) -> float | None:
        sensor = getattr(self.nvml.module, "NVML_TEMPERATURE_GPU", 0)
        value = self.nvml.optional("nvmlDeviceGetTemperature", self.handle, sensor, doing="reading")
        return None if value is None else float(value)

    def instant_power_w(self) -> float | None:
        """NVML_FI_DEV_POWER_INSTANT in W, or None when this GPU/driver does not report it."""
        module = self.nvml.module
        field_id = getattr(module, "NVML_FI_DEV_POWER_INSTANT", None)
        if field_id is None:
            return None
        values = self.nvml.optional(
            "nvmlDeviceGetFieldValues", self.handle, [field_id], doing="reading"
        )
        if not values:
            return None
        value = values[0]
        if int(value.nvmlReturn) != 0:
            return None
        milliwatts = _field_number(module, value)
        return None if milliwatts is None else milliwatts / 1000.0

    def averaged_power_w(self) -> float:
        """nvmlDeviceGetPowerUsage: a 1-s moving average on Ampere (except GA100) and newer."""
        milliwatts = self.nvml.call("nvmlDeviceGetPowerUsage", self.handle, doing="reading power")
        return float(milliwatts) / 1000.0

    def power_w(self) -> float:
        instant = self.instant_power_w()
        return instant if instant is not None else self.averaged_power_w()

    def processes(self) -> list[dict[str, Any]]:
        """Every compute process NVML lists on the GPU (ours included)."""
        procs = self.nvml.optional(
            "nvmlDeviceGetComputeRunningProcesses", self.handle, doing="listing GPU processes"
        )
        return [
            {"pid": int(p.pid), "used_gpu_memory_bytes": getattr(p, "usedGpuMemory", None)}
            for p in procs or []
        ]

    def state(self) -> dict[str, Any]:
        """P-state, SM/memory clocks (current, application, max), temperature, power, as now."""
        m = self.nvml.module
        sm, mem = getattr(m, "NVML_CLOCK_SM", 1), getattr(m, "NVML_CLOCK_MEM", 2)

        def opt(fn: str, *args: Any) -> Any:
            return self.nvml.optional(
                fn, self.handle, *args, doing=f"reading the state of {self.label}"
            )

        pstate = opt("nvmlDeviceGetPerformanceState")
        return {
            "uuid": self.uuid,
            "pstate": None
            if pstate is None or int(pstate) == getattr(m, "NVML_PSTATE_UNKNOWN", 32)
            else f"P{int(pstate)}",
            "sm_clock_mhz": opt("nvmlDeviceGetClockInfo", sm),
            "memory_clock_mhz": opt("nvmlDeviceGetClockInfo", mem),
            "application_sm_clock_mhz": opt("nvmlDeviceGetApplicationsClock", sm),
            "application_memory_clock_mhz": opt("nvmlDeviceGetApplicationsClock", mem),
            "max_sm_clock_mhz": opt("nvmlDeviceGetMaxClockInfo", sm),
            "temperature_c": self.temperature_c(),
            "power_w": self.power_w(),
            "clock_event_reasons": list(throttle_reason_names(self.clock_limit_mask())),
        }


def _mig_enabled(nvml: NVML, handle: Any) -> bool:
    modes = nvml.optional("nvmlDeviceGetMigMode", handle, doing="reading the MIG mode")
    if not modes:
        return False  # MIG not supported by this GPU
    return int(modes[0]) == int(getattr(nvml.module, "NVML_DEVICE_MIG_ENABLE", 1))


def _mig_refused(device_text: str) -> UnavailableError:
    return UnavailableError(
        f"{device_text} is in MIG mode: NVML's energy counter and power readings cover the "
        "whole physical GPU, every MIG instance and every tenant on it, not the instance the "
        "model runs on",
        fix="measure on a GPU without MIG (nvidia-smi -i N -mig 0), or set "
        "energy.allow_mig_whole_gpu: true to measure the whole GPU anyway (labelled in the "
        "result)",
    )


def _open_by_uuid(nvml: NVML, ref: DeviceRef, allow_mig: bool) -> tuple[Any, str]:
    """The physical GPU's handle and UUID for a GPU (or MIG instance) torch reported."""
    module = nvml.module
    if ref.uuid is None:
        raise UnavailableError(
            f"NVML cannot tell which GPU cuda:{ref.cuda_index} is: torch reported no UUID for it",
            fix="use a torch build that reports device UUIDs (torch >= 2.0), or set "
            "CUDA_VISIBLE_DEVICES to the one GPU in use",
        )
    uuid = ref.uuid
    try:
        handle = module.nvmlDeviceGetHandleByUUID(uuid)
    except module.NVMLError as err:
        if getattr(err, "value", None) != getattr(module, "NVML_ERROR_NOT_FOUND", 6):
            raise _translate(err, f"opening GPU {uuid}") from err
        if not uuid.startswith("GPU-"):
            raise UnavailableError(f"NVML knows no GPU with UUID {uuid}") from err
        mig_uuid = "MIG-" + uuid.removeprefix("GPU-")
        try:  # torch reports a MIG instance's UUID without its prefix
            module.nvmlDeviceGetHandleByUUID(mig_uuid)
        except module.NVMLError:
            raise UnavailableError(
                f"NVML knows no GPU with UUID {uuid} (the GPU torch uses as cuda:{ref.cuda_index})",
                fix="check that torch and NVML see the same driver (nvidia-smi -L)",
            ) from err
        uuid = mig_uuid
    if uuid.startswith("MIG-"):
        if not allow_mig:
            raise _mig_refused(f"cuda:{ref.cuda_index} (MIG instance {uuid})")
        mig_handle = nvml.call("nvmlDeviceGetHandleByUUID", uuid, doing="opening a MIG device")
        handle = nvml.call(
            "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
            mig_handle,
            doing="finding the GPU of a MIG instance",
        )
        uuid = text(nvml.call("nvmlDeviceGetUUID", handle, doing="reading a GPU UUID"))
    return handle, uuid


def gpus_by_uuid(
    nvml: NVML, refs: tuple[DeviceRef, ...], allow_mig: bool
) -> tuple[list[NvidiaGPU], list[str]]:
    """Exactly the GPUs the backend reported, opened by UUID (a MIG instance's parent GPU)."""
    gpus: list[NvidiaGPU] = []
    for ref in refs:
        handle, uuid = _open_by_uuid(nvml, ref, allow_mig)
        index = int(nvml.call("nvmlDeviceGetIndex", handle, doing="reading a GPU index"))
        name = text(nvml.call("nvmlDeviceGetName", handle, doing="reading a GPU name"))
        mig = _mig_enabled(nvml, handle)
        if mig and not allow_mig:
            raise _mig_refused(f"GPU {index} ({name}, {uuid}, the model's cuda:{ref.cuda_index})")
        if any(g.uuid == uuid for g in gpus):
            continue  # two MIG instances of one GPU: measure it once
        gpus.append(
            NvidiaGPU(
                index,
                f"cuda:{ref.cuda_index} {name} (index {index})",
                handle,
                nvml,
                name=name,
                uuid=uuid,
                cuda_index=ref.cuda_index,
                mig_enabled=mig,
            )
        )
    return gpus, []


def _cuda_visible_indices(nvml: NVML, handles: list[Any], env: str, notes: list[str]) -> list[int]:
    """The NVML indices CUDA_VISIBLE_DEVICES selects, in its order (see visible_gpus)."""
    count = len(handles)
    selected: list[int] = []
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
                    text(nvml.call("nvmlDeviceGetUUID", h, doing="reading a GPU UUID"))
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
    return selected


def visible_gpus(nvml: NVML) -> tuple[list[NvidiaGPU], list[str]]:
    """GPUs visible to CUDA, in CUDA order, plus notes on how the selection was read.

    Honours CUDA_VISIBLE_DEVICES like CUDA does: integer indices or (prefixes of) GPU UUIDs,
    empty means none, and the list ends at the first entry that names no GPU.
    """
    count = int(nvml.call("nvmlDeviceGetCount", doing="counting GPUs"))
    handles = [
        nvml.call("nvmlDeviceGetHandleByIndex", i, doing="opening a GPU") for i in range(count)
    ]
    names = [text(nvml.call("nvmlDeviceGetName", h, doing="reading a GPU name")) for h in handles]
    notes: list[str] = []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    selected = (
        list(range(count)) if env is None else _cuda_visible_indices(nvml, handles, env, notes)
    )
    if len(set(names)) > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        notes.append(
            "GPUs of different models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA may "
            "number GPUs differently from NVML; set CUDA_DEVICE_ORDER=PCI_BUS_ID"
        )
    gpus = [
        NvidiaGPU(
            i,
            f"cuda:{pos} {names[i]} (index {i})",
            handles[i],
            nvml,
            name=names[i],
            uuid=text(nvml.optional("nvmlDeviceGetUUID", handles[i], doing="reading") or "")
            or None,
            cuda_index=pos,
        )
        for pos, i in enumerate(selected)
    ]
    return gpus, notes


def measured_gpus(
    nvml: NVML, refs: tuple[DeviceRef, ...] | None, allow_mig: bool
) -> tuple[list[NvidiaGPU], list[str]]:
    """The backend's GPUs by UUID when it said which; else the CUDA-visible ones. Raises
    UnavailableError when that is none, or a GPU is in MIG mode and ``allow_mig`` is off."""
    if refs is not None:
        gpus, notes = gpus_by_uuid(nvml, refs, allow_mig)
    else:
        visible, notes = visible_gpus(nvml)
        gpus = []
        for g in visible:
            mig = _mig_enabled(nvml, g.handle)
            if mig and not allow_mig:
                raise _mig_refused(f"GPU {g.index} ({g.name}, {g.uuid})")
            gpus.append(dataclasses.replace(g, mig_enabled=mig))
    require_gpus(gpus)
    return gpus, notes


def require_gpus(gpus: list[NvidiaGPU]) -> None:
    """Raise UnavailableError, saying why, when ``gpus`` is empty."""
    if gpus:
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


def gpu_temperatures_c() -> dict[int, float]:
    """Current temperature of each visible GPU, keyed by NVML index (for thermal waits).

    GPUs that do not report a temperature are left out. Raises UnavailableError without NVML.
    """
    with nvml_session() as nvml:
        gpus, _ = visible_gpus(nvml)
        require_gpus(gpus)
        temps = {g.index: g.temperature_c() for g in gpus}
    return {index: t for index, t in temps.items() if t is not None}


def power_limits_w() -> dict[int, float]:
    """Enforced power limit of each visible GPU in W, keyed by NVML index."""
    limits: dict[int, float] = {}
    with nvml_session() as nvml:
        gpus, _ = visible_gpus(nvml)
        require_gpus(gpus)
        for g in gpus:
            limit_mw = nvml.optional(
                "nvmlDeviceGetEnforcedPowerLimit", g.handle, doing="reading the power limit"
            )
            if limit_mw is not None:
                limits[g.index] = limit_mw / 1000.0
    return limits


def indices_of(uuids: list[str]) -> list[int]:
    """NVML indices of GPUs given by UUID (raises LLEMError without NVML)."""
    with nvml_session() as nvml:
        return [
            int(
                nvml.call(
                    "nvmlDeviceGetIndex",
                    nvml.call("nvmlDeviceGetHandleByUUID", uuid, doing=f"opening GPU {uuid}"),
                    doing="reading a GPU index",
                )
            )
            for uuid in uuids
        ]
