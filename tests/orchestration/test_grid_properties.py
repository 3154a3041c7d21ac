"""Hypothesis properties of random small grids built from real parameter values."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.config.introspection import get_backend_params, get_shared_params
from llenergymeasure.orchestration.grid import (
    count_campaign_grid,
    expand_campaign_grid,
    iter_campaign_grid,
    validate_campaign_grid,
)

PRECISIONS = list(get_shared_params()["fp_precision"].options or ())
PRESETS = list(get_shared_params()["decoder.preset"].options or ())
BACKENDS = ["pytorch", "vllm", "tensorrt"]


def _axis(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A scalar (fixed value) or a short list (axis), repeats allowed to exercise dedup."""
    return st.one_of(values, st.lists(values, min_size=1, max_size=3))


SHARED_AXES: dict[str, st.SearchStrategy[Any]] = {
    "fp_precision": st.sampled_from(PRECISIONS),
    "max_output_tokens": st.sampled_from([8, 16, 32]),
    "decoder.preset": st.sampled_from(PRESETS),
    "streaming": st.booleans(),
    "decoder": st.sampled_from(
        [{"temperature": 0, "do_sample": False}, {"temperature": 0.7, "top_p": 0.9}, {"top_k": 5}]
    ),
}

BACKEND_AXES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "pytorch": {
        "batch_size": st.sampled_from([1, 2, 4]),
        "attn_implementation": st.sampled_from(
            list(get_backend_params("pytorch")["attn_implementation"].options or ())
        ),
    },
    "vllm": {
        "max_num_seqs": st.sampled_from([8, 16, 256]),
        "tensor_parallel_size": st.sampled_from([1, 2]),
    },
    "tensorrt": {
        "max_batch_size": st.sampled_from([4, 8]),
        "fp_precision": st.sampled_from(PRECISIONS),  # replaces the shared axis
    },
}


@st.composite
def grids(draw: st.DrawFn) -> CampaignGridConfig:
    backends = draw(st.lists(st.sampled_from(BACKENDS), min_size=1, max_size=3, unique=True))
    models = draw(
        st.one_of(st.none(), st.lists(st.sampled_from(["gpt2", "org/opt"]), min_size=1, max_size=2))
    )
    shared_keys = draw(st.lists(st.sampled_from(list(SHARED_AXES)), max_size=3, unique=True))
    shared = {key: draw(_axis(SHARED_AXES[key])) for key in shared_keys}
    overrides: dict[str, dict[str, Any]] = {}
    for backend in backends:
        keys = draw(st.lists(st.sampled_from(list(BACKEND_AXES[backend])), max_size=2, unique=True))
        if keys:
            overrides[backend] = {k: draw(_axis(BACKEND_AXES[backend][k])) for k in keys}
    return CampaignGridConfig(
        backends=backends, models=models, shared=shared, backend_overrides=overrides
    )


bases = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt2", {"name": "base", "revision": "r1"}])},
    optional={
        "max_output_tokens": st.sampled_from([4, 64]),
        "decoder": st.just({"repetition_penalty": 1.1}),
        "pytorch": st.just({"use_cache": False}),
        "vllm": st.just({"enforce_eager": True}),
        "dataset": st.just({"num_prompts": 4}),
        "name": st.sampled_from(["study", 7]),
    },
)

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(grid=grids(), base=bases)
def test_count_iter_and_expand_agree(grid: CampaignGridConfig, base: dict[str, Any]) -> None:
    expanded = expand_campaign_grid(grid, base)
    assert count_campaign_grid(grid) == len(expanded)
    assert list(iter_campaign_grid(grid, base)) == expanded
    expected = 0
    for backend in grid.backends:
        sizes = [len(grid.models) if grid.models else 1]
        axes = {**grid.shared, **grid.backend_overrides.get(backend, {})}
        sizes += [len(v) if isinstance(v, list) else 1 for v in axes.values()]
        n = 1
        for size in sizes:
            n *= size
        expected += n
    assert len(expanded) == expected


@PROPERTY_SETTINGS
@given(grid=grids(), base=bases)
def test_inputs_are_never_mutated(grid: CampaignGridConfig, base: dict[str, Any]) -> None:
    grid_before, base_before = grid.model_dump(), copy.deepcopy(base)
    configs = expand_campaign_grid(grid, base)
    configs_before = copy.deepcopy(configs)
    result = validate_campaign_grid(configs)
    assert grid.model_dump() == grid_before
    assert base == base_before
    assert configs == configs_before
    for config in result.valid_configs:  # outputs are independent of the inputs
        config.setdefault("decoder", {})["top_k"] = 77
    assert base == base_before
    assert grid.model_dump() == grid_before


@PROPERTY_SETTINGS
@given(grid=grids(), base=bases)
def test_valid_names_and_hashes_are_unique(grid: CampaignGridConfig, base: dict[str, Any]) -> None:
    result = validate_campaign_grid(expand_campaign_grid(grid, base))
    names = [c["name"] for c in result.valid_configs]
    assert len(names) == len(set(names))
    assert all(names)
    assert len(result.config_hashes) == len(result.valid_configs)
    assert len(set(result.config_hashes)) == len(result.config_hashes)
    assert result.total_generated == count_campaign_grid(grid)
    assert (
        len(result.valid_configs) + len(result.filtered_configs) + len(result.duplicates)
        == result.total_generated
    )
    for config in result.valid_configs:
        assert config["backend"] in grid.backends
        others = set(BACKENDS) - {config["backend"]}
        assert not others & set(config)


