"""How a run's energy figure was obtained: source, method, window, error bound, baseline,
cross-check, processes and device state, as the result records it."""

from __future__ import annotations

from llenergymeasure.measurement.energy import BaselineReading, EnergyReading, EnergySource
from llenergymeasure.measurement.energy.crosscheck import crosscheck
from llenergymeasure.measurement.window import MeasuredWindow
from llenergymeasure.results.schema import EnergyProvenance


def per_device_energy(reading: EnergyReading) -> dict[str, float]:
    """The reading's per-device joules, keyed by UUID where the device record gives one."""
    uuids = {d.get("label"): d.get("uuid") for d in reading.device_records}
    return {str(uuids.get(label) or label): j for label, j in reading.per_device_energy_j.items()}


def energy_provenance(
    window: MeasuredWindow, baseline: BaselineReading | None, source: EnergySource
) -> EnergyProvenance:
    """The energy section of the result; without a reading, why it is missing."""
    reading = window.reading
    if reading is None:
        return EnergyProvenance(
            source=source.name,
            method=source.method,
            is_estimate=source.method == "estimate",
            window_s=window.seconds,
            unavailable_reason=window.energy_error,
            passes=window.passes,
            required_window_s=window.required_s,
            target_error_pct=window.target_error_pct,
            host_load=window.host_load,
        )
    return EnergyProvenance(
        source=reading.source,
        method=reading.method,
        is_estimate=reading.is_estimate,
        devices=list(reading.devices),
        sample_interval_ms=reading.sample_interval_ms,
        window_s=reading.duration_s,
        resolution_warning=reading.resolution_warning,
        baseline_power_w=baseline.power_w if baseline is not None else None,
        baseline=baseline.to_dict() if baseline is not None else None,
        throttle_reasons=list(reading.throttle_reasons),
        notes=list(reading.notes),
        device_info=[dict(d) for d in reading.device_records],
        per_device_energy_j=per_device_energy(reading),
        update_period_s=reading.update_period_s,
        update_period_method=reading.update_period_method,
        error_bound_pct=reading.error_bound_pct(),
        target_error_pct=window.target_error_pct,
        required_window_s=window.required_s,
        passes=window.passes,
        power_method=reading.power_method,
        crosscheck=crosscheck(reading),
        other_processes=[dict(p) for p in reading.other_processes],
        unknown_processes=[dict(p) for p in reading.unknown_processes],
        host_load=window.host_load,
        mig_whole_gpu=reading.mig_whole_gpu,
        state_start=[dict(d) for d in reading.state_start],
        state_end=[dict(d) for d in reading.state_end],
    )
