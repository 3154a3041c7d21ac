from __future__ import annotations

import json
import sys
import time

import pytest

from fakes.fake_pynvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    FakeGPU,
    install,
)
from llenergymeasure.devices import nvidia
from llenergymeasure.exceptions import ConfigError, ExperimentError, UnavailableError
from llenergymeasure.measurement.energy import nvml
from llenergymeasure.measurement.energy.nvml import NVMLEnergySource

H100 = "NVIDIA H100 80GB HBM3"
HW_SLOWDOWN = 0x8
SW_POWER_CAP = 0x4
GPU_IDLE = 0x1


def two_gpus(**kwargs) -> list[FakeGPU]:
    return [
        FakeGPU(energy_mj=1_000_000, power_w=300.0, **kwargs),
        FakeGPU(energy_mj=2_000_000, power_w=100.0, enforced_power_limit_w=350.0, **kwargs),
    ]


def test_counter_energy_is_delta_mj_over_all_visible_gpus(monkeypatch) -> None:
    fake = install(monkeypatch, two_gpus())
    source = NVMLEnergySource()
    source.start()
    fake.gpus[0].energy_mj += 5_000
    fake.gpus[1].energy_mj += 7_000
    reading = source.stop()

    assert reading.method == "counter"
    assert reading.source == "nvml"
    assert reading.energy_j == pytest.approx(12.0)
    assert reading.per_device_energy_j == {
        f"cuda:0 {H100} (index 0)": pytest.approx(5.0),
        f"cuda:1 {H100} (index 1)": pytest.approx(7.0),
    }
    assert reading.devices == (f"cuda:0 {H100} (index 0)", f"cuda:1 {H100} (index 1)")
    assert reading.sample_interval_ms == 100.0  # power is polled for the cross-check
    assert reading.samples == ()
    assert not reading.is_estimate
    assert fake.init_calls == fake.shutdown_calls >= 1
    assert not fake.initialised


def test_counter_follows_real_time_in_joules(monkeypatch) -> None:
    install(monkeypatch, [FakeGPU(power_w=250.0)], advance_with_time=True)
    source = NVMLEnergySource()
    source.start()
    time.sleep(0.2)
    reading = source.stop()
    assert reading.energy_j == pytest.approx(250.0 * reading.duration_s, rel=0.05)
    assert reading.mean_power_w == pytest.approx(250.0, rel=0.05)
    assert reading.resolution_warning is None


def test_cuda_visible_devices_index_picks_only_that_gpu(monkeypatch) -> None:
    fake = install(monkeypatch, two_gpus())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    source = NVMLEnergySource()
    source.start()
    fake.gpus[0].energy_mj += 5_000
    fake.gpus[1].energy_mj += 7_000
    reading = source.stop()
    assert reading.devices == (f"cuda:0 {H100} (index 1)",)
    assert reading.energy_j == pytest.approx(7.0)


def test_cuda_visible_devices_uuid_prefix(monkeypatch) -> None:
    fake = install(monkeypatch, two_gpus())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", fake.gpus[1].uuid[:14])
    assert NVMLEnergySource().devices == (f"cuda:0 {H100} (index 1)",)


def test_cuda_visible_devices_stops_at_first_invalid_entry_like_cuda(monkeypatch) -> None:
    install(monkeypatch, two_gpus())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,7,0")
    source = NVMLEnergySource()
    source.start()
    reading = source.stop()
    assert reading.devices == (f"cuda:0 {H100} (index 1)",)
    assert any("'7'" in note for note in reading.notes)


@pytest.mark.parametrize("value", ["", "-1"])
def test_cuda_visible_devices_selecting_nothing_is_unavailable(monkeypatch, value) -> None:
    fake = install(monkeypatch, two_gpus())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    availability = nvml.probe()
    assert not availability.available
    assert "CUDA_VISIBLE_DEVICES" in availability.reason
    with pytest.raises(UnavailableError, match="CUDA_VISIBLE_DEVICES"):
        NVMLEnergySource().start()
    assert not fake.initialised


def test_mig_devices_are_refused_with_a_reason(monkeypatch) -> None:
    install(monkeypatch, two_gpus())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-1234")
    with pytest.raises(UnavailableError, match="MIG"):
        NVMLEnergySource().start()


