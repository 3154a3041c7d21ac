"""ExperimentConfig: everything that defines one measured experiment, as pure data.

No network, device or environment access happens here: a config validates identically on a
laptop and on a GPU server. Field validators check single values; model validators check
*combinations* and raise errors labelled with a short rule name, which the grid uses to group
filtered experiments.
"""

# No `from __future__ import annotations`: pydantic would compile every field's annotation
# back from its string when the class is built (a few ms of `llem campaign validate`).
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, ModelWrapValidatorHandler, field_validator, model_validator

from llenergymeasure.config._base import StrictModel, combination_error, factory, meta
from llenergymeasure.config.backend_configs import (
    AMPERE,
    BackendSection,
    PyTorchConfig,
    TensorRTConfig,
    VLLMConfig,
)
from llenergymeasure.config.backends import BACKENDS
from llenergymeasure.config.energy_sources import ENERGY_SOURCE_SPECS
from llenergymeasure.config.server_config import ServerConfig
from llenergymeasure.config.text import PlainText

Backend = Literal["pytorch", "vllm", "tensorrt"]
Precision = Literal["float32", "float16", "bfloat16"]
DecoderPreset = Literal["deterministic", "standard", "creative", "factual"]
EnergySourceName = Literal["auto", "nvml", "rapl", "zeus", "codecarbon", "estimate"]
NODE_WIDE_SOURCES: frozenset[str] = frozenset(
    name for name, spec in ENERGY_SOURCE_SPECS.items() if spec.node_wide
)
"""Energy sources that read the whole machine rather than the experiment's own devices."""

MAX_TOKENS = 2**24
"""Upper bound of token counts: beyond any model's context (a larger value is a typo)."""
MAX_PROMPTS = 10_000_000
"""Upper bound of prompt and request counts."""
MAX_SECONDS = 7 * 86400.0
"""Upper bound of waits and windows (a week); ``time.sleep`` overflows on huge values."""

BACKEND_SECTIONS: dict[str, type[BackendSection]] = {
    name: spec.section for name, spec in BACKENDS.items()
}
"""Backend name -> its config section; the keys are exactly the ``Backend`` options."""


