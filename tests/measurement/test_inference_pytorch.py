"""The PyTorch backend, for real, on the built-in model on CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import ExperimentError, ModelLoadError, UnavailableError
from llenergymeasure.measurement.inference import RequestRecord, create_backend
from llenergymeasure.measurement.inference.pytorch import PyTorchBackend

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Hi",
    "Explain, in two short paragraphs, why measuring the energy of inference matters.",
]


def make_config(**overrides: Any) -> ExperimentConfig:
    pytorch = {"device": "cpu", **overrides.pop("pytorch", {})}
    values: dict[str, Any] = {
        "model": "builtin:tiny-gpt2",
        "fp_precision": "float32",
        "max_output_tokens": 8,
        "pytorch": pytorch,
    }
    values.update(overrides)
    return ExperimentConfig(**values)


def loaded(**overrides: Any) -> PyTorchBackend:
    backend = PyTorchBackend()
    backend.load(make_config(**overrides))
    return backend


class Capture:
    """Wraps ``model.generate`` to keep each call's output ids (generated part only)."""

    def __init__(self, backend: PyTorchBackend) -> None:
        self.calls: list[list[list[int]]] = []
        model = backend.model
        original = model.generate

        def generate(*args: Any, **kwargs: Any) -> Any:
            output = original(*args, **kwargs)
            width = kwargs["input_ids"].shape[1]
            self.calls.append(output[:, width:].tolist())
            return output

        model.generate = generate


@pytest.fixture(scope="module")
def greedy() -> Iterator[PyTorchBackend]:
    backend = PyTorchBackend()
    backend.load(make_config())
    yield backend
    backend.unload()


def honest_count(ids: list[int], eos: int) -> int:
    return ids.index(eos) + 1 if eos in ids else len(ids)


def test_load_reports_what_was_loaded(greedy: PyTorchBackend, tiny_model_dir: Path) -> None:
    info = greedy.load(make_config())  # loading again replaces the model
    assert info.source == str(tiny_model_dir)
    assert (info.device, info.dtype) == ("cpu", "float32")
    assert 500_000 < info.num_parameters < 2_000_000
    assert 0 < info.load_time_s < 60
    assert any("peak memory" in note for note in info.notes)
    assert greedy.tokenizer().padding_side == "left"


def test_a_local_directory_loads_the_same_way(tiny_model_dir: Path) -> None:
    backend = loaded(model=str(tiny_model_dir))
    (record,) = backend.generate(["Hello there"])
    assert record.output_tokens == 8
    backend.unload()
    with pytest.raises(ExperimentError):
        backend.tokenizer()


def test_batch_records_are_honest(greedy: PyTorchBackend) -> None:
    tokenizer = greedy.tokenizer()
    records = greedy.generate(PROMPTS)
    assert [r.input_tokens for r in records] == [len(tokenizer(p)["input_ids"]) for p in PROMPTS]
    assert all(isinstance(r, RequestRecord) for r in records)
    assert all(1 <= r.output_tokens <= 8 for r in records)
    assert len({(r.start_s, r.end_s) for r in records}) == 1  # one generate call
    assert records[0].start_s < records[0].end_s
    assert all(r.first_token_s is None and r.token_times_s == () for r in records)


def test_left_padded_batch_matches_one_at_a_time(greedy: PyTorchBackend) -> None:
    capture = Capture(greedy)
    greedy.generate(PROMPTS)
    for prompt in PROMPTS:
        greedy.generate([prompt])
    batched, solo = capture.calls[0], [call[0] for call in capture.calls[1:]]
    assert batched == solo


def test_greedy_is_deterministic(greedy: PyTorchBackend) -> None:
    capture = Capture(greedy)
    first = greedy.generate(PROMPTS)
    second = greedy.generate(PROMPTS)
    assert capture.calls[0] == capture.calls[1]
    assert [r.output_tokens for r in first] == [r.output_tokens for r in second]


def test_eos_stops_the_count(greedy: PyTorchBackend) -> None:
    """Make a token the model emits the EOS: the count stops there; padding never counts."""
    capture = Capture(greedy)
    greedy.generate(PROMPTS)
    emitted = capture.calls[0][0]
    model = greedy.model
    saved = model.generation_config.eos_token_id
    try:
        model.generation_config.eos_token_id = emitted[2]
        records = greedy.generate(PROMPTS)
    finally:
        model.generation_config.eos_token_id = saved
    rows = capture.calls[1]
    assert [r.output_tokens for r in records] == [honest_count(row, emitted[2]) for row in rows]
    assert records[0].output_tokens <= 3
    assert any(r.output_tokens < 8 for r in records)


def test_min_output_tokens_is_respected(greedy: PyTorchBackend) -> None:
    capture = Capture(greedy)
    greedy.generate(PROMPTS[:1])
    eos = capture.calls[0][0][0]  # the very first token the model emits becomes the EOS
    counts = {}
    for minimum in (0, 5):
        backend = loaded(min_output_tokens=minimum)
        backend.model.generation_config.eos_token_id = eos
        capture = Capture(backend)
        records = backend.generate(PROMPTS)
        assert [r.output_tokens for r in records] == [
            honest_count(row, eos) for row in capture.calls[0]
        ]
        counts[minimum] = [r.output_tokens for r in records]
    assert counts[0][0] == 1  # without a minimum it stops at once
    assert all(count >= 5 for count in counts[5])


