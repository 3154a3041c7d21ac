"""The campaign's valid experiments, and the manifest entry of each (experiment, cycle).

Experiment ids are ``<name>_c<cycle>`` (the name made filesystem-safe); results land in
``DIR/<exp_id>/result.json``. Validation keeps names unique as directory names, so a new
campaign's ids are unique without looking at any other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, overload

from llenergymeasure.files import safe_name
from llenergymeasure.orchestration.campaign.manifest import ManifestEntry
from llenergymeasure.orchestration.grid_kept import KeptPoints, PointInfo
from llenergymeasure.orchestration.grid_validation import ValidatedGrid


@dataclass(frozen=True)
class PlannedExperiment:
    """One valid experiment of the campaign (before cycles)."""

    name: str
    config_hash: str
    backend: str
    model: str
    precision: str
    build: Callable[[], dict[str, Any]] = field(repr=False, compare=False)
    """Builds the experiment's config dict (a fresh one per call)."""
    baseline_s: float | None = None
    """Idle baseline it measures (None: disabled)."""
    baseline_cached: bool = True
    energy_source: str = "auto"

    @property
    def config(self) -> dict[str, Any]:
        return self.build()

    @cached_property
    def dir_name(self) -> str:
        """The name made filesystem-safe: its result directories are ``<dir_name>_c<cycle>``."""
        return safe_name(self.name)


class PlannedExperiments(Sequence[PlannedExperiment]):
    """The campaign's valid experiments in validation order, held as compactly as validation
    kept them (see ``KeptPoints``): an experiment, and its config, is built when asked for."""

    def __init__(self, kept: KeptPoints) -> None:
        self._kept = kept

    def __len__(self) -> int:
        return len(self._kept)

    @overload
    def __getitem__(self, index: int) -> PlannedExperiment: ...
    @overload
    def __getitem__(self, index: slice) -> list[PlannedExperiment]: ...
    def __getitem__(self, index: int | slice) -> PlannedExperiment | list[PlannedExperiment]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        kept, info = self._kept, self._kept.info(index)
        return PlannedExperiment(
            name=kept.name(index),
            config_hash=kept.digest(index),
            backend=info.backend,
            model=info.model,
            precision=info.precision,
            build=lambda: kept.config(index),
            baseline_s=info.baseline_s,
            baseline_cached=info.baseline_cached,
            energy_source=info.energy_source,
        )

    def __iter__(self) -> Iterator[PlannedExperiment]:
        return (self[i] for i in range(len(self)))

    def get(self, config_hash: str) -> PlannedExperiment | None:
        """The experiment with this config hash, or None."""
        index = self._kept.find_hash(config_hash)
        return None if index is None else self[index]

    def info(self, index: int) -> PointInfo:
        """What tables and estimates need of one experiment, without building it."""
        return self._kept.info(index)

    def info_counts(self) -> list[tuple[PointInfo, int]]:
        """Each distinct info with how many experiments have it."""
        return list(zip(self._kept.infos, self._kept.info_counts, strict=True))

    def config_hashes(self) -> Iterator[str]:
        return (self._kept.digest(i) for i in range(len(self)))


def planned_experiments(grid: ValidatedGrid) -> PlannedExperiments:
    """The grid's valid experiments, each with its hash and the fields tables show."""
    return PlannedExperiments(grid.kept)


def new_entry(
    experiment: PlannedExperiment, cycle: int, used_ids: set[str], *, exp_id: str | None = None
) -> ManifestEntry:
    """The entry of (experiment, cycle): ``exp_id`` as given (a result found on disk), else
    ``<name>_c<cycle>``, made unique against ``used_ids`` (taken names and directories)."""
    if exp_id is None:
        base, n = experiment.dir_name, 1
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
