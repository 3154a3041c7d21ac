"""The resolved experiment list of a campaign: its grid points plus explicitly listed experiments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llenergymeasure.config.campaign_config import CampaignConfig
from llenergymeasure.config.dicts import deep_merge, expand_model_shorthand
from llenergymeasure.config.loader import check_experiment_file, load_campaign_config, read_yaml
from llenergymeasure.exceptions import ConfigError
from llenergymeasure.orchestration.grid import GridPoints, count_campaign_grid, iter_campaign_grid
from llenergymeasure.orchestration.grid_explicit import Entry, OverridePoints
from llenergymeasure.orchestration.grid_validation import IssueSink, ValidatedGrid, validate_points


def iter_campaign_experiments(
    campaign: CampaignConfig, campaign_file: str | Path | None = None
) -> GridPoints:
    """Grid points first, then explicit experiments (paths relative to the campaign file).

    ``base_config`` lies under both; an explicit experiment is named after its ``name`` key or
    its file's stem.
    """
    base = campaign.base_config if isinstance(campaign.base_config, dict) else {}
    points = iter_campaign_grid(campaign.grid, base) if campaign.grid is not None else GridPoints()
    explicit = list(_explicit_experiments(campaign, campaign_file, base))  # each file read now
    return points.followed_by(OverridePoints(explicit))


def _explicit_experiments(
    campaign: CampaignConfig, campaign_file: str | Path | None, base: dict[str, Any]
) -> Iterator[Entry]:
    root = Path(campaign_file).parent if campaign_file else Path.cwd()
    files: dict[Path, tuple[dict[str, Any], Any]] = {}  # each file read and checked once
    base = expand_model_shorthand(base)
    for index, explicit in enumerate(campaign.experiments):
        under, file_name, stem = base, None, f"experiment{index + 1}"
        if explicit.config is not None:
            path = root / explicit.config
            if path not in files:
                read, lines = read_yaml(path)
                check_experiment_file(read, path, lines)
                files[path] = (deep_merge(base, expand_model_shorthand(read)), read.get("name"))
            (under, file_name), stem = files[path], path.stem
        yield under, explicit.overrides, explicit.overrides.get("name") or file_name or stem


MAX_PLANNED_POINTS = 10_000_000
"""The most grid points a campaign may expand to: beyond it, planning alone takes hours."""
PLAN_POINT_S = 20e-6
"""About what expanding and validating one point costs (``benchmarks/grid_bench.py``)."""


def check_campaign_size(campaign: CampaignConfig) -> int:
    """The exact number of points the campaign expands to (counted, never expanded); a
    ConfigError when it is beyond :data:`MAX_PLANNED_POINTS`."""
    points = count_campaign_grid(campaign.grid) if campaign.grid is not None else 0
    total = points + len(campaign.experiments)
    if total > MAX_PLANNED_POINTS:
        cycles = campaign.execution.cycles
        raise ConfigError(
            f"the campaign expands to {total:,} experiments (x {cycles} cycles), more than "
            f"the {MAX_PLANNED_POINTS:,} llem plans: validating them alone would take about "
            f"{_human_duration(total * PLAN_POINT_S)}, and running them at one second each "
            f"{_human_duration(total * cycles)}",
            where="grid",
            fix="split the campaign, use fewer values per axis, or drop combinations with "
            "grid.exclude / linked axes",
        )
    return total


def _human_duration(seconds: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.3g} {unit}" if value < 1e6 else f"{value:.2e} {unit}"
    return f"{seconds / 60:.1f} minutes"


def plan_campaign(
    campaign: CampaignConfig,
    campaign_file: str | Path | None = None,
    *,
    on_issue: IssueSink | None = None,
) -> ValidatedGrid:
    """Expand and dry-run validate every experiment of the campaign (sized first), in memory
    that does not grow with the grid's size beyond ``KeptPoints``'s few bytes per kept point;
    ``on_issue`` receives every filtered, duplicate or flagged point."""
    points = check_campaign_size(campaign)
    return validate_points(
        iter_campaign_experiments(campaign, campaign_file), on_issue, expected=points
    )


def load_and_plan(
    campaign_file: Path, *, on_issue: IssueSink | None = None
) -> tuple[CampaignConfig, ValidatedGrid]:
    """A campaign file, loaded and planned: the first step of every command that runs or
    shows one (``llem campaign validate``/``run``, :func:`runner.run_campaign`)."""
    campaign = load_campaign_config(campaign_file)
    return campaign, plan_campaign(campaign, campaign_file, on_issue=on_issue)
