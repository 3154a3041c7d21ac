"""ExperimentConfig: shorthand, strictness, combination rules, decoder presets, backend sections."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from llenergymeasure.config import campaign_config
from llenergymeasure.config.backend_configs import PyTorchConfig, TensorRTConfig, VLLMConfig
from llenergymeasure.config.introspection import submodel
from llenergymeasure.config.models import DECODER_PRESETS, ExperimentConfig


def _errors(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        ExperimentConfig.model_validate(data)
    return info.value.errors()


def _reachable_models(root: type[BaseModel]) -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    stack = [root]
    while stack:
        model = stack.pop()
        if model in found:
            continue
        found.add(model)
        for info in model.model_fields.values():
            child = submodel(info.annotation)
            if child is not None:
                stack.append(child)
    return found


# --- model shorthand ---------------------------------------------------------------------------


def test_model_string_is_shorthand_for_name() -> None:
    config = ExperimentConfig.model_validate({"model": "gpt2"})
    assert config.model.name == "gpt2"
    assert config.model.revision is None
    assert config.model.trust_remote_code is False
    assert config == ExperimentConfig.model_validate({"model": {"name": "gpt2"}})


def test_model_is_required_and_name_not_empty() -> None:
    assert _errors({})[0]["loc"] == ("model",)
    assert _errors({"model": ""})[0]["loc"] == ("model", "name")
    assert _errors({"model": {"revision": "main"}})[0]["loc"] == ("model", "name")


def test_defaults_are_the_documented_ones() -> None:
    config = ExperimentConfig.model_validate({"model": "gpt2"})
    assert config.backend == "pytorch"
    assert config.fp_precision == "bfloat16"
    assert config.dataset.name == "builtin:synthetic"
    assert config.energy.source == "auto"
    assert config.traffic.mode == "none"
    assert config.name is None


# --- extra="forbid" everywhere -------------------------------------------------------------


def test_every_reachable_model_forbids_extra_keys() -> None:
    models = _reachable_models(ExperimentConfig) | _reachable_models(campaign_config.CampaignConfig)
    assert {PyTorchConfig, VLLMConfig, TensorRTConfig, ExperimentConfig} <= models
    lax = sorted(m.__name__ for m in models if m.model_config.get("extra") != "forbid")
    assert lax == []


def test_top_level_typo_is_an_extra_forbidden_error() -> None:
    errors = _errors({"model": "gpt2", "max_output_tokns": 5})
    assert [(e["type"], e["loc"]) for e in errors] == [("extra_forbidden", ("max_output_tokns",))]


SECTIONS = [
    name
    for name, info in ExperimentConfig.model_fields.items()
    if submodel(info.annotation) is not None
]


@pytest.mark.parametrize("section", SECTIONS)
def test_typo_inside_every_section_is_an_error(section: str) -> None:
    data: dict[str, Any] = {"model": {"name": "gpt2"}, section: {"bogus_key": 1}}
    if section == "model":
        data[section]["name"] = "gpt2"
    if section in ("pytorch", "vllm", "tensorrt"):
        data["backend"] = section
        data["fp_precision"] = "float16"
    errors = _errors(data)
    assert ("extra_forbidden", (section, "bogus_key")) in [(e["type"], e["loc"]) for e in errors]


def test_a_validated_config_cannot_be_changed() -> None:
    config = ExperimentConfig.model_validate({"model": "gpt2"})
    with pytest.raises(ValidationError, match="frozen"):
        config.fp_precision = "float16"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        config.decoder.top_k = 10  # type: ignore[misc]


# --- combination rules -----------------------------------------------------------------------

COMBINATIONS = [
    pytest.param(
        {"model": "gpt2", "backend": "pytorch", "vllm": {"max_num_seqs": 8}},
        ["vllm", "backend"],
        id="section-not-matching-backend",
    ),
    pytest.param(
        {"model": "gpt2", "backend": "tensorrt", "fp_precision": "float32"},
        ["tensorrt", "fp_precision"],
        id="tensorrt-float32",
    ),
    pytest.param(
        {"model": "gpt2", "pytorch": {"load_in_4bit": True, "load_in_8bit": True}},
        ["pytorch.load_in_4bit", "pytorch.load_in_8bit"],
        id="4bit-and-8bit",
    ),
    pytest.param(
        {"model": "gpt2", "min_output_tokens": 64, "max_output_tokens": 32},
        ["min_output_tokens", "max_output_tokens"],
        id="min-output-over-max",
    ),
    pytest.param(
        {
            "model": "gpt2",
            "fp_precision": "float32",
            "pytorch": {"attn_implementation": "flash_attention_2"},
        },
        ["pytorch.attn_implementation", "fp_precision"],
        id="flash-attention-float32",
    ),
    pytest.param(
        {"model": "gpt2", "warmup": {"min_prompts": 10, "max_prompts": 5}},
        ["warmup.min_prompts", "warmup.max_prompts"],
        id="warmup-min-over-max",
    ),
    pytest.param(
        {"model": "gpt2", "traffic": {"mode": "poisson"}},
        ["traffic.mode", "traffic.target_qps"],
        id="traffic-without-qps",
    ),
    pytest.param(
        {"model": "gpt2", "decoder": {"do_sample": True, "temperature": 0}},
        ["decoder.do_sample", "decoder.temperature"],
        id="sampling-at-temperature-0",
    ),
]


@pytest.mark.parametrize(("data", "paths"), COMBINATIONS)
def test_combination_rule_is_labelled_and_explains_the_fix(
    data: dict[str, Any], paths: list[str]
) -> None:
    errors = _errors(data)
    assert len(errors) == 1, errors
    error = errors[0]
    assert error["type"] == "invalid_combination"
    message = error["msg"]
    for path in paths:
        assert path in message, f"{path!r} not named in {message!r}"
    assert "fix:" in message
    rule = error["ctx"]["rule"]
    assert isinstance(rule, str)
    assert 0 < len(rule) <= 40
    assert "\n" not in rule
    assert "fix" not in rule
    assert rule != message


def test_tensorrt_float32_rule_label_is_the_documented_one() -> None:
    error = _errors({"model": "gpt2", "backend": "tensorrt", "fp_precision": "float32"})[0]
    assert error["ctx"]["rule"] == "tensorrt + float32"
    assert "float16" in error["msg"] and "bfloat16" in error["msg"]


def test_same_rule_has_the_same_label_for_different_values() -> None:
    a = _errors({"model": "gpt2", "min_output_tokens": 64, "max_output_tokens": 32})[0]
    b = _errors({"model": "gpt2", "min_output_tokens": 9, "max_output_tokens": 8})[0]
    assert a["ctx"]["rule"] == b["ctx"]["rule"]
    assert a["msg"] != b["msg"]


@pytest.mark.parametrize(
    "data",
    [
        {"model": "gpt2", "backend": "tensorrt", "fp_precision": "float16"},
        {"model": "gpt2", "pytorch": {"load_in_4bit": True}},
        {"model": "gpt2", "min_output_tokens": 32, "max_output_tokens": 32},
        {"model": "gpt2", "pytorch": {"attn_implementation": "flash_attention_2"}},
        {"model": "gpt2", "fp_precision": "float32", "pytorch": {"attn_implementation": "eager"}},
        {"model": "gpt2", "warmup": {"min_prompts": 5, "max_prompts": 5}},
        {"model": "gpt2", "traffic": {"mode": "constant", "target_qps": 2.0}},
        {"model": "gpt2", "decoder": {"do_sample": False, "temperature": 0}},
        {"model": "gpt2", "backend": "vllm", "vllm": {"max_num_seqs": 8}},
    ],
)
def test_neighbouring_valid_combinations_pass(data: dict[str, Any]) -> None:
    ExperimentConfig.model_validate(data)


# --- decoder presets -------------------------------------------------------------------------


def test_default_decoder_is_deterministic() -> None:
    decoder = ExperimentConfig.model_validate({"model": "gpt2"}).decoder
    for key, value in DECODER_PRESETS["deterministic"].items():
        assert getattr(decoder, key) == value
    assert decoder.do_sample is False


@pytest.mark.parametrize("preset", sorted(DECODER_PRESETS))
def test_preset_fills_every_unset_value(preset: str) -> None:
    decoder = ExperimentConfig.model_validate({"model": "gpt2", "decoder": {"preset": preset}})
    assert decoder.decoder.preset == preset
    for key, value in DECODER_PRESETS[preset].items():
        assert getattr(decoder.decoder, key) == value


def test_preset_keeps_the_values_you_set() -> None:
    decoder = ExperimentConfig.model_validate(
        {"model": "gpt2", "decoder": {"preset": "standard", "temperature": 0.5, "top_k": 7}}
    ).decoder
    assert decoder.temperature == 0.5
    assert decoder.top_k == 7
    assert decoder.top_p == DECODER_PRESETS["standard"]["top_p"]
    assert decoder.repetition_penalty == DECODER_PRESETS["standard"]["repetition_penalty"]
    assert decoder.do_sample is True


@pytest.mark.parametrize(("temperature", "sample"), [(0.0, False), (0.5, True), (1.5, True)])
def test_do_sample_is_inferred_from_temperature(temperature: float, sample: bool) -> None:
    decoder = ExperimentConfig.model_validate(
        {"model": "gpt2", "decoder": {"temperature": temperature}}
    ).decoder
    assert decoder.do_sample is sample
    assert decoder.temperature == temperature


def test_explicit_temperature_overrides_a_greedy_preset_and_samples() -> None:
    decoder = ExperimentConfig.model_validate(
        {"model": "gpt2", "decoder": {"preset": "deterministic", "temperature": 0.7}}
    ).decoder
    assert decoder.temperature == 0.7
    assert decoder.do_sample is True


def test_unknown_preset_lists_the_valid_ones() -> None:
    error = _errors({"model": "gpt2", "decoder": {"preset": "greedy"}})[0]
    assert error["loc"] == ("decoder", "preset")
    for preset in DECODER_PRESETS:
        assert preset in error["ctx"]["expected"]


# --- backend sections -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "section_cls"),
    [("pytorch", PyTorchConfig), ("vllm", VLLMConfig), ("tensorrt", TensorRTConfig)],
)
def test_selected_backend_section_is_filled_with_defaults(
    backend: str, section_cls: type[BaseModel]
) -> None:
    config = ExperimentConfig.model_validate(
        {"model": "gpt2", "backend": backend, "fp_precision": "float16"}
    )
    assert getattr(config, backend) == section_cls()
    assert config.backend_section == section_cls()
    for other in {"pytorch", "vllm", "tensorrt"} - {backend}:
        assert getattr(config, other) is None


def test_partial_backend_section_keeps_values_and_fills_the_rest() -> None:
    config = ExperimentConfig.model_validate(
        {"model": "gpt2", "backend": "vllm", "vllm": {"max_num_seqs": 8}}
    )
    assert config.vllm is not None
    assert config.vllm.max_num_seqs == 8
    assert config.vllm.gpu_memory_utilization == VLLMConfig().gpu_memory_utilization


@pytest.mark.parametrize(
    ("section", "data", "loc"),
    [
        ("pytorch", {"batch_size": 0}, ("pytorch", "batch_size")),
        ("pytorch", {"attn_implementation": "flash"}, ("pytorch", "attn_implementation")),
        ("vllm", {"gpu_memory_utilization": 1.5}, ("vllm", "gpu_memory_utilization")),
        ("vllm", {"block_size": 12}, ("vllm", "block_size")),
        ("tensorrt", {"builder_opt_level": 9}, ("tensorrt", "builder_opt_level")),
    ],
)
def test_single_value_errors_point_at_the_field(
    section: str, data: dict[str, Any], loc: tuple[str, ...]
) -> None:
    errors = _errors(
        {"model": "gpt2", "backend": section, "fp_precision": "float16", section: data}
    )
    assert [e["loc"] for e in errors] == [loc]
    assert errors[0]["type"] != "invalid_combination"
