from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fakes.fake_powercap import FakePowercap
from llenergymeasure.exceptions import UnavailableError
from llenergymeasure.measurement.energy import rapl
from llenergymeasure.measurement.energy.rapl import RAPLEnergySource


@pytest.fixture
def tree(tmp_path: Path) -> FakePowercap:
    return FakePowercap(tmp_path / "powercap")


def test_single_package_delta_in_joules(tree: FakePowercap) -> None:
    tree.add_zone("0", "package-0", energy_uj=1_000_000)
    source = RAPLEnergySource(tree.root)
    source.start()
    tree.add_energy("0", 2_500_000)
    reading = source.stop()
    assert reading.source == "rapl"
    assert reading.method == "rapl"
    assert reading.energy_j == pytest.approx(2.5)
    assert reading.devices == ("package-0",)
    assert reading.sample_interval_ms is None
    assert not reading.is_estimate
    assert reading.notes == ()


def test_wraparound_is_corrected_and_noted(tree: FakePowercap) -> None:
    tree.add_zone("0", "package-0", energy_uj=900_000, max_energy_range_uj=1_000_000)
    source = RAPLEnergySource(tree.root)
    source.start()
    tree.set_energy("0", 100_000)
    reading = source.stop()
    assert reading.energy_j == pytest.approx(0.2)
    assert any("wrapped 1 time" in note for note in reading.notes)


def test_packages_and_dram_summed_without_double_counting(tree: FakePowercap) -> None:
    tree.add_zone("0", "package-0")
    tree.add_zone("0:0", "core")  # part of package-0: must not be added again
    tree.add_zone("0:1", "dram")  # not part of package energy: added
    tree.add_zone("1", "package-1")
    tree.add_zone("1:0", "dram")
    tree.add_zone("2", "psys")  # whole platform, contains the packages: left out
    source = RAPLEnergySource(tree.root)
    source.start()
    for zone, delta_uj in [("0", 10e6), ("0:0", 7e6), ("0:1", 2e6), ("1", 20e6)]:
        tree.add_energy(zone, int(delta_uj))
    tree.add_energy("1:0", 3_000_000)
    tree.add_energy("2", 50_000_000)
    reading = source.stop()
    assert reading.energy_j == pytest.approx(35.0)
    assert reading.per_device_energy_j == {
        "package-0": pytest.approx(10.0),
        "package-1": pytest.approx(20.0),
        "package-0/dram": pytest.approx(2.0),
        "package-1/dram": pytest.approx(3.0),
    }
    assert any("psys" in note for note in reading.notes)


def test_amd_rapl_zones_are_read_too(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path, prefix="amd-rapl")
    tree.add_zone("0", "package-0")
    source = RAPLEnergySource(tree.root)
    source.start()
    tree.add_energy("0", 1_000_000)
    assert source.stop().energy_j == pytest.approx(1.0)


def test_a_wrap_guard_catches_more_than_one_wrap(tree: FakePowercap, monkeypatch) -> None:
    monkeypatch.setattr(rapl, "WRAP_GUARD_INTERVAL_S", 0.01)
    tree.add_zone("0", "package-0", energy_uj=0, max_energy_range_uj=1_000)
    source = RAPLEnergySource(tree.root)
    source.start()
    for _ in range(3):  # 2_400 uJ in steps the guard sees; the counter ends at 400
        tree.add_energy("0", 800)
        time.sleep(0.06)
    reading = source.stop()
    assert reading.energy_j == pytest.approx(2_400 / 1e6)
    assert any("wrapped 2 time" in note for note in reading.notes)


def test_timeseries_samples_integrate_to_the_energy(tree: FakePowercap) -> None:
    tree.add_zone("0", "package-0")
    source = RAPLEnergySource(tree.root, sample_interval_ms=20, timeseries=True)
    source.start()
    for _ in range(5):
        tree.add_energy("0", 1_000_000)
        time.sleep(0.03)
    reading = source.stop()
    assert reading.energy_j == pytest.approx(5.0)
    assert reading.sample_interval_ms == 20
    assert len(reading.samples) >= 3
    times = [0.0] + [s.t_s for s in reading.samples]
    integral_j = sum(
        s.power_w * (t1 - t0) for s, t0, t1 in zip(reading.samples, times, times[1:], strict=False)
    )
    assert integral_j == pytest.approx(5.0, rel=1e-6)


def test_permission_denied_says_how_to_fix(tree: FakePowercap, monkeypatch) -> None:
    # We run as root, so chmod cannot take read access away: make the read itself fail,
    # exactly as open() does for a non-root user since the 2020 RAPL lockdown.
    tree.add_zone("0", "package-0")
    real_read_text = Path.read_text

    def denied(self: Path, *args, **kwargs) -> str:
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    availability = rapl.probe(tree.root)
    assert not availability.available
    assert "permission denied" in availability.reason
    assert "run as root or `sudo chmod o+r" in (availability.fix or "")
    with pytest.raises(UnavailableError, match="permission denied"):
        RAPLEnergySource(tree.root).start()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_permission_denied_for_real_when_not_root(tree: FakePowercap) -> None:
    zone = tree.add_zone("0", "package-0")
    (zone / "energy_uj").chmod(0)
    assert "permission denied" in rapl.probe(tree.root).reason


def test_absent_powercap_is_unavailable(tmp_path: Path) -> None:
    availability = rapl.probe(tmp_path / "absent")
    assert not availability.available
    assert "not Linux, no RAPL driver, or in a VM" in availability.reason
    with pytest.raises(UnavailableError, match="no "):
        RAPLEnergySource(tmp_path / "absent").start()


def test_powercap_without_rapl_zones_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "dtpm").mkdir()
    availability = rapl.probe(tmp_path)
    assert not availability.available
    assert "no intel-rapl or amd-rapl zones" in availability.reason


def test_probe_lists_the_zones(tree: FakePowercap) -> None:
    tree.add_zone("0", "package-0")
    tree.add_zone("0:2", "dram")
    availability = rapl.probe(tree.root)
    assert availability.available
    assert "package-0, package-0/dram" in availability.reason


def test_resolution_warning_only_for_windows_under_a_millisecond(tree: FakePowercap) -> None:
    tree.add_zone("0", "package-0")
    source = RAPLEnergySource(tree.root)
    source.start()
    short = source.stop()
    assert (short.resolution_warning is not None) == (short.duration_s < rapl.RESOLUTION_S)
    source.start()
    time.sleep(0.01)
    assert source.stop().resolution_warning is None


def test_zones_are_listed_in_numeric_order(tree: FakePowercap) -> None:
    for n in (10, 2):
        tree.add_zone(str(n), f"package-{n}")
    assert RAPLEnergySource(tree.root).devices == ("package-2", "package-10")
