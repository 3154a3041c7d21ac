"""The campaign's valid experiments, and the manifest entry of each (experiment, cycle).

Experiment ids are ``<name>_c<cycle>`` (the name made filesystem-safe); results land in
``DIR/<exp_id>/result.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llenergymeasure.files import safe_name
from llenergymeasure.orchestration.grid import GridExpansionResult
from llenergymeasure.orchestration.manifest import ManifestEntry


@dataclass(frozen=True)
class PlannedExperiment:
    """One valid experiment of the campaign (before cycles)."""

    name: str
    config_hash: str
    backend: str
    model: str
    precision: str
    config: dict[str, Any]
    baseline_s: float | None = None
    """Idle baseline it measures (None: disabled)."""
    baseline_cached: bool = True


def planned_experiments(grid: GridExpansionResult) -> list[PlannedExperiment]:
    """The grid's valid configs, each with its hash and the fields tables show."""
    from llenergymeasure.config.models import ExperimentConfig

    planned = []
    for raw, digest in zip(grid.valid_configs, grid.config_hashes, strict=True):
        config = ExperimentConfig.model_validate(raw)
        planned.append(
            PlannedExperiment(
                name=str(raw["name"]),
                config_hash=digest,
                backend=config.backend,
                model=config.model.name,
                precision=config.fp_precision,
                config=raw,
                baseline_s=config.baseline.duration_sec if config.baseline.enabled else None,
                baseline_cached=config.baseline.cache_ttl_sec > 0,
            )
        )
    return planned


def new_entry(
    experiment: PlannedExperiment, cycle: int, used_ids: set[str], *, exp_id: str | None = None
) -> ManifestEntry:
    """The entry of (experiment, cycle): ``exp_id`` as given (a result found on disk), else
    ``<name>_c<cycle>``, made unique against ``used_ids`` (taken names and directories)."""
    if exp_id is None:
        base, n = safe_name(experiment.name), 1
        exp_id = f"{base}_c{cycle}"
        while exp_id in used_ids:  # the name once belonged to another config: keep both
            suffix = experiment.config_hash[:8] + (f"-{n}" if n > 1 else "")
            exp_id, n = f"{base}-{suffix}_c{cycle}", n + 1
    used_ids.add(exp_id)
    return ManifestEntry(
        exp_id=exp_id,
        name=experiment.name,
        config_hash=experiment.config_hash,
        backend=experiment.backend,
        model=experiment.model,
        precision=experiment.precision,
        cycle=cycle,
        result_path=f"{exp_id}/result.json",
    )
