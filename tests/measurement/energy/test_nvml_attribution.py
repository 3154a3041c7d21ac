"""NVML measures exactly the model's GPUs, says how far its reading can be trusted, and
cross-checks its counter against polled power (fake pynvml; no GPU needed)."""

from __future__ import annotations

import os
import random
import time

import pytest

from fakes.fake_pynvml import FOREIGN_PID, FakeGPU, FakeProcess, install
from llenergymeasure.devices.base import DeviceRef
from llenergymeasure.exceptions import UnavailableError
from llenergymeasure.measurement.energy import nvml
from llenergymeasure.measurement.energy.base import EnergyOptions
from llenergymeasure.measurement.energy.nvml import NVMLEnergySource


def eight_gpus() -> list[FakeGPU]:
    """An 8-GPU node: the model's GPU (index 5) at 300 W, the others idling or busy."""
    return [FakeGPU(power_w=300.0 if i == 5 else 70.0 + 10 * i) for i in range(8)]


def model_on(fake, nvml_index: int, cuda_index: int = 0) -> tuple[DeviceRef, ...]:
    return (DeviceRef("cuda", cuda_index, fake.gpus[nvml_index].uuid, "NVIDIA H100"),)


@pytest.mark.parametrize("visible", [None, "0,1,2,3,4,5,6,7", "5", "3,5"])
def test_only_the_models_gpu_is_counted_whatever_cuda_visible_devices_says(
    monkeypatch, visible
) -> None:
    fake = install(monkeypatch, eight_gpus(), advance_with_time=True)
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    cuda_index = 0 if visible in (None, "5") else (1 if visible == "3,5" else 5)
    source = NVMLEnergySource(devices=model_on(fake, 5, cuda_index))
    source.start()
    time.sleep(0.2)
    reading = source.stop()
    assert len(reading.devices) == 1
    (record,) = reading.device_records
    assert record["uuid"] == fake.gpus[5].uuid
    assert record["nvml_index"] == 5 and record["cuda_index"] == cuda_index
    assert record["name"] == fake.gpus[5].name
    assert reading.mean_power_w == pytest.approx(300.0, rel=0.05)  # not 300 + 7 idle GPUs
    assert fake.calls.get("nvmlDeviceGetHandleByUUID", 0) >= 1


def test_an_unknown_uuid_is_unavailable_not_another_gpu(monkeypatch) -> None:
    install(monkeypatch, eight_gpus())
    source = NVMLEnergySource(devices=(DeviceRef("cuda", 0, "GPU-nope", "x"),))
    with pytest.raises(UnavailableError, match="GPU-nope"):
        source.start()


def test_a_model_on_cpu_makes_nvml_unavailable(monkeypatch) -> None:
    install(monkeypatch, eight_gpus())
    availability = NVMLEnergySource.availability(EnergyOptions(devices=(DeviceRef("cpu"),)))
    assert not availability.available and "no NVIDIA GPU" in availability.reason


@pytest.mark.parametrize("by_uuid", [True, False])
def test_mig_mode_is_refused_by_default(monkeypatch, by_uuid) -> None:
    fake = install(monkeypatch, [FakeGPU(mig_mode=1)])
    devices = model_on(fake, 0) if by_uuid else None
    with pytest.raises(UnavailableError, match="MIG mode") as info:
        NVMLEnergySource(devices=devices).start()
    assert "allow_mig_whole_gpu" in (info.value.fix or "")
    assert not fake.initialised


def test_mig_whole_gpu_when_allowed_is_labelled(monkeypatch) -> None:
    fake = install(monkeypatch, [FakeGPU(mig_mode=1)])
    source = NVMLEnergySource(devices=model_on(fake, 0), allow_mig_whole_gpu=True)
    source.start()
    reading = source.stop()
    assert reading.mig_whole_gpu
    assert reading.device_records[0]["mig_enabled"] is True
    assert any("whole physical GPU" in n for n in reading.notes)


def test_other_processes_on_the_measured_gpu_are_recorded(monkeypatch) -> None:
    fake = install(monkeypatch, eight_gpus())
    fake.gpus[5].processes = [FakeProcess(pid=FOREIGN_PID, usedGpuMemory=2**30)]
    fake.gpus[2].processes = [FakeProcess(pid=1)]  # another job, not on our GPU
    source = NVMLEnergySource(devices=model_on(fake, 5))
    source.start()
    reading = source.stop()
    assert [p["pid"] for p in reading.other_processes] == [FOREIGN_PID]
    assert reading.other_processes[0]["used_gpu_memory_bytes"] == 2**30


