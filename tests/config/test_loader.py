"""YAML -> config: errors name the file, line, key path and a fix; exit codes 2 vs 1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llenergymeasure.config.loader import (
    InvalidCombinationError,
    apply_overrides,
    load_campaign_config,
    load_experiment_config,
    read_yaml,
)
from llenergymeasure.exceptions import ConfigError

WriteYaml = Callable[..., Path]

REPO = Path(__file__).resolve().parents[2]


def test_examples_load() -> None:
    experiment = load_experiment_config(REPO / "examples" / "experiment.yaml")
    assert experiment.model.name == "builtin:tiny-gpt2"
    campaign = load_campaign_config(REPO / "examples" / "campaign.yaml")
    assert campaign.grid is not None
    assert campaign.grid.backends == ["pytorch", "vllm", "tensorrt"]


def test_read_yaml_maps_key_paths_to_lines(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        a: 1
        b:
          c: 2
          d:
            - x
            - y
        """
    )
    data, lines = read_yaml(path)
    assert data == {"a": 1, "b": {"c": 2, "d": ["x", "y"]}}
    assert lines[("a",)] == 1
    assert lines[("b", "c")] == 3
    assert lines[("b", "d", 1)] == 6


def test_empty_file_is_an_empty_mapping(write_yaml: WriteYaml) -> None:
    assert read_yaml(write_yaml(""))[0] == {}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_yaml(tmp_path / "nope.yaml")
    assert info.value.exit_code == 2
    assert "nope.yaml" in str(info.value)


