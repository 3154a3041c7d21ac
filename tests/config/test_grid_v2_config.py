"""Grid v2 load errors: each mistake in linked / exclude / groups is one message with its key
path (the loader adds file and line) and a fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.config.loader import load_campaign_config
from llenergymeasure.exceptions import ConfigError

PRECISION = [{"fp_precision": "float32"}, {"fp_precision": "float16"}]


def _error(**grid: Any) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as info:
        CampaignGridConfig(**grid)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    error = errors[0]
    where = (*error["loc"], *(error.get("ctx") or {}).get("subpath", ()))
    assert "fix" in error["msg"] or "did you mean" in error["msg"], error["msg"]
    return where, error["msg"]


def test_linked_unknown_key_suggests_the_nearest() -> None:
    where, msg = _error(linked=[[{"fp_precison": "float16"}]])
    assert where == ("linked", 0, 0, "fp_precison")
    assert "did you mean 'fp_precision'" in msg


def test_linked_value_a_field_can_never_take() -> None:
    where, msg = _error(linked=[[{"fp_precision": "fp16"}]])
    assert where == ("linked", 0, 0, "fp_precision")
    assert "float16" in msg


def test_linked_and_shared_setting_the_same_key() -> None:
    where, msg = _error(shared={"fp_precision": ["float16"]}, linked=[PRECISION])
    assert where == ("linked", 0, 0, "fp_precision")
    assert "grid.shared.fp_precision" in msg and "set both" in msg


def test_two_linked_axes_setting_the_same_key() -> None:
    where, msg = _error(linked=[PRECISION, [{"max_output_tokens": 8, "fp_precision": "float16"}]])
    assert where == ("linked", 1, 0, "fp_precision")
    assert "grid.linked.0" in msg


def test_linked_and_backend_override_setting_the_same_key() -> None:
    where, msg = _error(
        linked=[[{"pytorch.batch_size": 1}, {"pytorch.batch_size": 4}]],
        backend_overrides={"pytorch": {"batch_size": [8]}},
    )
    assert where == ("linked", 0, 0, "pytorch.batch_size")
    assert "grid.backend_overrides.pytorch.batch_size" in msg


def test_linked_key_of_a_backend_not_in_the_grid() -> None:
    where, msg = _error(linked=[[{"vllm.max_num_seqs": 8}]])
    assert where == ("linked", 0, 0, "vllm.max_num_seqs")
    assert "add vllm to grid.backends" in msg


def test_linked_list_value_and_reserved_keys() -> None:
    _, msg = _error(linked=[[{"max_output_tokens": [8, 16]}]])
    assert "one value per key" in msg
    _, msg = _error(linked=[[{"backend": "vllm"}]])
    assert "grid.backends" in msg
    _, msg = _error(models=["a"], linked=[[{"model.name": "b"}]])
    assert "grid.models" in msg


def test_exclude_unknown_key_and_impossible_value() -> None:
    where, msg = _error(shared={"fp_precision": ["float16"]}, exclude=[{"fp_precison": "x"}])
    assert where == ("exclude", 0, "fp_precison") and "did you mean 'fp_precision'" in msg
    where, msg = _error(shared={"fp_precision": ["float16"]}, exclude=[{"fp_precision": "fp64"}])
    assert where == ("exclude", 0, "fp_precision") and "not a valid choice" in msg


def test_exclude_on_a_key_the_grid_does_not_vary() -> None:
    where, msg = _error(shared={"fp_precision": ["float16"]}, exclude=[{"random_seed": 3}])
    assert where == ("exclude", 0)
    assert "no axis of the grid sets 'random_seed'" in msg


def test_exclude_entry_that_can_match_nothing() -> None:
    where, msg = _error(
        backends=["pytorch", "vllm"],
        linked=[PRECISION],
        backend_overrides={"pytorch": {"batch_size": [1, 8]}},
        exclude=[{"backend": "vllm", "pytorch.batch_size": 8}],
    )
    assert where == ("exclude", 0) and "can match no point" in msg
    where, msg = _error(linked=[PRECISION], exclude=[{"fp_precision": "bfloat16"}])
    assert "can match no point" in msg and "'float16', 'float32'" in msg
    where, msg = _error(linked=[PRECISION], exclude=[{"backend": "vllm"}])
    assert where == ("exclude", 0, "backend") and "can match nothing" in msg


def test_exclude_matches_values_linked_together_only() -> None:
    linked = [[{"fp_precision": "float32"}, {"fp_precision": "float16", "max_output_tokens": 8}]]
    _, msg = _error(linked=linked, exclude=[{"fp_precision": "float32", "max_output_tokens": 8}])
    assert "can match no point" in msg
    CampaignGridConfig(linked=linked, exclude=[{"fp_precision": "float16", "max_output_tokens": 8}])


def test_empty_exclude_entry() -> None:
    where, msg = _error(shared={"fp_precision": ["float16"]}, exclude=[{}])
    assert where == ("exclude", 0) and "every point" in msg


def test_group_mistakes() -> None:
    where, msg = _error(groups=[{"name": "a"}, {"name": "a", "shared": {"streaming": True}}])
    assert where == ("groups", 1, "name") and "twice" in msg
    where, msg = _error(
        groups=[
            {"name": "a", "shared": {"streaming": True}},
            {"name": "b", "shared": {"streaming": True}},
        ]
    )
    assert where == ("groups", 1) and "exactly the points of group 'a'" in msg
    where, msg = _error(groups=[{"name": "a", "backend_overrides": {"vllm": {"max_num_seqs": 8}}}])
    assert where == ("groups", 0, "backend_overrides", "vllm")
    where, msg = _error(groups=[{"name": "a", "shared": {"pytorch.batch_size": [1]}}])
    assert where == ("groups", 0, "shared", "pytorch.batch_size")
    where, msg = _error(groups=[{"name": "a", "exclude": [{"streaming": True}]}])
    assert where == ("groups", 0, "exclude", 0)


def test_loader_gives_file_line_key_path_and_exit_2(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml(
        """
        campaign_name: c
        base_config: {model: gpt2}
        grid:
          linked:
            - - {fp_precision: float32}
              - {fp_precision: float16, pytorch.load_in_8bt: true}
        """
    )
    with pytest.raises(ConfigError) as info:
        load_campaign_config(path)
    text = str(info.value)
    assert info.value.exit_code == 2
    assert f"{path}:6: grid.linked.0.1.pytorch.load_in_8bt" in text
    assert "did you mean 'load_in_8bit'" in text
