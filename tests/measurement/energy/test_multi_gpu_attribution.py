"""Models over several GPUs, on the fake 8-GPU NVML: the devices a tensor x pipeline parallel
vLLM engine (in process or served) or a PyTorch device_map uses are named by UUID, energy is
the sum over exactly those GPUs, and each GPU's own figure is kept in the result."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from fakes.fake_openai_server import FakeOpenAIServer
from fakes.fake_pynvml import FakeGPU, install
from llenergymeasure.config.backend_configs import VLLMConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.devices.base import DeviceRef
from llenergymeasure.measurement.energy.nvml import NVMLEnergySource
from llenergymeasure.measurement.inference import vllm as vllm_backend
from llenergymeasure.measurement.inference.pytorch import weight_devices
from llenergymeasure.measurement.provenance import per_device_energy
from llenergymeasure.measurement.serving import backend as served
from llenergymeasure.orchestration.executors.ray import gpus_for

VISIBLE = "4,5,6,7"  # the job's GPUs on the node: CUDA numbers them 0..3


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> Any:
    """8 fake GPUs, the last four visible to CUDA; torch reports each CUDA device's UUID as
    torch does (without the GPU- prefix)."""
    import torch

    fake = install(monkeypatch, [FakeGPU(power_w=100.0 + 10 * i) for i in range(8)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", VISIBLE)
    physical = [int(i) for i in VISIBLE.split(",")]

    def properties(index: int) -> SimpleNamespace:
        gpu = fake.gpus[physical[index]]
        return SimpleNamespace(name=gpu.name, uuid=gpu.uuid.removeprefix("GPU-"))

    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    return fake


def _measure(fake: Any, devices: tuple[DeviceRef, ...]) -> Any:
    source = NVMLEnergySource(devices=devices)
    source.start()
    for index, gpu in enumerate(fake.gpus):  # every GPU on the node works, by its own amount
        gpu.energy_mj += 1_000 * (index + 1)
    return source.stop()


def test_a_tp2_pp2_engine_is_measured_on_exactly_its_four_gpus(node: Any) -> None:
    devices = vllm_backend._devices(
        "cuda", VLLMConfig(tensor_parallel_size=2, pipeline_parallel_size=2)
    )
    assert [d.uuid for d in devices] == [node.gpus[i].uuid for i in (4, 5, 6, 7)]
    assert [d.cuda_index for d in devices] == [0, 1, 2, 3]
    reading = _measure(node, devices)
    assert reading.energy_j == pytest.approx(5 + 6 + 7 + 8)  # GPUs 4..7, not the node's 36 J
    per_device = per_device_energy(reading)
    assert per_device == {node.gpus[i].uuid: pytest.approx(i + 1.0) for i in (4, 5, 6, 7)}
    assert sum(per_device.values()) == pytest.approx(reading.energy_j)
    assert [r["nvml_index"] for r in reading.device_records] == [4, 5, 6, 7]


def test_a_served_engine_reports_its_parallel_gpus_too(
    node: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served, "_platform", lambda: "cuda")
    backend = served.VLLMServerBackend()
    with FakeOpenAIServer() as fake:
        config = ExperimentConfig.model_validate(
            {
                "model": "builtin:tiny-gpt2",
                "backend": "vllm",
                "vllm": {"tensor_parallel_size": 2, "pipeline_parallel_size": 2},
                "server": {"url": fake.url},
            }
        )
        info = backend.load(config)
    backend.unload()
    assert [d.uuid for d in info.devices] == [node.gpus[i].uuid for i in (4, 5, 6, 7)]
    assert info.device == "cuda:0"


def test_a_pytorch_device_map_is_measured_on_the_gpus_holding_weights(node: Any) -> None:
    import torch

    placement = {"transformer.wte": 0, "transformer.h.0": 0, "transformer.h.1": "cuda:2"}
    devices, note = weight_devices(torch, placement)
    assert [d.cuda_index for d in devices] == [0, 2]  # GPU 1 holds nothing: not measured
    assert [d.uuid for d in devices] == [node.gpus[4].uuid, node.gpus[6].uuid]
    assert "2 GPU(s)" in note and "offloaded" not in note
    reading = _measure(node, devices)
    assert reading.energy_j == pytest.approx(5 + 7)
    _, offloaded = weight_devices(torch, {**placement, "lm_head": "cpu"})
    assert "offloaded to cpu" in offloaded


def test_device_map_on_cpu_is_refused() -> None:
    with pytest.raises(ValueError, match=r"pytorch\.device is cpu; fix: set device: cuda"):
        ExperimentConfig.model_validate(
            {"model": "m", "pytorch": {"device_map": "auto", "device": "cpu"}}
        )


def test_the_ray_executor_reserves_a_served_engines_gpus() -> None:
    config = {
        "backend": "vllm",
        "vllm": {"tensor_parallel_size": 2, "pipeline_parallel_size": 2},
        "server": {"max_concurrency": 8},
    }
    assert gpus_for(config, "auto", 8) == 4


def test_a_device_map_without_accelerate_says_what_to_install(monkeypatch: Any) -> None:
    import importlib.util
    from types import SimpleNamespace

    from llenergymeasure.exceptions import UnavailableError
    from llenergymeasure.measurement.inference import pytorch

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name)
    )
    with pytest.raises(UnavailableError, match="accelerate") as caught:
        pytorch._require_cuda_for_device_map("auto", SimpleNamespace(type="cuda"))
    assert "pip install accelerate" in str(caught.value.fix)