def test_own_process_is_not_contention(monkeypatch) -> None:
    install(monkeypatch, [FakeGPU(processes=[FakeProcess(pid=os.getpid())])])
    source = NVMLEnergySource()
    source.start()
    assert source.stop().other_processes == ()


HOST_PID = 2**22 + 12345  # above Linux's largest pid_max: exists in no PID namespace here


def window_processes(monkeypatch, pids: list[int]):
    install(monkeypatch, [FakeGPU(processes=[FakeProcess(pid=p) for p in pids])])
    source = NVMLEnergySource()
    source.start()
    return source.stop()


def test_a_pid_missing_from_this_namespace_is_unknown_never_ours(monkeypatch) -> None:
    """The driver lists a host PID, none of ours: it may be us in a container, or another
    container's job; it is reported as unknown, with a note, and not dropped as ours."""
    reading = window_processes(monkeypatch, [HOST_PID])
    assert reading.other_processes == ()
    assert [p["pid"] for p in reading.unknown_processes] == [HOST_PID]
    (note,) = [n for n in reading.notes if "PID namespace" in n]
    assert str(HOST_PID) in note and "unknown" in note


@pytest.mark.parametrize(
    ("pids", "others", "unknown"),
    [
        ([os.getpid(), HOST_PID], [HOST_PID], []),  # PIDs are translated: the unknown is not us
        ([HOST_PID, FOREIGN_PID], [FOREIGN_PID], [HOST_PID]),  # one that exists is never us
        ([HOST_PID, HOST_PID + 1], [], [HOST_PID, HOST_PID + 1]),
    ],
)
def test_unresolved_pids_are_unknown_unless_nvml_translates_ours(
    monkeypatch, pids, others, unknown
) -> None:
    reading = window_processes(monkeypatch, pids)
    assert sorted(p["pid"] for p in reading.other_processes) == others
    assert sorted(p["pid"] for p in reading.unknown_processes) == unknown


def test_a_process_that_starts_and_ends_inside_the_window_is_seen(monkeypatch) -> None:
    """Looking only at the window's ends missed it; the power sampler lists processes too."""
    fake = install(monkeypatch, [FakeGPU()])
    source = NVMLEnergySource(sample_interval_ms=10)
    source.start()
    time.sleep(0.1)
    fake.gpus[0].processes = [FakeProcess(pid=FOREIGN_PID, usedGpuMemory=2**20)]
    time.sleep(0.1)
    fake.gpus[0].processes = []
    time.sleep(0.1)
    reading = source.stop()
    (seen,) = reading.other_processes
    assert seen["pid"] == FOREIGN_PID
    assert 0.05 < seen["first_seen_s"] <= seen["last_seen_s"] < reading.duration_s


def test_counter_update_period_is_measured_at_start(monkeypatch) -> None:
    monkeypatch.setattr(nvml, "PERIOD_PROBE_TIMEOUT_S", 1.0)
    install(monkeypatch, [FakeGPU(counter_period_s=0.05)], advance_with_time=True)
    source = NVMLEnergySource()
    source.start()
    reading = source.stop()
    assert reading.update_period_s == pytest.approx(0.05, abs=0.005)
    assert "measured" in (reading.update_period_method or "")


def test_a_counter_that_never_moves_has_no_period_and_no_bound(monkeypatch) -> None:
    install(monkeypatch, [FakeGPU()])
    source = NVMLEnergySource()
    source.start()
    reading = source.stop()
    assert reading.update_period_s is None and reading.error_bound_pct() is None
    assert (reading.update_period_method or "").startswith("unknown")


