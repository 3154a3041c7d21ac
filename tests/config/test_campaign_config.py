"""CampaignGridConfig / CampaignConfig: what fails at load, with which message."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from llenergymeasure.config.campaign_config import CampaignConfig, CampaignGridConfig


def _grid_error(**grid: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as info:
        CampaignGridConfig(**grid)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return errors[0]


def _campaign_error(**campaign: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as info:
        CampaignConfig(**campaign)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return errors[0]


def _where(error: dict[str, Any]) -> tuple[Any, ...]:
    """Full key path of a grid error: pydantic loc plus the subpath the loader uses for lines."""
    return (*error["loc"], *(error.get("ctx") or {}).get("subpath", ()))


# --- valid grids --------------------------------------------------------------------------


def test_defaults() -> None:
    grid = CampaignGridConfig()
    assert grid.backends == ["pytorch"]
    assert grid.models is None
    assert grid.shared == {}
    assert grid.backend_overrides == {}


def test_a_full_valid_grid_loads_unchanged() -> None:
    raw = {
        "backends": ["pytorch", "vllm", "tensorrt"],
        "models": ["gpt2", "facebook/opt-125m"],
        "shared": {
            "fp_precision": ["float16", "bfloat16"],
            "max_output_tokens": 32,
            "decoder.preset": ["standard", "creative"],
            "decoder": [{"temperature": 0, "do_sample": False}, {"temperature": 0.7}],
        },
        "backend_overrides": {
            "pytorch": {"batch_size": [1, 4], "attn_implementation": "sdpa"},
            "vllm": {"max_num_seqs": [8, 16], "fp_precision": ["float16"]},
            "tensorrt": {"max_batch_size": [8]},
        },
    }
    grid = CampaignGridConfig(**raw)
    assert grid.model_dump(exclude_defaults=True) == raw


# --- load errors: shared axes ------------------------------------------------------------


def test_empty_list_axis_is_an_error() -> None:
    error = _grid_error(shared={"fp_precision": []})
    assert _where(error) == ("shared", "fp_precision")
    assert "empty list" in error["msg"]
    assert "fix:" in error["msg"]


def test_empty_list_backend_axis_is_an_error() -> None:
    error = _grid_error(backend_overrides={"pytorch": {"batch_size": []}})
    assert _where(error) == ("backend_overrides", "pytorch", "batch_size")
    assert "empty list" in error["msg"]


def test_empty_backends_and_models_are_errors() -> None:
    assert _grid_error(backends=[])["loc"] == ("backends",)
    assert _grid_error(models=[])["loc"] == ("models",)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("fp_precison", "fp_precision"),
        ("max_output_tokns", "max_output_tokens"),
        ("decoder.presett", "preset"),
        ("warmpu.enabled", "warmup"),
    ],
)
def test_unknown_shared_key_suggests_the_nearest(key: str, suggestion: str) -> None:
    error = _grid_error(shared={key: [1]})
    assert _where(error) == ("shared", key)
    assert "unknown key" in error["msg"]
    assert f"did you mean '{suggestion}'" in error["msg"]


def test_unknown_key_inside_a_dict_axis_is_an_error() -> None:
    error = _grid_error(shared={"decoder": [{"temperature": 0.5}, {"temprature": 0.7}]})
    assert _where(error)[:3] == ("shared", "decoder", 1)
    assert "did you mean 'temperature'" in error["msg"]


@pytest.mark.parametrize(
    ("key", "value", "index", "needles"),
    [
        ("fp_precision", ["float16", "float64"], 1, ["'float64'", "float32, float16, bfloat16"]),
        ("decoder.preset", ["greedy"], 0, ["'greedy'", "deterministic", "creative"]),
        ("max_output_tokens", [16, "lots"], 1, ["max_output_tokens", "'lots'", "integer"]),
        ("max_output_tokens", [0], 0, ["max_output_tokens", "greater than or equal to 1"]),
        ("streaming", ["maybe"], 0, ["streaming", "'maybe'", "boolean"]),
        ("energy.source", ["gpu"], 0, ["'gpu'", "nvml", "rapl"]),
    ],
)
def test_invalid_axis_value_names_key_value_and_valid_choices(
    key: str, value: list[Any], index: int, needles: list[str]
) -> None:
    error = _grid_error(shared={key: value})
    assert _where(error) == ("shared", key, index)
    for needle in needles:
        assert needle in error["msg"], error["msg"]


def test_invalid_scalar_value_is_an_error_too() -> None:
    error = _grid_error(shared={"fp_precision": "fp8"})
    assert _where(error) == ("shared", "fp_precision")
    assert "not a valid choice" in error["msg"]


@pytest.mark.parametrize(
    ("key", "pointer"),
    [
        ("backend", "grid.backends"),
        ("model", "grid.models"),
        ("model.name", "grid.models"),
        ("pytorch.batch_size", "grid.backend_overrides.pytorch.batch_size"),
        ("vllm.max_num_seqs", "grid.backend_overrides.vllm.max_num_seqs"),
    ],
)
def test_reserved_or_backend_keys_are_not_shared_axes(key: str, pointer: str) -> None:
    error = _grid_error(backends=["pytorch", "vllm"], shared={key: ["x"]})
    assert _where(error) == ("shared", key)
    assert pointer in error["msg"]
    assert "fix:" in error["msg"]


def test_duplicated_backend_is_an_error() -> None:
    error = _grid_error(backends=["pytorch", "vllm", "pytorch"])
    assert error["loc"] == ("backends",)
    assert "pytorch" in error["msg"] and "twice" in error["msg"]


def test_unknown_backend_is_an_error() -> None:
    error = _grid_error(backends=["pytorch", "onnx"])
    assert error["loc"] == ("backends", 1)


# --- load errors: backend overrides ------------------------------------------------------


def test_override_for_a_backend_not_in_backends() -> None:
    error = _grid_error(backends=["pytorch"], backend_overrides={"vllm": {"max_num_seqs": [8]}})
    assert _where(error) == ("backend_overrides", "vllm")
    assert "grid.backends" in error["msg"]
    assert "fix:" in error["msg"]


@pytest.mark.parametrize(
    ("backend", "key", "suggestion"),
    [
        ("pytorch", "batch_sise", "batch_size"),
        ("vllm", "max_num_seq", "max_num_seqs"),
        ("tensorrt", "max_batch_sizes", "max_batch_size"),
        ("pytorch", "fp_precison", "fp_precision"),
    ],
)
def test_unknown_override_key_suggests_the_nearest(backend: str, key: str, suggestion: str) -> None:
    error = _grid_error(backends=[backend], backend_overrides={backend: {key: [1]}})
    assert _where(error) == ("backend_overrides", backend, key)
    assert f"unknown key '{key}'" in error["msg"]
    assert repr(suggestion) in error["msg"].split("did you mean", 1)[1]


def test_invalid_override_value_in_the_backend_section() -> None:
    error = _grid_error(backend_overrides={"pytorch": {"attn_implementation": ["sdpa", "flash"]}})
    assert _where(error) == ("backend_overrides", "pytorch", "attn_implementation", 1)
    assert "'flash'" in error["msg"]
    assert "eager, sdpa, flash_attention_2" in error["msg"]


@pytest.mark.parametrize(
    ("key", "value", "needles"),
    [
        ("fp_precision", ["float64"], ["'float64'", "float32, float16, bfloat16"]),
        ("max_output_tokens", [0], ["max_output_tokens", "greater than or equal to 1"]),
        ("max_output_tokens", ["lots"], ["max_output_tokens", "'lots'"]),
    ],
)
def test_invalid_value_for_a_top_level_override_is_not_called_an_unknown_key(
    key: str, value: list[Any], needles: list[str]
) -> None:
    # fp_precision / max_output_tokens are known experiment fields: the problem is the value
    error = _grid_error(backend_overrides={"pytorch": {key: value}})
    assert _where(error)[:3] == ("backend_overrides", "pytorch", key)
    assert "unknown key" not in error["msg"], error["msg"]
    for needle in needles:
        assert needle in error["msg"], error["msg"]


def test_invalid_value_in_a_later_item_of_a_top_level_override() -> None:
    error = _grid_error(
        backends=["tensorrt"], backend_overrides={"tensorrt": {"fp_precision": ["float16", "fp4"]}}
    )
    assert _where(error) == ("backend_overrides", "tensorrt", "fp_precision", 1)
    assert "'fp4'" in error["msg"]


@pytest.mark.parametrize("key", ["backend", "model", "name"])
def test_reserved_keys_cannot_be_overridden(key: str) -> None:
    error = _grid_error(backend_overrides={"pytorch": {key: ["x"]}})
    assert _where(error) == ("backend_overrides", "pytorch", key)
    assert "fix:" in error["msg"]


# --- CampaignConfig -----------------------------------------------------------------------


def test_minimal_campaign_defaults() -> None:
    campaign = CampaignConfig(campaign_name="c", grid={})
    assert campaign.execution.cycles == 3  # the fewest cycles with a usable interval
    assert campaign.execution.structure == "interleaved"
    assert campaign.experiments == []
    assert campaign.base_config == {}
    assert campaign.io.results_dir == "results"


def test_neither_grid_nor_experiments_is_an_error() -> None:
    error = _campaign_error(campaign_name="c", base_config={"model": "gpt2"})
    assert "neither a grid nor experiments" in error["msg"]
    assert "fix:" in error["msg"]


def test_experiments_alone_are_enough() -> None:
    campaign = CampaignConfig(
        campaign_name="c",
        experiments=[{"config": "exp.yaml", "overrides": {"max_output_tokens": 8}}],
    )
    assert campaign.grid is None
    assert campaign.experiments[0].overrides == {"max_output_tokens": 8}


@pytest.mark.parametrize("at", ["25:00", "2:30", "7pm", "12:60", "1230"])
def test_schedule_at_must_be_hh_mm(at: str) -> None:
    error = _campaign_error(campaign_name="c", grid={}, schedule={"at": at})
    assert error["loc"] == ("schedule", "at")
    assert "HH:MM" in error["msg"]


@pytest.mark.parametrize("at", ["00:00", "02:30", "23:59"])
def test_schedule_at_accepts_times_of_day(at: str) -> None:
    assert CampaignConfig(campaign_name="c", grid={}, schedule={"at": at}).schedule.at == at


def test_base_config_typo_suggests_the_nearest() -> None:
    error = _campaign_error(campaign_name="c", grid={}, base_config={"fp_precison": "float16"})
    assert _where(error) == ("base_config", "fp_precison")
    assert "did you mean 'fp_precision'" in error["msg"]


def test_base_config_list_points_to_grid_shared() -> None:
    error = _campaign_error(
        campaign_name="c", grid={}, base_config={"fp_precision": ["float16", "bfloat16"]}
    )
    assert _where(error) == ("base_config", "fp_precision")
    assert "grid.shared" in error["msg"]


def test_base_config_may_be_a_path() -> None:
    assert CampaignConfig(campaign_name="c", grid={}, base_config="exp.yaml").base_config == (
        "exp.yaml"
    )


@pytest.mark.parametrize(
    ("section", "data"),
    [
        ("execution", {"cycles": 0}),
        ("execution", {"structure": "random"}),
        ("execution", {"cylces": 3}),
        ("io", {"results": "x"}),
        ("cold_start", {"force": True}),
    ],
)
def test_campaign_sections_are_checked(section: str, data: dict[str, Any]) -> None:
    error = _campaign_error(campaign_name="c", grid={}, **{section: data})
    assert error["loc"][0] == section


def test_grid_typo_is_an_error() -> None:
    error = _campaign_error(campaign_name="c", grid={"backend": ["pytorch"]})
    assert error["loc"] == ("grid", "backend")
    assert error["type"] == "extra_forbidden"


# --- statistics and adaptive cycles ----------------------------------------------------------


def test_statistics_default_is_student_t_and_bootstrap_needs_thirty_cycles() -> None:
    assert CampaignConfig(campaign_name="c", grid={}).statistics.ci_method == "student_t"
    ok = CampaignConfig(
        campaign_name="c", grid={}, execution={"cycles": 30}, statistics={"ci_method": "bootstrap"}
    )
    assert ok.statistics.ci_method == "bootstrap"
    error = _campaign_error(campaign_name="c", grid={}, statistics={"ci_method": "bootstrap"})
    assert "bootstrap needs at least 30 cycles and execution.cycles is 3" in error["msg"]
    assert "fix: set execution.cycles to 30 or more, or use ci_method: student_t" in error["msg"]
    adaptive = _campaign_error(
        campaign_name="c",
        grid={},
        execution={"target_ci_pct": 5, "max_cycles": 8},
        statistics={"ci_method": "bootstrap"},
    )
    assert "execution.max_cycles is 8" in adaptive["msg"]
    assert _campaign_error(campaign_name="c", grid={}, statistics={"ci_method": "bca"})["loc"] == (
        "statistics",
        "ci_method",
    )


def test_adaptive_cycles_defaults_and_derived_bounds() -> None:
    plain = CampaignConfig(campaign_name="c", grid={}).execution
    assert (plain.adaptive, plain.first_cycles, plain.cycle_limit) == (False, 3, 3)
    adaptive = CampaignConfig(campaign_name="c", grid={}, execution={"target_ci_pct": 5}).execution
    assert (adaptive.adaptive, adaptive.first_cycles, adaptive.cycle_limit) == (True, 3, 10)
    assert adaptive.target_metric == "energy_per_token_j"
    chosen = CampaignConfig(
        campaign_name="c",
        grid={},
        execution={
            "target_ci_pct": 2.5,
            "min_cycles": 4,
            "max_cycles": 6,
            "target_metric": "tokens_per_second",
        },
    ).execution
    assert (chosen.first_cycles, chosen.cycle_limit) == (4, 6)


@pytest.mark.parametrize(
    ("execution", "message"),
    [
        ({"min_cycles": 3}, "min_cycles only applies to adaptive cycles; fix: set target_ci_pct"),
        ({"max_cycles": 9}, "max_cycles only applies to adaptive cycles"),
        ({"target_ci_pct": 5, "min_cycles": 5, "max_cycles": 4}, "max_cycles (4) is below"),
        ({"target_ci_pct": 5, "cycles": 3, "min_cycles": 5}, "cycles (3) and min_cycles (5)"),
        ({"target_ci_pct": 5, "cycles": 1}, "at least 2 cycles before the first decision"),
        ({"target_ci_pct": 0}, "greater than 0"),
        ({"target_ci_pct": 5, "target_metric": "energy_j"}, "Input should be"),
    ],
)
def test_adaptive_mistakes_are_named(execution: dict[str, Any], message: str) -> None:
    error = _campaign_error(campaign_name="c", grid={}, execution=execution)
    assert error["loc"][0] == "execution"
    assert message in error["msg"]