def test_heterogeneous_gpus_warn_about_cuda_device_order(monkeypatch) -> None:
    install(monkeypatch, [FakeGPU(name="NVIDIA A100"), FakeGPU(name="NVIDIA T4")])
    source = NVMLEnergySource()
    source.start()
    assert any("CUDA_DEVICE_ORDER" in note for note in source.stop().notes)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    source.start()
    assert not any("CUDA_DEVICE_ORDER" in note for note in source.stop().notes)


def test_polling_fallback_integrates_constant_power(monkeypatch) -> None:
    install(
        monkeypatch,
        [FakeGPU(power_w=150.0, has_energy_counter=False), FakeGPU(power_w=50.0)],
    )
    source = NVMLEnergySource(sample_interval_ms=20)
    source.start()
    time.sleep(0.3)
    reading = source.stop()

    assert reading.method == "polling"  # one GPU without a counter: poll them all
    assert reading.sample_interval_ms == 20
    assert reading.energy_j == pytest.approx(200.0 * reading.duration_s, rel=0.02)
    assert reading.duration_s == pytest.approx(0.3, abs=0.1)
    assert reading.resolution_warning is None
    assert reading.samples == ()  # no time series unless asked


def test_polling_follows_a_change_of_power(monkeypatch) -> None:
    fake = install(monkeypatch, [FakeGPU(power_w=100.0, has_energy_counter=False)])
    source = NVMLEnergySource(sample_interval_ms=10, timeseries=True)
    source.start()
    time.sleep(0.15)
    fake.gpus[0].power_w = 300.0
    time.sleep(0.15)
    reading = source.stop()
    samples = reading.samples
    assert len(samples) >= 10
    t_change = next(s.t_s for s in samples if s.power_w == 300.0)
    expected_j = 100.0 * t_change + 300.0 * (reading.duration_s - t_change)
    assert reading.energy_j == pytest.approx(expected_j, abs=100.0 * 0.02 + 2.0)
    assert 100.0 * reading.duration_s < reading.energy_j < 300.0 * reading.duration_s
    assert [s.t_s for s in samples] == sorted(s.t_s for s in samples)


def test_timeseries_in_counter_mode_keeps_counter_energy(monkeypatch) -> None:
    fake = install(monkeypatch, two_gpus(temperature_c=61.0))
    fake.gpus[1].temperature_c = 70.0
    source = NVMLEnergySource(sample_interval_ms=10, timeseries=True)
    source.start()
    time.sleep(0.1)
    fake.gpus[0].energy_mj += 1_000
    reading = source.stop()
    assert reading.method == "counter"
    assert reading.energy_j == pytest.approx(1.0)  # from the counter, not the samples
    assert reading.sample_interval_ms == 10
    assert len(reading.samples) >= 3
    first = reading.samples[0]
    assert first.power_w == pytest.approx(400.0)
    assert first.device_power_w[f"cuda:1 {H100} (index 1)"] == pytest.approx(100.0)
    assert first.temperature_c == 70.0


def test_throttle_reasons_seen_during_the_window_are_recorded(monkeypatch) -> None:
    fake = install(monkeypatch, two_gpus())
    source = NVMLEnergySource(sample_interval_ms=5)
    source.start()
    fake.gpus[1].reason_mask = HW_SLOWDOWN | SW_POWER_CAP | GPU_IDLE
    time.sleep(0.1)
    fake.gpus[1].reason_mask = 0  # gone again before stop: only the sampler saw it
    reading = source.stop()
    assert reading.throttle_reasons == ("SW_POWER_CAP", "HW_SLOWDOWN")
    assert any("HW_SLOWDOWN" in note for note in reading.notes)


def test_idle_is_not_a_throttle_reason(monkeypatch) -> None:
    install(monkeypatch, [FakeGPU(reason_mask=GPU_IDLE)])
    source = NVMLEnergySource()
    source.start()
    assert source.stop().throttle_reasons == ()


def test_old_driver_falls_back_to_throttle_reasons_query(monkeypatch) -> None:
    fake = install(
        monkeypatch,
        [FakeGPU(reason_mask=HW_SLOWDOWN)],
        fail={"nvmlDeviceGetCurrentClocksEventReasons": NVML_ERROR_FUNCTION_NOT_FOUND},
    )
    source = NVMLEnergySource()
    source.start()
    assert source.stop().throttle_reasons == ("HW_SLOWDOWN",)
    assert fake.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] >= 2


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (NVML_ERROR_LIBRARY_NOT_FOUND, "libnvidia-ml.so.1"),
        (NVML_ERROR_DRIVER_NOT_LOADED, "driver is not loaded"),
        (NVML_ERROR_NO_PERMISSION, "NO_PERMISSION"),
    ],
)
def test_init_failures_are_unavailable_with_reason_and_fix(monkeypatch, code, words) -> None:
    install(monkeypatch, two_gpus(), init_error=code)
    availability = nvml.probe()
    assert not availability.available
    assert words in availability.reason
    assert availability.fix
    with pytest.raises(UnavailableError, match=words) as info:
        NVMLEnergySource().start()
    assert info.value.fix == availability.fix


