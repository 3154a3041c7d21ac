"""Campaign grid expansion and dry-run validation: the public API.

``expand_campaign_grid`` / ``iter_campaign_grid`` turn a grid (shared axes for every backend,
linked axes, per-backend axes, exclude entries, groups) into experiment config dicts, in a
deterministic order: backends, models, shared axes, linked axes, backend axes, as written, the
last axis varying fastest, group by group (``grid_expansion`` works out each backend's axes, names
and exclusions; ``grid_points`` builds the dicts). ``validate_campaign_grid`` validates every
point (``grid_validation`` does the work, in bounded memory) and returns the full lists:
valid configs with their hashes, filtered ones with reasons, duplicates, hardware warnings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from llenergymeasure.config._base import factory
from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.config.identity import config_hash
from llenergymeasure.log import logger
from llenergymeasure.orchestration.grid_expansion import plan_grid
from llenergymeasure.orchestration.grid_points import GridPoints, PlanExpander
from llenergymeasure.orchestration.grid_tally import (
    KINDS,
    GridTally,
    GridValidationIssue,
    IssueKind,
)
from llenergymeasure.orchestration.grid_validation import ValidatedGrid, validate_points

__all__ = [
    "GridExpansionResult",
    "GridPoints",
    "GridValidationIssue",
    "config_hash",
    "count_campaign_grid",
    "expand_campaign_grid",
    "iter_campaign_grid",
    "validate_campaign_grid",
]


class GridExpansionResult(BaseModel):
    """What validation kept, filtered, deduplicated and flagged, as full lists."""

    valid_configs: list[dict[str, Any]]
    config_hashes: list[str] = Field(
        default_factory=factory(list),
        description="sha256 of each valid config's effective settings.",
    )
    filtered_configs: list[GridValidationIssue]
    duplicates: list[GridValidationIssue] = Field(default_factory=factory(list))
    warnings: list[GridValidationIssue]
    backend_requirements: dict[str, str] = Field(
        default_factory=factory(dict),
        description="Said once per backend: what the backend itself needs.",
    )
    total_generated: int = Field(description="Every point generated, excluded ones included.")
    excluded: dict[str, int] = Field(
        default_factory=factory(dict),
        description="Points dropped by grid.exclude before validation, per rule (the first "
        "that matched).",
    )
    excluded_per_backend: dict[str, int] = Field(default_factory=factory(dict))
    notes: list[str] = Field(
        default_factory=factory(list), description="Exclude entries or groups that had no effect."
    )

    @classmethod
    def of(
        cls, grid: ValidatedGrid, issues: dict[IssueKind, list[GridValidationIssue]]
    ) -> GridExpansionResult:
        """The lists of a validation: its kept configs rebuilt, its issues as collected."""
        kept, tally = grid.kept, grid.tally
        return cls.model_construct(
            valid_configs=[kept.config(i) for i in range(len(kept))],
            config_hashes=[kept.digest(i) for i in range(len(kept))],
            filtered_configs=issues["filtered"],
            duplicates=issues["duplicates"],
            warnings=issues["warned"],
            backend_requirements=tally.backend_requirements,
            total_generated=tally.total,
            excluded=tally.excluded,
            excluded_per_backend=dict(tally.counts["excluded"]),
            notes=tally.notes,
        )

    def tally(self) -> GridTally:
        """The counts these lists add up to (what the summary and tables read)."""
        return GridTally.of_lists(
            [c.get("backend", "pytorch") for c in self.valid_configs],
            {
                "filtered": self.filtered_configs,
                "duplicates": self.duplicates,
                "warned": self.warnings,
            },
            self.total_generated,
            self.excluded,
            self.excluded_per_backend,
        )

    @property
    def excluded_count(self) -> int:
        return sum(self.excluded.values())

    @property
    def per_backend(self) -> dict[str, dict[str, int]]:
        """valid / filtered / duplicates / warned counts per backend, in first-seen order."""
        return self.tally().per_backend

    def grouped_reasons(self) -> list[tuple[str, int]]:
        """Filter reasons grouped by rule, most frequent first."""
        return self.tally().grouped_reasons()

    @property
    def summary(self) -> str:
        return self.tally().summary


# --- expansion -----------------------------------------------------------------------------


def count_campaign_grid(grid: CampaignGridConfig) -> int:
    """The exact number of points the grid expands to (excluded points left out), counted
    without expanding (works for any size)."""
    return sum(plan.count_kept() for plan in plan_grid(grid, None))


def iter_campaign_grid(
    grid: CampaignGridConfig, base_config: dict[str, Any] | None = None
) -> GridPoints:
    """Lazily yield one config dict per grid point, each with a readable ``name``.

    ``base_config`` is deep-merged under every point and never mutated; no two yielded dicts
    share mutable state.
    """
    prefix = (base_config or {}).get("name")
    return GridPoints(
        PlanExpander(plan, prefix, grid.models is not None) for plan in plan_grid(grid, base_config)
    )


def expand_campaign_grid(
    grid: CampaignGridConfig,
    base_config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Expand campaign grid into individual experiment config dicts.

    Cartesian product of backends x models x shared params x linked axes x backend-specific
    params (group by group, excluded points left out); the list form of
    :func:`iter_campaign_grid`.
    """
    configs = list(iter_campaign_grid(grid, base_config))
    logger.debug("expanded grid into {} configs", len(configs))
    return configs


# --- validation ----------------------------------------------------------------------------


def validate_campaign_grid(config_dicts: Iterable[dict[str, Any]]) -> GridExpansionResult:
    """Validate expanded grid configs via Pydantic dry-run instantiation.

    Tier 1: ``ExperimentConfig`` validation filters invalid combinations, with reasons.
    Tier 2: introspection's skip conditions flag configs needing special hardware (kept).
    Points that validate to an already-seen config are reported as duplicates and kept once.
    Input dicts are never mutated. The list form of ``validate_points``.
    """
    issues: dict[IssueKind, list[GridValidationIssue]] = {kind: [] for kind in KINDS}
    grid = validate_points(config_dicts, lambda kind, issue: issues[kind].append(issue))
    return GridExpansionResult.of(grid, issues)
