"""PyTorch backend: Hugging Face transformers ``generate`` on CPU or CUDA.

Every model source (built-in, local directory, Hub id) loads through
``AutoTokenizer``/``AutoModelForCausalLM.from_pretrained``. torch and transformers are imported
inside the methods, so choosing this backend costs nothing until ``load``.

Measurement choices, also reported in ``ModelInfo.notes``:

* Timing: ``start_s``/``end_s`` wrap one ``generate`` call with the device synchronised on both
  sides; every prompt of a batch shares them. In streaming mode each prompt runs alone and a
  streamer stamps each generated token.
* Output tokens: generated ids up to and including the first EOS, padding excluded.
* Sampling: torch is seeded with ``random_seed`` before every ``generate`` call, so a batch gives
  the same tokens whenever it runs.
* Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (tensors this process allocated on the
  device). On Linux CPU, the process's peak resident set size (``VmHWM``), reset through
  ``/proc/self/clear_refs``: the whole process (Python, torch, weights, activations), not only
  the model. Elsewhere ``None``.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

from llenergymeasure.config.backend_configs import PyTorchConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.devices.base import CPU, DeviceRef, cuda_device_ref
from llenergymeasure.exceptions import ExperimentError, ModelLoadError, UnavailableError
from llenergymeasure.measurement.inference._gpu import package_installed
from llenergymeasure.measurement.inference._memory import (
    MEMORY_NOTES,
    memory_method,
    read_peak_rss,
    reset_peak_rss,
)
from llenergymeasure.measurement.inference.base import (
    ModelInfo,
    PeakMemoryMethod,
    RequestRecord,
    count_output_tokens,
)
from llenergymeasure.measurement.models.builtin import resolve_model_source
from llenergymeasure.measurement.models.loading import (
    hub_access,
    import_transformers,
    load_tokenizer,
    translate_load_errors,
)
from llenergymeasure.measurement.models.parameters import parameter_counts


class PyTorchBackend:
    """transformers on PyTorch. One instance holds at most one loaded model."""

    name = "pytorch"

    def __init__(self) -> None:
        self._config: ExperimentConfig | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = None
        self._devices: tuple[DeviceRef, ...] = ()
        self._gen_kwargs: dict[str, Any] = {}
        self._memory_method: PeakMemoryMethod = "unavailable"

    # ------------------------------------------------------------------ loading

    def load(self, config: ExperimentConfig) -> ModelInfo:
        if self._model is not None:
            self.unload()
        transformers = import_transformers()
        import torch

        section = config.pytorch or PyTorchConfig()
        notes: list[str] = []
        device = _pick_device(torch, section.device)
        dtype = getattr(torch, config.fp_precision)
        _check_attention(section, device)
        quantization = _quantization_config(transformers, section, device, dtype)

        source = resolve_model_source(config.model.name)
        tokenizer = load_tokenizer(config.model, source, notes)

        kwargs: dict[str, Any] = {
            "dtype": dtype,
            "revision": config.model.revision,
            "trust_remote_code": config.model.trust_remote_code,
            "attn_implementation": section.attn_implementation,
        }
        if quantization is not None:
            kwargs["quantization_config"] = quantization
            kwargs["device_map"] = {"": device.index or 0}
            notes.append(f"bitsandbytes {'4' if section.load_in_4bit else '8'}-bit weights")
        if section.device_map is not None:
            _require_cuda_for_device_map(section.device_map, device)
            kwargs["device_map"] = section.device_map  # accelerate places (and moves) them

        started = time.perf_counter()
        try:
            with translate_load_errors(config.model, source):
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    source, **kwargs, **hub_access(source)
                )
            if quantization is None and section.device_map is None:
                model.to(device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        except torch.cuda.OutOfMemoryError as exc:
            raise ModelLoadError(
                f"model '{config.model.name}' does not fit in {device.type} memory at "
                f"{config.fp_precision}",
                fix="use a smaller model, a lower precision, or pytorch.load_in_4bit/8bit on CUDA",
            ) from exc
        load_time_s = time.perf_counter() - started
        model.eval()

        if device.type == "cpu" and dtype != torch.float32:
            _check_cpu_dtype(torch, model, config.fp_precision)
            notes.append(
                f"{config.fp_precision} on CPU: may be slower than float32 on CPUs "
                "without native support"
            )
        if section.torch_compile:
            model.forward = torch.compile(model.forward, mode=section.torch_compile_mode)
            notes.append(
                f"torch.compile(mode={section.torch_compile_mode}) wraps model.forward; "
                "it compiles during the first generate calls (warmup)"
            )

        devices = _device_refs(torch, device)
        if section.device_map is not None:
            devices, spread = weight_devices(torch, getattr(model, "hf_device_map", {}))
            device = model.get_input_embeddings().weight.device  # where the inputs go
            notes.append(spread)
        self._config = config
        self._model = model
        self._tokenizer = tokenizer
        self._device = device
        self._devices = devices
        self._gen_kwargs = _generation_kwargs(config, section, tokenizer)
        self._memory_method = memory_method(device.type)
        notes.append(MEMORY_NOTES[self._memory_method])
        if not section.use_cache:
            notes.append("KV cache disabled (use_cache: false): every step recomputes the prefix")

        total, body, head = parameter_counts(model)
        return ModelInfo(
            source=source,
            device=str(device),
            dtype=str(model.dtype).removeprefix("torch."),
            num_parameters=total,
            load_time_s=load_time_s,
            notes=tuple(notes),
            devices=devices,
            non_embedding_parameters=body,
            output_projection_parameters=head,
        )

    def prepare(self, config: ExperimentConfig) -> None:
        if self._model is None:
            raise _not_loaded()
        self._config = config
        self._gen_kwargs = _generation_kwargs(
            config, config.pytorch or PyTorchConfig(), self._tokenizer
        )

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise _not_loaded()
        return self._tokenizer

    @property
    def model(self) -> Any:
        """The loaded transformers model (for FLOP counting and tests)."""
        if self._model is None:
            raise _not_loaded()
        return self._model

    @property
    def device(self) -> str:
        if self._device is None:
            raise _not_loaded()
        return str(self._device)

    def unload(self) -> None:
        on_cuda = self._device is not None and self._device.type == "cuda"
        self._model = None
        self._tokenizer = None
        self._config = None
        self._device = None
        self._gen_kwargs = {}
        if on_cuda:  # hand the device memory back now; on CPU reference counting frees it
            import torch

            gc.collect()
            torch.cuda.empty_cache()

    # --------------------------------------------------------------- generation

    def generate(self, prompts: list[str]) -> list[RequestRecord]:
        if self._model is None or self._config is None:
            raise _not_loaded()
        if not prompts:
            return []
        if self._config.streaming:
            return [self._generate_one_streaming(prompt) for prompt in prompts]
        if len(prompts) > 1 and self._tokenizer.pad_token is None:
            raise ExperimentError(
                "this tokenizer has no pad, EOS or UNK token, so prompts cannot be batched",
                fix="set pytorch.batch_size: 1",
            )
        encoded = self._encode(prompts)
        output, start_s, end_s = self._run(encoded, streamer=None)
        input_tokens = encoded["attention_mask"].sum(dim=1).tolist()
        outputs = self._output_counts(output, encoded)
        return [
            RequestRecord(input_tokens=int(i), output_tokens=o, start_s=start_s, end_s=end_s)
            for i, o in zip(input_tokens, outputs, strict=True)
        ]

    def _generate_one_streaming(self, prompt: str) -> RequestRecord:
        from llenergymeasure.measurement.inference._hf_streamer import TimingStreamer

        streamer = TimingStreamer()
        encoded = self._encode([prompt])
        output, start_s, end_s = self._run(encoded, streamer=streamer)
        (count,) = self._output_counts(output, encoded)
        times = tuple(streamer.token_times_s[:count])
        return RequestRecord(
            input_tokens=int(encoded["attention_mask"].sum()),
            output_tokens=count,
            start_s=start_s,
            end_s=end_s,
            first_token_s=times[0] if times else None,
            token_times_s=times,
        )

    def _encode(self, prompts: list[str]) -> Any:
        assert self._config is not None
        encoded = self._tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self._config.max_input_tokens,
        )
        return encoded.to(self._device)

    def _run(self, encoded: Any, *, streamer: Any) -> tuple[Any, float, float]:
        import torch

        assert self._config is not None
        kwargs = dict(self._gen_kwargs)
        if streamer is not None:
            kwargs["streamer"] = streamer
        torch.manual_seed(self._config.random_seed)
        with self._generation_errors(), torch.inference_mode():
            self.synchronize()
            start_s = time.perf_counter()
            output = self._model.generate(**encoded, **kwargs)
            self.synchronize()
            end_s = time.perf_counter()
        return output, start_s, end_s

    def _output_counts(self, output: Any, encoded: Any) -> list[int]:
        prompt_width = encoded["input_ids"].shape[1]
        generated = output[:, prompt_width:].tolist()
        return count_output_tokens(generated, self._eos_token_ids())

    def _eos_token_ids(self) -> set[int]:
        eos = getattr(self._model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self._tokenizer.eos_token_id
        if eos is None:
            return set()
        return {int(e) for e in eos} if isinstance(eos, (list, tuple)) else {int(eos)}

    @contextlib.contextmanager
    def _generation_errors(self) -> Iterator[None]:
        import torch

        try:
            yield
        except torch.cuda.OutOfMemoryError as exc:
            raise ExperimentError(
                f"out of memory on {self._device} during generation",
                fix="lower pytorch.batch_size, max_input_tokens or max_output_tokens",
            ) from exc
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            assert self._config is not None
            raise ExperimentError(
                f"generation failed on {self._device} at {self._config.fp_precision}: {first}",
                fix="try fp_precision: float32 (CPU) or bfloat16 (GPU), attn_implementation: "
                "sdpa, or torch_compile: false",
            ) from exc

    # ------------------------------------------------------ device and memory

    def synchronize(self) -> None:
        if self._device is not None and self._device.type == "cuda":
            import torch

            for ref in self._devices:  # every GPU holding weights (device_map), else the one
                torch.cuda.synchronize(ref.cuda_index)

    @property
    def peak_memory_method(self) -> PeakMemoryMethod:
        """What ``peak_memory_bytes`` measures on this device."""
        return self._memory_method

    def reset_peak_memory(self) -> None:
        if self._memory_method == "cuda_max_allocated":
            import torch

            torch.cuda.reset_peak_memory_stats(self._device)
        elif self._memory_method == "process_peak_rss":
            reset_peak_rss()

    def peak_memory_bytes(self) -> int | None:
        if self._memory_method == "cuda_max_allocated":
            import torch

            return int(torch.cuda.max_memory_allocated(self._device))
        if self._memory_method == "process_peak_rss":
            return read_peak_rss()
        return None


def _device_refs(torch: Any, device: Any) -> tuple[DeviceRef, ...]:
    """The one device this backend runs the model on, with its UUID on CUDA."""
    if device.type != "cuda":
        return (CPU,)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return (cuda_device_ref(torch, int(index)),)


def weight_devices(torch: Any, device_map: dict[str, Any]) -> tuple[tuple[DeviceRef, ...], str]:
    """The GPUs a dispatched model's weights are on (``hf_device_map``: module -> device), in
    index order with their UUIDs, and a note saying where they went."""
    indices: set[int] = set()
    offloaded: set[str] = set()
    for place in device_map.values():
        text = str(place)
        if isinstance(place, int) or text.isdigit():
            indices.add(int(text))
        elif text.startswith("cuda"):
            indices.add(int(text.partition(":")[2] or 0))
        else:
            offloaded.add(text)
    refs = tuple(cuda_device_ref(torch, i) for i in sorted(indices))
    note = (
        f"device_map: weights on {len(refs)} GPU(s) (cuda {', '.join(map(str, sorted(indices)))})"
    )
    if offloaded:
        note += (
            f"; some offloaded to {', '.join(sorted(offloaded))}, whose energy the GPU "
            "reading does not hold"
        )
    return refs, note


def _require_cuda_for_device_map(device_map: str, device: Any) -> None:
    """A device_map needs GPUs, and accelerate (which transformers places the weights with)."""
    import importlib.util

    if device.type != "cuda":
        raise UnavailableError(
            f"pytorch.device_map={device_map} spreads the weights over GPUs, and torch sees none",
            where="pytorch.device_map",
            fix="run on a machine with NVIDIA GPUs, or drop pytorch.device_map",
        )
    if importlib.util.find_spec("accelerate") is None:
        raise UnavailableError(
            f"pytorch.device_map={device_map} needs the accelerate package, which is not installed",
            where="pytorch.device_map",
            fix="pip install accelerate, or drop pytorch.device_map",
        )


def _not_loaded() -> ExperimentError:
    return ExperimentError("the pytorch backend has no model loaded", fix="call load() first")


def _pick_device(torch: Any, choice: str) -> Any:
    has_cuda = bool(torch.cuda.is_available())
    if choice == "cuda" and not has_cuda:
        raise UnavailableError(
            "pytorch.device is cuda but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})",
            where="pytorch.device",
            fix="run on a machine with an NVIDIA GPU and a CUDA build of torch, or set "
            "pytorch.device: auto (or cpu)",
        )
    if choice == "cpu" or not has_cuda:
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def _gpu_feature_missing(device: Any, package: str) -> list[str]:
    """What is missing for a feature that needs an NVIDIA GPU and ``package``."""
    missing = []
    if device.type != "cuda":
        missing.append(f"the model runs on {device.type}, not an NVIDIA GPU")
    if not package_installed(package):
        missing.append(f"the {package} package is not installed")
    return missing


def _check_attention(section: PyTorchConfig, device: Any) -> None:
    if section.attn_implementation != "flash_attention_2":
        return
    missing = _gpu_feature_missing(device, "flash_attn")
    if missing:
        raise UnavailableError(
            "pytorch.attn_implementation=flash_attention_2 needs an Ampere or newer NVIDIA GPU "
            f"and the flash_attn package ({'; '.join(missing)})",
            where="pytorch.attn_implementation",
            fix="pip install flash-attn on a machine with such a GPU, or set "
            "pytorch.attn_implementation: sdpa",
        )


def _quantization_config(transformers: Any, section: PyTorchConfig, device: Any, dtype: Any) -> Any:
    if not (section.load_in_4bit or section.load_in_8bit):
        return None
    key = "pytorch.load_in_4bit" if section.load_in_4bit else "pytorch.load_in_8bit"
    missing = _gpu_feature_missing(device, "bitsandbytes")
    if missing:
        raise UnavailableError(
            f"{key} needs an NVIDIA GPU and the bitsandbytes package ({'; '.join(missing)})",
            where=key,
            fix="pip install bitsandbytes on a machine with an NVIDIA GPU, or turn "
            "quantisation off",
        )
    if section.load_in_4bit:
        return transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype)
    return transformers.BitsAndBytesConfig(load_in_8bit=True)


def _check_cpu_dtype(torch: Any, model: Any, precision: str) -> None:
    """One tiny forward pass: fail at load, clearly, if this CPU cannot run ``precision``."""
    try:
        with torch.inference_mode():
            model(input_ids=torch.zeros((1, 1), dtype=torch.long))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnavailableError(
            f"fp_precision={precision} cannot run on this CPU with this model: {first}",
            where="fp_precision",
            fix="use fp_precision: float32 (or bfloat16) on CPU",
        ) from exc


def _generation_kwargs(
    config: ExperimentConfig, section: PyTorchConfig, tokenizer: Any
) -> dict[str, Any]:
    decoder = config.decoder
    kwargs: dict[str, Any] = {
        "max_new_tokens": config.max_output_tokens,
        "use_cache": section.use_cache,
    }
    if config.min_output_tokens > 0:
        kwargs["min_new_tokens"] = config.min_output_tokens
    if tokenizer.pad_token_id is not None:
        kwargs["pad_token_id"] = tokenizer.pad_token_id
    if decoder.do_sample:
        kwargs.update(
            do_sample=True,
            temperature=decoder.temperature,
            top_p=decoder.top_p,
            top_k=decoder.top_k,  # 0 disables top-k in transformers
        )
    else:
        kwargs["do_sample"] = False  # no sampling knobs: transformers would warn they are unused
    if decoder.repetition_penalty is not None and decoder.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = decoder.repetition_penalty
    return kwargs
