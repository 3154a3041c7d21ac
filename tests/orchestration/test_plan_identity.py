"""Campaign files written before grid v2 plan the same experiment ids and hashes as before.

Resume keys results on ``config_hash`` and result directories on the experiment id, so a
grammar change that renamed or rehashed an existing point would orphan measured results.
The expected plans were recorded from the code before grid v2 (data/planned_before_grid_v2.json).
The campaign files are frozen copies (data/campaign_v1_*.yaml): the examples may change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llenergymeasure.config.loader import load_campaign_config
from llenergymeasure.orchestration.campaign.experiments import plan_campaign
from llenergymeasure.orchestration.campaign.plan import new_entry, planned_experiments

REPO = Path(__file__).resolve().parents[2]
RECORDED = json.loads((Path(__file__).parent / "data" / "planned_before_grid_v2.json").read_text())


@pytest.mark.parametrize("campaign_file", sorted(RECORDED))
def test_existing_campaign_plans_the_same_ids_and_hashes(campaign_file: str) -> None:
    path = REPO / campaign_file
    result = plan_campaign(load_campaign_config(path), path)
    used: set[str] = set()
    planned = [
        [e.name, e.config_hash, new_entry(e, 1, used).exp_id] for e in planned_experiments(result)
    ]
    assert planned == RECORDED[campaign_file]


def test_a_section_or_field_added_later_changes_a_hash_only_when_set() -> None:
    """``server:`` and ``pytorch.device_map`` came after campaigns were run: unset, the hash
    is the one recorded before them; set, the config is another config."""
    from llenergymeasure.config.identity import config_hash
    from llenergymeasure.config.models import ExperimentConfig

    plain = {"model": "builtin:tiny-gpt2"}
    before = config_hash(ExperimentConfig.model_validate(plain))
    assert config_hash(ExperimentConfig.model_validate({**plain, "server": None})) == before
    served = {**plain, "backend": "vllm", "server": {"max_concurrency": 4}}
    offline = {**plain, "backend": "vllm"}
    assert config_hash(ExperimentConfig.model_validate(served)) != config_hash(
        ExperimentConfig.model_validate(offline)
    )
    spread = {**plain, "pytorch": {"device": "cuda", "device_map": "auto"}}
    one_gpu = {**plain, "pytorch": {"device": "cuda"}}
    assert config_hash(ExperimentConfig.model_validate(spread)) != config_hash(
        ExperimentConfig.model_validate(one_gpu)
    )
