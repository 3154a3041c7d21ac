"""A fake ``tensorrt_llm`` package: the ``LLM`` API's classes with the field names of
tensorrt_llm 0.17 (``BuildConfig``, ``KvCacheConfig``, ``QuantConfig``/``QuantAlgo``,
``SamplingParams``, ``KVCacheType``), recording every call so tests can check what llem asked
for. Dataclasses reject unknown names exactly as the real ones do.

Install with ``install(monkeypatch)``; ``calls`` lists ``(name, kwargs)`` in order.
"""

from __future__ import annotations

import enum
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


class KVCacheType(enum.Enum):
    PAGED = "paged"
    CONTINUOUS = "continuous"


class QuantAlgo(enum.Enum):
    FP8 = "FP8"
    W8A8_SQ_PER_CHANNEL = "W8A8_SQ_PER_CHANNEL"
    W8A16 = "W8A16"
    W4A16 = "W4A16"
    W4A16_AWQ = "W4A16_AWQ"


@dataclass
class BuildConfig:
    max_input_len: int = 1024
    max_seq_len: int | None = None
    max_batch_size: int = 2048
    max_num_tokens: int = 8192
    kv_cache_type: KVCacheType | None = None


@dataclass
class KvCacheConfig:
    free_gpu_memory_fraction: float | None = None
    enable_block_reuse: bool = False


@dataclass
class QuantConfig:
    quant_algo: QuantAlgo | None = None
    kv_cache_quant_algo: QuantAlgo | None = None


@dataclass
class SamplingParams:
    max_tokens: int = 32
    min_tokens: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    end_id: int | None = None


@dataclass
class _Completion:
    token_ids: list[int]


@dataclass
class _Output:
    prompt_token_ids: list[int]
    outputs: list[_Completion] = field(default_factory=list)


class _Future:
    def __init__(self, output: _Output, ready_s: float) -> None:
        self._output, self._ready_s = output, ready_s

    def result(self) -> _Output:
        time.sleep(max(0.0, self._ready_s - time.perf_counter()))
        return self._output


class FakeTensorRTLLM:
    """State shared by the fake module's classes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.builds = 0
        self.fail_with: Exception | None = None
        self.seconds_per_request = 0.01

    def llm_class(self) -> type:
        fake = self

        class LLM:
            def __init__(
                self,
                model: str,
                tokenizer: str | None = None,
                dtype: str = "auto",
                tensor_parallel_size: int = 1,
                pipeline_parallel_size: int = 1,
                trust_remote_code: bool = False,
                revision: str | None = None,
                build_config: BuildConfig | None = None,
                kv_cache_config: KvCacheConfig | None = None,
                quant_config: QuantConfig | None = None,
            ) -> None:
                kwargs = dict(locals())
                kwargs.pop("self")
                fake.calls.append(("LLM", kwargs))
                if fake.fail_with is not None:
                    raise fake.fail_with
                if build_config is not None:
                    fake.builds += 1
                self.model = model
                self.shut = False

            def save(self, path: str) -> None:
                fake.calls.append(("save", {"path": path}))
                (Path(path) / "rank0.engine").write_text("engine", encoding="utf-8")

            def _output(self, ids: list[int], params: SamplingParams) -> _Output:
                return _Output(list(ids), [_Completion([7] * params.max_tokens)])

            def generate(
                self, inputs: list[list[int]], params: SamplingParams, use_tqdm: bool = True
            ) -> list[_Output]:
                fake.calls.append(("generate", {"inputs": inputs, "params": params}))
                time.sleep(fake.seconds_per_request)
                return [self._output(ids, params) for ids in inputs]

            def generate_async(self, ids: list[int], params: SamplingParams) -> _Future:
                fake.calls.append(("generate_async", {"at": time.perf_counter()}))
                ready = time.perf_counter() + fake.seconds_per_request
                return _Future(self._output(ids, params), ready)

            def shutdown(self) -> None:
                fake.calls.append(("shutdown", {}))
                self.shut = True

        return LLM


def install(monkeypatch: pytest.MonkeyPatch) -> FakeTensorRTLLM:
    """Put the fake ``tensorrt_llm`` (and ``tensorrt_llm.llmapi``) in ``sys.modules``."""
    fake = FakeTensorRTLLM()
    package = types.ModuleType("tensorrt_llm")
    llmapi = types.ModuleType("tensorrt_llm.llmapi")
    package.__version__ = "0.17.0.fake"  # type: ignore[attr-defined]
    package.__path__ = []  # type: ignore[attr-defined]
    package.LLM = fake.llm_class()  # type: ignore[attr-defined]
    package.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    for cls in (BuildConfig, KvCacheConfig, QuantConfig, QuantAlgo, KVCacheType):
        setattr(llmapi, cls.__name__, cls)
    package.llmapi = llmapi  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt_llm", package)
    monkeypatch.setitem(sys.modules, "tensorrt_llm.llmapi", llmapi)
    monkeypatch.setitem(sys.modules, "tensorrt_llm._tensorrt_engine", None)  # 0.17: no split
    return fake
