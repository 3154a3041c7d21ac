"""The campaign's experiment list: grid points plus explicit experiments from files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llenergymeasure.config.loader import load_campaign_config
from llenergymeasure.exceptions import ConfigError
from llenergymeasure.orchestration.campaign.experiments import iter_campaign_experiments
from llenergymeasure.orchestration.grid import count_campaign_grid

from ..plans import plan_lists

WriteYaml = Callable[..., Path]

REPO = Path(__file__).resolve().parents[3]


def test_example_campaign_plan() -> None:
    path = REPO / "examples" / "campaign.yaml"
    campaign = load_campaign_config(path)
    assert campaign.grid is not None
    result = plan_lists(campaign, path)
    assert result.total_generated == count_campaign_grid(campaign.grid)
    assert len(result.valid_configs) > 0
    assert set(result.per_backend) == {"pytorch", "vllm", "tensorrt"}
    # the tensorrt override replaces float32: nothing filtered for tensorrt
    assert result.per_backend["tensorrt"]["filtered"] == 0
    names = [c["name"] for c in result.valid_configs]
    assert len(names) == len(set(names))
    assert all("tiny-gpt2" in n for n in names)


def test_explicit_experiments_coexist_with_the_grid(
    write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_yaml(
        """
        model: gpt2
        fp_precision: float16
        pytorch:
          use_cache: false
        """,
        "campaigns/experiments/small.yaml",
    )
    path = write_yaml(
        """
        campaign_name: mixed
        base_config:
          model: base-model
          max_output_tokens: 8
        grid:
          shared:
            fp_precision: [float16, bfloat16]
        experiments:
          - config: experiments/small.yaml
            overrides:
              pytorch.batch_size: 4
              decoder.preset: creative
          - overrides:
              name: inline-one
              fp_precision: float32
        """,
        "campaigns/campaign.yaml",
    )
    monkeypatch.chdir(tmp_path.parent)  # paths are relative to the campaign file, not the cwd
    campaign = load_campaign_config(path)
    configs = list(iter_campaign_experiments(campaign, path))
    assert [c["name"] for c in configs] == [
        "pytorch_base-model_fp16",
        "pytorch_base-model_bf16",
        "small",
        "inline-one",
    ]
    small = configs[2]
    assert small["model"] == {"name": "gpt2"}
    assert small["max_output_tokens"] == 8  # base_config lies under explicit experiments
    assert small["fp_precision"] == "float16"
    assert small["pytorch"] == {"use_cache": False, "batch_size": 4}
    assert small["decoder"] == {"preset": "creative"}
    assert configs[3]["model"] == {"name": "base-model"}
    assert configs[3]["fp_precision"] == "float32"

    result = plan_lists(campaign, path)
    assert result.total_generated == 4
    assert [c["name"] for c in result.valid_configs] == [c["name"] for c in configs]


def test_explicit_experiment_identical_to_a_grid_point_is_a_duplicate(
    write_yaml: WriteYaml,
) -> None:
    write_yaml("fp_precision: float16\n", "same.yaml")
    path = write_yaml(
        """
        campaign_name: dup
        base_config: {model: gpt2}
        grid:
          shared: {fp_precision: [float16, bfloat16]}
        experiments:
          - config: same.yaml
        """,
        "campaign.yaml",
    )
    result = plan_lists(load_campaign_config(path), path)
    assert result.total_generated == 3
    assert len(result.valid_configs) == 2
    assert [d.config_desc for d in result.duplicates] == ["same"]


def test_experiments_only_campaign(write_yaml: WriteYaml) -> None:
    write_yaml("model: gpt2\n", "a.yaml")
    path = write_yaml(
        "campaign_name: only\nexperiments:\n  - config: a.yaml\n  - config: a.yaml\n"
        "    overrides: {max_output_tokens: 9}\n",
        "campaign.yaml",
    )
    campaign = load_campaign_config(path)
    assert campaign.grid is None
    result = plan_lists(campaign, path)
    assert result.total_generated == 2
    assert len(result.valid_configs) == 2
    names = [c["name"] for c in result.valid_configs]
    assert len(set(names)) == 2


def test_missing_explicit_experiment_file_is_a_config_error(write_yaml: WriteYaml) -> None:
    path = write_yaml(
        "campaign_name: c\nbase_config: {model: gpt2}\nexperiments:\n  - config: missing.yaml\n"
    )
    campaign = load_campaign_config(path)
    with pytest.raises(ConfigError) as info:
        plan_lists(campaign, path)
    assert info.value.exit_code == 2
    assert "missing.yaml" in str(info.value)


def test_explicit_experiments_validate_as_their_dicts_do(write_yaml: WriteYaml) -> None:
    """The explicit list is validated from base + overrides; the outcome equals the dicts'."""
    write_yaml("fp_precision: float16\npytorch: {use_cache: false}\nname: from-file\n", "f.yaml")
    path = write_yaml(
        """
        campaign_name: explicit
        base_config: {model: gpt2, dataset: {num_prompts: 4}}
        experiments:
          - overrides: {fp_precision: float32, pytorch.batch_size: 2}
          - overrides: {fp_precision: float32, pytorch.batch_size: 2}
          - overrides: {pytorch.batch_size: 64}
          - config: f.yaml
          - config: f.yaml
            overrides: {name: named, decoder: {temperature: 0.5, do_sample: true}}
          - overrides: {backend: vllm, vllm.max_num_seqs: 8}
          - overrides: {tensorrt.max_batch_size: 4}
          - overrides: {dataset.num_prompts: 8, pytorch.batch_size: 2, fp_precision: float32}
        """,
        "campaign.yaml",
    )
    campaign = load_campaign_config(path)
    lazy = plan_lists(campaign, path)
    from llenergymeasure.orchestration.grid import validate_campaign_grid

    eager = validate_campaign_grid(list(iter_campaign_experiments(campaign, path)))
    assert lazy.model_dump() == eager.model_dump()
    assert lazy.total_generated == 8
    assert len(lazy.duplicates) == 1 and lazy.filtered_configs  # batch 64, tensorrt section
    names = [c["name"] for c in lazy.valid_configs]
    assert "from-file" in names and "named" in names
