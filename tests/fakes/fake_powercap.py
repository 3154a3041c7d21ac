"""A fake Linux powercap (RAPL) sysfs tree under a temporary directory.

Mirrors what ``/sys/class/powercap`` lists: the ``intel-rapl`` control-type directory and one
entry per zone (``intel-rapl:N``) and subzone (``intel-rapl:N:M``), each with ``name``,
``energy_uj`` and ``max_energy_range_uj``. Counter values are written atomically (temp file +
rename) so a source's background reader never sees a half-written number.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MAX_RANGE_UJ = 262_143_328_850  # a typical package zone


class FakePowercap:
    def __init__(self, root: Path, prefix: str = "intel-rapl") -> None:
        self.root = root
        self.prefix = prefix
        (root / prefix).mkdir(parents=True, exist_ok=True)
        (root / prefix / "enabled").write_text("1\n")

    def zone_dir(self, zone_id: str) -> Path:
        return self.root / f"{self.prefix}:{zone_id}"

    def add_zone(
        self,
        zone_id: str,
        name: str,
        energy_uj: int = 0,
        max_energy_range_uj: int = DEFAULT_MAX_RANGE_UJ,
    ) -> Path:
        """Add zone ``intel-rapl:<zone_id>`` ("0" a package, "0:2" a subzone of package 0)."""
        zone = self.zone_dir(zone_id)
        zone.mkdir()
        (zone / "name").write_text(f"{name}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_energy_range_uj}\n")
        (zone / "enabled").write_text("1\n")
        self.set_energy(zone_id, energy_uj)
        return zone

    def set_energy(self, zone_id: str, energy_uj: int) -> None:
        target = self.zone_dir(zone_id) / "energy_uj"
        tmp = target.with_name("energy_uj.tmp")
        tmp.write_text(f"{energy_uj}\n")
        os.replace(tmp, target)

    def energy(self, zone_id: str) -> int:
        return int((self.zone_dir(zone_id) / "energy_uj").read_text())

    def add_energy(self, zone_id: str, delta_uj: int) -> None:
        """Advance a counter like the hardware does, wrapping at max_energy_range_uj."""
        max_uj = int((self.zone_dir(zone_id) / "max_energy_range_uj").read_text())
        self.set_energy(zone_id, (self.energy(zone_id) + delta_uj) % max_uj)
