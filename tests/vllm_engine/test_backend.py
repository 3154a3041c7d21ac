"""The vLLM adapter against a real engine: mapping, offline, streaming, traffic, errors."""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.config.backend_configs import VLLMConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import ConfigError, ModelLoadError, UnavailableError
from llenergymeasure.measurement.inference.base import SelfSchedulingBackend
from llenergymeasure.measurement.inference.vllm import VLLMBackend, engine_args, sampling_kwargs

OWN_NAMES = {"kv_cache_space_gib": "kv_cache_memory_bytes"}
"""VLLMConfig fields whose EngineArgs name differs; every other field keeps its name."""


def config(**extra: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "model": "builtin:tiny-gpt2",
            "backend": "vllm",
            "fp_precision": "float32",
            "max_input_tokens": 24,
            "max_output_tokens": 8,
            "min_output_tokens": 8,
            **extra,
        }
    )


@pytest.fixture(scope="module")
def backend(vllm_module: Any, one_thread: None) -> Iterator[VLLMBackend]:
    """One engine for the module (a build costs seconds)."""
    engine = VLLMBackend()
    engine.load(config())
    yield engine
    engine.unload()


def test_every_setting_maps_to_a_field_of_the_installed_vllm() -> None:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs

    fields = {f.name for f in dataclasses.fields(EngineArgs)}
    for name in VLLMConfig.model_fields:
        if name != "engine_kwargs":
            assert OWN_NAMES.get(name, name) in fields, name
    section = VLLMConfig(block_size=32, max_num_batched_tokens=64, max_model_len=128)
    args = engine_args(config(vllm=section.model_dump()), section, "/m", "cpu")
    assert set(args) <= fields
    assert args["kv_cache_memory_bytes"] == 2**30 and args["enforce_eager"] is True
    assert args["block_size"] == 32 and args["disable_log_stats"] is False
    sampling = set(inspect.signature(SamplingParams).parameters)
    for decoder in ({}, {"preset": "creative"}, {"preset": "factual"}):
        kwargs = sampling_kwargs(config(decoder=decoder))
        assert set(kwargs) <= sampling
        SamplingParams(**kwargs)  # vLLM's own checks accept every preset


def test_engine_kwargs_pass_through_and_gpu_defaults_stay_vllms() -> None:
    section = VLLMConfig(engine_kwargs={"max_logprobs": 3})
    args = engine_args(config(vllm=section.model_dump()), section, "/m", "cuda")
    assert args["max_logprobs"] == 3
    assert "kv_cache_memory_bytes" not in args and args["enforce_eager"] is False
    assert "block_size" not in args  # None: the platform's default


def test_sampling_is_greedy_unless_asked_and_seeded_when_sampling() -> None:
    greedy = sampling_kwargs(config())
    assert greedy["temperature"] == 0.0 and "seed" not in greedy
    assert greedy["max_tokens"] == 8 and greedy["min_tokens"] == 8
    sampled = sampling_kwargs(config(decoder={"preset": "factual"}, random_seed=7))
    assert sampled["seed"] == 7 and sampled["top_k"] == 40 and sampled["repetition_penalty"] == 1.1


def test_offline_pass_counts_tokens_like_the_tokenizer(backend: VLLMBackend) -> None:
    assert isinstance(backend, SelfSchedulingBackend)
    prompts = ["The cat sat on the mat", "word " * 60]
    records = backend.generate_pass(prompts)
    tokenizer = backend.tokenizer()
    expected = [min(len(tokenizer(p)["input_ids"]), 24) for p in prompts]
    assert [r.input_tokens for r in records] == expected  # truncated to max_input_tokens
    assert [r.output_tokens for r in records] == [8, 8]  # min_tokens holds EOS off
    for r in records:
        assert r.first_token_s is not None and r.start_s < r.first_token_s <= r.end_s
        assert r.token_times_s == ()  # per-token stamps only when streaming


def test_streaming_stamps_every_token(backend: VLLMBackend) -> None:
    backend.prepare(config(streaming=True))
    try:
        records = backend.generate_pass(["Hello there", "One two three four"])
    finally:
        backend.prepare(config())
    for r in records:
        assert r.output_tokens == 8 and len(r.token_times_s) == 8
        assert list(r.token_times_s) == sorted(r.token_times_s)
        assert r.ttft_s is not None and r.ttft_s > 0 and len(r.inter_token_s) == 7
        assert r.end_s == r.token_times_s[-1]


