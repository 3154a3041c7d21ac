"""Energy sources behind one Protocol: nvml, rapl, zeus, codecarbon, estimate.

Importing this package imports no vendor library; a source's module (and its vendor
library) is loaded only when that source is probed or selected.
"""

from __future__ import annotations

from llenergymeasure.measurement.energy.base import (
    Availability,
    EnergyMethod,
    EnergyOptions,
    EnergyReading,
    EnergySource,
    PowerSample,
)
from llenergymeasure.measurement.energy.baseline import BaselineReading, measure_baseline
from llenergymeasure.measurement.energy.registry import (
    ENERGY_SOURCES,
    SOURCE_NAMES,
    clear_probe_caches,
    probe_energy_sources,
    select_energy_source,
)

__all__ = [
    "ENERGY_SOURCES",
    "SOURCE_NAMES",
    "Availability",
    "BaselineReading",
    "EnergyMethod",
    "EnergyOptions",
    "EnergyReading",
    "EnergySource",
    "PowerSample",
    "clear_probe_caches",
    "measure_baseline",
    "probe_energy_sources",
    "select_energy_source",
]
