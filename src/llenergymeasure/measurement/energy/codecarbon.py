"""Energy through CodeCarbon (``pip install 'llenergymeasure[codecarbon]'``).

CodeCarbon mixes sensors (RAPL, NVML) with models (CPU power from TDP tables, RAM from a
W/GB constant) and does not say per run which it used, so every reading is labelled an
estimate.
"""

from __future__ import annotations

import time
from typing import Any

from llenergymeasure.devices.base import gpu_devices
from llenergymeasure.exceptions import ExperimentError, UnavailableError
from llenergymeasure.measurement.energy.base import (
    Availability,
    EnergyMethod,
    EnergyOptions,
    EnergyReading,
    module_available,
)

J_PER_KWH = 3.6e6


def nvml_indices(uuids: list[str]) -> list[int] | None:
    """NVML indices of these GPU UUIDs (CodeCarbon numbers GPUs as NVML does), or None."""
    from llenergymeasure.devices import nvidia

    try:
        return nvidia.indices_of(uuids)
    except Exception:  # no NVML here: the caller falls back to CUDA indices
        return None


_FIX = "pip install 'llenergymeasure[codecarbon]'"


def probe() -> Availability:
    if not module_available("codecarbon"):
        return Availability(False, "codecarbon is not installed", fix=_FIX)
    return Availability(True, "codecarbon is installed (its readings count as estimates)")


class CodeCarbonEnergySource:
    """Energy from an offline ``codecarbon.OfflineEmissionsTracker`` (no network, no files)."""

    name = "codecarbon"
    covers_host_cpu = True  # its energy includes every process on the host CPU
    method: EnergyMethod = "codecarbon"
    update_period_s = None  # CodeCarbon does not say how often its figures update
    target_error_pct = 10.0
    default_min_window_s = 1.0

    def __init__(
        self,
        *,
        country_iso_code: str = "USA",
        gpu_ids: list[int] | None = None,
        device_labels: tuple[str, ...] = (),
    ) -> None:
        self.country_iso_code = country_iso_code  # only affects CO2, which we do not report
        self.gpu_ids = gpu_ids
        self._labels = device_labels
        self._tracker: Any = None
        self._t0: float | None = None

    @classmethod
    def from_options(cls, options: EnergyOptions) -> CodeCarbonEnergySource:
        gpus = gpu_devices(options.devices)
        if not gpus:  # None (not said) or CPU only: CodeCarbon's defaults
            return cls(device_labels=("cpu",) if gpus is not None else ())
        ids = nvml_indices([d.uuid for d in gpus if d.uuid])
        if ids is None:  # no NVML: CUDA indices, right unless CUDA_VISIBLE_DEVICES reorders
            ids = [d.cuda_index for d in gpus if d.cuda_index is not None]
        return cls(gpu_ids=ids, device_labels=tuple(d.uuid or d.label for d in gpus))

    @property
    def devices(self) -> tuple[str, ...]:
        """The devices tracked (GPU UUIDs where known), for the baseline cache key."""
        return self._labels or ("codecarbon default devices",)

    @staticmethod
    def availability(options: EnergyOptions) -> Availability:
        return probe()

    def start(self) -> None:
        if self._t0 is not None:
            raise ExperimentError("codecarbon energy window started twice without stop()")
        try:
            from codecarbon import OfflineEmissionsTracker
        except ImportError as err:
            raise UnavailableError("codecarbon is not installed", fix=_FIX) from err
        extra: dict[str, Any] = {} if self.gpu_ids is None else {"gpu_ids": self.gpu_ids}
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country_iso_code,
            save_to_file=False,
            log_level="error",
            **extra,
        )
        self._tracker.start()
        self._t0 = time.perf_counter()

    def stop(self) -> EnergyReading:
        if self._t0 is None:
            raise ExperimentError("codecarbon energy window stopped without start()")
        tracker, t0 = self._tracker, self._t0
        self._tracker = self._t0 = None
        tracker.stop()
        duration_s = time.perf_counter() - t0
        data = getattr(tracker, "final_emissions_data", None)
        if data is not None:
            total_kwh = float(data.energy_consumed)
            parts = {
                part: float(getattr(data, f"{part}_energy", 0.0) or 0.0) * J_PER_KWH
                for part in ("cpu", "gpu", "ram")
            }
            per_device_j = {part: j for part, j in parts.items() if j > 0}
        else:
            total_kwh = float(tracker._total_energy.kWh)
            per_device_j = {}
        energy_j = total_kwh * J_PER_KWH
        return EnergyReading(
            source=self.name,
            method="codecarbon",
            energy_j=energy_j,
            duration_s=duration_s,
            devices=tuple(per_device_j) or ("codecarbon",),
            per_device_energy_j=per_device_j or {"codecarbon": energy_j},
            sample_interval_ms=None,
            is_estimate=True,
            resolution_warning=None,
            notes=(
                "CodeCarbon may estimate CPU power from TDP tables and RAM power from a "
                "constant; treated as an estimate",
            ),
        )
