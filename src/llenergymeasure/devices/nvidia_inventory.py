"""The GPUs as the environment record describes them: identity, memory, energy counter, and
the settings that change what an energy figure means.

Persistence mode (without it the driver unloads between processes, so each run pays a
re-initialisation), ECC (costs memory bandwidth), MIG (a MIG GPU's counter covers every
instance), clocks (application and maximum clocks bound the speed and power a run can reach)
and the power limit.

Each settings query is read on its own and never raises: a GPU, driver or binding that lacks it gives
None, and ``unavailable`` says why, so one unsupported query never costs the others.
"""

from __future__ import annotations

from typing import Any

from llenergymeasure.devices.nvidia import NvidiaGPU, nvml_session, text, visible_gpus

_WHY_BY_CODE = {
    3: "not supported by this GPU or driver (NVML_ERROR_NOT_SUPPORTED)",
    4: "no permission (NVML_ERROR_NO_PERMISSION)",
    13: "the NVIDIA driver is too old for this query (NVML_ERROR_FUNCTION_NOT_FOUND)",
}
LOCKED_CLOCKS_NOTE = (
    "NVML has no query for locked clocks (nvidia-smi -lgc/-lmc); a lock or application clocks "
    "in effect show as APPLICATIONS_CLOCKS_SETTING among the window's clock event reasons"
)


class _Reader:
    """Calls NVML queries, turning every failure into None plus a reason under its key."""

    def __init__(self, module: Any, handle: Any) -> None:
        self.module = module
        self.handle = handle
        self.unavailable: dict[str, str] = {}

    def read(self, key: str, fn_name: str, *args: Any) -> Any | None:
        fn = getattr(self.module, fn_name, None)
        if fn is None:
            self.unavailable[key] = f"this nvidia-ml-py has no {fn_name}"
            return None
        try:
            return fn(self.handle, *args)
        except self.module.NVMLError as err:
            code = int(getattr(err, "value", -1))
            self.unavailable[key] = _WHY_BY_CODE.get(code, f"{fn_name} failed: {err}")
            return None

    def read_first(self, key: str, *calls: tuple[str, tuple[Any, ...]]) -> Any | None:
        """The first of ``calls`` (function name, arguments) that answers; the last
        failure's reason when none does."""
        for fn_name, args in calls:
            value = self.read(key, fn_name, *args)
            if value is not None:
                self.unavailable.pop(key, None)
                return value
        return None

    def constant(self, name: str, default: int) -> int:
        return int(getattr(self.module, name, default))


def _enabled(value: Any, on: int) -> str | None:
    return None if value is None else "enabled" if int(value) == on else "disabled"


def _current_pending(reader: _Reader, key: str, fn_name: str, on: int) -> dict[str, str] | None:
    """Queries that answer ``[current, pending]`` (ECC, MIG): each as enabled/disabled."""
    pair = reader.read(key, fn_name)
    if pair is None:
        return None
    current, pending = ("enabled" if int(v) == on else "disabled" for v in pair)
    return {"current": current, "pending": pending}


def _watts(milliwatts: Any) -> float | None:
    return None if milliwatts is None else float(milliwatts) / 1000.0


def _application_clock(r: _Reader, key: str, clock: int) -> Any | None:
    """``nvmlDeviceGetClock(.., APP_CLOCK_TARGET)``, else the deprecated
    ``nvmlDeviceGetApplicationsClock`` (to be removed in CUDA 14)."""
    target = r.constant("NVML_CLOCK_ID_APP_CLOCK_TARGET", 1)
    return r.read_first(
        key,
        ("nvmlDeviceGetClock", (clock, target)),
        ("nvmlDeviceGetApplicationsClock", (clock,)),
    )


