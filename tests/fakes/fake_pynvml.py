"""A fake ``pynvml`` (nvidia-ml-py) module: N GPUs whose counters, power, temperature and
throttle reasons a test controls.

Names, signatures, error codes and the ``NVMLError_*`` subclass scheme mirror the real
nvidia-ml-py (``test_fake_mirrors_real_pynvml`` checks this against the installed package).
Install with ``monkeypatch.setitem(sys.modules, "pynvml", FakeNVML([...]))``.

Like the real library, every device call made before ``nvmlInit`` (or after the matching
``nvmlShutdown``) raises ``NVMLError_Uninitialized``, so a source that forgets to initialise
or shuts down too early fails its tests.
"""

from __future__ import annotations

import ctypes
import math
import os
import string
import threading
import time
import types
from dataclasses import dataclass
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_UNKNOWN = 999

NVML_TEMPERATURE_GPU = 0
NVML_FEATURE_DISABLED = 0
NVML_FEATURE_ENABLED = 1
NVML_DEVICE_MIG_DISABLE = 0x0
NVML_DEVICE_MIG_ENABLE = 0x1
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_CLOCK_ID_CURRENT = 0
NVML_CLOCK_ID_APP_CLOCK_TARGET = 1
NVML_CLOCK_ID_APP_CLOCK_DEFAULT = 2
NVML_CLOCK_ID_CUSTOMER_BOOST_MAX = 3
NVML_PSTATE_UNKNOWN = 32
NVML_VALUE_TYPE_DOUBLE = 0
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_VALUE_TYPE_UNSIGNED_LONG = 2
NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3
NVML_VALUE_TYPE_SIGNED_LONG_LONG = 4
NVML_VALUE_TYPE_SIGNED_INT = 5
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186

nvmlClocksEventReasonGpuIdle = 0x1
nvmlClocksEventReasonSwPowerCap = 0x4
nvmlClocksEventReasonHwSlowdown = 0x8
nvmlClocksEventReasonSwThermalSlowdown = 0x20
nvmlClocksEventReasonHwThermalSlowdown = 0x40

ERROR_CODES = {k: v for k, v in globals().items() if k.startswith("NVML_ERROR_")}
CONSTANTS = {
    k: v
    for k, v in globals().items()
    if k.startswith(("NVML_", "nvmlClocksEventReason")) and not k.startswith("NVML_ERROR_")
}
CONSTANTS.update(ERROR_CODES)


class c_nvmlValue_t(ctypes.Union):
    """Same layout as pynvml.c_nvmlValue_t."""

    _fields_ = [
        ("dVal", ctypes.c_double),
        ("uiVal", ctypes.c_uint),
        ("ulVal", ctypes.c_ulong),
        ("ullVal", ctypes.c_ulonglong),
        ("sllVal", ctypes.c_longlong),
        ("siVal", ctypes.c_int),
        ("usVal", ctypes.c_ushort),
    ]


class c_nvmlFieldValue_t(ctypes.Structure):
    """Same layout as pynvml.c_nvmlFieldValue_t (what nvmlDeviceGetFieldValues returns)."""

    _fields_ = [
        ("fieldId", ctypes.c_uint32),
        ("scopeId", ctypes.c_uint32),
        ("timestamp", ctypes.c_int64),
        ("latencyUsec", ctypes.c_int64),
        ("valueType", ctypes.c_uint),
        ("nvmlReturn", ctypes.c_uint),
        ("value", c_nvmlValue_t),
    ]


FOREIGN_PID = os.getppid()
"""A process that exists in this PID namespace and is not the test process or its child:
stands in for another job on a GPU (a PID missing from /proc may be our own, see nvml)."""


@dataclass
class FakeProcess:
    """What nvmlDeviceGetComputeRunningProcesses returns per process (friendly object)."""

    pid: int
    usedGpuMemory: int | None = None
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


class NVMLError(Exception):
    """Mirrors pynvml.NVMLError: ``NVMLError(code)`` becomes the code's subclass."""

    _valClassMapping: dict[int, type[NVMLError]] = {}  # noqa: RUF012 - mirrors pynvml
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __str__(self) -> str:
        names = {v: k for k, v in ERROR_CODES.items()}
        return names.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _error_classes() -> dict[str, type[NVMLError]]:
    """NVML_ERROR_NOT_SUPPORTED -> NVMLError_NotSupported, exactly as pynvml names them."""
    classes: dict[str, type[NVMLError]] = {}
    for err_name, err_val in ERROR_CODES.items():
        class_name = "NVMLError_" + string.capwords(
            err_name.replace("NVML_ERROR_", ""), "_"
        ).replace("_", "")

        def new(typ: type[NVMLError], *args: Any, _val: int = err_val) -> NVMLError:
            return NVMLError.__new__(typ, _val)

        cls = type(class_name, (NVMLError,), {"__new__": new})
        NVMLError._valClassMapping[err_val] = cls
        classes[class_name] = cls
    return classes


ERROR_CLASSES = _error_classes()