def test_yaml_syntax_error_names_the_line(write_yaml: WriteYaml) -> None:
    path = write_yaml("model: gpt2\npytorch:\n  batch_size: [1, 2\n  other: 3\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert info.value.exit_code == 2
    assert info.value.where is not None
    assert info.value.where.startswith(f"{path}:")
    assert int(info.value.where.rsplit(":", 1)[1]) in (3, 4)
    assert "YAML" in info.value.what


def test_top_level_list_is_rejected(write_yaml: WriteYaml) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        read_yaml(write_yaml("- a\n- b\n"))


def test_experiment_typo_names_file_line_key_and_suggestion(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        model: gpt2
        decoder:
          preset: standard
          temprature: 0.5
        """
    )
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    assert not isinstance(info.value, InvalidCombinationError)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert f"{path}:4" in message
    assert "decoder.temprature" in message
    assert "did you mean 'temperature'" in message
    assert "Traceback" not in message


def test_experiment_wrong_type_names_line_and_value(write_yaml: WriteYaml) -> None:
    path = write_yaml("model: gpt2\npytorch:\n  batch_size: big\n")
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert f"{path}:3" in message
    assert "pytorch.batch_size" in message
    assert "'big'" in message


def test_experiment_bad_choice_lists_valid_ones(write_yaml: WriteYaml) -> None:
    path = write_yaml("model: gpt2\nfp_precision: float64\n")
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    message = str(info.value)
    assert f"{path}:2" in message
    assert "'float64'" in message and "bfloat16" in message


def test_experiment_combination_is_exit_code_2(write_yaml: WriteYaml) -> None:
    path = write_yaml("model: gpt2\nbackend: tensorrt\nfp_precision: float32\n")
    with pytest.raises(InvalidCombinationError) as info:
        load_experiment_config(path)
    assert info.value.exit_code == 2
    assert "fp_precision" in str(info.value)
    assert "fix:" in str(info.value)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("model: gpt2\nbackend: vllm\nmax_output_tokens: 8\npytorch:\n  batch_size: 4\n", 4),
        ("model: gpt2\nbackend: tensorrt\nfp_precision: float32\n", 3),
        ("model: gpt2\nmax_output_tokens: 8\nmin_output_tokens: 9\n", 3),
        ("model: gpt2\npytorch:\n  load_in_8bit: true\n  load_in_4bit: true\n", 4),
        ("model: gpt2\nwarmup:\n  min_prompts: 50\n  max_prompts: 40\n", 3),
        ("model: gpt2\ndecoder:\n  do_sample: true\n  temperature: 0\n", 3),
        ("model: gpt2\ntraffic:\n  mode: poisson\n", 3),
    ],
)
def test_experiment_combination_names_the_line_it_points_at(
    write_yaml: WriteYaml, text: str, line: int
) -> None:
    """A cross-field error written in the file names its file:line, like any other error."""
    path = write_yaml(text)
    with pytest.raises(InvalidCombinationError) as info:
        load_experiment_config(path)
    assert f"{path}:{line}:" in str(info.value)


def test_experiment_overrides_are_dotted_and_applied(write_yaml: WriteYaml) -> None:
    path = write_yaml("model: gpt2\npytorch:\n  batch_size: 2\n")
    config = load_experiment_config(path, {"pytorch.batch_size": 8, "decoder.preset": "factual"})
    assert config.pytorch is not None and config.pytorch.batch_size == 8
    assert config.decoder.preset == "factual"


def test_apply_overrides_copies_and_expands_model_shorthand() -> None:
    data = {"model": "gpt2", "decoder": {"top_k": 5}}
    result = apply_overrides(data, {"model.revision": "main", "decoder": {"temperature": 0.3}})
    assert result == {
        "model": {"name": "gpt2", "revision": "main"},
        "decoder": {"top_k": 5, "temperature": 0.3},
    }
    assert data == {"model": "gpt2", "decoder": {"top_k": 5}}


def test_campaign_typo_names_file_line_key_and_suggestion(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        campaign_name: c
        base_config:
          model: gpt2
        grid:
          backends: [pytorch]
          shared:
            fp_precison: [float16]
        """
    )
    with pytest.raises(ConfigError) as info:
        load_campaign_config(path)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert f"{path}:7" in message
    assert "grid.shared.fp_precison" in message
    assert "did you mean 'fp_precision'" in message


def test_campaign_invalid_axis_item_points_at_its_line(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        """
        campaign_name: c
        base_config: {model: gpt2}
        grid:
          backend_overrides:
            pytorch:
              batch_size:
                - 1
                - lots
        """
    )
    with pytest.raises(ConfigError) as info:
        load_campaign_config(path)
    message = str(info.value)
    assert f"{path}:8" in message
    assert "grid.backend_overrides.pytorch.batch_size.1" in message
    assert "'lots'" in message


def test_campaign_unknown_top_level_section(write_yaml: WriteYaml) -> None:
    path = write_yaml("campaign_name: c\ngrid: {}\nexecuton: {cycles: 2}\n")
    with pytest.raises(ConfigError) as info:
        load_campaign_config(path)
    message = str(info.value)
    assert f"{path}:3" in message
    assert "did you mean 'execution'" in message


def test_campaign_base_config_path_is_relative_to_the_campaign_file(
    write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_yaml("model: gpt2\nmax_output_tokens: 7\n", "configs/base.yaml")
    path = write_yaml(
        "campaign_name: c\nbase_config: base.yaml\ngrid: {}\n", "configs/campaign.yaml"
    )
    monkeypatch.chdir(tmp_path.parent)
    campaign = load_campaign_config(path)
    assert campaign.base_config == {"model": "gpt2", "max_output_tokens": 7}


def test_campaign_base_config_path_typo_is_reported(write_yaml: WriteYaml) -> None:
    write_yaml("model: gpt2\nmax_output_tokns: 7\n", "base.yaml")
    path = write_yaml("campaign_name: c\nbase_config: base.yaml\ngrid: {}\n", "campaign.yaml")
    with pytest.raises(ConfigError) as info:
        load_campaign_config(path)
    assert "did you mean 'max_output_tokens'" in str(info.value)


def test_campaign_missing_base_config_file(write_yaml: WriteYaml) -> None:
    path = write_yaml("campaign_name: c\nbase_config: nowhere.yaml\ngrid: {}\n")
    with pytest.raises(ConfigError, match=r"nowhere\.yaml"):
        load_campaign_config(path)


def test_yaml_booleans_are_only_true_and_false(write_yaml) -> None:  # type: ignore[no-untyped-def]
    """YAML 1.1 would read `on:` as the boolean True and `no` as False."""
    from llenergymeasure.config.loader import load_campaign_config, read_yaml

    path = write_yaml(
        """
        campaign_name: c
        base_config: {model: m, streaming: true, dataset: {name: "no"}}
        grid: {backends: [pytorch]}
        notify:
          on: [completion]
        """
    )
    data, _ = read_yaml(path)
    assert "on" in data["notify"] and data["base_config"]["streaming"] is True
    campaign = load_campaign_config(path)
    assert campaign.notify.on == ["completion"]


def test_read_yaml_line_map_is_read_on_first_lookup_and_exact(write_yaml: WriteYaml) -> None:
    """The first read skips the line map (only messages need it); the lookup reads it then."""
    from llenergymeasure.config.yaml_reader import parse_yaml

    text = "a: 1\nlist:\n  - {x: 1, y: [2, 3]}\n  - z: 4\n"
    data, lines = read_yaml(write_yaml(text))
    assert lines._lines is None  # type: ignore[attr-defined]
    assert dict(lines) == parse_yaml(text, source="s")[1]
    assert lines[("list", 1, "z")] == 4
    assert data == parse_yaml(text, source="s")[0]
