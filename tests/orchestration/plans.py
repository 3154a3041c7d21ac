"""``plan_campaign``'s outcome as the full lists of the grid API, for tests that inspect them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llenergymeasure.config.loader import load_campaign_config
from llenergymeasure.orchestration.campaign.experiments import plan_campaign
from llenergymeasure.orchestration.grid import GridExpansionResult
from llenergymeasure.orchestration.grid_tally import KINDS, GridValidationIssue, IssueKind


def plan_lists(campaign: Any, path: Path) -> GridExpansionResult:
    """Its kept configs rebuilt, its issues collected through ``on_issue``."""
    issues: dict[IssueKind, list[GridValidationIssue]] = {kind: [] for kind in KINDS}
    grid = plan_campaign(campaign, path, on_issue=lambda kind, issue: issues[kind].append(issue))
    return GridExpansionResult.of(grid, issues)


def plan_file(path: Path) -> GridExpansionResult:
    return plan_lists(load_campaign_config(path), path)
