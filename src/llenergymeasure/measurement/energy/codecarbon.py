"""Energy through CodeCarbon (``pip install 'llenergymeasure[codecarbon]'``).

CodeCarbon mixes sensors (RAPL, NVML) with models (CPU power from TDP tables, RAM from a
W/GB constant) and does not say per run which it used, so every reading is labelled an
estimate.
"""

from __future__ import annotations

import time
from typing import Any

from llenergymeasure.exceptions import ExperimentError, UnavailableError
from llenergymeasure.measurement.energy.base import (
    Availability,
    EnergyMethod,
    EnergyOptions,
    EnergyReading,
    module_available,
)

J_PER_KWH = 3.6e6
_FIX = "pip install 'llenergymeasure[codecarbon]'"


def probe() -> Availability:
    if not module_available("codecarbon"):
        return Availability(False, "codecarbon is not installed", fix=_FIX)
    return Availability(True, "codecarbon is installed (its readings count as estimates)")


class CodeCarbonEnergySource:
    """Energy from an offline ``codecarbon.OfflineEmissionsTracker`` (no network, no files)."""

    name = "codecarbon"
    method: EnergyMethod = "codecarbon"

    def __init__(self, *, country_iso_code: str = "USA") -> None:
        self.country_iso_code = country_iso_code  # only affects CO2, which we do not report
        self._tracker: Any = None
        self._t0: float | None = None

    @classmethod
    def from_options(cls, options: EnergyOptions) -> CodeCarbonEnergySource:
        return cls()

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
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country_iso_code, save_to_file=False, log_level="error"
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