@dataclass
class FakeGPU:
    """One GPU. ``energy_mj`` is the counter; with ``FakeNVML(advance_with_time=True)`` it also
    grows by ``power_w`` x elapsed real time, like a GPU drawing constant power."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = ""
    power_w: float = 100.0
    energy_mj: int = 1_000_000
    temperature_c: float = 40.0
    reason_mask: int = 0
    memory_total_bytes: int = 80 * 1024**3
    power_limit_w: float = 700.0
    enforced_power_limit_w: float = 700.0
    compute_capability: tuple[int, int] = (9, 0)
    has_energy_counter: bool = True  # False models a pre-Volta GPU
    counter_period_s: float | None = None  # the counter only moves every this many seconds
    counter_phase_s: float = 0.0  # ... at phase + k x period after the fake was made
    instant_power_w: float | None = None  # NVML_FI_DEV_POWER_INSTANT; None: power_w
    average_power_w: float | None = None  # nvmlDeviceGetPowerUsage; None: power_w
    supports_instant_power: bool = True
    mig_mode: int | None = 0  # current MIG mode; None: MIG not supported by this GPU
    processes: list[FakeProcess] | None = None  # compute processes using the GPU
    pstate: int = 0
    sm_clock_mhz: int = 1980
    mem_clock_mhz: int = 2619
    app_sm_clock_mhz: int = 1755
    app_mem_clock_mhz: int = 2619
    max_sm_clock_mhz: int = 1980
    persistence_mode: int = 1
    ecc_mode: tuple[int, int] | None = (1, 1)  # (current, pending); None: not supported
    power_since_s: float = 0.0  # the counter grows at power_w from here (FakeNVML.set_power)


@dataclass(frozen=True)
class _Handle:
    index: int


@dataclass
class _Memory:
    total: int
    free: int
    used: int = 0


class FakeNVML(types.ModuleType):
    """The fake module. ``fail`` maps a function name to the NVML error code it raises."""

    def __init__(
        self,
        gpus: list[FakeGPU],
        *,
        init_error: int | None = None,
        fail: dict[str, int] | None = None,
        advance_with_time: bool = False,
        driver_version: str = "550.54.15",
        cuda_driver_version: int = 12040,
    ) -> None:
        super().__init__("pynvml")
        for name, value in {**CONSTANTS, **ERROR_CLASSES}.items():
            setattr(self, name, value)
        self.NVMLError = NVMLError
        self.c_nvmlFieldValue_t = c_nvmlFieldValue_t
        for i, gpu in enumerate(gpus):
            gpu.uuid = gpu.uuid or f"GPU-{i:08d}-fake-uuid-{i:04d}"
        self.gpus = gpus
        self.init_error = init_error
        self.fail = dict(fail or {})
        self.advance_with_time = advance_with_time
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.init_calls = 0
        self.shutdown_calls = 0
        self.calls: dict[str, int] = {}
        self._refcount = 0
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()

    @property
    def initialised(self) -> bool:
        return self._refcount > 0

    # -- helpers -------------------------------------------------------------------------
    def _enter(self, fn: str, handle: Any = None) -> FakeGPU | None:
        with self._lock:
            self.calls[fn] = self.calls.get(fn, 0) + 1
        if fn in self.fail:
            raise NVMLError(self.fail[fn])
        if self._refcount == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if handle is None:
            return None
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[handle.index]

    def _gpu(self, fn: str, handle: Any) -> FakeGPU:
        gpu = self._enter(fn, handle)
        assert gpu is not None
        return gpu

    # -- library lifetime ----------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.nvmlInitWithFlags(0)

    def nvmlInitWithFlags(self, flags: int) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self._refcount += 1

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1
        if self._refcount == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        self._refcount -= 1

    # -- system ---------------------------------------------------------------------------
    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    # -- devices --------------------------------------------------------------------------
    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> _Handle:
        self._enter("nvmlDeviceGetHandleByUUID")
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return _Handle(i)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetIndex(self, handle: Any) -> int:
        self._gpu("nvmlDeviceGetIndex", handle)
        return int(handle.index)

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._gpu("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._gpu("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        gpu = self._gpu("nvmlDeviceGetTotalEnergyConsumption", handle)
        if not gpu.has_energy_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if self.advance_with_time:
            t = time.perf_counter() - self._t0
            if gpu.counter_period_s:  # the value of the counter's last update
                steps = math.floor((t - gpu.counter_phase_s) / gpu.counter_period_s)
                t = max(0.0, gpu.counter_phase_s + steps * gpu.counter_period_s)
            with self._lock:
                return gpu.energy_mj + int(gpu.power_w * max(0.0, t - gpu.power_since_s) * 1000)
        return gpu.energy_mj

    def set_power(self, index: int, power_w: float) -> None:
        """Change GPU ``index``'s draw from now on, keeping the energy drawn so far in the
        counter (with ``advance_with_time``). A counter with an update period shows the
        energy up to the change at once: exact enough for tests that change power rarely."""
        with self._lock:
            gpu = self.gpus[index]
            if power_w == gpu.power_w:
                return  # no change: folding would only lose the fraction of a mJ
            t = time.perf_counter() - self._t0
            if self.advance_with_time:
                gpu.energy_mj += int(gpu.power_w * max(0.0, t - gpu.power_since_s) * 1000)
                gpu.power_since_s = t
            gpu.power_w = power_w

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        gpu = self._gpu("nvmlDeviceGetPowerUsage", handle)
        power_w = gpu.power_w if gpu.average_power_w is None else gpu.average_power_w
        return int(power_w * 1000)

    def nvmlDeviceGetFieldValues(self, handle: Any, fieldIds: list[Any]) -> Any:
        gpu = self._gpu("nvmlDeviceGetFieldValues", handle)
        values = (c_nvmlFieldValue_t * len(fieldIds))()
        for value, field_id in zip(values, fieldIds, strict=True):
            value.fieldId = field_id
            value.timestamp = int(time.time() * 1e6)
            if field_id == NVML_FI_DEV_POWER_INSTANT and gpu.supports_instant_power:
                power_w = gpu.power_w if gpu.instant_power_w is None else gpu.instant_power_w
                value.valueType = NVML_VALUE_TYPE_UNSIGNED_INT
                value.value.uiVal = int(power_w * 1000)
                value.nvmlReturn = NVML_SUCCESS
            else:
                value.nvmlReturn = NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetMigMode(self, device: Any) -> list[int]:
        gpu = self._gpu("nvmlDeviceGetMigMode", device)
        if gpu.mig_mode is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [gpu.mig_mode, gpu.mig_mode]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[FakeProcess]:
        return list(self._gpu("nvmlDeviceGetComputeRunningProcesses", handle).processes or [])

    def nvmlDeviceGetPerformanceState(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetPerformanceState", handle).pstate

    def nvmlDeviceGetClockInfo(self, handle: Any, type: int) -> int:
        gpu = self._gpu("nvmlDeviceGetClockInfo", handle)
        return gpu.mem_clock_mhz if type == NVML_CLOCK_MEM else gpu.sm_clock_mhz

    def nvmlDeviceGetApplicationsClock(self, handle: Any, type: int) -> int:
        gpu = self._gpu("nvmlDeviceGetApplicationsClock", handle)
        return gpu.app_mem_clock_mhz if type == NVML_CLOCK_MEM else gpu.app_sm_clock_mhz

    def nvmlDeviceGetClock(self, handle: Any, type: int, id: int) -> int:
        gpu = self._gpu("nvmlDeviceGetClock", handle)
        if id == NVML_CLOCK_ID_CURRENT:
            return gpu.mem_clock_mhz if type == NVML_CLOCK_MEM else gpu.sm_clock_mhz
        if id in (NVML_CLOCK_ID_APP_CLOCK_TARGET, NVML_CLOCK_ID_APP_CLOCK_DEFAULT):
            return gpu.app_mem_clock_mhz if type == NVML_CLOCK_MEM else gpu.app_sm_clock_mhz
        return gpu.mem_clock_mhz if type == NVML_CLOCK_MEM else gpu.max_sm_clock_mhz

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, type: int) -> int:
        gpu = self._gpu("nvmlDeviceGetMaxClockInfo", handle)
        return gpu.app_mem_clock_mhz if type == NVML_CLOCK_MEM else gpu.max_sm_clock_mhz

    def nvmlDeviceGetPersistenceMode(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetPersistenceMode", handle).persistence_mode

    def nvmlDeviceGetEccMode(self, handle: Any) -> list[int]:
        gpu = self._gpu("nvmlDeviceGetEccMode", handle)
        if gpu.ecc_mode is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return list(gpu.ecc_mode)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return int(self._gpu("nvmlDeviceGetTemperature", handle).temperature_c)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetCurrentClocksEventReasons", handle).reason_mask

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetCurrentClocksThrottleReasons", handle).reason_mask

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: Any = None) -> _Memory:
        gpu = self._gpu("nvmlDeviceGetMemoryInfo", handle)
        return _Memory(total=gpu.memory_total_bytes, free=gpu.memory_total_bytes)

    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int:
        return int(self._gpu("nvmlDeviceGetPowerManagementLimit", handle).power_limit_w * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        gpu = self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle)
        return int(gpu.enforced_power_limit_w * 1000)

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]:
        return self._gpu("nvmlDeviceGetCudaComputeCapability", handle).compute_capability


FAKE_FUNCTIONS = tuple(
    name for name in vars(FakeNVML) if name.startswith("nvml") and callable(vars(FakeNVML)[name])
)


def install(monkeypatch: Any, gpus: list[FakeGPU] | None = None, **kwargs: Any) -> FakeNVML:
    """Put a FakeNVML in ``sys.modules["pynvml"]`` for one test and return it."""
    import sys

    fake = FakeNVML([FakeGPU()] if gpus is None else gpus, **kwargs)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake
