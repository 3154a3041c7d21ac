"""Grid expansion semantics: axes, order, merging, overrides, isolation, names, counting."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.orchestration.grid import (
    count_campaign_grid,
    expand_campaign_grid,
    iter_campaign_grid,
    validate_campaign_grid,
)

BASE = {"model": {"name": "gpt2"}, "max_output_tokens": 32}


def _grid(**kw: Any) -> CampaignGridConfig:
    return CampaignGridConfig(**kw)


def _pluck(config: dict[str, Any], path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _rows(configs: list[dict[str, Any]], *paths: str) -> list[tuple[Any, ...]]:
    return [tuple(_pluck(c, p) for p in paths) for c in configs]


def _containers(value: Any) -> list[Any]:
    found = []
    if isinstance(value, dict):
        found.append(value)
        for sub in value.values():
            found += _containers(sub)
    elif isinstance(value, list):
        found.append(value)
        for sub in value:
            found += _containers(sub)
    return found


# --- order -----------------------------------------------------------------------------------


def test_exact_order_of_a_2x2x2_grid() -> None:
    grid = _grid(
        backends=["pytorch", "vllm"],
        shared={"fp_precision": ["float16", "bfloat16"]},
        backend_overrides={"pytorch": {"batch_size": [1, 4]}, "vllm": {"max_num_seqs": [8, 16]}},
    )
    configs = expand_campaign_grid(grid, BASE)
    assert _rows(configs, "backend", "fp_precision", "pytorch.batch_size", "vllm.max_num_seqs") == [
        ("pytorch", "float16", 1, None),
        ("pytorch", "float16", 4, None),
        ("pytorch", "bfloat16", 1, None),
        ("pytorch", "bfloat16", 4, None),
        ("vllm", "float16", None, 8),
        ("vllm", "float16", None, 16),
        ("vllm", "bfloat16", None, 8),
        ("vllm", "bfloat16", None, 16),
    ]
    assert [c["name"] for c in configs] == [
        "pytorch_gpt2_fp16_bs1",
        "pytorch_gpt2_fp16_bs4",
        "pytorch_gpt2_bf16_bs1",
        "pytorch_gpt2_bf16_bs4",
        "vllm_gpt2_fp16_seqs8",
        "vllm_gpt2_fp16_seqs16",
        "vllm_gpt2_bf16_seqs8",
        "vllm_gpt2_bf16_seqs16",
    ]


def test_backends_then_models_then_shared_axes_in_written_order() -> None:
    grid = _grid(
        backends=["vllm", "pytorch"],
        models=["m1", "m2"],
        shared={"max_output_tokens": [16, 32], "fp_precision": ["float16", "bfloat16"]},
    )
    rows = _rows(expand_campaign_grid(grid), "backend", "model.name", "max_output_tokens")
    precisions = [c["fp_precision"] for c in expand_campaign_grid(grid)]
    assert rows == [
        (backend, model, tokens)
        for backend in ("vllm", "pytorch")
        for model in ("m1", "m2")
        for tokens in (16, 32)
        for _ in range(2)
    ]
    assert precisions == ["float16", "bfloat16"] * 8


def test_reversing_the_written_order_of_shared_axes_reverses_their_nesting() -> None:
    grid = _grid(shared={"fp_precision": ["float16", "bfloat16"], "max_output_tokens": [16, 32]})
    assert _rows(expand_campaign_grid(grid, BASE), "fp_precision", "max_output_tokens") == [
        ("float16", 16),
        ("float16", 32),
        ("bfloat16", 16),
        ("bfloat16", 32),
    ]


def test_backend_axes_in_written_order_after_shared_axes() -> None:
    grid = _grid(
        shared={"fp_precision": ["float16", "bfloat16"]},
        backend_overrides={"pytorch": {"use_cache": [True, False], "batch_size": [1, 2]}},
    )
    rows = _rows(
        expand_campaign_grid(grid, BASE), "fp_precision", "pytorch.use_cache", "pytorch.batch_size"
    )
    assert rows == [
        (p, cache, bs) for p in ("float16", "bfloat16") for cache in (True, False) for bs in (1, 2)
    ]


def test_expansion_is_deterministic() -> None:
    grid = _grid(
        backends=["pytorch", "vllm"],
        models=["a", "b"],
        shared={"decoder.preset": ["standard", "creative"]},
        backend_overrides={"vllm": {"max_num_seqs": [1, 2, 3]}},
    )
    assert expand_campaign_grid(grid, BASE) == expand_campaign_grid(grid, BASE)
    reloaded = CampaignGridConfig.model_validate(grid.model_dump())
    assert expand_campaign_grid(reloaded, BASE) == expand_campaign_grid(grid, BASE)


# --- axes and fixed values -----------------------------------------------------------------


def test_scalar_shared_value_is_fixed_and_not_in_the_name() -> None:
    grid = _grid(shared={"max_output_tokens": 16, "fp_precision": ["float16", "bfloat16"]})
    configs = expand_campaign_grid(grid, BASE)
    assert len(configs) == 2
    assert [c["max_output_tokens"] for c in configs] == [16, 16]
    assert all("out" not in c["name"] for c in configs)


def test_single_item_list_is_a_fixed_value() -> None:
    configs = expand_campaign_grid(_grid(shared={"max_output_tokens": [16]}), BASE)
    assert len(configs) == 1
    assert configs[0]["max_output_tokens"] == 16


def test_dotted_shared_key_lands_nested_and_keeps_base_siblings() -> None:
    base = {**BASE, "decoder": {"top_k": 5}}
    grid = _grid(shared={"decoder.preset": ["standard", "creative"], "dataset.num_prompts": 4})
    configs = expand_campaign_grid(grid, base)
    assert [c["decoder"] for c in configs] == [
        {"top_k": 5, "preset": "standard"},
        {"top_k": 5, "preset": "creative"},
    ]
    assert all(c["dataset"] == {"num_prompts": 4} for c in configs)
    assert "decoder.preset" not in configs[0]


def test_dict_valued_axis_is_deep_merged_as_linked_parameters() -> None:
    base = {**BASE, "decoder": {"top_k": 7}}
    grid = _grid(
        shared={
            "decoder": [{"temperature": 0, "do_sample": False}, {"temperature": 0.7, "top_p": 0.9}]
        }
    )
    configs = expand_campaign_grid(grid, base)
    assert [c["decoder"] for c in configs] == [
        {"top_k": 7, "temperature": 0, "do_sample": False},
        {"top_k": 7, "temperature": 0.7, "top_p": 0.9},
    ]
    result = validate_campaign_grid(configs)
    assert len(result.valid_configs) == 2
    assert count_campaign_grid(grid) == 2


def test_dict_axis_combines_with_other_axes() -> None:
    grid = _grid(
        shared={
            "fp_precision": ["float16", "bfloat16"],
            "decoder": [{"temperature": 0}, {"temperature": 0.7, "top_p": 0.9}],
        }
    )
    configs = expand_campaign_grid(grid, BASE)
    assert _rows(configs, "fp_precision", "decoder.temperature", "decoder.top_p") == [
        ("float16", 0, None),
        ("float16", 0.7, 0.9),
        ("bfloat16", 0, None),
        ("bfloat16", 0.7, 0.9),
    ]


# --- backend overrides ---------------------------------------------------------------------


def test_override_replaces_the_shared_axis_for_its_backend_only_in_place() -> None:
    grid = _grid(
        backends=["pytorch", "tensorrt"],
        shared={"fp_precision": ["float32", "float16"], "max_output_tokens": [16, 32]},
        backend_overrides={
            "tensorrt": {"max_batch_size": [8], "fp_precision": ["float16", "bfloat16"]}
        },
    )
    rows = _rows(expand_campaign_grid(grid, BASE), "backend", "fp_precision", "max_output_tokens")
    assert rows == [
        ("pytorch", "float32", 16),
        ("pytorch", "float32", 32),
        ("pytorch", "float16", 16),
        ("pytorch", "float16", 32),
        ("tensorrt", "float16", 16),
        ("tensorrt", "float16", 32),
        ("tensorrt", "bfloat16", 16),
        ("tensorrt", "bfloat16", 32),
    ]
    # nothing filtered: tensorrt never sees float32
    assert validate_campaign_grid(expand_campaign_grid(grid, BASE)).filtered_configs == []


def test_override_of_a_field_with_no_shared_axis_is_a_new_backend_axis() -> None:
    grid = _grid(
        backends=["pytorch", "vllm"],
        backend_overrides={"vllm": {"max_output_tokens": [8, 16]}},
    )
    rows = _rows(expand_campaign_grid(grid, BASE), "backend", "max_output_tokens")
    assert rows == [("pytorch", 32), ("vllm", 8), ("vllm", 16)]


def test_section_keys_go_under_the_backend() -> None:
    grid = _grid(
        backends=["pytorch", "vllm", "tensorrt"],
        shared={"fp_precision": "float16"},
        backend_overrides={
            "pytorch": {"batch_size": [2], "attn_implementation": "eager"},
            "vllm": {"max_num_seqs": [8], "enable_prefix_caching": True},
            "tensorrt": {"tp_size": 1},
        },
    )
    configs = expand_campaign_grid(grid, BASE)
    assert configs[0]["pytorch"] == {"batch_size": 2, "attn_implementation": "eager"}
    assert configs[1]["vllm"] == {"max_num_seqs": 8, "enable_prefix_caching": True}
    assert configs[2]["tensorrt"] == {"tp_size": 1}
    for config in configs:
        assert "batch_size" not in config and "max_num_seqs" not in config
        others = {"pytorch", "vllm", "tensorrt"} - {config["backend"]}
        assert not others & set(config)


def test_dotted_override_keys() -> None:
    grid = _grid(
        backend_overrides={
            "pytorch": {"decoder.temperature": [0.2, 0.4], "pytorch.batch_size": [3]}
        },
    )
    configs = expand_campaign_grid(grid, BASE)
    assert _rows(configs, "decoder.temperature", "pytorch.batch_size") == [(0.2, 3), (0.4, 3)]
    assert len(validate_campaign_grid(configs).valid_configs) == 2


def test_override_section_values_merge_with_the_base_section() -> None:
    base = {**BASE, "pytorch": {"batch_size": 2, "use_cache": False}}
    grid = _grid(backend_overrides={"pytorch": {"batch_size": [4, 8]}})
    assert [c["pytorch"] for c in expand_campaign_grid(grid, base)] == [
        {"batch_size": 4, "use_cache": False},
        {"batch_size": 8, "use_cache": False},
    ]


def test_backend_section_in_base_applies_to_that_backend_only() -> None:
    base = {
        **BASE,
        "pytorch": {"batch_size": 2},
        "vllm": {"max_num_seqs": 8},
        "tensorrt": {"tp_size": 1},
    }
    grid = _grid(backends=["pytorch", "vllm", "tensorrt"], shared={"fp_precision": "float16"})
    configs = expand_campaign_grid(grid, base)
    assert [c["backend"] for c in configs] == ["pytorch", "vllm", "tensorrt"]
    for config in configs:
        sections = {"pytorch", "vllm", "tensorrt"} & set(config)
        assert sections == {config["backend"]}
        assert config[config["backend"]] == base[config["backend"]]
    result = validate_campaign_grid(configs)
    assert result.filtered_configs == []
    assert len(result.valid_configs) == 3


# --- models ------------------------------------------------------------------------------------


def test_models_axis_sets_model_name_and_keeps_other_model_fields() -> None:
    base = {"model": {"name": "ignored", "revision": "main"}}
    configs = expand_campaign_grid(_grid(models=["gpt2", "org/opt-125m"]), base)
    assert [c["model"] for c in configs] == [
        {"name": "gpt2", "revision": "main"},
        {"name": "org/opt-125m", "revision": "main"},
    ]


def test_base_model_shorthand_is_honoured() -> None:
    configs = expand_campaign_grid(_grid(), {"model": "gpt2"})
    assert configs[0]["model"] == {"name": "gpt2"}
    assert "gpt2" in configs[0]["name"]
    with_models = expand_campaign_grid(_grid(models=["a", "b"]), {"model": "gpt2"})
    assert [c["model"] for c in with_models] == [{"name": "a"}, {"name": "b"}]
    assert len(validate_campaign_grid(with_models).valid_configs) == 2


def test_without_base_config() -> None:
    configs = expand_campaign_grid(_grid(models=["gpt2"]))
    assert configs == [
        {"backend": "pytorch", "model": {"name": "gpt2"}, "name": configs[0]["name"]}
    ]
    # no model at all: generated, then filtered by validation (model is required)
    result = validate_campaign_grid(expand_campaign_grid(_grid()))
    assert result.valid_configs == []
    assert len(result.filtered_configs) == 1
    assert "model" in result.filtered_configs[0].reason


# --- isolation -----------------------------------------------------------------------------


def _rich_grid() -> tuple[CampaignGridConfig, dict[str, Any]]:
    grid = _grid(
        backends=["pytorch", "vllm"],
        models=["a", "b"],
        shared={
            "decoder": [{"temperature": 0, "do_sample": False}, {"temperature": 0.5}],
            "dataset.num_prompts": [4, 8],
        },
        backend_overrides={
            "pytorch": {"batch_size": [1, 2]},
            "vllm": {"max_num_seqs": [8], "fp_precision": ["float16"]},
        },
    )
    base = {
        "model": {"name": "x", "revision": "r"},
        "decoder": {"top_k": 3},
        "dataset": {"name": "builtin:prompts"},
        "pytorch": {"use_cache": True},
        "vllm": {"enforce_eager": True},
        "max_output_tokens": 16,
        "name": "sweep",
    }
    return grid, base


def test_base_config_and_grid_are_never_mutated() -> None:
    grid, base = _rich_grid()
    base_before, grid_before = copy.deepcopy(base), grid.model_dump()
    configs = expand_campaign_grid(grid, base)
    validate_campaign_grid(configs)
    for config in configs:  # mutating outputs must not reach the inputs either
        config["decoder"]["top_k"] = 999
        config["model"]["name"] = "changed"
        config.setdefault("dataset", {})["num_prompts"] = -1
        config.get("pytorch", config.get("vllm", {}))["poison"] = True
    assert base == base_before
    assert grid.model_dump() == grid_before
    assert expand_campaign_grid(grid, base) == expand_campaign_grid(grid, base_before)


def test_generated_configs_share_no_mutable_state() -> None:
    grid, base = _rich_grid()
    configs = expand_campaign_grid(grid, base)
    assert len(configs) == 2 * 2 * 2 * 2 + 2 * 2 * 2 * 1
    input_ids = {id(c) for c in _containers(base) + _containers(grid.model_dump())}
    input_ids |= {id(c) for c in _containers(grid.shared) + _containers(grid.backend_overrides)}
    seen: set[int] = set()
    for config in configs:
        ids = {id(c) for c in _containers(config)}
        assert not ids & seen, "two generated configs share a dict or list"
        assert not ids & input_ids, "a generated config shares a dict or list with the inputs"
        seen |= ids


def test_mutating_one_config_leaves_the_others_unchanged() -> None:
    grid, base = _rich_grid()
    configs = expand_campaign_grid(grid, base)
    snapshot = copy.deepcopy(configs)
    configs[0]["decoder"]["temperature"] = 1.9
    configs[0]["model"]["revision"] = "other"
    configs[0]["pytorch"]["batch_size"] = 99
    assert configs[1:] == snapshot[1:]


# --- names -------------------------------------------------------------------------------------


def test_names_are_readable() -> None:
    grid = _grid(
        backends=["pytorch", "vllm"],
        models=["builtin:tiny-gpt2", "facebook/opt-125m"],
        shared={"fp_precision": ["float16", "bfloat16"]},
        backend_overrides={"pytorch": {"batch_size": [1, 4]}},
    )
    names = [c["name"] for c in expand_campaign_grid(grid)]
    assert "pytorch_tiny-gpt2_bf16_bs4" in names
    assert "pytorch_opt-125m_fp16_bs1" in names
    assert "vllm_opt-125m_bf16" in names
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_.+-]+", name), name
    assert len(set(names)) == len(names)


def test_name_parts_only_for_parameters_that_vary() -> None:
    grid = _grid(
        shared={"fp_precision": "float16", "max_output_tokens": [16, 32]},
        backend_overrides={"pytorch": {"batch_size": [4], "torch_compile": [True, False]}},
    )
    names = [c["name"] for c in expand_campaign_grid(grid, BASE)]
    assert names == [
        "pytorch_gpt2_out16_compile",
        "pytorch_gpt2_out16_nocompile",
        "pytorch_gpt2_out32_compile",
        "pytorch_gpt2_out32_nocompile",
    ]


def test_a_shared_value_overridden_per_backend_is_named() -> None:
    grid = _grid(
        backends=["pytorch", "tensorrt"],
        shared={"fp_precision": "float32"},
        backend_overrides={"tensorrt": {"fp_precision": "bfloat16"}},
    )
    names = [c["name"] for c in expand_campaign_grid(grid, BASE)]
    assert names == ["pytorch_gpt2_fp32", "tensorrt_gpt2_bf16"]


def test_base_name_is_a_prefix() -> None:
    grid = _grid(shared={"fp_precision": ["float16", "bfloat16"]})
    names = [c["name"] for c in expand_campaign_grid(grid, {**BASE, "name": "my sweep"})]
    assert names == ["my-sweep_pytorch_gpt2_fp16", "my-sweep_pytorch_gpt2_bf16"]


def test_distinct_configs_with_colliding_names_get_unique_names() -> None:
    # "a b" and "a/b" both render as "a-b" in a name; the configs differ, so both stay
    grid = _grid(shared={"dataset.name": ["x/a b.jsonl", "x/a/b.jsonl"]})
    configs = expand_campaign_grid(grid, BASE)
    result = validate_campaign_grid(configs)
    names = [c["name"] for c in result.valid_configs]
    assert len(names) == 2
    assert len(set(names)) == 2
    assert result.duplicates == []


# --- counting and laziness ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"backends": ["pytorch", "vllm", "tensorrt"]},
        {"models": ["a", "b", "c"], "shared": {"fp_precision": ["float16", "bfloat16"]}},
        {
            "backends": ["pytorch", "vllm"],
            "shared": {"fp_precision": ["float16", "bfloat16"], "max_output_tokens": 8},
            "backend_overrides": {
                "pytorch": {"batch_size": [1, 2, 3]},
                "vllm": {"fp_precision": ["float16"], "max_num_seqs": [1, 2]},
            },
        },
    ],
)
def test_count_matches_expansion(kw: dict[str, Any]) -> None:
    grid = _grid(**kw)
    assert count_campaign_grid(grid) == len(expand_campaign_grid(grid, BASE))


def test_count_of_a_huge_grid_is_exact_and_instant() -> None:
    grid = _grid(
        backends=["pytorch", "vllm"],
        shared={
            "max_output_tokens": list(range(1, 1001)),
            "max_input_tokens": list(range(1, 1001)),
            "random_seed": list(range(100)),
        },
        backend_overrides={"pytorch": {"batch_size": [1, 2, 4]}},
    )
    assert count_campaign_grid(grid) == 1000 * 1000 * 100 * 3 + 1000 * 1000 * 100


def test_iter_is_lazy_and_equals_expand() -> None:
    grid = _grid(
        backends=["pytorch", "vllm"],
        shared={"max_output_tokens": list(range(1, 1001)), "random_seed": list(range(1000))},
    )
    iterator = iter_campaign_grid(grid, BASE)
    first = [next(iterator) for _ in range(3)]
    assert [c["max_output_tokens"] for c in first] == [1, 1, 1]
    assert [c["random_seed"] for c in first] == [0, 1, 2]
    small = _grid(backends=["pytorch", "vllm"], shared={"fp_precision": ["float16", "bfloat16"]})
    assert list(iter_campaign_grid(small, BASE)) == expand_campaign_grid(small, BASE)
