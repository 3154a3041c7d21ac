from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fakes.fake_powercap import FakePowercap
from fakes.fake_pynvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeGPU, install
from llenergymeasure.exceptions import ConfigError, UnavailableError
from llenergymeasure.log import logger  # the lazy stand-in: its first use disables the library
from llenergymeasure.measurement.energy import (
    ENERGY_SOURCES,
    Availability,
    EnergyOptions,
    EnergySource,
    probe_energy_sources,
    select_energy_source,
)
from llenergymeasure.measurement.energy.estimate import EstimateEnergySource
from llenergymeasure.measurement.energy.nvml import NVMLEnergySource
from llenergymeasure.measurement.energy.rapl import RAPLEnergySource


@pytest.fixture
def rapl_root(tmp_path: Path) -> Path:
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_zone("0", "package-0")
    return tree.root


@pytest.fixture
def no_nvml(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)


@pytest.fixture
def log_lines():
    lines: list[str] = []
    logger.enable("llenergymeasure")
    sink = logger.add(lines.append, format="{level} {message}")
    yield lines
    logger.remove(sink)
    logger.disable("llenergymeasure")


def test_auto_prefers_nvml_when_a_gpu_is_usable(monkeypatch, rapl_root, log_lines) -> None:
    install(monkeypatch, [FakeGPU()])
    source = select_energy_source("auto", EnergyOptions(rapl_root=rapl_root))
    assert isinstance(source, NVMLEnergySource)
    assert any("auto -> nvml" in line for line in log_lines)


def test_auto_falls_to_rapl_without_nvml(no_nvml, rapl_root, log_lines) -> None:
    source = select_energy_source(options=EnergyOptions(rapl_root=rapl_root))
    assert isinstance(source, RAPLEnergySource)
    assert source.root == rapl_root
    assert any("nvml: NVML energy is not available here" in line for line in log_lines)


def test_auto_falls_to_estimate_with_neither(monkeypatch, tmp_path, log_lines) -> None:
    install(monkeypatch, init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    source = select_energy_source(options=EnergyOptions(rapl_root=tmp_path / "absent", tdp_w=120.0))
    assert isinstance(source, EstimateEnergySource)
    assert source.tdp_w == 120.0
    assert any(line.startswith("WARNING") and "ESTIMATE" in line for line in log_lines)


def test_explicit_unavailable_source_raises_instead_of_falling_back(no_nvml, rapl_root) -> None:
    with pytest.raises(UnavailableError) as info:
        select_energy_source("nvml", EnergyOptions(rapl_root=rapl_root))
    assert "energy source 'nvml' is not available here" in info.value.what
    assert "llenergymeasure[nvidia]" in (info.value.fix or "")


def test_explicit_rapl_on_a_machine_without_it(tmp_path) -> None:
    with pytest.raises(UnavailableError, match="not Linux, no RAPL driver, or in a VM"):
        select_energy_source("rapl", EnergyOptions(rapl_root=tmp_path / "absent"))


@pytest.mark.parametrize(("typo", "suggestion"), [("nvlm", "nvml"), ("RAPL", "rapl")])
def test_unknown_name_suggests_the_nearest(typo, suggestion) -> None:
    with pytest.raises(ConfigError, match=f"unknown energy source '{typo}'") as info:
        select_energy_source(typo)
    assert f"did you mean '{suggestion}'?" in (info.value.fix or "")


def test_options_reach_the_source(monkeypatch) -> None:
    install(monkeypatch, [FakeGPU()])
    source = select_energy_source("nvml", EnergyOptions(sample_interval_ms=20, timeseries=True))
    assert isinstance(source, NVMLEnergySource)
    assert (source.sample_interval_ms, source.timeseries) == (20, True)
    assert isinstance(source, EnergySource)


def test_probe_reports_every_source(no_nvml, rapl_root) -> None:
    report = probe_energy_sources(rapl_root=rapl_root)
    assert set(report) == set(ENERGY_SOURCES)
    assert all(isinstance(a, Availability) for a in report.values())
    assert report["rapl"].available and report["estimate"].available
    assert not report["nvml"].available


def test_registry_strings_resolve_to_sources() -> None:
    import importlib

    for name, target in ENERGY_SOURCES.items():
        module_name, class_name = target.split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        assert cls.name == name
