"""The plan of a campaign: its valid experiments, the runs they make, what those will take,
and :class:`CampaignPlan`, everything decided before anything runs (``prepare`` decides it).

Experiment ids are ``<name>_c<cycle>`` (the name made filesystem-safe); results land in
``DIR/<exp_id>/result.json``. Validation keeps names unique as directory names, so a new
campaign's ids are unique without looking at any other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, overload

from llenergymeasure.config.campaign_config import CampaignConfig, ExecutionConfig
from llenergymeasure.exceptions import ConfigError, LLEMError
from llenergymeasure.files import safe_name
from llenergymeasure.orchestration.campaign.manifest import (
    Manifest,
    ManifestEntry,
    design_hash,
    manifest_fingerprint,
)
from llenergymeasure.orchestration.campaign.order import gap_between, iter_order
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

    def design_hash(self) -> str:
        """The digest of their config hashes in order (the manifest's ``design_hash``)."""
        kept = self._kept
        return design_hash(kept.digest(i) for i in range(len(kept)))


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


@dataclass
class DesignChange:
    """How the campaign file's experiment list differs from the manifest being resumed."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    cycles: tuple[int, int] | None = None
    order: tuple[str, str] | None = None
    campaign_name: tuple[str, str] | None = None

    @property
    def changed(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.renamed
            or self.cycles
            or self.order
            or self.campaign_name
        )

    def lines(self) -> list[str]:
        def names(items: Sequence[str]) -> str:
            shown = ", ".join(items[:10])
            return shown + (f", ... ({len(items) - 10} more)" if len(items) > 10 else "")

        lines = []
        if self.campaign_name:
            lines.append(f"campaign name: {self.campaign_name[0]} -> {self.campaign_name[1]}")
        if self.added:
            lines.append(f"added {len(self.added)} experiment(s), to run: {names(self.added)}")
        if self.removed:
            lines.append(
                f"removed {len(self.removed)} experiment(s), kept as skipped with their results: "
                f"{names(self.removed)}"
            )
        if self.renamed:
            lines.append(
                "renamed (same config): " + names([f"{a} -> {b}" for a, b in self.renamed])
            )
        if self.cycles:
            before, after = self.cycles
            what = "adds cycles" if after > before else "later cycles kept as skipped"
            lines.append(f"cycles: {before} -> {after} ({what})")
        if self.order:
            lines.append(
                f"order: {self.order[0]} -> {self.order[1]} (only the remaining runs' order changes)"
            )
        return lines


@dataclass
class DurationEstimate:
    """What the plan will take, as far as it is known."""

    runs: int
    gaps_s: float
    known_s: float
    """Sum of earlier total times of the runs that have one."""
    unknown_runs: int
    baselines_s: float = 0.0
    """Idle baselines the runs without earlier timings will measure (a lower bound for them)."""

    def text(self) -> str:
        if self.runs == 0:
            return "nothing to run"
        parts = f"{duration_text(self.gaps_s)} of configured gaps"
        if self.baselines_s:
            parts += f", {duration_text(self.baselines_s)} of idle baselines"
        if self.unknown_runs == 0:
            return f"about {duration_text(self.known_s + self.gaps_s)} (earlier timings + {parts})"
        floor = duration_text(self.known_s + self.gaps_s + self.baselines_s)
        if self.unknown_runs == self.runs:
            return f"unknown: no earlier timings of these experiments (at least {floor}: {parts})"
        return (
            f"at least {floor} ({self.unknown_runs} of {self.runs} runs have no earlier "
            f"timing; {parts})"
        )


def duration_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class NewRuns:
    """A new campaign's runs, worked out one at a time: a dry run shows the first few, counts
    and estimates them without holding a manifest entry per run; running builds the manifest."""

    experiments: PlannedExperiments
    execution: ExecutionConfig
    header: dict[str, Any] = field(default_factory=dict)
    """The manifest's fields other than its entries and design hash."""

    def __len__(self) -> int:
        return len(self.experiments) * self.execution.first_cycles

    def manifest(self) -> Manifest:
        return Manifest(
            **self.header,
            design_hash=self.experiments.design_hash(),
            entries=list(self.entries()),
        )

    def pairs(self) -> Iterator[tuple[int, int]]:
        """(experiment index, cycle) in run order."""
        execution = self.execution
        return iter_order(
            len(self.experiments), execution.first_cycles, execution.structure, execution.seed
        )

    def entries(self) -> Iterator[ManifestEntry]:
        """Each run's manifest entry, in run order (ids are unique: see the module docstring)."""
        used: set[str] = set()
        experiments = self.experiments
        if self.execution.first_cycles == 1:
            return (new_entry(experiments[i], cycle, used) for i, cycle in self.pairs())
        built: dict[int, PlannedExperiment] = {}  # once per experiment, not once per cycle
        return (
            new_entry(built.get(i) or built.setdefault(i, experiments[i]), cycle, used)
            for i, cycle in self.pairs()
        )

    def estimate(self) -> DurationEstimate:
        """What :meth:`CampaignPlan.estimate` says of these runs, counted without walking them:
        no run has an earlier timing; cycle gaps where a cycle starts (grouped: between
        repetitions), config gaps elsewhere; every uncached baseline, and the first baseline
        once when it is cached."""
        execution, experiments = self.execution, self.experiments
        n, cycles = len(experiments), execution.first_cycles
        runs = n * cycles
        if runs == 0:
            return DurationEstimate(0, 0.0, 0.0, 0)
        cycle_steps = n * (cycles - 1) if execution.structure == "grouped" else cycles - 1
        gaps = (
            cycle_steps * execution.cycle_gap_seconds
            + (runs - 1 - cycle_steps) * execution.config_gap_seconds
        )
        baselines = sum(
            count * cycles * info.baseline_s
            for info, count in experiments.info_counts()
            if info.baseline_s is not None and not info.baseline_cached
        )
        if any(info.baseline_s is not None for info, _ in experiments.info_counts()):
            first = next(
                info
                for info in (experiments.info(i) for i, _ in self.pairs())
                if info.baseline_s is not None
            )
            if first.baseline_cached and first.baseline_s is not None:
                baselines += first.baseline_s
        return DurationEstimate(runs, gaps, 0.0, runs, baselines)


@dataclass
class CampaignPlan:
    """Everything decided before anything runs; see :func:`prepare_campaign`."""

    campaign: CampaignConfig
    output_dir: Path
    experiments: PlannedExperiments
    mode: Literal["new", "resume", "fresh"]
    executor: str
    reuse_models: bool
    new_runs: NewRuns | None = None
    """A new campaign's runs, its manifest not built until :attr:`manifest` is first read."""
    built: Manifest | None = None
    """The manifest once there is one: a resumed campaign's from the start."""
    change: DesignChange = field(default_factory=DesignChange)
    notes: list[str] = field(default_factory=list)
    move_aside: list[Path] = field(default_factory=list)
    """What ``--fresh`` moves into ``.previous-<time>/``: only what the campaign owns."""
    damaged_manifest: bool = False
    """The manifest could not be read: the runner keeps it aside before writing a new one."""
    basis: str | None = None
    """Fingerprint of the manifest this plan was made against (None: there was none)."""
    replan: Callable[[], CampaignPlan] | None = field(default=None, repr=False)
    """Plans again from the disk as it is then (see :meth:`stale`)."""
    timings_s: dict[str, float] = field(default_factory=dict)
    """Mean earlier ``total_s`` per config hash (from results already in the directory)."""

    @property
    def manifest(self) -> Manifest:
        """The manifest the runner drives: a new campaign's is built here, on first use."""
        if self.built is None:
            assert self.new_runs is not None
            self.built = self.new_runs.manifest()
        return self.built

    @property
    def _pending(self) -> NewRuns | None:
        """The new runs while no manifest is built (None once it is, or when resuming)."""
        return self.new_runs if self.built is None else None

    def check_size(self) -> None:
        """Refuse a plan of more than ``execution.max_experiments`` experiments (``allow_large``,
        ``--allow-large``, runs it anyway): a prompt answered with ``--yes`` does not say the size
        was meant."""
        limit = self.campaign.execution.max_experiments
        experiments = len(self.experiments)
        if experiments <= limit:
            return
        raise ConfigError(
            f"the plan has {experiments:,} experiments ({self.runs:,} runs, estimated "
            f"{self.estimate().text()}), more than execution.max_experiments ({limit:,})",
            fix="check the grid (`llem campaign validate FILE` shows what it expands to); to run "
            "it anyway pass --allow-large, or raise execution.max_experiments in the campaign file",
        )

    def stale(self) -> bool:
        """True when the manifest on disk changed since this plan was made (another run moved
        on while this one waited at a prompt): acting on it could redo finished work."""
        return manifest_fingerprint(self.output_dir) != self.basis

    def experiment(self, config_hash: str) -> PlannedExperiment:
        """The planned experiment an entry runs."""
        found = self.experiments.get(config_hash)
        if found is None:
            raise LLEMError(f"no planned experiment has config hash {config_hash}")
        return found

    @property
    def to_run(self) -> list[ManifestEntry]:
        """Entries still to run, in run order."""
        return [e for e in self.manifest.entries if e.status not in ("completed", "skipped")]

    @property
    def runs(self) -> int:
        """How many runs are still to run."""
        pending = self._pending
        return len(pending) if pending is not None else len(self.to_run)

    def preview(self, count: int) -> list[ManifestEntry]:
        """The first ``count`` runs still to run, in run order."""
        pending = self._pending
        if pending is not None:
            return list(itertools.islice(pending.entries(), count))
        return self.to_run[:count]

    @property
    def completed(self) -> int:
        if self._pending is not None:
            return 0
        return sum(e.status == "completed" for e in self.manifest.entries)

    def estimate(self, entries: Sequence[ManifestEntry] | None = None) -> DurationEstimate:
        pending = self._pending
        if entries is None and pending is not None:
            return pending.estimate()
        entries = self.to_run if entries is None else entries
        execution = self.campaign.execution
        gaps = sum(gap_between(a, b, execution)[0] for a, b in itertools.pairwise(entries))
        known = [self.timings_s[e.config_hash] for e in entries if e.config_hash in self.timings_s]
        baselines, measured_once = 0.0, False
        for entry in entries:
            if entry.config_hash in self.timings_s:
                continue
            experiment = self.experiments.get(entry.config_hash)
            if experiment is None:
                continue
            if experiment.baseline_s is not None and (
                not experiment.baseline_cached or not measured_once
            ):
                baselines += experiment.baseline_s  # a cached one is measured once
                measured_once = True
        return DurationEstimate(
            len(entries), gaps, sum(known), len(entries) - len(known), baselines
        )