def gpu_settings(module: Any, handle: Any) -> dict[str, Any]:
    """The settings of the GPU behind ``handle`` (pynvml ``module``), JSON-ready."""
    r = _Reader(module, handle)
    sm, mem = r.constant("NVML_CLOCK_SM", 1), r.constant("NVML_CLOCK_MEM", 2)
    feature_on = r.constant("NVML_FEATURE_ENABLED", 1)
    pstate = r.read("pstate", "nvmlDeviceGetPerformanceState")
    unknown_pstate = r.constant("NVML_PSTATE_UNKNOWN", 32)
    settings = {
        "persistence_mode": _enabled(
            r.read("persistence_mode", "nvmlDeviceGetPersistenceMode"), feature_on
        ),
        "ecc_mode": _current_pending(r, "ecc_mode", "nvmlDeviceGetEccMode", feature_on),
        "mig_mode": _current_pending(
            r, "mig_mode", "nvmlDeviceGetMigMode", r.constant("NVML_DEVICE_MIG_ENABLE", 1)
        ),
        "pstate": None if pstate is None or int(pstate) == unknown_pstate else f"P{int(pstate)}",
        "clocks_mhz": {
            "sm": r.read("clocks_mhz.sm", "nvmlDeviceGetClockInfo", sm),
            "memory": r.read("clocks_mhz.memory", "nvmlDeviceGetClockInfo", mem),
            "application_sm": _application_clock(r, "clocks_mhz.application_sm", sm),
            "application_memory": _application_clock(r, "clocks_mhz.application_memory", mem),
            "max_sm": r.read("clocks_mhz.max_sm", "nvmlDeviceGetMaxClockInfo", sm),
            "max_memory": r.read("clocks_mhz.max_memory", "nvmlDeviceGetMaxClockInfo", mem),
        },
        "locked_clocks": None,
        "power_limit_w": _watts(r.read("power_limit_w", "nvmlDeviceGetPowerManagementLimit")),
        "enforced_power_limit_w": _watts(
            r.read("enforced_power_limit_w", "nvmlDeviceGetEnforcedPowerLimit")
        ),
    }
    r.unavailable["locked_clocks"] = LOCKED_CLOCKS_NOTE
    settings["unavailable"] = r.unavailable
    return settings


def inventory() -> dict[str, Any]:
    """JSON-ready description of every physical GPU (for the environment snapshot): identity,
    memory, energy counter and the settings of ``gpu_settings`` (persistence, ECC, MIG,
    clocks, power limits).

    Raises UnavailableError when NVML cannot be used; queries a GPU lacks become None.
    """
    with nvml_session() as nvml:
        visible, notes = visible_gpus(nvml)
        visible_index = {g.index for g in visible}
        cuda_version = nvml.optional("nvmlSystemGetCudaDriverVersion", doing="reading")
        gpus = []
        for i in range(int(nvml.call("nvmlDeviceGetCount", doing="counting GPUs"))):
            handle = nvml.call("nvmlDeviceGetHandleByIndex", i, doing="opening a GPU")
            memory = nvml.optional("nvmlDeviceGetMemoryInfo", handle, doing="reading memory")
            capability = nvml.optional(
                "nvmlDeviceGetCudaComputeCapability", handle, doing="reading the capability"
            )
            uuid = nvml.optional("nvmlDeviceGetUUID", handle, doing="reading a GPU UUID")
            gpus.append(
                {
                    "index": i,
                    "name": text(nvml.call("nvmlDeviceGetName", handle, doing="reading")),
                    "uuid": None if uuid is None else text(uuid),
                    "visible": i in visible_index,
                    "memory_total_bytes": None if memory is None else int(memory.total),
                    "compute_capability": (
                        None if capability is None else f"{capability[0]}.{capability[1]}"
                    ),
                    "energy_counter": NvidiaGPU(i, f"index {i}", handle, nvml).energy_mj()
                    is not None,
                    **gpu_settings(nvml.module, handle),
                }
            )
        driver = nvml.optional("nvmlSystemGetDriverVersion", doing="reading the driver version")
        return {
            "driver_version": None if driver is None else text(driver),
            "cuda_driver_version": (
                None
                if cuda_version is None
                else f"{int(cuda_version) // 1000}.{int(cuda_version) % 1000 // 10}"
            ),
            "gpus": gpus,
            "notes": notes,
        }
