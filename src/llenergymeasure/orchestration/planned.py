"""The campaign's valid experiments, and the manifest entry of each (experiment, cycle).

Experiment ids are ``<name>_c<cycle>`` (the name made filesystem-safe); results land in
``DIR/<exp_id>/result.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llenergymeasure.orchestration.grid import GridExpansionResult
from llenergymeasure.orchestration.manifest import ManifestEntry


def safe_name(name: str) -> str:
    """A name usable as a directory: letters, digits and ``-._`` kept, the rest ``-``."""
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in name).strip(".")
    return safe or "experiment"


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


def new_entry(experiment: PlannedExperiment, cycle: int, used_ids: set[str]) -> ManifestEntry:
    exp_id = f"{safe_name(experiment.name)}_c{cycle}"
    if exp_id in used_ids:  # the name once belonged to another config: keep both results
        exp_id = f"{safe_name(experiment.name)}-{experiment.config_hash[:8]}_c{cycle}"
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
