from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fakes.fake_pynvml import FakeGPU, install
from llenergymeasure.exceptions import ConfigError
from llenergymeasure.files import default_cache_dir
from llenergymeasure.measurement.energy import EnergyReading, measure_baseline
from llenergymeasure.measurement.energy.baseline import default_baseline_cache_path
from llenergymeasure.measurement.energy.nvml import NVMLEnergySource


class ConstantPowerSource:
    """A test double whose window lasts exactly as long as the injected sleep says."""

    name = "fake"
    method = "counter"
    devices = ("gpu-a",)

    def __init__(self, power_w: float) -> None:
        self.power_w = power_w
        self.starts = 0
        self.slept_s = 0.0

    def sleep(self, seconds: float) -> None:
        self.slept_s += seconds

    def start(self) -> None:
        self.starts += 1
        self.slept_s = 0.0

    def stop(self) -> EnergyReading:
        return EnergyReading(
            source=self.name,
            method="counter",
            energy_j=self.power_w * self.slept_s,
            duration_s=self.slept_s,
            devices=self.devices,
            per_device_energy_j={"gpu-a": self.power_w * self.slept_s},
            sample_interval_ms=None,
            is_estimate=False,
            resolution_warning=None,
        )


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now_s


def test_miss_measures_then_hit_comes_from_cache(tmp_path: Path) -> None:
    cache = tmp_path / "baseline.json"
    source, clock = ConstantPowerSource(42.0), Clock()
    first = measure_baseline(source, 5.0, cache_path=cache, sleep=source.sleep, clock=clock)
    assert first.power_w == pytest.approx(42.0)
    assert first.duration_s == 5.0
    assert not first.from_cache
    assert first.devices == ("gpu-a",)
    assert first.measured_at.endswith("+00:00")
    assert source.starts == 1

    clock.now_s += 100
    source.power_w = 999.0  # would show if it measured again
    second = measure_baseline(source, 5.0, cache_path=cache, sleep=source.sleep, clock=clock)
    assert second.from_cache
    assert second.power_w == pytest.approx(42.0)
    assert source.starts == 1
    assert not [p for p in tmp_path.iterdir() if p.name != "baseline.json"]  # no temp left


def test_expired_entry_is_measured_again(tmp_path: Path) -> None:
    cache = tmp_path / "baseline.json"
    source, clock = ConstantPowerSource(42.0), Clock()
    measure_baseline(source, 1.0, cache_path=cache, ttl_sec=60, sleep=source.sleep, clock=clock)
    clock.now_s += 61
    source.power_w = 50.0
    again = measure_baseline(
        source, 1.0, cache_path=cache, ttl_sec=60, sleep=source.sleep, clock=clock
    )
    assert not again.from_cache
    assert again.power_w == pytest.approx(50.0)
    assert source.starts == 2


def test_cache_key_separates_entries(tmp_path: Path) -> None:
    cache = tmp_path / "baseline.json"
    source, clock = ConstantPowerSource(42.0), Clock()
    kwargs = {"cache_path": cache, "sleep": source.sleep, "clock": clock}
    measure_baseline(source, 1.0, cache_key="bf16-gpu0", **kwargs)
    other = measure_baseline(source, 1.0, cache_key="fp32-gpu0", **kwargs)
    assert not other.from_cache
    assert len(json.loads(cache.read_text())["entries"]) == 2
    assert measure_baseline(source, 1.0, cache_key="bf16-gpu0", **kwargs).from_cache


def test_zero_ttl_always_measures(tmp_path: Path) -> None:
    source, clock = ConstantPowerSource(42.0), Clock()
    for _ in range(2):
        reading = measure_baseline(
            source, 1.0, cache_path=tmp_path / "b.json", ttl_sec=0, sleep=source.sleep, clock=clock
        )
        assert not reading.from_cache
    assert source.starts == 2


def test_corrupt_cache_is_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "baseline.json"
    cache.write_text("{not json")
    source = ConstantPowerSource(10.0)
    reading = measure_baseline(source, 1.0, cache_path=cache, sleep=source.sleep)
    assert not reading.from_cache
    assert json.loads(cache.read_text())["version"] == 2


def test_duration_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        measure_baseline(ConstantPowerSource(1.0), 0, cache_path=tmp_path / "b.json")


def test_default_cache_location_precedence(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "llem"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "llem"
    assert default_baseline_cache_path() == tmp_path / "llem" / "baseline.json"
    monkeypatch.delenv("LLEM_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "llenergymeasure"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "llenergymeasure"


def test_default_cache_path_is_used_when_none_given(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    source = ConstantPowerSource(3.0)
    measure_baseline(source, 1.0, sleep=source.sleep)
    assert (tmp_path / "cache" / "baseline.json").is_file()


def test_real_idle_window_with_fake_gpu(monkeypatch, tmp_path: Path) -> None:
    install(monkeypatch, [FakeGPU(power_w=70.0)], advance_with_time=True)
    reading = measure_baseline(NVMLEnergySource(), 0.15, cache_path=tmp_path / "b.json")
    assert reading.power_w == pytest.approx(70.0, rel=0.1)
    assert reading.method == "counter" and reading.source == "nvml"
    cached = measure_baseline(
        NVMLEnergySource(), 0.15, cache_path=tmp_path / "b.json", sleep=time.sleep
    )
    assert cached.from_cache
