"""The served vLLM backend: ``vllm serve`` on 127.0.0.1 (or a server already running here),
driven by the harness like any engine that schedules its own batches.

``load`` starts the server with the experiment's ``vllm:`` settings (the same engine
arguments the in-process backend passes, as ``vllm serve`` flags) and waits for ``/health``;
``generate_pass`` sends the pass as streaming ``/v1/completions`` requests at their arrival
times, at most ``server.max_concurrency`` in flight; ``unload`` stops the server. Warmup, the
idle baseline (the server idle, model resident), the measured window and the result are the
harness's, unchanged. A server that dies mid-run fails the experiment with its log's tail.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import time
from typing import Any

from llenergymeasure.config.backend_configs import VLLMConfig
from llenergymeasure.config.engine_args import check_engine_kwargs
from llenergymeasure.config.introspection import gpu_only_values
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.server_config import ServerConfig
from llenergymeasure.exceptions import ExperimentError, ModelLoadError, UnavailableError
from llenergymeasure.measurement.datasets.conversations import reference_output_lengths
from llenergymeasure.measurement.inference.base import ModelInfo, PeakMemoryMethod
from llenergymeasure.measurement.inference.vllm import (
    INSTALL,
    _devices,
    engine_args,
    sampling_kwargs,
)
from llenergymeasure.measurement.models.builtin import resolve_model_source
from llenergymeasure.measurement.models.loading import load_tokenizer
from llenergymeasure.measurement.models.parameters import definition_parameter_counts
from llenergymeasure.measurement.serving.client import (
    Request,
    ServedRecord,
    drive,
    stream_completion,
)
from llenergymeasure.measurement.serving.server import (
    ServerProcess,
    free_port,
    health_ok,
    log_tail,
    new_log_path,
    serve_command,
    served_model_id,
)

SERVER_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "1",  # the server's own default (llem's in-process
    # backend sets 0 in this process; a server must not inherit that)
    "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"),
}


def _platform() -> str:
    """``cpu`` or ``cuda`` (what the installed vLLM build runs on), without starting an engine."""
    try:
        from vllm.platforms import current_platform
    except Exception as exc:
        raise UnavailableError(
            f"the vllm server mode cannot import vllm ({type(exc).__name__}: {exc})",
            where="server",
            fix=INSTALL,
        ) from exc
    return "cpu" if current_platform.is_cpu() else str(current_platform.device_type)


def _engine_arg_defaults() -> dict[str, Any]:
    """Every ``vllm.EngineArgs`` field -> its default (a factory default: unset, never equal)."""
    from vllm.engine.arg_utils import EngineArgs

    unset = object()
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else unset
        for f in dataclasses.fields(EngineArgs)
    }


class VLLMServerBackend:
    """A vLLM server on this machine, measured under traffic. One instance, one server."""

    name = "vllm"

    def __init__(self) -> None:
        self._server: ServerProcess | None = None
        self._url = ""
        self._model_id = ""
        self._config: ExperimentConfig | None = None
        self._tokenizer: Any = None
        self._lengths: dict[str, int] = {}
        self._info: dict[str, Any] = {}

    # ------------------------------------------------------------------ loading

    def load(self, config: ExperimentConfig) -> ModelInfo:
        try:
            return self._load(config)
        except BaseException:  # a started server never outlives a failed load
            self.unload()
            raise

    def _load(self, config: ExperimentConfig) -> ModelInfo:
        served = _served(config)
        section = config.vllm or VLLMConfig()
        notes: list[str] = []
        source = resolve_model_source(config.model.name)
        tokenizer = load_tokenizer(config.model, source, notes)
        platform = _platform()
        started = time.perf_counter()
        if served.url is None:
            self._start(config, section, source, platform, served)
            notes.append(
                f"vllm serve started by llem on {self._url} ({platform}); its log is kept "
                "beside the result (server.log)"
            )
        else:
            self._url = served.url
            if not health_ok(self._url):
                raise ModelLoadError(
                    f"no server answers {self._url}/health",
                    where="server.url",
                    fix="start the server first (vllm serve ...), or drop server.url to let "
                    "llem start one",
                )
            notes.append(
                f"external server at {self._url}: llem did not start it, so its settings are "
                "its own (the vllm: section is not applied); its devices are taken to be the "
                f"first tensor x pipeline parallel {platform} devices, not checked"
            )
        self._model_id = served_model_id(self._url)
        ready_s = time.perf_counter() - started
        self._config, self._tokenizer = config, tokenizer
        self._lengths = reference_output_lengths(
            config.dataset, tokenizer=tokenizer, max_input_tokens=config.max_input_tokens
        )
        self._info.update(url=self._url, model_id=self._model_id, ready_s=round(ready_s, 3))
        notes += [
            "served: streaming /v1/completions with the prompt's token ids; TTFT and token "
            "times are client-side arrivals of SSE chunks (token_ids per chunk); token counts "
            "are the server's usage",
            "peak memory unavailable: the server is another process",
        ]
        total, body, head = definition_parameter_counts(config.model, source)
        return ModelInfo(
            source=source,
            device="cpu" if platform == "cpu" else f"{platform}:0",
            dtype=config.fp_precision,
            num_parameters=total,
            load_time_s=ready_s,
            notes=tuple(notes),
            devices=_devices(platform, section),
            non_embedding_parameters=body,
            output_projection_parameters=head,
        )

    def _start(
        self,
        config: ExperimentConfig,
        section: VLLMConfig,
        source: str,
        platform: str,
        served: ServerConfig,
    ) -> None:
        if platform == "cpu":
            refused = gpu_only_values(config)
            if refused:
                raise UnavailableError(
                    f"the installed vLLM runs on CPU, and {'; '.join(refused)}",
                    where="vllm",
                    fix="change these settings for CPU, or run on a GPU machine",
                )
        defaults = _engine_arg_defaults()
        check_engine_kwargs(section.engine_kwargs, set(defaults))
        args = engine_args(config, section, source, platform)
        port = free_port()
        command = serve_command(args, port, defaults)
        server = ServerProcess(command, port, new_log_path(port), SERVER_ENV)
        server.start()
        self._server, self._url = server, server.url
        self._info.update(
            mode="started", command=server.command, pid=server.pid, log_file=str(server.log_path)
        )
        server.wait_ready(served.ready_timeout_s, f"'{config.model.name}'")

    def prepare(self, config: ExperimentConfig) -> None:
        """Same server, another experiment's traffic, sampling and lengths."""
        if self._config is None:
            raise _not_loaded()
        self._config = config
        self._lengths = reference_output_lengths(
            config.dataset, tokenizer=self._tokenizer, max_input_tokens=config.max_input_tokens
        )

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise _not_loaded()
        return self._tokenizer

    @property
    def server_info(self) -> dict[str, Any]:
        """How the server was reached: mode, url, model_id, ready_s, and (started) command,
        pid, log_file."""
        return {"mode": "external", **self._info} if self._server is None else dict(self._info)

    def unload(self) -> None:
        server, self._server = self._server, None
        self._config = self._tokenizer = None
        if server is not None:
            server.stop()

    # --------------------------------------------------------------- generation

    def generate(self, prompts: list[str]) -> list[ServedRecord]:
        return self.generate_pass(prompts)

    def generate_pass(
        self, prompts: list[str], arrivals_s: list[float] | None = None
    ) -> list[ServedRecord]:
        config = self._config
        if config is None:
            raise _not_loaded()
        served = _served(config)
        requests = [self._request(config, p) for p in prompts]
        stop = threading.Event()

        def on_failure(_record: ServedRecord) -> None:
            if not self._alive():
                stop.set()

        send = functools.partial(
            stream_completion, self._url, self._model_id, timeout_s=served.request_timeout_s
        )
        records = drive(
            send, requests, arrivals_s, served.max_concurrency, stop=stop, on_failure=on_failure
        )
        if stop.is_set() or (any(r.error for r in records) and not self._alive()):
            raise self._died(records)
        return records

    def _request(self, config: ExperimentConfig, prompt: str) -> Request:
        ids = self._tokenizer(prompt, truncation=True, max_length=config.max_input_tokens)
        body = sampling_kwargs(config)
        wanted = self._lengths.get(prompt)
        if wanted is not None:  # the dataset's reply length, within the experiment's bounds
            body["max_tokens"] = max(config.min_output_tokens, min(wanted, body["max_tokens"]), 1)
        return Request(list(ids["input_ids"]), body)

    def _alive(self) -> bool:
        if self._server is not None:
            return self._server.alive()
        return health_ok(self._url)

    def _died(self, records: list[ServedRecord]) -> ExperimentError:
        failed = [r for r in records if r.error]
        first = failed[0].error if failed else "none"
        if self._server is not None:
            tail = log_tail(self._server.log_path)
            where = f"its log ({self._server.log_path}) ends:\n{tail}"
        else:
            where = "it is not llem's, so its log is wherever it was started"
        return ExperimentError(
            f"the server at {self._url} stopped answering during the run ({len(failed)} of "
            f"{len(records)} requests failed; first: {first}); {where}",
            where="server",
            fix="read the server's last error (out of memory: lower vllm.max_num_seqs or "
            "server.max_concurrency)",
        )

    # ------------------------------------------------------ device and memory

    def synchronize(self) -> None:
        """Nothing to wait for: a pass returns once every reply has streamed in."""

    @property
    def peak_memory_method(self) -> PeakMemoryMethod:
        return "unavailable"

    def reset_peak_memory(self) -> None:
        """The server's memory is another process's: not read."""

    def peak_memory_bytes(self) -> int | None:
        return None


def _served(config: ExperimentConfig) -> ServerConfig:
    if config.server is None:
        raise ExperimentError(
            "the served vLLM backend was given a config without a server: section",
            fix="add a server: section, or run the in-process vllm backend",
        )
    return config.server


def _not_loaded() -> ExperimentError:
    return ExperimentError("the served vllm backend has no server", fix="call load() first")
