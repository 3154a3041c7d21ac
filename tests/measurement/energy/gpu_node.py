"""A fake 8-GPU node for running the real harness on the built-in model (CPU) with the real
NVML source: the model's GPU (index ``MODEL_GPU``) draws ``busy_w`` while the backend
generates and ``idle_w`` once it is synchronised."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from typing import Any

import pytest

from fakes.fake_pynvml import FakeGPU, FakeNVML, install
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.devices.base import DeviceRef
from llenergymeasure.measurement import harness
from llenergymeasure.measurement.inference.registry import create_backend

MODEL_GPU = 5


class GPUDrivingBackend:
    """The real pytorch backend, reporting fake GPU ``index`` as its device and setting that
    GPU's power: the next of ``busy_w`` at each generate call, ``idle_w`` at synchronize."""

    def __init__(self, fake: FakeNVML, index: int, busy_w: Iterable[float], idle_w: float) -> None:
        self.inner = create_backend("pytorch")
        self.fake, self.index = fake, index
        self.busy_w, self.idle_w = itertools.cycle(busy_w), idle_w
        fake.set_power(index, idle_w)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load(self, config: ExperimentConfig) -> Any:
        info = self.inner.load(config)
        gpu = self.fake.gpus[self.index]
        return dataclasses.replace(info, devices=(DeviceRef("cuda", 0, gpu.uuid, gpu.name),))

    def generate(self, prompts: list[str]) -> Any:
        self.fake.set_power(self.index, next(self.busy_w))
        return self.inner.generate(prompts)

    def synchronize(self) -> None:
        self.inner.synchronize()
        self.fake.set_power(self.index, self.idle_w)


def install_node(monkeypatch: pytest.MonkeyPatch) -> FakeNVML:
    """Eight GPUs; the others draw 70-140 W that must never be counted."""
    gpus = [FakeGPU(power_w=70.0 + 10 * i) for i in range(8)]
    return install(monkeypatch, gpus, advance_with_time=True)


def drive(
    monkeypatch: pytest.MonkeyPatch, fake: FakeNVML, busy_w: Iterable[float], idle_w: float
) -> None:
    monkeypatch.setattr(
        harness,
        "create_backend",
        lambda name: GPUDrivingBackend(fake, MODEL_GPU, busy_w, idle_w),
    )


def config(**overrides: Any) -> ExperimentConfig:
    data: dict[str, Any] = {
        "model": "builtin:tiny-gpt2",
        "fp_precision": "float32",
        "max_output_tokens": 4,
        "dataset": {"num_prompts": 4},
        "pytorch": {"batch_size": 2},
        "baseline": {"duration_sec": 0.2, "cache_ttl_sec": 0},
        "warmup": {"enabled": False},
        "energy": {"source": "nvml", "min_window_s": 0.6, "sample_interval_ms": 20},
    }
    data.update(overrides)
    return ExperimentConfig.model_validate(data)


def model_ref(fake: FakeNVML) -> DeviceRef:
    gpu = fake.gpus[MODEL_GPU]
    return DeviceRef("cuda", 0, gpu.uuid, gpu.name)