class ModelConfig(StrictModel):
    """Which model to load. ``model: gpt2`` is shorthand for ``model: {name: gpt2}``."""

    name: PlainText = Field(
        ...,
        min_length=1,
        description="Hub id, local directory, or a built-in name such as builtin:tiny-gpt2.",
    )
    revision: PlainText | None = Field(None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(
        False,
        description="Allow the model repository to run its own code. Off unless you trust it.",
    )


DECODER_PRESETS: dict[str, dict[str, Any]] = {
    "deterministic": {
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "do_sample": False,
    },
    "standard": {
        "temperature": 1.0,
        "top_p": 0.95,
        "top_k": 50,
        "repetition_penalty": 1.0,
        "do_sample": True,
    },
    "creative": {
        "temperature": 1.2,
        "top_p": 0.95,
        "top_k": 0,
        "repetition_penalty": 1.05,
        "do_sample": True,
    },
    "factual": {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "repetition_penalty": 1.1,
        "do_sample": True,
    },
}
"""Sampling presets; a preset fills only the values the user did not set."""


class DecoderConfig(StrictModel):
    """Sampling settings. Unset values come from ``preset`` (default: deterministic)."""

    preset: DecoderPreset | None = Field(
        None, description="Fills the values you did not set.", json_schema_extra=meta(short="")
    )
    temperature: float | None = Field(None, ge=0, le=2, json_schema_extra=meta(short="temp"))
    top_p: float | None = Field(None, gt=0, le=1, json_schema_extra=meta(short="topp"))
    top_k: int | None = Field(
        None,
        ge=0,
        le=MAX_TOKENS,
        description="0 disables top-k.",
        json_schema_extra=meta(short="topk"),
    )
    repetition_penalty: float | None = Field(None, gt=0, json_schema_extra=meta(short="rep"))
    do_sample: bool | None = Field(
        None,
        description="Sample instead of greedy decoding; inferred from temperature when unset.",
        json_schema_extra=meta(short="sample"),
    )

    @model_validator(mode="wrap")
    @classmethod
    def _fill_from_preset(
        cls, data: Any, handler: "ModelWrapValidatorHandler[DecoderConfig]"
    ) -> "DecoderConfig":
        if type(data) is cls:
            return data  # an instance was filled and checked when it was validated
        self = handler(data)
        preset = DECODER_PRESETS[self.preset or "deterministic"]
        values = self.__dict__
        chose_temperature = values["temperature"] is not None  # a null is unset, as if omitted
        if values["do_sample"] is None and chose_temperature:
            values["do_sample"] = values["temperature"] > 0
        for key, default in preset.items():
            if values[key] is None:
                values[key] = default
        if values["do_sample"] and values["temperature"] == 0:
            raise combination_error(
                "do_sample + temperature 0",
                "decoder.do_sample is true but decoder.temperature is 0; "
                "fix: set a temperature > 0, or do_sample: false for greedy decoding",
                ("do_sample",),
            )
        if not values["do_sample"] and values["temperature"] > 0 and chose_temperature:
            raise combination_error(
                "temperature without sampling",
                f"decoder.temperature={values['temperature']} has no effect with "
                "decoder.do_sample: false; fix: set do_sample: true or drop temperature",
                ("temperature",),
            )
        return self


class DatasetConfig(StrictModel):
    """Where prompts come from."""

    name: PlainText = Field(
        "builtin:synthetic",
        min_length=1,
        description="builtin:synthetic, builtin:prompts, a .jsonl/.csv/.txt file, or a HF dataset id.",
        json_schema_extra=meta(short="ds"),
    )
    num_prompts: int = Field(
        32,
        ge=1,
        le=MAX_PROMPTS,
        description="Prompts in the measured window.",
        json_schema_extra=meta(short="n"),
    )
    synthetic_input_tokens: int = Field(
        64,
        ge=1,
        le=MAX_TOKENS,
        description="Prompt length in tokens for builtin:synthetic.",
        json_schema_extra=meta(short="in"),
    )
    column: PlainText | None = Field(
        None, description="Text column of a JSONL/CSV/HF dataset (default: prompt/text)."
    )
    split: PlainText = Field("train", description="Split of a Hugging Face dataset.")


WARMUP_MIN_DEFAULT = 32
"""Warmup prompts when ``max_prompts`` is unset and neither ``window_size`` batches nor
``min_prompts`` need more."""


class WarmupConfig(StrictModel):
    """Run until throughput is steady before measuring."""

    enabled: bool = Field(True, json_schema_extra=meta(short="warm"))
    convergence_detection: bool = Field(
        True, description="Stop early once throughput CV < cv_threshold over window_size batches."
    )
    cv_threshold: float = Field(
        0.05, gt=0, lt=1, description="Coefficient of variation that counts as steady."
    )
    min_prompts: int = Field(
        2, ge=1, le=MAX_PROMPTS, description="Prompts always run before convergence is checked."
    )
    max_prompts: int | None = Field(
        None,
        ge=1,
        le=MAX_PROMPTS,
        description=f"Upper bound on warmup prompts (None: max({WARMUP_MIN_DEFAULT}, window_size "
        "x the warmup batch size), filled in when the config is validated).",
    )
    window_size: int = Field(
        3, ge=2, le=MAX_PROMPTS, description="Batches over which the CV is computed."
    )

    @property
    def prompt_limit(self) -> int:
        """``max_prompts`` as the experiment's validation filled it in."""
        if self.max_prompts is None:
            raise ValueError("warmup.max_prompts is only resolved by ExperimentConfig")
        return self.max_prompts


class BaselineConfig(StrictModel):
    """Idle power measured before the experiment and subtracted from its energy."""

    enabled: bool = Field(True, json_schema_extra=meta(short="base"))
    duration_sec: float = Field(10.0, gt=0, le=MAX_SECONDS, description="Idle window length.")
    cache_ttl_sec: float = Field(
        3600.0, ge=0, description="Reuse a baseline this recent for the same devices."
    )
    reuse_across_runs: bool = Field(
        False,
        description="Reuse a cached baseline taken by another process or with another model "
        "loaded (same host, source, devices and state, within cache_ttl_sec). Off: a baseline "
        "is reused only by the same process with the same model resident.",
    )


class EnergyConfig(StrictModel):
    """Which energy source to read and how often."""

    source: EnergySourceName = Field(
        "auto",
        description="auto = NVML if an NVIDIA GPU is present, else RAPL if readable, else estimate.",
        json_schema_extra=meta(short="energy"),
    )
    sample_interval_ms: float = Field(
        100.0, ge=1, le=MAX_SECONDS * 1000, description="Polling interval where the source polls."
    )
    tdp_w: float | None = Field(
        None,
        gt=0,
        description="CPU TDP in watts for the 'estimate' source (default 65 W per socket).",
    )
    min_window_s: float | None = Field(
        None,
        ge=0,
        le=MAX_SECONDS,
        description="Shortest measured window; whole passes over the prompts repeat until it "
        "is reached (None: the source's floor, 1 s for GPU sources, 0 otherwise).",
    )
    max_error_pct: float | None = Field(
        None,
        gt=0,
        le=100,
        description="Counter quantisation error bound the window must reach: it lasts at least "
        "K = 100 / max_error_pct update periods (None: the source's target, 1% for GPU and "
        "RAPL counters, 10% for estimates).",
    )
    allow_mig_whole_gpu: bool = Field(
        False,
        description="Measure a MIG-enabled GPU as a whole (every instance and tenant on it); "
        "refused by default. Results are labelled.",
    )


class TimeseriesConfig(StrictModel):
    """Optional power/temperature time series saved beside the result."""

    enabled: bool = Field(False, json_schema_extra=meta(short="ts"))
    sample_interval_ms: float = Field(
        100.0,
        ge=1,
        le=MAX_SECONDS * 1000,
        description="Spacing of the time series' samples (NVML, RAPL).",
    )


class TrafficConfig(StrictModel):
    """Request arrival pattern; ``none`` sends batches back to back.

    constant: one request every 1/target_qps s; poisson: exponential gaps with mean
    1/target_qps (seeded); bursty: burst_size requests at once every burst_interval_s.
    """

    mode: Literal["none", "constant", "poisson", "bursty"] = Field(
        "none", json_schema_extra=meta(short="traffic")
    )
    target_qps: float | None = Field(
        None,
        ge=1e-6,  # one request in 11 days; a smaller rate overflows the sleeps between them
        description="Mean arrivals per second (constant, poisson).",
        json_schema_extra=meta(short="qps"),
    )
    burst_size: int | None = Field(
        None,
        ge=1,
        le=MAX_PROMPTS,
        description="Requests per burst (bursty).",
        json_schema_extra=meta(short="burst"),
    )
    burst_interval_s: float | None = Field(
        None,
        gt=0,
        le=MAX_SECONDS,
        description="Seconds from one burst to the next (bursty).",
        json_schema_extra=meta(short="every"),
    )


def _converging_fix(needed: int, batch: int, window_size: int) -> str:
    """How to make warmup able to converge: more prompts while they fit under MAX_PROMPTS,
    else a batch size that fits (the default warmup is capped there too)."""
    fixed = "set warmup.convergence_detection: false for a fixed-length warmup"
    if needed <= MAX_PROMPTS:
        return f"set warmup.max_prompts to at least {needed}, lower warmup.window_size, or {fixed}"
    return (
        f"a warmup is at most {MAX_PROMPTS:,} prompts, so lower the batch size ({batch:,}) to "
        f"at most {MAX_PROMPTS // window_size:,}, lower warmup.window_size, or {fixed}"
    )


def warmup_batch_size(section: BackendSection | None) -> int | None:
    """Prompts per warmup batch, where the section fixes it (a ``batch_size`` field). An
    engine that schedules its own batches (vLLM) gets groups sized from ``max_prompts``, so
    any ``max_prompts`` can converge there."""
    size = getattr(section, "batch_size", None)
    return size if isinstance(size, int) else None


def engine_concurrency(backend: str, section: BackendSection, num_prompts: int) -> int:
    """Requests an engine that forms its own batches runs at once in the measured window:
    its batching limit (vLLM's ``max_num_seqs``), or fewer when the window sends fewer."""
    return min(int(getattr(section, BACKENDS[backend].roles["batching"])), num_prompts)


@lru_cache(maxsize=1024)
def _with_max_prompts(warmup: WarmupConfig, max_prompts: int) -> WarmupConfig:
    """``warmup`` with its default ``max_prompts`` filled in; equal inputs share one copy
    (a grid repeats a few warmup sections, and grid validation hashes each copy once)."""
    return warmup.model_copy(update={"max_prompts": max_prompts})


def _check_traffic(traffic: TrafficConfig) -> None:
    """Each mode takes exactly its own rate settings."""
    bursty = traffic.mode == "bursty"
    if traffic.mode in ("constant", "poisson") and traffic.target_qps is None:
        raise combination_error(
            "traffic without target_qps",
            f"traffic.mode={traffic.mode} needs traffic.target_qps; fix: set target_qps, e.g. 2.0",
            ("traffic", "mode"),
        )
    if bursty and (traffic.burst_size is None or traffic.burst_interval_s is None):
        raise combination_error(
            "bursty traffic without its bursts",
            "traffic.mode=bursty needs traffic.burst_size and traffic.burst_interval_s; "
            "fix: set both, e.g. burst_size: 8, burst_interval_s: 2.0",
            ("traffic", "mode"),
        )
    if bursty and traffic.target_qps is not None:
        raise combination_error(
            "bursty traffic + target_qps",
            "traffic.mode=bursty takes its rate from burst_size / burst_interval_s, not "
            "traffic.target_qps; fix: remove target_qps",
            ("traffic", "target_qps"),
        )
    if not bursty and (traffic.burst_size is not None or traffic.burst_interval_s is not None):
        raise combination_error(
            "bursts without bursty traffic",
            f"traffic.burst_size and traffic.burst_interval_s only apply to mode bursty, not "
            f"{traffic.mode}; fix: set traffic.mode: bursty or remove them",
            ("traffic", "burst_size"),
        )


class ExperimentConfig(StrictModel):
    """One experiment: a model on a backend at a precision, with its measurement settings."""

    name: PlainText | None = Field(
        None, description="Readable experiment name (generated in campaigns)."
    )
    model: ModelConfig = Field(..., json_schema_extra=meta(short=""))
    backend: Backend = Field("pytorch", json_schema_extra=meta(short=""))
    fp_precision: Precision = Field("bfloat16", json_schema_extra=meta(short=""))
    max_input_tokens: int = Field(
        512,
        ge=1,
        le=MAX_TOKENS,
        description="Prompts are truncated to this.",
        json_schema_extra=meta(short="in"),
    )
    max_output_tokens: int = Field(128, ge=1, le=MAX_TOKENS, json_schema_extra=meta(short="out"))
    min_output_tokens: int = Field(0, ge=0, le=MAX_TOKENS, json_schema_extra=meta(short="minout"))
    decoder: DecoderConfig = Field(default_factory=factory(DecoderConfig))
    dataset: DatasetConfig = Field(default_factory=factory(DatasetConfig))
    streaming: bool = Field(
        False,
        description="Send requests one at a time and record TTFT/ITL.",
        json_schema_extra=meta(short="stream"),
    )
    warmup: WarmupConfig = Field(default_factory=factory(WarmupConfig))
    baseline: BaselineConfig = Field(default_factory=factory(BaselineConfig))
    energy: EnergyConfig = Field(default_factory=factory(EnergyConfig))
    timeseries: TimeseriesConfig = Field(default_factory=factory(TimeseriesConfig))
    traffic: TrafficConfig = Field(default_factory=factory(TrafficConfig))
    random_seed: int = Field(
        42, description="Seeds prompts, sampling and traffic.", json_schema_extra=meta(short="seed")
    )
    server: ServerConfig | None = Field(
        None,
        description="Serve the model over an OpenAI-compatible API and measure it under the "
        "traffic (see docs/serving.md); None: the backend runs in llem's process.",
    )
    pytorch: PyTorchConfig | None = None
    vllm: VLLMConfig | None = None
    tensorrt: TensorRTConfig | None = None

    @field_validator("model", mode="before")
    @classmethod
    def _model_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_combinations(self) -> "ExperimentConfig":
        """Every cross-field rule, in one place (sections hold single values only, so a
        validated section can be reused by many configs without re-running checks)."""
        values = self.__dict__
        backend, precision = values["backend"], values["fp_precision"]
        for other in BACKEND_SECTIONS:
            if other != backend and values[other] is not None:
                raise combination_error(
                    f"{other} section + backend {backend}",
                    f"a '{other}:' section is set but backend is '{backend}'; "
                    f"fix: remove the '{other}:' section or set backend: {other}",
                    (other,),
                )
        section_cls = BACKEND_SECTIONS[backend]
        if values[backend] is None:
            values[backend] = section_cls()
        if precision not in section_cls.supported_precisions:
            raise combination_error(
                f"{backend} + {precision}",
                f"backend {backend} does not support fp_precision={precision}; "
                f"fix: use one of {', '.join(section_cls.supported_precisions)}",
                ("fp_precision",),
            )
        min_out, max_out = values["min_output_tokens"], values["max_output_tokens"]
        if min_out > max_out:
            raise combination_error(
                "min_output_tokens > max_output_tokens",
                f"min_output_tokens ({min_out}) exceeds max_output_tokens ({max_out}); "
                "fix: lower min_output_tokens or raise max_output_tokens",
                ("min_output_tokens",),
            )
        warmup = values["warmup"]
        batch = 1 if values["streaming"] else warmup_batch_size(values[backend])
        needed = warmup.window_size * (batch or 1)
        if warmup.max_prompts is None:  # the default scales with the batch, so it converges
            # an engine batching for itself warms up in groups of max_prompts / (2 x window):
            # by default groups as large as the concurrency the measured window reaches
            length = needed
            if batch is None:
                concurrency = engine_concurrency(
                    backend, values[backend], values["dataset"].num_prompts
                )
                length = 2 * warmup.window_size * concurrency
            warmup = values["warmup"] = _with_max_prompts(
                warmup, max(WARMUP_MIN_DEFAULT, warmup.min_prompts, min(length, MAX_PROMPTS))
            )
        if warmup.min_prompts > warmup.max_prompts:
            raise combination_error(
                "warmup min_prompts > max_prompts",
                f"warmup.min_prompts ({warmup.min_prompts}) exceeds warmup.max_prompts "
                f"({warmup.max_prompts}); fix: raise max_prompts or lower min_prompts",
                ("warmup", "min_prompts"),
            )
        converging = warmup.enabled and warmup.convergence_detection
        if converging and batch is not None and warmup.max_prompts < needed:
            raise combination_error(
                "warmup can never converge",
                f"warmup.max_prompts ({warmup.max_prompts}) is fewer than window_size "
                f"({warmup.window_size}) x batch size ({batch}), so warmup ends before it "
                f"can judge steady state; fix: {_converging_fix(needed, batch, warmup.window_size)}",
                ("warmup", "max_prompts"),
            )
        _check_traffic(values["traffic"])
        if values["server"] is not None and BACKENDS[backend].server_engine is None:
            served = [name for name, spec in BACKENDS.items() if spec.server_engine]
            raise combination_error(
                f"server + backend {backend}",
                f"a 'server:' section is set but backend {backend} has no served mode; "
                f"fix: set backend to {' or '.join(served)}, or remove the 'server:' section",
                ("server",),
            )
        pytorch = values["pytorch"]
        if pytorch is not None:
            if pytorch.load_in_4bit and pytorch.load_in_8bit:
                raise combination_error(
                    "load_in_4bit + load_in_8bit",
                    "pytorch.load_in_4bit and pytorch.load_in_8bit are both true; "
                    "fix: choose one quantisation",
                    ("pytorch", "load_in_4bit"),
                )
            if pytorch.device_map is not None and pytorch.device == "cpu":
                raise combination_error(
                    "device_map + device cpu",
                    f"pytorch.device_map={pytorch.device_map} spreads the weights over GPUs but "
                    "pytorch.device is cpu; fix: set device: cuda (or auto), or drop device_map",
                    ("pytorch", "device_map"),
                )
            if pytorch.attn_implementation == "flash_attention_2" and precision == "float32":
                raise combination_error(
                    "flash_attention_2 + float32",
                    "pytorch.attn_implementation=flash_attention_2 needs fp_precision float16 or "
                    f"bfloat16 (and {AMPERE}); fix: change fp_precision or use attn_implementation: sdpa",
                    ("pytorch", "attn_implementation"),
                )
        return self

    @property
    def backend_section(self) -> BackendSection:
        """The section of the selected backend (always present after validation)."""
        section = getattr(self, self.backend)
        assert section is not None
        return section
