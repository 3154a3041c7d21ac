"""zeus and codecarbon, tested against fake modules with their real call shapes."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from llenergymeasure.exceptions import UnavailableError
from llenergymeasure.measurement.energy import Availability, codecarbon, select_energy_source, zeus
from llenergymeasure.measurement.energy.codecarbon import CodeCarbonEnergySource
from llenergymeasure.measurement.energy.zeus import ZeusEnergySource


@dataclass
class FakeMeasurement:  # zeus.monitor.energy.Measurement
    time: float
    gpu_energy: dict[int, float]
    cpu_energy: dict[int, float] | None = None


@dataclass
class FakeZeusMonitor:
    gpu_indices: list[int] | None = None
    cpu_indices: list[int] | None = None
    calls: list[tuple[str, str, bool]] = field(default_factory=list)

    def begin_window(self, key: str, sync_execution: bool = True) -> None:
        self.calls.append(("begin", key, sync_execution))

    def end_window(self, key: str, sync_execution: bool = True, cancel: bool = False) -> Any:
        self.calls.append(("end", key, sync_execution))
        return FakeMeasurement(time=2.0, gpu_energy={0: 10.0, 1: 5.5}, cpu_energy={0: 99.0})


@pytest.fixture
def fake_zeus(monkeypatch):
    monitors: list[FakeZeusMonitor] = []

    def factory(**kwargs: Any) -> FakeZeusMonitor:
        monitors.append(FakeZeusMonitor(**kwargs))
        return monitors[-1]

    package = types.ModuleType("zeus")
    monitor_module = types.ModuleType("zeus.monitor")
    monitor_module.ZeusMonitor = factory  # type: ignore[attr-defined]
    package.monitor = monitor_module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zeus", package)
    monkeypatch.setitem(sys.modules, "zeus.monitor", monitor_module)
    return monitors


def test_zeus_window_sums_gpu_energy_only(fake_zeus) -> None:
    source = select_energy_source("zeus")
    assert isinstance(source, ZeusEnergySource)
    source.start()
    reading = source.stop()
    assert reading.method == "zeus"
    assert reading.energy_j == pytest.approx(15.5)  # the 99 J of CPU is not ours to add
    assert reading.per_device_energy_j == {"gpu:0": 10.0, "gpu:1": 5.5}
    assert reading.duration_s == 2.0
    (monitor,) = fake_zeus
    assert monitor.cpu_indices == []
    assert [sync for _, _, sync in monitor.calls] == [False, False]


def test_zeus_absent_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "zeus", None)
    availability = zeus.probe()
    assert availability == Availability(
        False, "zeus is not installed", "pip install 'llenergymeasure[zeus]'"
    )
    with pytest.raises(UnavailableError, match="zeus is not installed"):
        select_energy_source("zeus")


class FakeEmissionsData:
    energy_consumed = 0.001  # kWh
    cpu_energy = 0.0004
    gpu_energy = 0.0005
    ram_energy = 0.0001


class FakeTracker:
    instances: list[FakeTracker] = []  # noqa: RUF012

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.started = self.stopped = False
        FakeTracker.instances.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> float:
        self.stopped = True
        self.final_emissions_data = FakeEmissionsData()
        return 0.0002  # kg CO2eq


@pytest.fixture
def fake_codecarbon(monkeypatch):
    module = types.ModuleType("codecarbon")
    module.OfflineEmissionsTracker = FakeTracker  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "codecarbon", module)
    FakeTracker.instances = []
    return module


def test_codecarbon_kwh_become_joules_and_are_labelled_estimates(fake_codecarbon) -> None:
    source = select_energy_source("codecarbon")
    assert isinstance(source, CodeCarbonEnergySource)
    source.start()
    reading = source.stop()
    assert reading.energy_j == pytest.approx(3600.0)
    assert reading.per_device_energy_j == {
        "cpu": pytest.approx(1440.0),
        "gpu": pytest.approx(1800.0),
        "ram": pytest.approx(360.0),
    }
    assert reading.is_estimate and reading.method == "codecarbon"
    assert "estimate" in reading.notes[0]
    (tracker,) = FakeTracker.instances
    assert tracker.started and tracker.stopped
    assert tracker.kwargs["save_to_file"] is False


def test_codecarbon_without_final_data_uses_total_energy(fake_codecarbon) -> None:
    class OldTracker(FakeTracker):
        def stop(self) -> float:
            self._total_energy = types.SimpleNamespace(kWh=0.002)
            return 0.0

    fake_codecarbon.OfflineEmissionsTracker = OldTracker
    source = CodeCarbonEnergySource()
    source.start()
    reading = source.stop()
    assert reading.energy_j == pytest.approx(7200.0)
    assert reading.devices == ("codecarbon",)


def test_codecarbon_absent_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    availability = codecarbon.probe()
    assert not availability.available
    assert "llenergymeasure[codecarbon]" in (availability.fix or "")
