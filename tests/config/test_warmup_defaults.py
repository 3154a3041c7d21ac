"""Warmup's default length follows the warmup batch, so every batch size is valid on defaults;
an explicit ``max_prompts`` that can never converge is still refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.config.identity import config_hash
from llenergymeasure.config.loader import load_experiment_config
from llenergymeasure.config.models import WARMUP_MIN_DEFAULT, ExperimentConfig
from llenergymeasure.exceptions import ConfigError
from llenergymeasure.orchestration.grid import iter_campaign_grid, validate_campaign_grid

POWERS_OF_TWO = [2**i for i in range(10)]  # 1 .. 512


def _grid(backend: str, key: str, values: list[int]) -> CampaignGridConfig:
    return CampaignGridConfig(backends=[backend], backend_overrides={backend: {key: values}})


@pytest.mark.parametrize(
    ("backend", "key", "values"),
    [
        ("pytorch", "batch_size", POWERS_OF_TWO),
        ("pytorch", "batch_size", list(range(1, 65))),
        ("vllm", "max_num_seqs", POWERS_OF_TWO),
    ],
)
def test_every_batch_size_is_valid_on_defaults(backend: str, key: str, values: list[int]) -> None:
    result = validate_campaign_grid(
        iter_campaign_grid(_grid(backend, key, values), {"model": "gpt2"})
    )
    assert result.filtered_configs == []
    assert len(result.valid_configs) == len(values)


@pytest.mark.parametrize(
    ("batch", "expected"), [(1, 32), (10, 32), (11, 33), (32, 96), (512, 1536)]
)
def test_default_max_prompts_is_window_size_batches(batch: int, expected: int) -> None:
    config = ExperimentConfig(model="gpt2", pytorch={"batch_size": batch})
    assert config.warmup.max_prompts == expected == max(WARMUP_MIN_DEFAULT, 3 * batch)


@pytest.mark.parametrize(
    ("max_num_seqs", "num_prompts", "expected"),
    [(256, 32, 192), (4, 32, 32), (8, 32, 48), (256, 1000, 1536), (64, 1000, 384)],
)
def test_vllm_default_warms_up_in_groups_as_large_as_the_window_runs(
    max_num_seqs: int, num_prompts: int, expected: int
) -> None:
    """Groups of max_prompts / (2 x window) = min(max_num_seqs, num_prompts) requests."""
    config = ExperimentConfig(
        model="gpt2",
        backend="vllm",
        vllm={"max_num_seqs": max_num_seqs},
        dataset={"num_prompts": num_prompts},
    )
    assert config.warmup.max_prompts == expected
    assert expected == max(WARMUP_MIN_DEFAULT, 6 * min(max_num_seqs, num_prompts))


def test_default_covers_min_prompts_and_streaming() -> None:
    assert ExperimentConfig(model="gpt2", warmup={"min_prompts": 50}).warmup.max_prompts == 50
    streamed = ExperimentConfig(model="gpt2", streaming=True, pytorch={"batch_size": 64})
    assert streamed.warmup.max_prompts == WARMUP_MIN_DEFAULT  # one request at a time


def test_resolved_config_hashes_as_the_unset_one() -> None:
    """Validation fills the number in, so a stored config re-validated keeps its identity, and
    batch sizes that were valid before the default scaled keep their hash (32 prompts)."""
    for batch in (4, 128):
        unset = ExperimentConfig(model="gpt2", pytorch={"batch_size": batch})
        again = ExperimentConfig.model_validate(unset.model_dump())
        assert config_hash(again) == config_hash(unset)
    small = ExperimentConfig(model="gpt2", pytorch={"batch_size": 4})
    explicit = ExperimentConfig(model="gpt2", pytorch={"batch_size": 4}, warmup={"max_prompts": 32})
    assert config_hash(small) == config_hash(explicit)


def test_grid_hashes_match_plain_validation() -> None:
    """Grid validation shares the filled-in warmup sections between points; the hashes are
    still those of each point validated on its own, and different batches never dedup."""
    base = {"model": "gpt2", "warmup": {"cv_threshold": 0.1}}
    grid = CampaignGridConfig(
        backends=["pytorch"],
        shared={"fp_precision": ["float16", "bfloat16"]},
        backend_overrides={"pytorch": {"batch_size": POWERS_OF_TWO}},
    )
    result = validate_campaign_grid(iter_campaign_grid(grid, base))
    assert result.duplicates == []
    plain = [config_hash(ExperimentConfig.model_validate(c)) for c in result.valid_configs]
    assert result.config_hashes == plain
    assert len(set(plain)) == 2 * len(POWERS_OF_TWO)


def test_explicit_max_prompts_that_cannot_converge_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"at least 96"):
        ExperimentConfig(model="gpt2", pytorch={"batch_size": 32}, warmup={"max_prompts": 32})
    path = tmp_path / "experiment.yaml"
    path.write_text("model: gpt2\npytorch: {batch_size: 32}\nwarmup: {max_prompts: 32}\n")
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    assert info.value.exit_code != 0
    assert "warmup.max_prompts" in str(info.value) and "fix:" in str(info.value)


def test_unresolved_warmup_has_no_limit() -> None:
    from llenergymeasure.config.models import WarmupConfig

    with pytest.raises(ValueError, match="only resolved"):
        _ = WarmupConfig().prompt_limit
    assert ExperimentConfig(model="gpt2").warmup.prompt_limit == WARMUP_MIN_DEFAULT


def test_a_batch_beyond_any_warmup_names_the_largest_batch_that_fits() -> None:
    """The default warmup is capped at MAX_PROMPTS, so asking for more prompts cannot help:
    the fix names the batch size that can converge instead."""
    from llenergymeasure.config.models import MAX_PROMPTS

    with pytest.raises(ValidationError) as info:
        ExperimentConfig.model_validate({"model": "gpt2", "pytorch": {"batch_size": 10**20}})
    assert f"at most {MAX_PROMPTS // 3:,}" in str(info.value)
    assert "warmup.max_prompts to at least" not in str(info.value)