def test_traffic_submits_each_request_at_its_arrival(backend: VLLMBackend) -> None:
    now = time.perf_counter()
    arrivals = [now + 0.3, now, now + 0.15]
    records = backend.generate_pass(["a b c", "d e f", "g h i"], arrivals)
    for record, arrived in zip(records, arrivals, strict=True):
        assert arrived <= record.start_s < arrived + 0.1
        assert record.output_tokens == 8 and record.end_s > record.start_s


def test_prepare_changes_sampling_without_a_new_engine(backend: VLLMBackend) -> None:
    engine = backend.llm
    backend.prepare(config(max_output_tokens=3, min_output_tokens=3))
    try:
        (record,) = backend.generate_pass(["Once upon a time"])
    finally:
        backend.prepare(config())
    assert record.output_tokens == 3 and backend.llm is engine


def test_gpu_only_settings_are_refused_on_cpu_with_the_reason() -> None:
    with pytest.raises(UnavailableError) as err:
        VLLMBackend().load(config(vllm={"block_size": 16, "quantization": "fp8"}))
    text = err.value.render()
    assert "vllm.block_size=16" in text and "multiples of 32" in text
    assert "vllm.quantization=fp8" in text and "fix:" in text


def test_an_unknown_engine_kwarg_names_itself_and_the_nearest(write_yaml: Any) -> None:
    from llenergymeasure.config.loader import load_experiment_config

    path = write_yaml(
        """
        model: builtin:tiny-gpt2
        backend: vllm
        vllm:
          engine_kwargs: {max_logprob: 3}
        """
    )
    with pytest.raises(ConfigError) as err:
        load_experiment_config(path)
    text = err.value.render()
    assert "engine_kwargs.max_logprob" in text and "'max_logprobs'" in text
    assert f"{path}:4" in text
    with pytest.raises(ConfigError, match="max_logprob"):
        VLLMBackend().load(config(vllm={"engine_kwargs": {"max_logprob": 3}}))
    for command in (["run", path], ["config", "validate", path]):
        result = CliRunner().invoke(app, [str(a) for a in command])
        assert result.exit_code == 2, result.output
        assert "engine_kwargs.max_logprob" in result.output and "Traceback" not in result.output


def test_an_engine_that_will_not_start_says_why() -> None:
    with pytest.raises(ModelLoadError) as err:
        VLLMBackend().load(config(vllm={"max_model_len": 100_000}))
    text = err.value.render()
    assert "vLLM could not start an engine for 'builtin:tiny-gpt2'" in text
    assert "100000" in text or "max_model_len" in text


def test_gpu_memory_a_teardown_keeps_is_noted_for_the_next_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from llenergymeasure.measurement.inference import vllm as adapter

    shut: list[bool] = []
    backend = VLLMBackend()
    backend._llm = SimpleNamespace(
        llm_engine=SimpleNamespace(engine_core=SimpleNamespace(shutdown=lambda: shut.append(True)))
    )
    backend._platform, backend._free_before_load = "cuda", 10 * 2**30
    monkeypatch.setattr(adapter, "_cuda_free_bytes", lambda: 9 * 2**30)  # 1 GiB never came back
    monkeypatch.setattr(adapter, "_leftover_note", [])
    backend.unload()
    assert shut == [True] and backend._llm is None
    (note,) = adapter._leftover_note
    assert "left 1024 MiB of GPU memory in use" in note


def test_the_cause_is_dug_out_of_an_engine_core_subprocess_log() -> None:
    from llenergymeasure.measurement.inference.vllm import subprocess_cause

    log = (
        "(EngineCore pid=9) ERROR EngineCore failed to start.\n"
        "Traceback (most recent call last):\n"
        '  File "kv_cache_utils.py", line 41, in check_enough_kv_cache_memory\n'
        "ValueError: No available memory for the cache blocks. Try increasing it\n"
        "RuntimeError: Engine core initialization failed. See root cause above.\n"
    )
    assert (
        subprocess_cause(log)
        == "ValueError: No available memory for the cache blocks. Try increasing it"
    )
    assert subprocess_cause("INFO all fine\n") is None
