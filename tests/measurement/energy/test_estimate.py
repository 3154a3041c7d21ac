from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import psutil
import pytest

from llenergymeasure.exceptions import ConfigError
from llenergymeasure.measurement.energy import estimate
from llenergymeasure.measurement.energy.estimate import EstimateEnergySource

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait guest guest_nice")


def test_energy_is_utilisation_times_tdp_times_duration(monkeypatch) -> None:
    # busy +30 s and idle +30 s (guest time is already inside user): 50 % utilisation
    snapshots = iter([CpuTimes(100, 0, 50, 1000, 10, 5, 0), CpuTimes(125, 0, 55, 1025, 15, 9, 0)])
    monkeypatch.setattr(psutil, "cpu_times", lambda: next(snapshots))
    source = EstimateEnergySource(tdp_w=100.0, sockets=2)
    source.start()
    reading = source.stop()

    assert reading.method == "estimate"
    assert reading.is_estimate
    assert reading.energy_j == pytest.approx(0.5 * 100.0 * 2 * reading.duration_s)
    assert reading.notes == (
        "estimated from CPU utilisation 50.0% x TDP 100 W x 2 socket(s); not a measurement",
    )


def test_real_cpu_times_give_a_bounded_labelled_estimate() -> None:
    source = EstimateEnergySource()
    source.start()
    sum(i * i for i in range(200_000))
    reading = source.stop()
    assert reading.is_estimate and reading.method == "estimate"
    ceiling_j = estimate.DEFAULT_TDP_W * source.sockets * reading.duration_s
    assert 0.0 <= reading.energy_j <= ceiling_j
    assert "not a measurement" in reading.notes[0]


def test_short_window_is_flagged() -> None:
    source = EstimateEnergySource()
    source.start()
    assert source.stop().resolution_warning is not None


def test_always_available() -> None:
    assert estimate.probe().available


def test_tdp_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="tdp_w"):
        EstimateEnergySource(tdp_w=0)


def test_socket_count_from_sysfs(tmp_path: Path) -> None:
    for cpu, package in [(0, 0), (1, 0), (2, 1), (3, 1)]:
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
    assert estimate.count_cpu_sockets(tmp_path) == 2
    assert estimate.count_cpu_sockets(tmp_path / "absent") == 1
