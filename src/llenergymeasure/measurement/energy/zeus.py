"""Energy through Zeus (``pip install 'llenergymeasure[zeus]'``), for cross-checking NVML.

Measures GPUs only (``cpu_indices=[]``) so the total is comparable with the nvml source.
Zeus's own CUDA synchronisation is switched off: like every source, the caller synchronises.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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

RESOLUTION_S = 0.1  # Zeus reads the same NVML counter
_FIX = "pip install 'llenergymeasure[zeus]'"
_WINDOW = "llenergymeasure"


def probe() -> Availability:
    if not module_available("zeus"):
        return Availability(False, "zeus is not installed", fix=_FIX)
    return Availability(True, "zeus is installed (it measures GPUs through NVML)")


class ZeusEnergySource:
    """GPU energy from ``zeus.monitor.ZeusMonitor`` begin/end windows, of the model's GPUs
    (Zeus takes CUDA indices, so it sees the same set as the backend)."""

    name = "zeus"
    method: EnergyMethod = "zeus"
    update_period_s = RESOLUTION_S  # nominal: Zeus does not measure the counter's period
    target_error_pct = 1.0
    default_min_window_s = 1.0

    def __init__(
        self, gpu_indices: Sequence[int] | None = None, *, device_labels: Sequence[str] = ()
    ) -> None:
        self.gpu_indices = None if gpu_indices is None else list(gpu_indices)
        self._labels = tuple(device_labels)
        self._monitor: Any = None
        self._t0: float | None = None

    @classmethod
    def from_options(cls, options: EnergyOptions) -> ZeusEnergySource:
        gpus = gpu_devices(options.devices)
        if gpus is None:
            return cls()
        if not gpus:
            raise UnavailableError(
                "zeus measures GPUs, but the model runs on no NVIDIA GPU",
                fix="run the model on a GPU, or choose energy source 'rapl' or 'estimate'",
            )
        return cls(
            [d.cuda_index for d in gpus if d.cuda_index is not None],
            device_labels=[d.uuid or d.label for d in gpus],
        )

    @property
    def devices(self) -> tuple[str, ...]:
        """The GPUs measured (UUIDs where known), for the baseline cache key."""
        if self._labels:
            return self._labels
        return tuple(f"gpu:{i}" for i in self.gpu_indices or ()) or ("all visible GPUs",)

    @staticmethod
    def availability(options: EnergyOptions) -> Availability:
        return probe()

    def _get_monitor(self) -> Any:
        if self._monitor is None:
            try:
                from zeus.monitor import ZeusMonitor
            except ImportError as err:
                raise UnavailableError("zeus is not installed", fix=_FIX) from err
            try:
                self._monitor = ZeusMonitor(gpu_indices=self.gpu_indices, cpu_indices=[])
            except Exception as err:  # vendor boundary: any failure means "cannot use zeus"
                raise UnavailableError(
                    f"zeus energy is not available here: ZeusMonitor failed: {err}",
                    fix="check that `nvidia-smi` works, or choose energy source 'nvml'",
                ) from err
        return self._monitor

    def start(self) -> None:
        if self._t0 is not None:
            raise ExperimentError("zeus energy window started twice without stop()")
        monitor = self._get_monitor()
        monitor.begin_window(_WINDOW, sync_execution=False)
        self._t0 = time.perf_counter()

    def stop(self) -> EnergyReading:
        if self._t0 is None:
            raise ExperimentError("zeus energy window stopped without start()")
        self._t0 = None
        measurement = self._monitor.end_window(_WINDOW, sync_execution=False)
        per_device_j = {f"gpu:{i}": float(j) for i, j in measurement.gpu_energy.items()}
        duration_s = float(measurement.time)
        return EnergyReading(
            source=self.name,
            method="zeus",
            energy_j=sum(per_device_j.values()),
            duration_s=duration_s,
            devices=tuple(per_device_j),
            per_device_energy_j=per_device_j,
            sample_interval_ms=None,
            is_estimate=False,
            update_period_s=RESOLUTION_S,
            update_period_method="nominal: Zeus reads the NVML counter (~100 ms worst case)",
            resolution_warning=(
                f"window of {duration_s:.3f} s is shorter than the NVML energy counter's "
                f"update period (~{RESOLUTION_S * 1000:.0f} ms on some GPUs)"
                if duration_s < RESOLUTION_S
                else None
            ),
        )
