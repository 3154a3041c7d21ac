"""Campaign grid expansion and dry-run validation: the public API (the seed's, and more).

``expand_campaign_grid`` / ``iter_campaign_grid`` turn a grid (shared axes for every backend,
linked axes, per-backend axes, exclude entries, groups) into experiment config dicts, in a
deterministic order: backends, models, shared axes, linked axes, backend axes, as written, the
last axis varying fastest, group by group. ``validate_campaign_grid`` dry-run validates them
into a ``GridExpansionResult``. The work lives in one module per job: ``grid_plan`` (what each
backend's axes, names and exclusions are), ``grid_points`` (the dicts), ``grid_validation``.
"""

from __future__ import annotations

from llenergymeasure.config.identity import config_hash
from llenergymeasure.orchestration.grid_points import (
    GridPoints,
    count_campaign_grid,
    expand_campaign_grid,
    iter_campaign_grid,
)
from llenergymeasure.orchestration.grid_validation import (
    GridExpansionResult,
    GridValidationIssue,
    validate_campaign_grid,
)

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
