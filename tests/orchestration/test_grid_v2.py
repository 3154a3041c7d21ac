"""Grid v2: linked axes, exclude, groups: what they expand to, count, name and report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.config.loader import load_campaign_config
from llenergymeasure.orchestration.grid import (
    count_campaign_grid,
    expand_campaign_grid,
    iter_campaign_grid,
    validate_campaign_grid,
)

from .plans import plan_lists

REPO = Path(__file__).resolve().parents[2]
BASE = {"model": "gpt2", "warmup": {"max_prompts": 200}}
LINKED_PRECISION = [
    {"fp_precision": "float32"},
    {"fp_precision": "float16"},
    {"fp_precision": "float16", "pytorch.load_in_8bit": True},
]


def _grid(**kwargs: Any) -> CampaignGridConfig:
    return CampaignGridConfig(**kwargs)


def _plan(**kwargs: Any) -> Any:
    return validate_campaign_grid(iter_campaign_grid(_grid(**kwargs), BASE))


# --- linked axes ---------------------------------------------------------------------------


def test_a_linked_axis_sets_its_keys_together_in_any_section() -> None:
    configs = expand_campaign_grid(_grid(linked=[LINKED_PRECISION]), BASE)
    assert [(c["fp_precision"], c.get("pytorch")) for c in configs] == [
        ("float32", None),
        ("float16", None),
        ("float16", {"load_in_8bit": True}),
    ]
    assert [c["name"] for c in configs] == [
        "pytorch_gpt2_fp32",
        "pytorch_gpt2_fp16",
        "pytorch_gpt2_fp16_8bit",
    ]


def test_order_models_shared_linked_backend_axes_last_fastest() -> None:
    grid = _grid(
        models=["a", "b"],
        shared={"max_output_tokens": [8, 16]},
        linked=[[{"fp_precision": "float32"}, {"fp_precision": "float16"}]],
        backend_overrides={"pytorch": {"batch_size": [1, 2]}},
    )
    keys = [
        (c["model"]["name"], c["max_output_tokens"], c["fp_precision"], c["pytorch"]["batch_size"])
        for c in expand_campaign_grid(grid, BASE)
    ]
    assert keys[:3] == [("a", 8, "float32", 1), ("a", 8, "float32", 2), ("a", 8, "float16", 1)]
    assert len(keys) == 16 == count_campaign_grid(grid)
    assert keys == sorted(keys, key=lambda k: (k[0], k[1], k[2] != "float32", k[3]))


def test_a_backend_section_key_applies_only_to_its_backend() -> None:
    result = _plan(backends=["pytorch", "vllm"], linked=[LINKED_PRECISION])
    vllm = [c for c in result.valid_configs if c["backend"] == "vllm"]
    assert all("pytorch" not in c for c in vllm)
    # vllm's third point is its second one again: kept once, counted as a duplicate
    assert len(vllm) == 2
    assert [d.backend for d in result.duplicates] == ["vllm"]
    assert result.total_generated == 6


def test_two_linked_axes_cross() -> None:
    grid = _grid(
        linked=[
            [{"fp_precision": "float16"}, {"fp_precision": "float32"}],
            [
                {"max_output_tokens": 8, "max_input_tokens": 64},
                {"max_output_tokens": 64, "max_input_tokens": 512},
            ],
        ]
    )
    configs = expand_campaign_grid(grid, BASE)
    assert len(configs) == 4
    assert {(c["max_output_tokens"], c["max_input_tokens"]) for c in configs} == {
        (8, 64),
        (64, 512),
    }


# --- exclude -------------------------------------------------------------------------------


def test_exclude_drops_matching_points_before_validation_and_counts_them_per_rule() -> None:
    result = _plan(
        backends=["pytorch", "vllm"],
        linked=[LINKED_PRECISION],
        backend_overrides={"pytorch": {"batch_size": [1, 8]}},
        exclude=[
            {"backend": "vllm", "fp_precision": "float32"},
            {"pytorch.batch_size": 8, "fp_precision": ["float16", "bfloat16"]},
        ],
    )
    assert result.excluded == {
        "grid.exclude[0] (backend=vllm, fp_precision=float32)": 1,
        "grid.exclude[1] (pytorch.batch_size=8, fp_precision=float16|bfloat16)": 2,
    }
    assert result.total_generated == 9
    assert (
        len(result.valid_configs)
        + len(result.filtered_configs)
        + len(result.duplicates)
        + result.excluded_count
        == result.total_generated
    )
    names = {c["name"] for c in result.valid_configs}
    assert "pytorch_gpt2_fp32_bs8" in names
    assert "pytorch_gpt2_fp16_bs8" not in names
    assert result.per_backend["vllm"]["excluded"] == 1
    assert "3 excluded (" in result.summary


def test_count_is_exact_after_exclusion_without_expanding() -> None:
    grid = _grid(
        shared={"max_output_tokens": list(range(1, 101)), "random_seed": list(range(100))},
        backend_overrides={"pytorch": {"batch_size": list(range(1, 101))}},
        exclude=[
            {"max_output_tokens": [1, 2, 3], "pytorch.batch_size": [5, 6]},
            {"random_seed": 0},
            {"max_output_tokens": 2, "random_seed": [0, 1]},  # partly inside the others
        ],
    )
    # 1e6 points; rule 0: 3*2*100 = 600; rule 1: 100*100 = 10,000; overlap 0&1: 6;
    # rule 2 adds (2, seed 1, batch not 5/6): 98
    assert count_campaign_grid(grid) == 1_000_000 - (600 + 10_000 - 6 + 98)


def test_a_shadowed_exclude_entry_is_a_note() -> None:
    result = _plan(
        shared={"max_output_tokens": [8, 16]},
        exclude=[{"max_output_tokens": [8, 16]}, {"max_output_tokens": 8}],
    )
    assert result.valid_configs == []
    assert any("grid.exclude[1]" in note and "already drop" in note for note in result.notes)


# --- groups --------------------------------------------------------------------------------


def test_groups_are_a_union_in_order_with_the_shared_base_point_once() -> None:
    grid = _grid(
        groups=[
            {"name": "batching", "backend_overrides": {"pytorch": {"batch_size": [1, 8, 64]}}},
            {
                "name": "precision",
                "linked": [[{"fp_precision": "float32"}, {"fp_precision": "bfloat16"}]],
            },
        ]
    )
    base = {**BASE, "fp_precision": "bfloat16", "pytorch": {"batch_size": 8}}
    result = validate_campaign_grid(iter_campaign_grid(grid, base))
    assert [c["name"] for c in result.valid_configs] == [
        "pytorch_gpt2_bs1",
        "pytorch_gpt2_bs8",
        "pytorch_gpt2_bs64",
        "pytorch_gpt2_fp32",
    ]
    assert [d.config_desc for d in result.duplicates] == ["pytorch_gpt2_bf16"]
    assert "same effective config as pytorch_gpt2_bs8" in result.duplicates[0].reason
    assert result.total_generated == 5 == count_campaign_grid(grid)


def test_a_group_axis_replaces_the_grid_axis_on_the_same_key() -> None:
    grid = _grid(
        shared={"max_output_tokens": [8, 16]},
        linked=[LINKED_PRECISION],
        groups=[
            {"name": "all"},
            {"name": "long", "shared": {"max_output_tokens": [512]}},
            {"name": "bf16", "linked": [[{"fp_precision": "bfloat16"}]]},
        ],
    )
    configs = expand_campaign_grid(grid, BASE)
    assert count_campaign_grid(grid) == 6 + 3 + 2 == len(configs)
    assert {c["max_output_tokens"] for c in configs[6:9]} == {512}
    assert {c["fp_precision"] for c in configs[9:]} == {"bfloat16"}


def test_group_name_added_only_where_needed_to_tell_points_apart() -> None:
    grid = _grid(
        models=["org/m", "other/m"],  # both named "m"
        groups=[{"name": "a"}, {"name": "b", "shared": {"streaming": True}}],
    )
    result = validate_campaign_grid(iter_campaign_grid(grid, BASE))
    names = [c["name"] for c in result.valid_configs]
    assert len(set(names)) == len(names) == 4
    assert names[0] == "pytorch_m"
    assert any(n.endswith("_a") or n.endswith("_b") or n.endswith("-2") for n in names)


def test_a_group_that_adds_nothing_is_a_note() -> None:
    grid = _grid(
        shared={"max_output_tokens": [8, 16]},
        groups=[{"name": "both"}, {"name": "short", "shared": {"max_output_tokens": [8]}}],
    )
    result = validate_campaign_grid(iter_campaign_grid(grid, BASE))
    assert len(result.valid_configs) == 2
    assert any("group 'short' adds no experiment" in note for note in result.notes)


def test_a_group_exclude_applies_to_that_group_only() -> None:
    grid = _grid(
        shared={"max_output_tokens": [8, 16]},
        groups=[
            {"name": "a", "exclude": [{"max_output_tokens": 8}]},
            {"name": "b", "shared": {"streaming": True}},
        ],
    )
    configs = expand_campaign_grid(grid, BASE)
    assert [(c["max_output_tokens"], c.get("streaming")) for c in configs] == [
        (16, None),
        (8, True),
        (16, True),
    ]


# --- the predecessor's studies -------------------------------------------------------------


def test_thesis_grid_expands_to_exactly_the_96_points_meant() -> None:
    path = REPO / "examples" / "campaign-thesis.yaml"
    campaign = load_campaign_config(path)
    result = plan_lists(campaign, path)
    assert result.total_generated == 96
    assert len(result.valid_configs) == 96
    assert not result.filtered_configs and not result.duplicates and not result.excluded
    pairs = {
        (c["fp_precision"], c["pytorch"].get("load_in_8bit"), c["pytorch"].get("load_in_4bit"))
        for c in result.valid_configs
    }
    assert pairs == {
        ("float32", None, None),
        ("float16", None, None),
        ("float16", True, None),
        ("float16", None, True),
    }
    # the same 96 from the 144-point superset, trimmed with exclude
    assert campaign.grid is not None
    superset = campaign.grid.model_dump(exclude_defaults=True)
    superset.pop("linked")
    superset["shared"]["fp_precision"] = ["float32", "float16"]
    superset["linked"] = [
        [{}, {"pytorch.load_in_8bit": True}, {"pytorch.load_in_4bit": True}],
    ]
    assert count_campaign_grid(CampaignGridConfig(**superset)) == 144
    superset["exclude"] = [
        {"fp_precision": "float32", "pytorch.load_in_8bit": True},
        {"fp_precision": "float32", "pytorch.load_in_4bit": True},
    ]
    trimmed = CampaignGridConfig(**superset)
    base = campaign.base_config
    assert isinstance(base, dict)
    again = validate_campaign_grid(iter_campaign_grid(trimmed, base))
    assert again.total_generated == 144
    assert again.excluded_count == 48
    assert sorted(again.config_hashes) == sorted(result.config_hashes)


def test_controlled_suite_is_a_union_of_one_factor_groups_around_the_base() -> None:
    path = REPO / "examples" / "campaign-controlled.yaml"
    campaign = load_campaign_config(path)
    result = plan_lists(campaign, path)
    per_model = 7 + 5 + 4 + 5 + 3
    assert result.total_generated == 3 * per_model
    assert len(result.valid_configs) == 3 * (per_model - 4)  # the base point once per model
    assert len(result.duplicates) == 3 * 4
    assert not result.filtered_configs
    assert all("same effective config" in d.reason for d in result.duplicates)
    names = [c["name"] for c in result.valid_configs]
    assert len(set(names)) == len(names)
    assert "pytorch_gpt2_bs8" in names  # the base point, named by the first group
    # every experiment differs from the base in at most one factor
    base = {"fp_precision": "float16", "max_output_tokens": 128, "preset": "deterministic"}
    for config in result.valid_configs:
        differs = [
            config.get("fp_precision", "float16") != base["fp_precision"]
            or bool(config["pytorch"].get("load_in_8bit") or config["pytorch"].get("load_in_4bit")),
            config.get("max_output_tokens") != base["max_output_tokens"],
            config.get("decoder", {}).get("preset") != base["preset"],
            config["pytorch"]["batch_size"] != 8,
            config["pytorch"]["attn_implementation"] != "sdpa",
        ]
        assert sum(differs) <= 1, config["name"]


def test_a_linked_axis_can_pair_models_with_settings() -> None:
    grid = _grid(
        linked=[
            [
                {"model": "org/small", "pytorch.batch_size": 32},
                {"model.name": "org/large", "pytorch.batch_size": 4},
            ]
        ],
        exclude=[{"model": "org/large", "pytorch.batch_size": 4}],
    )
    configs = expand_campaign_grid(grid, {})
    assert [(c["model"], c["pytorch"], c["name"]) for c in configs] == [
        ({"name": "org/small"}, {"batch_size": 32}, "pytorch_small_bs32")
    ]