def test_streaming_records_token_times() -> None:
    backend = loaded(streaming=True, max_output_tokens=6)
    records = backend.generate(PROMPTS[:2])
    assert len(records) == 2
    for record in records:
        times = record.token_times_s
        assert len(times) == record.output_tokens == 6
        assert record.first_token_s == times[0]
        assert record.start_s <= times[0] <= times[-1] <= record.end_s
        assert list(times) == sorted(times)
        assert record.ttft_s is not None and record.ttft_s >= 0
    assert records[0].end_s <= records[1].start_s  # one prompt at a time


def test_streaming_count_stops_at_eos(greedy: PyTorchBackend) -> None:
    capture = Capture(greedy)
    greedy.generate(PROMPTS[:1])
    backend = loaded(streaming=True)
    backend.model.generation_config.eos_token_id = capture.calls[0][0][1]
    (record,) = backend.generate(PROMPTS[:1])
    assert record.output_tokens == len(record.token_times_s) <= 2


def test_sampling_with_a_seed_is_reproducible() -> None:
    sampler = loaded(decoder={"preset": "standard"}, random_seed=3)
    capture = Capture(sampler)
    sampler.generate(PROMPTS)
    sampler.generate(PROMPTS)
    other = loaded(decoder={"preset": "standard"}, random_seed=4)
    other_capture = Capture(other)
    other.generate(PROMPTS)
    assert capture.calls[0] == capture.calls[1]
    assert other_capture.calls[0] != capture.calls[0]


def test_generation_kwargs_follow_the_decoder() -> None:
    greedy_kwargs = loaded()._gen_kwargs
    assert greedy_kwargs["do_sample"] is False
    assert not {"temperature", "top_p", "top_k"} & set(greedy_kwargs)
    sampled = loaded(
        decoder={"do_sample": True, "temperature": 0.7, "top_k": 0, "repetition_penalty": 1.2},
        min_output_tokens=2,
        pytorch={"use_cache": False},
    )._gen_kwargs
    assert sampled["do_sample"] is True and sampled["temperature"] == 0.7
    assert sampled["top_k"] == 0 and sampled["repetition_penalty"] == 1.2
    assert sampled["min_new_tokens"] == 2 and sampled["max_new_tokens"] == 8
    assert sampled["use_cache"] is False


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_cpu_precisions(precision: str) -> None:
    backend = loaded(fp_precision=precision, max_output_tokens=4, pytorch={"use_cache": False})
    assert backend.model.dtype.__repr__().endswith(precision)
    records = backend.generate(PROMPTS[:2])
    assert [r.output_tokens for r in records] == [4, 4]


def test_peak_memory_on_cpu(greedy: PyTorchBackend) -> None:
    greedy.reset_peak_memory()
    greedy.generate(PROMPTS)
    peak = greedy.peak_memory_bytes()
    if greedy.peak_memory_method == "process_peak_rss":
        assert peak is not None and peak > 10 * 2**20
    else:
        assert peak is None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own, on importing inductor
def test_torch_compile_wraps_forward() -> None:
    backend = loaded(pytorch={"torch_compile": True, "torch_compile_mode": "default"})
    assert any(
        "torch.compile" in note
        for note in backend.load(make_config(pytorch={"torch_compile": True})).notes
    )
    assert backend.model.forward.__class__.__name__ != "method"


def test_cuda_without_cuda_is_unavailable() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UnavailableError, match="no CUDA GPU"):
        loaded(pytorch={"device": "cuda"})


@pytest.mark.parametrize(
    ("overrides", "needs"),
    [
        (
            {"fp_precision": "bfloat16", "pytorch": {"attn_implementation": "flash_attention_2"}},
            "flash_attn",
        ),
        ({"pytorch": {"load_in_4bit": True}}, "bitsandbytes"),
        ({"pytorch": {"load_in_8bit": True}}, "bitsandbytes"),
    ],
)
def test_gpu_only_options_on_cpu_are_unavailable(overrides: dict[str, Any], needs: str) -> None:
    with pytest.raises(UnavailableError) as info:
        loaded(**overrides)
    assert needs in str(info.value)
    assert info.value.fix


def test_uncached_hub_model_fails_clearly() -> None:
    with pytest.raises(ModelLoadError, match="could not be fetched from the Hugging Face Hub"):
        loaded(model="llem-test-org/not-a-cached-model")


def test_not_loaded_backend_refuses() -> None:
    backend = create_backend("pytorch")
    with pytest.raises(ExperimentError, match="no model loaded"):
        backend.generate(["hello"])
    with pytest.raises(ExperimentError):
        backend.tokenizer()
    backend.synchronize()  # harmless before load
    backend.unload()