def test_a_counter_too_slow_for_the_probe_gets_a_bound_that_covers_its_error(
    monkeypatch,
) -> None:
    """A 400 ms counter moves two or three times in the 1 s probe: once two became a silent
    nominal 100 ms (bound 4x too small); now the period is never below the true one."""
    monkeypatch.setattr(nvml, "PERIOD_PROBE_TIMEOUT_S", 1.0)
    install(monkeypatch, [FakeGPU(power_w=500.0, counter_period_s=0.4)], advance_with_time=True)
    source = NVMLEnergySource()
    source.start()
    time.sleep(0.6)
    reading = source.stop()
    assert reading.update_period_s is not None and reading.update_period_s >= 0.39
    method = reading.update_period_method or ""
    assert method.startswith(("probe_timeout", "measured")), method
    bound = reading.error_bound_pct()
    assert bound is not None and bound >= 100.0 * 0.39 / reading.duration_s


def test_quantisation_error_stays_inside_the_recorded_bound_over_random_phases(
    monkeypatch,
) -> None:
    """A counter stepping every 100 ms at a constant 500 W, windows of 0.3 s: the error
    (up to ~33% here) is always inside the bound the reading carries."""
    monkeypatch.setattr(nvml, "PERIOD_PROBE_TIMEOUT_S", 1.0)
    rng = random.Random(8)
    worst = 0.0
    for _ in range(6):
        gpu = FakeGPU(power_w=500.0, counter_period_s=0.1, counter_phase_s=rng.random() * 0.1)
        install(monkeypatch, [gpu], advance_with_time=True)
        source = NVMLEnergySource()
        source.start()
        time.sleep(0.3 + rng.random() * 0.05)
        reading = source.stop()
        bound = reading.error_bound_pct()
        assert bound is not None
        error_pct = (
            100.0
            * abs(reading.energy_j - 500.0 * reading.duration_s)
            / (500.0 * reading.duration_s)
        )
        assert error_pct <= bound + 1.0, (error_pct, bound)  # +1: the fake's mJ rounding
        worst = max(worst, error_pct)
    assert worst > 0.5  # the phases did move the reading: the check could have failed


def test_instant_power_is_polled_and_integrated_beside_the_counter(monkeypatch) -> None:
    install(monkeypatch, [FakeGPU(power_w=200.0)], advance_with_time=True)
    source = NVMLEnergySource(sample_interval_ms=10)
    source.start()
    time.sleep(0.3)
    reading = source.stop()
    assert (reading.power_method or "").startswith("instant")
    assert reading.polled_samples >= 10
    assert reading.polled_energy_j == pytest.approx(reading.energy_j, rel=0.1)


def test_without_instant_power_the_averaged_call_is_used_and_said(monkeypatch) -> None:
    fake = install(monkeypatch, [FakeGPU(power_w=200.0, supports_instant_power=False)])
    source = NVMLEnergySource(sample_interval_ms=10)
    source.start()
    time.sleep(0.05)
    reading = source.stop()
    assert (reading.power_method or "").startswith("averaged")
    assert "moving average" in (reading.power_method or "")
    assert fake.calls["nvmlDeviceGetPowerUsage"] >= 3


def test_timeseries_honours_its_own_interval(monkeypatch) -> None:
    install(monkeypatch, [FakeGPU()])
    source = NVMLEnergySource(sample_interval_ms=100, timeseries=True, timeseries_interval_ms=20)
    assert source.sample_interval_ms == 20  # the sampler runs at the finer of the two
    source.start()
    time.sleep(0.3)
    reading = source.stop()
    gaps = [b.t_s - a.t_s for a, b in zip(reading.samples, reading.samples[1:], strict=False)]
    assert len(reading.samples) >= 10
    assert min(gaps) >= 0.019
    coarse = NVMLEnergySource(sample_interval_ms=10, timeseries=True, timeseries_interval_ms=50)
    coarse.start()
    time.sleep(0.3)
    samples = coarse.stop().samples
    assert 4 <= len(samples) <= 8  # every ~50 ms, not every 10 ms


def test_window_state_is_recorded_at_both_ends(monkeypatch) -> None:
    fake = install(monkeypatch, [FakeGPU(pstate=2, temperature_c=45.0)])
    source = NVMLEnergySource()
    source.start()
    fake.gpus[0].temperature_c = 61.0
    fake.gpus[0].pstate = 0
    reading = source.stop()
    assert reading.state_start[0]["pstate"] == "P2"
    assert reading.state_start[0]["temperature_c"] == 45.0
    assert reading.state_end[0]["pstate"] == "P0"
    assert reading.state_end[0]["temperature_c"] == 61.0
    assert reading.state_end[0]["application_sm_clock_mhz"] == 1755
