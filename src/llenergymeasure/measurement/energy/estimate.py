"""Last-resort CPU energy *estimate*: CPU utilisation x TDP x time. Not a measurement.

Used only when neither NVML nor RAPL can be read, so that a run still produces a number that
says loudly what it is. The default TDP is a crude constant (a typical desktop part), not a
property of this machine: pass the real TDP for a less wrong estimate.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from llenergymeasure.exceptions import ConfigError, ExperimentError
from llenergymeasure.measurement.energy.base import (
    Availability,
    EnergyMethod,
    EnergyOptions,
    EnergyReading,
)

DEFAULT_TDP_W = 65.0  # per socket; crude default, documented as such
RESOLUTION_S = 0.1  # CPU times tick at 100 Hz; fewer than ~10 ticks is mostly noise


def count_cpu_sockets(sysfs_cpu: Path = Path("/sys/devices/system/cpu")) -> int:
    """Physical CPU packages from sysfs topology; 1 when that cannot be read."""
    ids = set()
    for path in sysfs_cpu.glob("cpu[0-9]*/topology/physical_package_id"):
        try:
            ids.add(path.read_text().strip())
        except OSError:
            continue
    return max(1, len(ids))


def _busy_and_total_s() -> tuple[float, float]:
    import psutil

    times = psutil.cpu_times()
    # Linux counts guest time inside user/nice too; psutil's own cpu_percent drops it.
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def probe() -> Availability:
    return Availability(True, "always available: estimates CPU energy from utilisation x TDP")


def cpu_tick_s() -> float:
    """How often the kernel's CPU time counters advance (1 / USER_HZ, 10 ms on Linux)."""
    try:
        return 1.0 / os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return 0.01


class EstimateEnergySource:
    """System-wide CPU utilisation over the window x ``tdp_w`` per socket x sockets.

    Its quantisation is the CPU time tick (``update_period_s``); the target bound is 10%, not
    the 1% of a sensor: the model (utilisation x TDP) is far cruder than 10%, so a longer
    window would buy precision the number does not have.
    """

    name = "estimate"
    covers_host_cpu = True  # its energy includes every process on the host CPU
    method: EnergyMethod = "estimate"
    target_error_pct = 10.0
    default_min_window_s = 0.0

    def __init__(self, tdp_w: float | None = None, *, sockets: int | None = None) -> None:
        self.tdp_w = DEFAULT_TDP_W if tdp_w is None else tdp_w
        if self.tdp_w <= 0:
            raise ConfigError(f"tdp_w must be > 0, got {self.tdp_w}")
        self.sockets = count_cpu_sockets() if sockets is None else sockets
        self.update_period_s = cpu_tick_s()
        self._start: tuple[float, float, float] | None = None  # (t, busy_s, total_s)

    @classmethod
    def from_options(cls, options: EnergyOptions) -> EstimateEnergySource:
        return cls(options.tdp_w)

    @staticmethod
    def availability(options: EnergyOptions) -> Availability:
        return probe()

    @property
    def devices(self) -> tuple[str, ...]:
        return (f"cpu ({self.sockets} socket(s))",)

    def start(self) -> None:
        if self._start is not None:
            raise ExperimentError("estimate energy window started twice without stop()")
        busy_s, total_s = _busy_and_total_s()
        self._start = (time.perf_counter(), busy_s, total_s)

    def stop(self) -> EnergyReading:
        if self._start is None:
            raise ExperimentError("estimate energy window stopped without start()")
        t0, busy0_s, total0_s = self._start
        self._start = None
        busy_s, total_s = _busy_and_total_s()
        duration_s = time.perf_counter() - t0
        elapsed_cpu_s = total_s - total0_s
        utilisation = (busy_s - busy0_s) / elapsed_cpu_s if elapsed_cpu_s > 0 else 0.0
        utilisation = min(1.0, max(0.0, utilisation))
        energy_j = utilisation * self.tdp_w * self.sockets * duration_s
        (device,) = self.devices
        return EnergyReading(
            source=self.name,
            method="estimate",
            energy_j=energy_j,
            duration_s=duration_s,
            devices=(device,),
            per_device_energy_j={device: energy_j},
            sample_interval_ms=None,
            is_estimate=True,
            resolution_warning=(
                f"window of {duration_s:.3f} s is shorter than ~{RESOLUTION_S:g} s; CPU "
                "utilisation over it is mostly noise"
                if duration_s < RESOLUTION_S
                else None
            ),
            update_period_s=self.update_period_s,
            update_period_method="nominal: the kernel's CPU time tick (1 / SC_CLK_TCK)",
            notes=(
                f"estimated from CPU utilisation {utilisation:.1%} x TDP {self.tdp_w:g} W x "
                f"{self.sockets} socket(s); not a measurement",
            ),
        )
