from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from fakes.fake_pynvml import FakeGPU, install
from llenergymeasure.exceptions import ConfigError
from llenergymeasure.files import default_cache_dir
from llenergymeasure.measurement.energy import EnergyReading, measure_baseline
from llenergymeasure.measurement.energy.baseline import (
    BaselineReading,
    default_baseline_cache_path,
)
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


class FixedHost:
    """Stands in for HostLoadSampler: other processes held ``share_pct`` of the CPU."""

    def __init__(self, share_pct: float) -> None:
        self.share_pct = share_pct

    def start(self) -> None: ...

    def stop(self) -> dict[str, float]:
        return {"other_cpu_share_pct": self.share_pct}


@pytest.mark.parametrize(("share_pct", "cached"), [(50.0, False), (1.0, True)])
def test_a_baseline_taken_on_a_busy_machine_is_never_cached(
    tmp_path: Path, share_pct: float, cached: bool
) -> None:
    cache, source = tmp_path / "baseline.json", ConstantPowerSource(42.0)

    def take() -> BaselineReading:
        return measure_baseline(
            source,
            1.0,
            cache_path=cache,
            sleep=source.sleep,
            host=FixedHost(share_pct),  # type: ignore[arg-type]
        )

    first = take()
    assert first.host_load == {"other_cpu_share_pct": share_pct}
    assert take().from_cache is cached


def test_device_state_is_read_during_the_idle_period_not_before(tmp_path: Path) -> None:
    source = ConstantPowerSource(42.0)
    seen_slept: list[float] = []

    def read_state() -> list[dict[str, object]]:
        seen_slept.append(source.slept_s)
        return [{"pstate": "P8"}]

    baseline = measure_baseline(
        source,
        2.0,
        cache_path=tmp_path / "b.json",
        sleep=source.sleep,
        state=[{"pstate": "P0"}],
        read_state=read_state,
    )
    assert seen_slept == [1.0]  # halfway through the idle window
    assert baseline.state == ({"pstate": "P8"},)


def test_the_baseline_records_its_own_error_bound(monkeypatch, tmp_path: Path) -> None:
    from llenergymeasure.measurement.energy import nvml

    monkeypatch.setattr(nvml, "PERIOD_PROBE_TIMEOUT_S", 1.0)
    install(monkeypatch, [FakeGPU(power_w=70.0, counter_period_s=0.05)], advance_with_time=True)
    baseline = measure_baseline(NVMLEnergySource(), 0.3, cache_path=tmp_path / "b.json")
    assert baseline.error_bound_pct is not None
    assert baseline.error_bound_pct == pytest.approx(100 * 0.05 / baseline.duration_s, rel=0.3)


def test_the_cache_is_scoped_to_this_process_and_model_unless_reuse_is_asked() -> None:
    from llenergymeasure.config.models import ExperimentConfig
    from llenergymeasure.measurement.harness import baseline_cache_key, baseline_scope
    from llenergymeasure.measurement.inference.base import ModelInfo

    info = ModelInfo("m", "cpu", "float32", 1000, 0.5)
    a = ExperimentConfig.model_validate({"model": "builtin:tiny-gpt2"})
    b = ExperimentConfig.model_validate({"model": "gpt2"})
    scoped = baseline_cache_key(info, None, baseline_scope(a))
    assert f"process={os.getpid()}@" in scoped and "tiny-gpt2" in scoped
    assert scoped != baseline_cache_key(info, None, baseline_scope(b))
    assert baseline_cache_key(info, None) == baseline_cache_key(info, None, None)  # opted in