def test_no_gpu_is_unavailable(monkeypatch) -> None:
    install(monkeypatch, [])
    availability = nvml.probe()
    assert not availability.available
    assert "no NVIDIA GPU" in availability.reason
    with pytest.raises(UnavailableError, match="no NVIDIA GPU"):
        nvidia.gpu_temperatures_c()


def test_missing_nvidia_ml_py_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    availability = nvml.probe()
    assert not availability.available
    assert "not installed" in availability.reason
    assert "llenergymeasure[nvidia]" in (availability.fix or "")


def test_probe_reports_counter_or_polling(monkeypatch) -> None:
    install(monkeypatch, two_gpus())
    assert "energy counter supported" in nvml.probe().reason
    nvml.clear_probe_cache()
    install(monkeypatch, [FakeGPU(has_energy_counter=False)])
    availability = nvml.probe()
    assert availability.available
    assert "polled" in availability.reason


def test_probe_is_cached_per_cuda_visible_devices(monkeypatch) -> None:
    fake = install(monkeypatch, two_gpus())
    nvml.probe()
    nvml.probe()
    assert fake.init_calls == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    nvml.probe()
    assert fake.init_calls == 2


def test_gpu_lost_while_polling_fails_the_reading_and_shuts_down(monkeypatch) -> None:
    fake = install(monkeypatch, [FakeGPU(has_energy_counter=False)])
    source = NVMLEnergySource(sample_interval_ms=5)
    source.start()
    fake.fail["nvmlDeviceGetPowerUsage"] = NVML_ERROR_GPU_IS_LOST
    fake.fail["nvmlDeviceGetFieldValues"] = NVML_ERROR_GPU_IS_LOST
    time.sleep(0.05)
    with pytest.raises(ExperimentError, match="GPU_IS_LOST"):
        source.stop()
    assert not fake.initialised


def test_counter_going_backwards_is_an_error_not_a_number(monkeypatch) -> None:
    fake = install(monkeypatch, [FakeGPU(energy_mj=10_000)])
    source = NVMLEnergySource()
    source.start()
    fake.gpus[0].energy_mj = 5
    with pytest.raises(ExperimentError, match="went backwards"):
        source.stop()
    assert not fake.initialised


def test_short_counter_window_has_a_resolution_warning(monkeypatch) -> None:
    monkeypatch.setattr(nvml, "PERIOD_PROBE_TIMEOUT_S", 1.0)
    install(monkeypatch, [FakeGPU(counter_period_s=0.05)], advance_with_time=True)
    source = NVMLEnergySource()
    source.start()
    reading = source.stop()
    assert reading.update_period_s is not None
    assert reading.duration_s < reading.update_period_s
    assert "update period" in (reading.resolution_warning or "")


def test_too_few_polling_samples_has_a_resolution_warning(monkeypatch) -> None:
    install(monkeypatch, [FakeGPU(has_energy_counter=False)])
    source = NVMLEnergySource(sample_interval_ms=10_000)
    source.start()
    reading = source.stop()
    assert "only 2 power samples" in (reading.resolution_warning or "")


def test_start_twice_and_stop_without_start_are_errors(monkeypatch) -> None:
    install(monkeypatch)
    source = NVMLEnergySource()
    with pytest.raises(ExperimentError):
        source.stop()
    source.start()
    with pytest.raises(ExperimentError):
        source.start()
    source.stop()


def test_invalid_interval_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        NVMLEnergySource(sample_interval_ms=0)


def test_reading_is_json_ready(monkeypatch) -> None:
    install(monkeypatch, [FakeGPU(has_energy_counter=False)])
    source = NVMLEnergySource(sample_interval_ms=10, timeseries=True)
    source.start()
    time.sleep(0.05)
    data = json.loads(json.dumps(source.stop().to_dict()))
    assert data["method"] == "polling"
    assert data["samples"][0]["power_w"] == pytest.approx(100.0)
    assert data["mean_power_w"] == pytest.approx(100.0, rel=0.01)