@PROPERTY_SETTINGS
@given(grid=grids(), base=bases)
def test_expansion_is_deterministic(grid: CampaignGridConfig, base: dict[str, Any]) -> None:
    first = validate_campaign_grid(expand_campaign_grid(grid, base))
    again = validate_campaign_grid(expand_campaign_grid(grid, copy.deepcopy(base)))
    assert first.valid_configs == again.valid_configs
    assert first.config_hashes == again.config_hashes
    assert first.summary == again.summary


@PROPERTY_SETTINGS
@given(grid=grids(), base=bases, taken=st.integers(0, 5))
def test_validating_the_lazy_grid_equals_validating_its_dicts(
    grid: CampaignGridConfig, base: dict[str, Any], taken: int
) -> None:
    """The grid's own stream is validated from axis choices; the outcome must be the same."""
    expanded = expand_campaign_grid(grid, base)
    points = iter_campaign_grid(grid, base)
    assert [next(points, None) for _ in range(taken)] == (expanded + [None] * taken)[:taken]
    from_points = validate_campaign_grid(points)
    from_dicts = validate_campaign_grid(expanded[taken:])
    assert from_points.model_dump() == from_dicts.model_dump()
    assert list(points) == []  # validation consumed the rest


# --- grid v2: linked axes, exclude, groups -------------------------------------------------

LINKED_AXES: list[list[dict[str, Any]]] = [
    [{"random_seed": 1}, {"random_seed": 2, "max_input_tokens": 64}],
    [{"max_input_tokens": 128}, {"max_input_tokens": 256, "random_seed": 3}, {}],
]
PYTORCH_LINKED = [{"pytorch.use_cache": False}, {"pytorch.use_cache": True, "random_seed": 9}]


@st.composite
def grids_v2(draw: st.DrawFn) -> CampaignGridConfig:
    """A grid of the first kind plus linked axes, exclude entries built from values the grid
    has (so they can match), and sometimes groups."""
    grid = draw(grids()).model_dump(exclude_defaults=True)
    linked = [draw(st.sampled_from(LINKED_AXES))]
    if "pytorch" in grid.get("backends", ["pytorch"]) and draw(st.booleans()):
        linked = [PYTORCH_LINKED]  # random_seed in both would clash
    grid["linked"] = linked
    shared_lists = {k: v for k, v in grid.get("shared", {}).items() if isinstance(v, list)}
    exclude = []
    for key in draw(st.lists(st.sampled_from(sorted(shared_lists) or ["-"]), max_size=2)):
        if key in shared_lists:
            entry: dict[str, Any] = {key: draw(st.sampled_from(shared_lists[key]))}
            if draw(st.booleans()):
                entry["backend"] = draw(st.sampled_from(grid.get("backends", ["pytorch"])))
            exclude.append(entry)
    grid["exclude"] = exclude
    if draw(st.booleans()):
        grid["groups"] = [
            {"name": "g1"},
            {
                "name": "g2",
                "shared": {"streaming": draw(st.lists(st.booleans(), min_size=1, max_size=2))},
            },
        ]
    try:
        return CampaignGridConfig(**grid)
    except ValidationError:  # an entry that overrides make unmatchable, a key set twice
        assume(False)
        raise


@PROPERTY_SETTINGS
@given(grid=grids_v2(), base=bases)
def test_v2_count_iter_and_expand_agree(grid: CampaignGridConfig, base: dict[str, Any]) -> None:
    expanded = expand_campaign_grid(grid, base)
    assert count_campaign_grid(grid) == len(expanded)
    assert list(iter_campaign_grid(grid, base)) == expanded
    result = validate_campaign_grid(iter_campaign_grid(grid, base))
    assert result.total_generated - result.excluded_count == len(expanded)
    assert (
        len(result.valid_configs)
        + len(result.filtered_configs)
        + len(result.duplicates)
        + result.excluded_count
        == result.total_generated
    )


@PROPERTY_SETTINGS
@given(grid=grids_v2(), base=bases)
def test_v2_names_unique_and_inputs_never_mutated(
    grid: CampaignGridConfig, base: dict[str, Any]
) -> None:
    grid_before, base_before = grid.model_dump(), copy.deepcopy(base)
    result = validate_campaign_grid(iter_campaign_grid(grid, base))
    names = [c["name"] for c in result.valid_configs]
    assert len(names) == len(set(names)) and all(names)
    assert len(set(result.config_hashes)) == len(result.config_hashes)
    for config in result.valid_configs:
        config.setdefault("decoder", {})["top_k"] = 77
    assert grid.model_dump() == grid_before
    assert base == base_before


@PROPERTY_SETTINGS
@given(grid=grids_v2(), base=bases, taken=st.integers(0, 3))
def test_v2_lazy_validation_equals_validating_the_dicts(
    grid: CampaignGridConfig, base: dict[str, Any], taken: int
) -> None:
    """The expanded list holds no excluded point; everything else is the same outcome."""
    expanded = expand_campaign_grid(grid, base)
    points = iter_campaign_grid(grid, base)
    assert [next(points, None) for _ in range(taken)] == (expanded + [None] * taken)[:taken]
    lazy = validate_campaign_grid(points).model_dump()
    eager = validate_campaign_grid(expanded[taken:]).model_dump()
    excluded = sum(lazy.pop("excluded").values())
    lazy.pop("excluded_per_backend"), eager.pop("excluded"), eager.pop("excluded_per_backend")
    lazy_notes, eager_notes = lazy.pop("notes"), eager.pop("notes")
    assert eager_notes == []
    assert all("exclude" in n or "group" in n for n in lazy_notes)
    assert lazy.pop("total_generated") - excluded == eager.pop("total_generated")
    if grid.groups:  # names made unique with the group's name rather than -2
        for result in (lazy, eager):
            for config in result["valid_configs"]:
                config.pop("name")
            for issue in result["duplicates"] + result["warnings"]:
                issue.pop("config_desc"), issue.pop("reason")
    assert lazy == eager
