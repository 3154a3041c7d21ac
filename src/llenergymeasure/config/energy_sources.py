"""One spec per energy source: the facts that planning and measuring both need.

Planning must know which sources read the whole machine (experiments measured with one must
run alone on the node) without importing any measurement code, so those facts live here, as
data; the measurement registry derives its lookup table and ``auto``'s order from the same
specs. A new source is one class in ``measurement/energy/`` and one spec here.
"""

from __future__ import annotations

from dataclasses import dataclass

_PACKAGE = "llenergymeasure.measurement.energy"


@dataclass(frozen=True)
class EnergySourceSpec:
    name: str
    source: str
    """``module:Class`` of the source, imported only when it is probed or chosen."""
    node_wide: bool
    """Reads the whole machine (CPU package, estimate), not the experiment's own devices."""
    auto: bool
    """Tried by ``energy.source: auto``, in the order written below (most direct first)."""


ENERGY_SOURCE_SPECS: dict[str, EnergySourceSpec] = {
    spec.name: spec
    for spec in (
        EnergySourceSpec("nvml", f"{_PACKAGE}.nvml:NVMLEnergySource", node_wide=False, auto=True),
        EnergySourceSpec("rapl", f"{_PACKAGE}.rapl:RAPLEnergySource", node_wide=True, auto=True),
        EnergySourceSpec("zeus", f"{_PACKAGE}.zeus:ZeusEnergySource", node_wide=False, auto=False),
        EnergySourceSpec(
            "codecarbon",
            f"{_PACKAGE}.codecarbon:CodeCarbonEnergySource",
            node_wide=True,
            auto=False,
        ),
        EnergySourceSpec(
            "estimate", f"{_PACKAGE}.estimate:EstimateEnergySource", node_wide=True, auto=True
        ),
    )
}
"""Source name -> its spec; the keys are exactly the ``EnergySourceName`` options but ``auto``."""
