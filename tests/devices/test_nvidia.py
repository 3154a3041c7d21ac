"""NVML access outside an energy window: the helpers the thermal guard and CodeCarbon use."""

from __future__ import annotations

from fakes.fake_pynvml import FakeGPU, install
from llenergymeasure.devices import nvidia


def two_gpus() -> list[FakeGPU]:
    return [FakeGPU(power_w=300.0), FakeGPU(power_w=100.0, enforced_power_limit_w=350.0)]


def test_helpers_honour_cuda_visible_devices(monkeypatch) -> None:
    fake = install(monkeypatch, two_gpus())
    fake.gpus[0].temperature_c = 55.0
    fake.gpus[1].temperature_c = 66.0
    assert nvidia.gpu_temperatures_c() == {0: 55.0, 1: 66.0}
    assert nvidia.power_limits_w() == {0: 700.0, 1: 350.0}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert nvidia.gpu_temperatures_c() == {1: 66.0}
    assert not fake.initialised


def test_indices_of_gives_nvmls_index_for_each_uuid(monkeypatch) -> None:
    fake = install(monkeypatch, [FakeGPU(), FakeGPU(), FakeGPU()])
    assert nvidia.indices_of([fake.gpus[2].uuid, fake.gpus[0].uuid]) == [2, 0]
    assert not fake.initialised
