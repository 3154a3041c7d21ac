"""The predecessor's 4,224-entry explicit thesis file (generated equivalent) loads and plans:
the YAML guard bounds what aliases add, not how much a real file writes."""

from __future__ import annotations

from pathlib import Path

from llenergymeasure.config.loader import load_campaign_config
from llenergymeasure.config.yaml_reader import MAX_ALIAS_VALUES, MAX_DOCUMENT_BYTES
from llenergymeasure.orchestration.campaign.experiments import plan_campaign

from .thesis_file import ENTRIES, write_thesis_file


def test_the_4224_entry_thesis_file_validates(tmp_path: Path) -> None:
    path = write_thesis_file(tmp_path)
    text = path.read_text()
    assert 1_400_000 < len(text) < MAX_DOCUMENT_BYTES and "*" not in text and "&" not in text
    assert 2 * text.count(": ") > MAX_ALIAS_VALUES  # keys and values: more than aliases may add
    campaign = load_campaign_config(path)
    assert len(campaign.experiments) == ENTRIES
    plan = plan_campaign(campaign, path)
    assert plan.tally.total == plan.valid == ENTRIES  # none filtered, none a duplicate
