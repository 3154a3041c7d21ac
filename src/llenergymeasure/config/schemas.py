"""JSON Schemas of the YAML files a user writes (for editors and CI checks).

Its own module because it needs both the experiment and the campaign models, while
``introspection`` (imported by ``campaign_config``) must not import the campaign model.
"""

from __future__ import annotations

from typing import Any

from llenergymeasure.config.campaign_config import CampaignConfig
from llenergymeasure.config.models import ExperimentConfig


def experiment_json_schema() -> dict[str, Any]:
    """JSON Schema of an experiment YAML."""
    return ExperimentConfig.model_json_schema()


def campaign_json_schema() -> dict[str, Any]:
    """JSON Schema of a campaign YAML."""
    return CampaignConfig.model_json_schema()
