"""TensorRT-LLM backend on its high-level ``LLM`` API, with built engines cached on disk.

The engine is compiled from ``TensorRTConfig`` (``BuildConfig``: batch and sequence limits, KV
cache layout; ``QuantConfig``; tensor/pipeline parallelism) the first time a combination is
asked for, saved with ``LLM.save`` under a key of everything the build depends on (model,
revision, dtype, those settings, the tensorrt_llm version, the GPU), and loaded from there
after. Like vLLM it schedules its own batches (in-flight batching), so the harness hands it
whole passes; under traffic each request is submitted at its arrival time.

Every name passed to a TensorRT-LLM class is checked against the installed version first, so
a renamed field is one clear error, not a failure deep inside a build.

Not yet: streaming (per-token stamps). Tested against a fake ``tensorrt_llm`` that checks the
calls; not yet run on a GPU by this project.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import inspect
import threading
import time
from typing import Any

from llenergymeasure.config.backend_configs import TensorRTConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.devices.base import DeviceRef, cuda_device_ref
from llenergymeasure.exceptions import ExperimentError, ModelLoadError, UnavailableError
from llenergymeasure.measurement.inference import _gpu
from llenergymeasure.measurement.inference._engine_cache import (
    cached_engine,
    engine_key,
    store_engine,
)
from llenergymeasure.measurement.inference.base import ModelInfo, RequestRecord
from llenergymeasure.measurement.models.builtin import resolve_model_source
from llenergymeasure.measurement.models.loading import load_tokenizer
from llenergymeasure.measurement.models.parameters import definition_parameter_counts

INSTALL = "pip install tensorrt-llm (on a machine with an NVIDIA GPU)"
QUANT_ALGOS = {
    "fp8": "FP8",
    "int8_sq": "W8A8_SQ_PER_CHANNEL",
    "int8_weight_only": "W8A16",
    "int4_weight_only": "W4A16",
    "int4_awq": "W4A16_AWQ",
}
"""``TensorRTConfig.quantization`` -> ``tensorrt_llm.llmapi.QuantAlgo`` member."""
OPT_LEVEL_FIELDS = ("builder_opt_level", "builder_opt", "opt_level")
"""Names ``BuildConfig`` has carried for the TensorRT builder optimisation level."""


def import_tensorrt_llm() -> Any:
    """``import tensorrt_llm`` on a machine with an NVIDIA GPU, or ``UnavailableError``."""
    missing = []
    if not _gpu.nvidia_gpu_present():
        missing.append("no NVIDIA GPU is visible")
    if not _gpu.package_installed("tensorrt_llm"):
        missing.append("the tensorrt_llm package is not installed")
    if missing:
        raise UnavailableError(
            "the tensorrt backend needs an NVIDIA GPU and the tensorrt_llm package "
            f"({'; '.join(missing)})",
            where="backend: tensorrt",
            fix=f"run on a machine with an NVIDIA GPU and `{INSTALL}`, or use backend: pytorch "
            "or vllm",
        )
    try:
        return importlib.import_module("tensorrt_llm")
    except Exception as exc:
        raise UnavailableError(
            f"the tensorrt backend cannot import tensorrt_llm ({_first_line(exc)})",
            where="backend: tensorrt",
            fix=INSTALL,
        ) from exc


class TensorRTBackend:
    """TensorRT-LLM's ``LLM`` in this process. One instance holds at most one engine."""

    name = "tensorrt"
    peak_memory_method = "unavailable"  # TensorRT allocates outside torch's accounting

    def __init__(self) -> None:
        self._llm: Any = None
        self._api: Any = None
        self._config: ExperimentConfig | None = None
        self._tokenizer: Any = None
        self._limits: tuple[int, int] = (0, 0)

    def load(self, config: ExperimentConfig) -> ModelInfo:
        if self._llm is not None:
            self.unload()
        api = _Api(import_tensorrt_llm())
        if config.streaming:
            raise UnavailableError(
                "the tensorrt backend does not stream yet (no per-token timestamps)",
                where="streaming",
                fix="set streaming: false, or use backend: vllm for TTFT/ITL",
            )
        section = config.tensorrt or TensorRTConfig()
        notes: list[str] = []
        source = resolve_model_source(config.model.name)
        tokenizer = load_tokenizer(config.model, source, notes)
        build, inputs, build_notes = api.build_config(config, section)
        inputs = {**inputs, "model": config.model.name, "source": source, "gpu": _gpu_identity()}
        key = engine_key(inputs)
        cached = cached_engine(key)
        kwargs: dict[str, Any] = {
            "model": str(cached) if cached is not None else source,
            "tokenizer": source,
            "dtype": config.fp_precision,
            "tensor_parallel_size": section.tp_size,
            "pipeline_parallel_size": section.pp_size,
            "trust_remote_code": config.model.trust_remote_code,
            "kv_cache_config": api.make(
                "KvCacheConfig", free_gpu_memory_fraction=section.kv_cache_free_gpu_memory_fraction
            ),
        }
        if cached is None:  # building: these shape the engine; a cached one already has them
            kwargs["build_config"] = build
            if config.model.revision is not None:
                kwargs["revision"] = config.model.revision
            if section.quantization is not None:
                kwargs["quant_config"] = api.quant_config(section.quantization)
        api.check("LLM", kwargs)

        started = time.perf_counter()
        try:
            llm = api.llm_class(**kwargs)
            if cached is None:
                where = store_engine(key, inputs, lambda path: llm.save(str(path)))
                notes.append(f"engine built and cached at {where} (key {key})")
            else:
                notes.append(f"engine loaded from the cache at {cached} (key {key})")
        except Exception as exc:
            raise ModelLoadError(
                f"TensorRT-LLM could not build or load an engine for '{config.model.name}': "
                f"{_first_line(exc)}",
                where="backend: tensorrt",
                fix="check the tensorrt settings against the model and this GPU",
            ) from exc
        load_time_s = time.perf_counter() - started

        self._llm, self._api, self._config, self._tokenizer = llm, api, config, tokenizer
        self._limits = (config.max_input_tokens, config.max_input_tokens + config.max_output_tokens)
        total, body, head = definition_parameter_counts(config.model, source)
        return ModelInfo(
            source=source,
            device="cuda:0",
            dtype=config.fp_precision,
            num_parameters=total,
            load_time_s=load_time_s,
            notes=(
                *notes,
                *build_notes,
                f"tensorrt_llm {api.version}; in-flight batching over whole passes",
                "peak memory: not measured (TensorRT allocates outside torch)",
            ),
            devices=_devices(section.tp_size * section.pp_size),
            non_embedding_parameters=body,
            output_projection_parameters=head,
        )

    def prepare(self, config: ExperimentConfig) -> None:
        """Another experiment's sampling; its lengths must fit the engine that was built."""
        if self._llm is None:
            raise _not_loaded()
        max_input, max_seq = self._limits
        if (
            config.max_input_tokens > max_input
            or config.max_input_tokens + config.max_output_tokens > max_seq
        ):
            raise ExperimentError(
                f"the loaded TensorRT engine was built for {max_input} input and {max_seq} total "
                f"tokens; this experiment needs {config.max_input_tokens} and "
                f"{config.max_input_tokens + config.max_output_tokens}",
                fix="order the longest experiment first, or run with model reuse off",
            )
        self._config = config

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise _not_loaded()
        return self._tokenizer

    def unload(self) -> None:
        llm, self._llm = self._llm, None
        self._config = self._tokenizer = None
        if llm is None:
            return
        shutdown = getattr(llm, "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm
        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # no torch or no CUDA context: nothing to hand back
            return

    def generate(self, prompts: list[str]) -> list[RequestRecord]:
        return self.generate_pass(prompts)

    def generate_pass(
        self, prompts: list[str], arrivals_s: list[float] | None = None
    ) -> list[RequestRecord]:
        if self._llm is None or self._config is None:
            raise _not_loaded()
        if not prompts:
            return []
        limit = self._config.max_input_tokens
        token_ids = [
            list(self._tokenizer(p, truncation=True, max_length=limit)["input_ids"])
            for p in prompts
        ]
        params = self._api.make("SamplingParams", **sampling_kwargs(self._config))
        try:
            if arrivals_s is None:
                return self._offline(token_ids, params)
            return self._at_arrivals(token_ids, params, arrivals_s)
        except (ExperimentError, UnavailableError):
            raise
        except Exception as exc:
            raise ExperimentError(
                f"TensorRT-LLM failed during generation: {_first_line(exc)}",
                fix="lower max_input_tokens or max_output_tokens, or rebuild with a larger "
                "tensorrt.max_batch_size",
            ) from exc

    def _offline(self, token_ids: list[list[int]], params: Any) -> list[RequestRecord]:
        start_s = time.perf_counter()
        outputs = self._llm.generate(token_ids, params, use_tqdm=False)
        end_s = time.perf_counter()
        return [
            RequestRecord(len(ids), len(out.outputs[0].token_ids), start_s, end_s)
            for ids, out in zip(token_ids, outputs, strict=True)
        ]

    def _at_arrivals(
        self, token_ids: list[list[int]], params: Any, arrivals_s: list[float]
    ) -> list[RequestRecord]:
        """Submit each request at its arrival; a thread per request stamps when it finishes."""
        count = len(token_ids)
        start, end, produced = [0.0] * count, [0.0] * count, [0] * count
        errors: list[BaseException] = []

        def wait(index: int, future: Any) -> None:
            try:
                produced[index] = len(future.result().outputs[0].token_ids)
            except BaseException as exc:  # re-raised on the caller's thread below
                errors.append(exc)
            end[index] = time.perf_counter()

        threads = []
        for index in sorted(range(count), key=lambda i: arrivals_s[i]):
            time.sleep(max(0.0, arrivals_s[index] - time.perf_counter()))
            start[index] = time.perf_counter()
            future = self._llm.generate_async(token_ids[index], params)
            thread = threading.Thread(target=wait, args=(index, future), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return [
            RequestRecord(len(token_ids[i]), produced[i], start[i], end[i]) for i in range(count)
        ]

    def peak_memory_bytes(self) -> int | None:
        return None

    def reset_peak_memory(self) -> None:
        return None

    def synchronize(self) -> None:
        """Nothing to wait for: results return once their tokens exist."""


class _Api:
    """The installed tensorrt_llm's classes, and a check of every name llem passes them."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.version = str(getattr(module, "__version__", "unknown"))
        self.llmapi = importlib.import_module("tensorrt_llm.llmapi")
        try:  # 1.x: the TensorRT-engine LLM lives apart from the default (PyTorch) one
            self.llm_class = importlib.import_module("tensorrt_llm._tensorrt_engine").LLM
        except (ImportError, AttributeError):
            self.llm_class = module.LLM

    def cls(self, name: str) -> Any:
        found = getattr(self.llmapi, name, None) or getattr(self.module, name, None)
        if found is None:
            raise UnavailableError(
                f"tensorrt_llm {self.version} has no {name}", where="backend: tensorrt", fix=INSTALL
            )
        return found

    def check(self, name: str, kwargs: dict[str, Any]) -> None:
        target = self.llm_class if name == "LLM" else self.cls(name)
        accepted = _accepted_names(target)
        unknown = sorted(set(kwargs) - accepted) if accepted is not None else []
        if unknown:
            raise UnavailableError(
                f"tensorrt_llm {self.version}'s {name} takes no {', '.join(unknown)}",
                where="backend: tensorrt",
                fix="install the tensorrt_llm version llem was written against (the LLM API "
                "of 0.17 or later), or report the renamed setting",
            )

    def make(self, name: str, **kwargs: Any) -> Any:
        self.check(name, kwargs)
        return self.cls(name)(**kwargs)

    def quant_config(self, quantization: str) -> Any:
        algo = getattr(self.cls("QuantAlgo"), QUANT_ALGOS[quantization])
        return self.make("QuantConfig", quant_algo=algo)

    def build_config(
        self, config: ExperimentConfig, section: TensorRTConfig
    ) -> tuple[Any, dict[str, Any], list[str]]:
        """``BuildConfig`` for this experiment, the inputs that shape it, and notes."""
        kv_type = getattr(self.cls("KVCacheType"), section.kv_cache_type.upper())
        kwargs: dict[str, Any] = {
            "max_batch_size": section.max_batch_size,
            "max_input_len": config.max_input_tokens,
            "max_seq_len": config.max_input_tokens + config.max_output_tokens,
            "kv_cache_type": kv_type,
        }
        notes = []
        fields = _accepted_names(self.cls("BuildConfig")) or set()
        opt_field = next((f for f in OPT_LEVEL_FIELDS if f in fields), None)
        if opt_field is not None:
            kwargs[opt_field] = section.builder_opt_level
        else:
            notes.append(
                f"tensorrt.builder_opt_level={section.builder_opt_level} not applied: "
                f"tensorrt_llm {self.version}'s BuildConfig has no optimisation-level field"
            )
        inputs = {
            **{k: str(v) if k == "kv_cache_type" else v for k, v in kwargs.items()},
            "dtype": config.fp_precision,
            "revision": config.model.revision,
            "tp_size": section.tp_size,
            "pp_size": section.pp_size,
            "quantization": section.quantization,
            "tensorrt_llm": self.version,
        }
        return self.make("BuildConfig", **kwargs), inputs, notes


def sampling_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """``tensorrt_llm.SamplingParams`` for the experiment (greedy is ``top_k=1``)."""
    decoder = config.decoder
    kwargs: dict[str, Any] = {
        "max_tokens": config.max_output_tokens,
        "min_tokens": config.min_output_tokens,
        "repetition_penalty": decoder.repetition_penalty or 1.0,
    }
    if decoder.do_sample:
        kwargs.update(
            temperature=decoder.temperature,
            top_p=decoder.top_p,
            top_k=decoder.top_k,
            seed=config.random_seed,
        )
    else:
        kwargs["top_k"] = 1
    return kwargs


def _accepted_names(target: Any) -> set[str] | None:
    """Field or parameter names a class accepts; None when it takes ``**kwargs``."""
    if dataclasses.is_dataclass(target):
        return {f.name for f in dataclasses.fields(target)}
    model_fields = getattr(target, "model_fields", None)
    if isinstance(model_fields, dict):
        return set(model_fields)
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def _gpu_identity() -> str:
    """The GPU an engine is compiled for: name and compute capability of device 0."""
    try:
        import torch

        major, minor = torch.cuda.get_device_capability(0)
        return f"{torch.cuda.get_device_name(0)} sm{major}{minor}"
    except Exception:
        return "unknown GPU"


def _devices(workers: int) -> tuple[DeviceRef, ...]:
    import torch

    return tuple(cuda_device_ref(torch, index) for index in range(workers))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _not_loaded() -> ExperimentError:
    return ExperimentError("the tensorrt backend has no engine loaded", fix="call load() first")
