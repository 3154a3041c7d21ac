"""The counter vs polled-power cross-check: two readings of one window, compared.

A counter reading that also polled power (NVML) carries both figures. Their disagreement,
beyond what both readings' own resolution allows, means one of them is not seeing the load.
"""

from __future__ import annotations

from typing import Any

from llenergymeasure.measurement.energy.base import EnergyReading

# Above this disagreement (on top of both readings' own resolution) one of them is not seeing
# the load. NVIDIA documents board power readings to about +-5% and A100/H100 sensors sample
# only part of each 100 ms, so two honest readings of a steady load differ by a few %, never
# by 10%.
CROSSCHECK_THRESHOLD_PCT = 10.0
AVERAGED_POWER_LAG_S = 1.0  # nvmlDeviceGetPowerUsage is a 1-s moving average on Ampere+
MIN_CROSSCHECK_SAMPLES = 3  # fewer polled samples make no integral worth comparing


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


def crosscheck(reading: EnergyReading) -> dict[str, Any] | None:
    """Counter J vs polled-power J, for counter readings that also polled power."""
    if reading.method != "counter" or reading.polled_energy_j is None:
        return None
    if reading.polled_samples < MIN_CROSSCHECK_SAMPLES or reading.energy_j <= 0:
        return None
    disagreement = 100.0 * abs(reading.polled_energy_j - reading.energy_j) / reading.energy_j
    return {
        "counter_j": reading.energy_j,
        "polled_j": reading.polled_energy_j,
        "disagreement_pct": disagreement,
        "allowance_pct": crosscheck_allowance_pct(reading),
        "polled_samples": reading.polled_samples,
        "power_method": reading.power_method,
    }
