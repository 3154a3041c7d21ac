"""The TensorRT-LLM adapter against a fake ``tensorrt_llm`` that records the calls."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fakes import fake_tensorrt_llm
from fakes.fake_tensorrt_llm import FakeTensorRTLLM, KVCacheType, QuantAlgo
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import ExperimentError, ModelLoadError, UnavailableError
from llenergymeasure.measurement.inference import _engine_cache, _gpu
from llenergymeasure.measurement.inference.base import SelfSchedulingBackend
from llenergymeasure.measurement.inference.tensorrt import TensorRTBackend


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeTensorRTLLM:
    """The fake package on a GPU machine, with an engine cache of this test's own."""
    monkeypatch.setattr(_engine_cache, "default_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(_gpu, "nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(_gpu, "package_installed", lambda module: True)
    return fake_tensorrt_llm.install(monkeypatch)


def config(**extra: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "model": "builtin:tiny-gpt2",
            "backend": "tensorrt",
            "fp_precision": "float16",
            "max_input_tokens": 24,
            "max_output_tokens": 5,
            **extra,
        }
    )


def llm_calls(fake: FakeTensorRTLLM) -> list[dict[str, Any]]:
    return [kwargs for name, kwargs in fake.calls if name == "LLM"]


def test_the_build_follows_the_tensorrt_section(fake: FakeTensorRTLLM) -> None:
    backend = TensorRTBackend()
    info = backend.load(
        config(
            tensorrt={
                "max_batch_size": 4,
                "quantization": "fp8",
                "kv_cache_type": "continuous",
                "kv_cache_free_gpu_memory_fraction": 0.5,
            }
        )
    )
    (call,) = llm_calls(fake)
    build = call["build_config"]
    assert (build.max_batch_size, build.max_input_len, build.max_seq_len) == (4, 24, 29)
    assert build.kv_cache_type is KVCacheType.CONTINUOUS
    assert call["quant_config"].quant_algo is QuantAlgo.FP8
    assert call["kv_cache_config"].free_gpu_memory_fraction == 0.5
    assert call["dtype"] == "float16" and call["tensor_parallel_size"] == 1
    assert call["tokenizer"] == info.source and call["model"] == info.source
    # this BuildConfig has no optimisation-level field: said, not silently dropped
    assert any("builder_opt_level=3 not applied" in note for note in info.notes)
    assert info.num_parameters > 0 and any("engine built and cached" in n for n in info.notes)
    backend.unload()
    assert fake.calls[-1][0] == "shutdown"


def test_a_second_load_reuses_the_cached_engine_until_a_build_input_changes(
    fake: FakeTensorRTLLM,
) -> None:
    for _ in range(2):
        backend = TensorRTBackend()
        backend.load(config())
        backend.unload()
    first, second = llm_calls(fake)
    assert fake.builds == 1 and second["build_config"] is None
    assert Path(second["model"]).is_dir() and (Path(second["model"]) / "rank0.engine").is_file()
    assert second["model"] != first["model"]
    TensorRTBackend().load(config(tensorrt={"max_batch_size": 16}))
    assert fake.builds == 2  # another build input: another engine


def test_sampling_is_mapped_and_greedy_is_top_k_one(fake: FakeTensorRTLLM) -> None:
    backend = TensorRTBackend()
    backend.load(config(min_output_tokens=5))
    assert isinstance(backend, SelfSchedulingBackend)
    records = backend.generate_pass(["hello there", "word " * 50])
    params = fake.calls[-1][1]["params"]
    assert (params.max_tokens, params.min_tokens, params.top_k) == (5, 5, 1)
    assert params.temperature is None and params.seed is None
    assert [r.output_tokens for r in records] == [5, 5]
    assert records[1].input_tokens == 24  # truncated to max_input_tokens
    backend.prepare(config(decoder={"preset": "factual"}, random_seed=3))
    backend.generate_pass(["hello"])
    params = fake.calls[-1][1]["params"]
    assert (params.temperature, params.top_k, params.top_p, params.seed) == (0.3, 40, 0.9, 3)
    assert params.repetition_penalty == 1.1


def test_traffic_submits_each_request_at_its_arrival(fake: FakeTensorRTLLM) -> None:
    backend = TensorRTBackend()
    backend.load(config())
    now = time.perf_counter()
    arrivals = [now + 0.2, now, now + 0.1]
    records = backend.generate_pass(["a", "b", "c"], arrivals)
    for record, arrived in zip(records, arrivals, strict=True):
        assert arrived <= record.start_s < arrived + 0.05
        assert record.end_s >= record.start_s + fake.seconds_per_request * 0.9
    submitted = [kwargs["at"] for name, kwargs in fake.calls if name == "generate_async"]
    assert submitted == sorted(submitted) and len(submitted) == 3


def test_an_engine_too_small_for_the_next_experiment_says_so(fake: FakeTensorRTLLM) -> None:
    backend = TensorRTBackend()
    backend.load(config())
    backend.prepare(config(max_output_tokens=3))  # fits the built limits
    with pytest.raises(ExperimentError, match="built for 24 input and 29 total"):
        backend.prepare(config(max_output_tokens=50))


def test_a_failed_build_carries_the_cause_and_caches_nothing(fake: FakeTensorRTLLM) -> None:
    fake.fail_with = RuntimeError("[TensorRT-LLM][ERROR] out of memory\ntrace")
    with pytest.raises(ModelLoadError, match="out of memory"):
        TensorRTBackend().load(config())
    fake.fail_with = None
    TensorRTBackend().load(config())
    assert fake.builds == 1  # built now: nothing half-made was cached


def test_a_renamed_field_in_the_installed_version_is_one_clear_error(
    fake: FakeTensorRTLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    class KvCacheConfig:  # a later release renamed the field
        def __init__(self, free_memory_fraction: float = 0.9) -> None: ...

    monkeypatch.setattr(sys.modules["tensorrt_llm.llmapi"], "KvCacheConfig", KvCacheConfig)
    with pytest.raises(UnavailableError, match="KvCacheConfig takes no free_gpu_memory_fraction"):
        TensorRTBackend().load(config())


def test_streaming_is_refused_until_it_is_built(fake: FakeTensorRTLLM) -> None:
    with pytest.raises(UnavailableError, match="does not stream yet"):
        TensorRTBackend().load(config(streaming=True))
