"""One config section per inference backend, holding the knobs that move energy and throughput.

Class variables describe the backend itself (what it needs, which precisions it supports);
introspection derives capabilities and hardware warnings from them and from field metadata.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from llenergymeasure.config._base import StrictModel, meta

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


class VLLMConfig(BackendSection):
    """vLLM engine: continuous batching and paged attention on NVIDIA GPUs."""

    requires_gpu: ClassVar[bool] = True
    python_package: ClassVar[str] = "vllm"
    install_hint: ClassVar[str] = "pip install vllm"

    max_num_seqs: int = Field(
        256,
        ge=1,
        description="Most sequences scheduled per step.",
        json_schema_extra=meta(short="seqs"),
    )
    max_num_batched_tokens: int | None = Field(
        None,
        ge=1,
        description="Token budget per scheduler step.",
        json_schema_extra=meta(short="mbt"),
    )
    gpu_memory_utilization: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Share of GPU memory vLLM may use.",
        json_schema_extra=meta(short="gmu"),
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
        description="Reuse KV cache across shared prefixes.",
        json_schema_extra=meta(short="prefix"),
    )
    enable_chunked_prefill: bool = Field(
        False,
        description="Split long prefills into chunks.",
        json_schema_extra=meta(short="chunked"),
    )
    enforce_eager: bool = Field(
        False, description="Disable CUDA graphs.", json_schema_extra=meta(short="eager")
    )
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] = Field(
        "auto",
        description="KV cache storage type.",
        json_schema_extra=meta(
            short="kvdtype",
            requires=[{"when": {"in": ["fp8", "fp8_e4m3", "fp8_e5m2"]}, "needs": ADA_HOPPER}],
        ),
    )
    quantization: Literal["awq", "gptq", "fp8", "bitsandbytes"] | None = Field(
        None,
        description="Weight quantisation method.",
        json_schema_extra=meta(
            short="quant",
            requires=[
                {"when": {"in": ["awq", "gptq"]}, "needs": PREQUANTIZED},
                {"when": "fp8", "needs": ADA_HOPPER},
            ],
        ),
    )
    block_size: Literal[8, 16, 32] = Field(
        16, description="Paged-attention block size in tokens.", json_schema_extra=meta(short="blk")
    )
    swap_space_gib: float = Field(
        4.0, ge=0, description="CPU swap space per GPU, GiB.", json_schema_extra=meta(short="swap")
    )
    max_model_len: int | None = Field(
        None, ge=1, description="Context length limit.", json_schema_extra=meta(short="ctx")
    )


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
