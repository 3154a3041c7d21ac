"""The campaign runner: every valid experiment of a campaign, in every cycle, measured in a
planned order with gaps, thermal waits and model reuse, tracked in a manifest that survives
crashes, then summarised across cycles.

Two steps, so a dry run and a confirmation prompt can sit between them:

* :func:`prepare_campaign` reads the disk (an existing manifest, earlier results) and decides
  what will run, in which order; it writes nothing.
* :class:`CampaignRunner` runs the prepared plan: manifest rewritten atomically after every
  change, each (experiment, cycle) through an executor, statistics and tables at the end.

Order (``execution.structure``): interleaved ``A B C A B C``; shuffled, a seeded permutation per
cycle (``random.Random(f"{seed}:{cycle}")``; consecutive cycles never repeat an order when there
are at least two experiments; reruns reproduce it); grouped ``A A B B C C``.

Gaps: ``cycle_gap_seconds`` where a new cycle starts (grouped: between repetitions of one
experiment), ``config_gap_seconds`` between any other two consecutive experiments.

Experiment ids are ``<name>_c<cycle>`` (the name made filesystem-safe); results land in
``DIR/<exp_id>/result.json``. Torch is never imported here; the executor imports it when an
experiment runs.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loguru import logger

from llenergymeasure.config.campaign_config import CampaignConfig, ExecutionConfig
from llenergymeasure.exceptions import ConfigError, LLEMError
from llenergymeasure.orchestration.executors.base import (
    Executor as ExecutorProtocol,
)
from llenergymeasure.orchestration.executors.base import (
    ExperimentTask,
    describe_error,
    error_headline,
)
from llenergymeasure.orchestration.grid import GridExpansionResult
from llenergymeasure.orchestration.manifest import (
    LOG_FILE,
    PREVIOUS_PREFIX,
    Manifest,
    ManifestEntry,
    campaign_lock,
    design_hash,
    load_manifest,
    manifest_path,
    move_aside,
    now_iso,
    result_file,
    result_is_valid,
)
from llenergymeasure.orchestration.schedule import Clock, Scheduler, Sleep

Structure = Literal["interleaved", "shuffled", "grouped"]
TemperatureProbe = Callable[[], dict[int, float]]
THERMAL_POLL_S = 5.0
INTERRUPT_EXIT = 130


# --- the plan -----------------------------------------------------------------------------------


def plan_order(n: int, cycles: int, structure: str, seed: int = 42) -> list[tuple[int, int]]:
    """The run order as (experiment index, cycle) pairs, cycles numbered from 1."""
    if n <= 0 or cycles <= 0:
        return []
    indices = list(range(n))
    if structure == "grouped":
        return [(i, c) for i in indices for c in range(1, cycles + 1)]
    if structure == "interleaved":
        return [(i, c) for c in range(1, cycles + 1) for i in indices]
    if structure != "shuffled":
        raise ValueError(f"unknown structure {structure!r}")
    order: list[tuple[int, int]] = []
    previous: list[int] | None = None
    for cycle in range(1, cycles + 1):
        rng = random.Random(f"{seed}:{cycle}")
        current = indices[:]
        rng.shuffle(current)
        while n > 1 and current == previous:  # each cycle differs from the one before
            rng.shuffle(current)
        order.extend((i, cycle) for i in current)
        previous = current
    return order


def safe_name(name: str) -> str:
    """A name usable as a directory: letters, digits and ``-._`` kept, the rest ``-``."""
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in name).strip(".")
    return safe or "experiment"


def gap_between(
    previous: ManifestEntry, entry: ManifestEntry, execution: ExecutionConfig
) -> tuple[float, str]:
    """Seconds to pause between two consecutive experiments, and which gap it is."""
    if execution.structure == "grouped":
        new_cycle = previous.config_hash == entry.config_hash
    else:
        new_cycle = previous.cycle != entry.cycle
    if new_cycle:
        return execution.cycle_gap_seconds, "cycle gap"
    return execution.config_gap_seconds, "config gap"


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


def choose_executor(execution: ExecutionConfig) -> tuple[str, list[str]]:
    """The executor that will run, with a note when it differs from the one asked for."""
    if execution.experiment_timeout_seconds is not None and execution.executor == "inprocess":
        return "subprocess", [
            f"execution.experiment_timeout_seconds={execution.experiment_timeout_seconds:g}: "
            "each experiment runs in its own process so the timeout can be enforced "
            "(models are loaded cold, no reuse); set executor: subprocess to silence this note"
        ]
    return execution.executor, []


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
        parts = f"{_duration(self.gaps_s)} of configured gaps"
        if self.baselines_s:
            parts += f", {_duration(self.baselines_s)} of idle baselines"
        if self.unknown_runs == 0:
            return f"about {_duration(self.known_s + self.gaps_s)} (earlier timings + {parts})"
        floor = _duration(self.known_s + self.gaps_s + self.baselines_s)
        if self.unknown_runs == self.runs:
            return f"unknown: no earlier timings of these experiments (at least {floor}: {parts})"
        return (
            f"at least {floor} ({self.unknown_runs} of {self.runs} runs have no earlier "
            f"timing; {parts})"
        )


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class CampaignPlan:
    """Everything decided before anything runs; see :func:`prepare_campaign`."""

    campaign: CampaignConfig
    output_dir: Path
    experiments: list[PlannedExperiment]
    manifest: Manifest
    mode: Literal["new", "resume", "fresh"]
    executor: str
    reuse_models: bool
    change: DesignChange = field(default_factory=DesignChange)
    notes: list[str] = field(default_factory=list)
    move_aside: bool = False
    timings_s: dict[str, float] = field(default_factory=dict)
    """Mean earlier ``total_s`` per config hash (from results already in the directory)."""

    @property
    def by_hash(self) -> dict[str, PlannedExperiment]:
        return {e.config_hash: e for e in self.experiments}

    @property
    def to_run(self) -> list[ManifestEntry]:
        """Entries still to run, in run order."""
        return [e for e in self.manifest.entries if e.status not in ("completed", "skipped")]

    @property
    def completed(self) -> int:
        return sum(e.status == "completed" for e in self.manifest.entries)

    def estimate(self, entries: Sequence[ManifestEntry] | None = None) -> DurationEstimate:
        entries = self.to_run if entries is None else entries
        execution = self.campaign.execution
        gaps = sum(gap_between(a, b, execution)[0] for a, b in itertools.pairwise(entries))
        known = [self.timings_s[e.config_hash] for e in entries if e.config_hash in self.timings_s]
        baselines, measured_once = 0.0, False
        by_hash = self.by_hash
        for entry in entries:
            experiment = by_hash.get(entry.config_hash)
            if entry.config_hash in self.timings_s or experiment is None:
                continue
            if experiment.baseline_s is not None and (
                not experiment.baseline_cached or not measured_once
            ):
                baselines += experiment.baseline_s  # a cached one is measured once
                measured_once = True
        return DurationEstimate(
            len(entries), gaps, sum(known), len(entries) - len(known), baselines
        )


def _entry(experiment: PlannedExperiment, cycle: int, used_ids: set[str]) -> ManifestEntry:
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


def _earlier_timings(directory: Path, entries: Sequence[ManifestEntry]) -> dict[str, float]:
    from llenergymeasure.results.schema import load_result

    seen: dict[str, list[float]] = {}
    for entry in entries:
        if entry.status != "completed":
            continue
        try:
            result = load_result(result_file(directory, entry))
        except LLEMError:
            continue
        seen.setdefault(entry.config_hash, []).append(result.timings.total_s)
    return {digest: statistics.fmean(values) for digest, values in seen.items()}


def _has_content(directory: Path) -> bool:
    return directory.is_dir() and any(
        not p.name.startswith(PREVIOUS_PREFIX) and p.name != ".campaign.lock"
        for p in directory.iterdir()
    )


def prepare_campaign(
    campaign: CampaignConfig,
    grid: GridExpansionResult,
    output_dir: Path,
    *,
    resume: bool = False,
    fresh: bool = False,
    cycles: int | None = None,
    campaign_file: Path | None = None,
) -> CampaignPlan:
    """Decide what will run and in which order; reads the disk, writes nothing.

    An existing manifest without ``resume`` or ``fresh`` is a ConfigError naming both flags.
    """
    if resume and fresh:
        raise ConfigError(
            "--resume and --fresh exclude each other",
            fix="--resume continues the campaign in the directory; --fresh moves it aside and starts over",
        )
    if cycles is not None:
        execution = campaign.execution.model_copy(update={"cycles": cycles})
        campaign = campaign.model_copy(update={"execution": execution})
    execution = campaign.execution
    experiments = planned_experiments(grid)
    if not experiments:
        raise LLEMError(
            "the campaign has no valid experiment to run",
            fix="`llem campaign validate FILE` shows why each one was filtered",
        )
    executor, notes = choose_executor(execution)
    if execution.structure == "grouped" and campaign.schedule.interval_seconds:
        notes.append(
            "structure grouped: schedule.interval_seconds paces the start of each experiment's block"
        )
    existing = load_manifest(output_dir)
    if existing is not None and not (resume or fresh):
        counts = existing.counts()
        total = len([e for e in existing.entries if e.status != "skipped"])
        raise ConfigError(
            f"{output_dir} already holds campaign '{existing.campaign_name}' "
            f"({counts['completed']}/{total} completed, last update {existing.updated_at})",
            where=str(manifest_path(output_dir)),
            fix="--resume to continue it, --fresh to move it aside (nothing is deleted) and "
            "start over, or -o to use another directory",
        )
    common: dict[str, Any] = {
        "campaign": campaign,
        "output_dir": output_dir,
        "experiments": experiments,
        "executor": executor,
        "reuse_models": not campaign.cold_start.force_cold_start and executor == "inprocess",
        "notes": notes,
    }
    file_text = str(campaign_file) if campaign_file is not None else None
    if existing is not None and resume:
        from llenergymeasure.orchestration.manifest import lock_holder

        holder = lock_holder(output_dir)
        if holder is not None:
            notes.append(
                f"a campaign process (pid {holder}) is still running in {output_dir}: "
                "running entries below may be live"
            )
        manifest, change, more = _reconcile(existing, experiments, campaign, output_dir, executor)
        manifest.campaign_file = file_text or manifest.campaign_file
        plan = CampaignPlan(manifest=manifest, mode="resume", change=change, **common)
        plan.notes.extend(more)
        plan.timings_s = _earlier_timings(output_dir, manifest.entries)
        return plan

    now = now_iso()
    used: set[str] = set()
    manifest = Manifest(
        campaign_name=campaign.campaign_name,
        design_hash=design_hash([e.config_hash for e in experiments]),
        created_at=now,
        updated_at=now,
        cycles=execution.cycles,
        structure=execution.structure,
        seed=execution.seed,
        executor=executor,
        campaign_file=file_text,
        entries=[
            _entry(experiments[i], cycle, used)
            for i, cycle in plan_order(
                len(experiments), execution.cycles, execution.structure, execution.seed
            )
        ],
    )
    plan = CampaignPlan(manifest=manifest, mode="fresh" if fresh else "new", **common)
    if fresh:
        plan.move_aside = _has_content(output_dir)
    else:
        if resume:
            plan.notes.append(f"nothing to resume in {output_dir}: starting a new campaign")
        clash = next((e for e in manifest.entries if result_file(output_dir, e).exists()), None)
        if clash is not None:
            raise ConfigError(
                f"{output_dir} already holds results without a campaign manifest "
                f"(e.g. {result_file(output_dir, clash)})",
                fix="use --fresh to move them aside (nothing is deleted), or -o to use another directory",
            )
    return plan


def _reconcile(
    old: Manifest,
    experiments: list[PlannedExperiment],
    campaign: CampaignConfig,
    directory: Path,
    executor: str,
) -> tuple[Manifest, DesignChange, list[str]]:
    """The resumed manifest: completed runs kept (a result on disk is the proof), the rest
    rerun, new experiments added, removed ones kept as skipped with their results."""
    execution = campaign.execution
    change = DesignChange()
    notes: list[str] = []
    by_key = {e.key: e.model_copy() for e in old.entries}
    old_names: dict[str, str] = {}  # the experiments of the design being resumed
    for e in old.entries:
        if e.status != "skipped":
            old_names[e.config_hash] = e.name
    new_hashes = {e.config_hash for e in experiments}
    change.added = [e.name for e in experiments if e.config_hash not in old_names]
    change.removed = [name for digest, name in old_names.items() if digest not in new_hashes]
    change.renamed = [
        (old_names[e.config_hash], e.name)
        for e in experiments
        if e.config_hash in old_names and old_names[e.config_hash] != e.name
    ]
    if old.cycles != execution.cycles:
        change.cycles = (old.cycles, execution.cycles)
    before = f"{old.structure} (seed {old.seed})"
    after = f"{execution.structure} (seed {execution.seed})"
    if before != after:
        change.order = (before, after)
    if old.campaign_name != campaign.campaign_name:
        change.campaign_name = (old.campaign_name, campaign.campaign_name)

    used = {e.exp_id for e in old.entries}
    recovered = 0
    entries: list[ManifestEntry] = []
    for index, cycle in plan_order(
        len(experiments), execution.cycles, execution.structure, execution.seed
    ):
        experiment = experiments[index]
        entry = by_key.pop((experiment.config_hash, cycle), None)
        if entry is None:
            entries.append(_entry(experiment, cycle, used))
            continue
        entry.name = experiment.name
        entry.model, entry.precision = experiment.model, experiment.precision
        entry.result_path = entry.result_path or f"{entry.exp_id}/result.json"
        if result_is_valid(directory, entry):
            if entry.status != "completed":
                recovered += entry.status in ("running", "interrupted", "failed", "pending")
                entry.status, entry.error, entry.reason = "completed", None, None
        elif entry.status == "completed":
            entry.status = "pending"
            entry.error = "its result file was missing or unreadable on resume; it runs again"
        elif entry.status == "running":
            entry.status = "interrupted"
            entry.error = "the campaign process stopped while this experiment ran (killed?)"
        elif entry.status == "skipped":
            entry.status, entry.reason = "pending", None
        entries.append(entry)
    for entry in by_key.values():  # no longer part of the design: kept, never deleted
        if entry.status != "skipped":
            entry.reason = (
                "removed from the campaign file"
                if entry.config_hash not in new_hashes
                else f"cycle {entry.cycle} is beyond cycles={execution.cycles}"
            )
            if entry.status == "running":
                entry.error = "the campaign process stopped while this experiment ran (killed?)"
            entry.status = "skipped"
        entries.append(entry)
    if recovered:
        notes.append(
            f"{recovered} experiment(s) had finished but were not yet recorded as such "
            "(the process stopped between writing the result and the manifest): marked completed"
        )
    manifest = old.model_copy(deep=True)
    manifest.entries = entries
    manifest.campaign_name = campaign.campaign_name
    manifest.design_hash = design_hash([e.config_hash for e in experiments])
    manifest.cycles = execution.cycles
    manifest.structure = execution.structure
    manifest.seed = execution.seed
    manifest.executor = executor
    return manifest, change, notes


# --- running ------------------------------------------------------------------------------------


class CampaignObserver:
    """Hooks for progress display; every method is optional (the defaults do nothing)."""

    def on_start(self, plan: CampaignPlan, total: int) -> None: ...

    def on_wait(self, reason: str, seconds: float) -> None: ...

    def on_experiment_start(
        self, index: int, total: int, entry: ManifestEntry, eta_s: float | None
    ) -> None: ...

    def on_progress(self, entry: ManifestEntry, message: str) -> None: ...

    def on_experiment_end(
        self, index: int, total: int, entry: ManifestEntry, eta_s: float | None
    ) -> None: ...

    def on_finish(self, outcome: CampaignOutcome) -> None: ...


@dataclass
class CampaignOutcome:
    """How a campaign run ended."""

    status: Literal["completed", "completed_with_failures", "stopped", "interrupted"]
    output_dir: Path
    counts: dict[str, int]
    failures: list[ManifestEntry]
    executed: int
    wall_s: float
    gaps_s: float = 0.0
    thermal_wait_s: float = 0.0
    schedule_wait_s: float = 0.0
    executor_s: float = 0.0
    export_s: float = 0.0
    release_s: float = 0.0
    stop_reason: str | None = None
    exports: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    moved_to: Path | None = None
    webhook_sent: bool | None = None

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return INTERRUPT_EXIT
        return 0 if self.status == "completed" else 1

    def payload(self, manifest: Manifest) -> dict[str, Any]:
        """A JSON-ready summary (for the webhook)."""
        return {
            "campaign_name": manifest.campaign_name,
            "status": self.status,
            "output_dir": str(self.output_dir),
            "counts": self.counts,
            "executed": self.executed,
            "wall_s": round(self.wall_s, 3),
            "stop_reason": self.stop_reason,
            "failures": [
                {
                    "exp_id": e.exp_id,
                    "name": e.name,
                    "cycle": e.cycle,
                    "error": error_headline(e.error),
                }
                for e in self.failures
            ],
            "created_at": manifest.created_at,
            "updated_at": manifest.updated_at,
        }


class ThermalGuard:
    """Waits until every GPU is below ``max_temperature_c`` (up to a timeout) before an
    experiment. Without NVML it logs once and never waits."""

    def __init__(
        self,
        execution: ExecutionConfig,
        *,
        temperatures: TemperatureProbe | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        poll_s: float = THERMAL_POLL_S,
    ) -> None:
        self.settings = execution.thermal_wait
        self.enabled = self.settings.enabled
        self._probe = temperatures
        self.sleep, self.clock, self.poll_s = sleep, clock, poll_s
        self.waited_s = 0.0
        self.skipped_reason: str | None = None

    def _read(self) -> dict[int, float] | None:
        probe = self._probe
        if probe is None:
            from llenergymeasure.measurement.energy.nvml import gpu_temperatures_c

            probe = self._probe = gpu_temperatures_c
        try:
            return probe()
        except LLEMError as err:
            self.enabled = False
            self.skipped_reason = err.what
            logger.info("thermal wait skipped: no GPU temperature available ({})", err.what)
            return None

    def wait(self, on_wait: Callable[[str, float], None] | None = None) -> float:
        """Seconds waited (0 when already cool, disabled or unavailable)."""
        if not self.enabled:
            return 0.0
        limit = self.settings.max_temperature_c
        started = self.clock()
        announced = False
        while True:
            temps = self._read()
            if not temps:
                break
            hottest = max(temps.values())
            if hottest < limit:
                break
            elapsed = self.clock() - started
            if elapsed >= self.settings.timeout_seconds:
                logger.warning(
                    "GPU still at {:.0f} C after {:.0f} s (limit {:.0f} C): continuing",
                    hottest,
                    elapsed,
                    limit,
                )
                break
            if not announced and on_wait is not None:
                on_wait(
                    f"GPU at {hottest:.0f} C, cooling below {limit:.0f} C",
                    self.settings.timeout_seconds,
                )
                announced = True
            self.sleep(min(self.poll_s, max(0.0, self.settings.timeout_seconds - elapsed)))
        waited = self.clock() - started
        self.waited_s += waited
        return waited


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM handled like Ctrl-C (mark interrupted, save, exit) while the campaign runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class CampaignRunner:
    """Runs a :class:`CampaignPlan`. Time, sleep, the executor and the GPU temperature probe
    are injectable for tests."""

    def __init__(
        self,
        plan: CampaignPlan,
        *,
        executor: ExecutorProtocol | None = None,
        observer: CampaignObserver | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
        temperatures: TemperatureProbe | None = None,
        export_formats: Sequence[str] = ("csv", "parquet"),
        bootstrap_resamples: int | None = None,
        log_to_file: bool = True,
    ) -> None:
        self.plan = plan
        self.observer = observer or CampaignObserver()
        self.sleep, self.clock = sleep, clock
        self._executor = executor
        self._temperatures = temperatures
        self.export_formats = tuple(export_formats)
        self.bootstrap_resamples = bootstrap_resamples
        self.log_to_file = log_to_file
        self._running: ManifestEntry | None = None

    def _make_executor(self) -> ExecutorProtocol:
        if self._executor is not None:
            return self._executor
        from llenergymeasure.orchestration.executors import create_executor

        execution = self.plan.campaign.execution
        if self.plan.executor == "subprocess":
            return create_executor("subprocess", timeout_s=execution.experiment_timeout_seconds)
        return create_executor("inprocess", reuse_models=self.plan.reuse_models)

    def _save(self) -> None:
        self.plan.manifest.save(self.plan.output_dir)

    def run(self) -> CampaignOutcome:
        """Run every entry still to run. Ctrl-C (or SIGTERM) marks the running experiment
        interrupted, saves the manifest and returns an ``interrupted`` outcome (exit 130)."""
        directory = self.plan.output_dir
        started = self.clock()
        with campaign_lock(directory):
            moved_to = move_aside(directory) if self.plan.move_aside else None
            sink = None
            if self.log_to_file:
                sink = logger.add(
                    directory / LOG_FILE,
                    level="INFO",
                    format="{time:YYYY-MM-DD HH:mm:ss} {level: <7} {message}",
                )
            try:
                outcome = self._run_locked(started, moved_to)
            finally:
                if sink is not None:
                    logger.remove(sink)
        self.observer.on_finish(outcome)
        return outcome

    def _run_locked(self, started: float, moved_to: Path | None) -> CampaignOutcome:
        plan, directory = self.plan, self.plan.output_dir
        manifest = plan.manifest
        if moved_to is not None:
            logger.info("previous run moved to {}", moved_to)
        logger.info(
            "campaign {} ({}): {} run(s) to do, executor {}, model reuse {}",
            manifest.campaign_name,
            plan.mode,
            len(plan.to_run),
            plan.executor,
            "on" if plan.reuse_models else "off",
        )
        for line in plan.change.lines() + plan.notes:
            logger.info("{}", line)
        manifest.status = "running"
        detail = "; ".join(plan.change.lines() + plan.notes) or None
        manifest.log(
            {"new": "started", "fresh": "started fresh", "resume": "resumed"}[plan.mode], detail
        )
        if moved_to is not None:
            manifest.log("moved previous run aside", str(moved_to))
        self._save()
        executor = self._make_executor()
        thermal = ThermalGuard(
            plan.campaign.execution,
            temperatures=self._temperatures,
            sleep=self.sleep,
            clock=self.clock,
        )
        outcome = CampaignOutcome(
            status="completed",
            output_dir=directory,
            counts={},
            failures=[],
            executed=0,
            wall_s=0.0,
            moved_to=moved_to,
            notes=list(plan.notes),
        )
        try:
            with _sigterm_as_interrupt():
                self._loop(executor, thermal, outcome)
        except KeyboardInterrupt:
            outcome.status = "interrupted"
            self._mark_interrupted()
            manifest.status = "interrupted"
            manifest.log("interrupted", "Ctrl-C or SIGTERM")
            self._save()
            logger.warning("campaign interrupted; `--resume` continues it")
        except Exception as error:  # a bug or a full disk: record what we can, then surface it
            if self._running is not None:
                self._running.status = "failed"
                self._running.error = describe_error(error)
                self._running.finished_at = now_iso()
            manifest.status = "stopped"
            manifest.log("stopped by an error", str(error))
            with contextlib.suppress(Exception):
                self._save()
            raise
        finally:
            self._running = None
            released = time.perf_counter()
            executor.close()
            outcome.release_s = time.perf_counter() - released
        if outcome.status != "interrupted":
            failed = any(e.status == "failed" for e in manifest.entries)
            if outcome.stop_reason:
                outcome.status = "stopped"
            elif failed:
                outcome.status = "completed_with_failures"
            manifest.status = outcome.status
            manifest.log(outcome.status, outcome.stop_reason)
            self._save()
        outcome.thermal_wait_s = thermal.waited_s
        outcome.counts = manifest.counts()
        outcome.failures = [e for e in manifest.entries if e.status in ("failed", "interrupted")]
        exported = time.perf_counter()
        self._export(outcome)
        outcome.export_s = time.perf_counter() - exported
        outcome.wall_s = self.clock() - started
        if outcome.status != "interrupted":
            from llenergymeasure.orchestration.notify import notify

            outcome.webhook_sent = notify(
                plan.campaign.notify, outcome.status, outcome.payload(manifest)
            )
        logger.info(
            "campaign {}: {} in {:.1f} s{}",
            outcome.status,
            ", ".join(f"{n} {k}" for k, n in outcome.counts.items() if n),
            outcome.wall_s,
            f" ({outcome.stop_reason})" if outcome.stop_reason else "",
        )
        return outcome

    def _mark_interrupted(self) -> None:
        entry = self._running
        if entry is None:
            return
        entry.finished_at = now_iso()
        if result_is_valid(self.plan.output_dir, entry):  # it finished just before Ctrl-C
            entry.status, entry.error = "completed", None
        else:
            entry.status = "interrupted"
            entry.error = "interrupted (Ctrl-C or SIGTERM); --resume runs it again"

    def _loop(
        self, executor: ExecutorProtocol, thermal: ThermalGuard, outcome: CampaignOutcome
    ) -> None:
        plan, campaign = self.plan, self.plan.campaign
        execution = campaign.execution
        entries = plan.to_run
        total = len(entries)
        by_hash = plan.by_hash
        self.observer.on_start(plan, total)
        scheduler = Scheduler(campaign.schedule, clock=self.clock, sleep=self.sleep)
        if scheduler.active:
            scheduler.wait_for_start(self.observer.on_wait)
            outcome.schedule_wait_s = scheduler.waited_s
        units: set[Any] = set()
        previous: ManifestEntry | None = None
        consecutive = 0
        durations: list[float] = []
        limit = execution.max_consecutive_failures
        for index, entry in enumerate(entries, 1):
            unit = entry.config_hash if execution.structure == "grouped" else entry.cycle
            if scheduler.active and unit not in units:
                units.add(unit)
                if not scheduler.before_cycle(self.observer.on_wait):
                    outcome.stop_reason = (
                        f"schedule.total_duration_seconds ({campaign.schedule.total_duration_seconds:g} s) "
                        f"reached; {total - index + 1} run(s) left for --resume"
                    )
                    break
                outcome.schedule_wait_s = scheduler.waited_s
            if previous is not None:
                gap, kind = gap_between(previous, entry, execution)
                if gap > 0:
                    logger.info("{}: {:g} s", kind, gap)
                    self.observer.on_wait(kind, gap)
                    self.sleep(gap)
                    outcome.gaps_s += gap
            thermal.wait(self.observer.on_wait)

            entry.status, entry.error, entry.reason = "running", None, None
            entry.started_at, entry.finished_at = now_iso(), None
            entry.attempts += 1
            self._running = entry
            self._save()
            eta = self._eta(durations, entries[index - 1 :])
            logger.info(
                "[{}/{}] {} (cycle {}, {}) started",
                index,
                total,
                entry.exp_id,
                entry.cycle,
                entry.backend,
            )
            self.observer.on_experiment_start(index, total, entry, eta)
            task = ExperimentTask(
                exp_id=entry.exp_id,
                name=entry.name,
                config=by_hash[entry.config_hash].config,
                config_hash=entry.config_hash,
                cycle=entry.cycle,
                output_dir=plan.output_dir,
            )
            t0 = time.perf_counter()
            result = executor.run(task, self._progress_for(entry))
            took = time.perf_counter() - t0
            durations.append(took)
            outcome.executor_s += took
            outcome.executed += 1
            entry.finished_at = now_iso()
            if result.status == "completed":
                entry.status, entry.error = "completed", None
                entry.result_path = f"{entry.exp_id}/result.json"
                consecutive = 0
                logger.info("[{}/{}] {} completed in {:.1f} s", index, total, entry.exp_id, took)
            else:
                entry.status, entry.error = "failed", result.error or "failed"
                consecutive += 1
                logger.warning("{} failed: {}", entry.exp_id, error_headline(entry.error))
            self._save()
            self._running = None
            self.observer.on_experiment_end(
                index, total, entry, self._eta(durations, entries[index:])
            )
            if limit is not None and consecutive >= limit:
                outcome.stop_reason = (
                    f"{consecutive} consecutive failures (execution.max_consecutive_failures="
                    f"{limit}); fix the cause, then --resume"
                )
                break
            previous = entry

    def _progress_for(self, entry: ManifestEntry) -> Callable[[str], None]:
        def progress(message: str) -> None:
            self.observer.on_progress(entry, message)

        return progress

    def _eta(self, durations: Sequence[float], remaining: Sequence[ManifestEntry]) -> float | None:
        if not remaining:
            return 0.0
        execution = self.plan.campaign.execution
        gaps = sum(gap_between(a, b, execution)[0] for a, b in itertools.pairwise(remaining))
        if durations:
            return statistics.fmean(durations) * len(remaining) + gaps
        known = self.plan.timings_s
        if known and all(e.config_hash in known for e in remaining):
            return sum(known[e.config_hash] for e in remaining) + gaps
        return None

    def _export(self, outcome: CampaignOutcome) -> None:
        if not self.export_formats:
            return
        from llenergymeasure.results.aggregation import BOOTSTRAP_RESAMPLES, MIN_CYCLES
        from llenergymeasure.results.export import write_tables

        try:
            report = write_tables(
                self.plan.output_dir,
                campaign_records(self.plan.output_dir, self.plan.manifest),
                formats=self.export_formats,
                seed=self.plan.campaign.execution.seed,
                resamples=self.bootstrap_resamples or BOOTSTRAP_RESAMPLES,
            )
        except (LLEMError, OSError) as err:  # the measurements are safe; only tables failed
            outcome.notes.append(f"summary tables not written: {err}")
            logger.warning("summary tables not written: {}", err)
            return
        outcome.exports = report.paths
        outcome.notes.extend(report.notes)
        low = [s for s in report.summaries if s.low_cycles]
        if low:
            outcome.notes.append(
                f"{len(low)} of {len(report.summaries)} config(s) have fewer than {MIN_CYCLES} "
                "completed cycles: their std, CV and CI are unreliable (flagged low_cycles)"
            )


def campaign_records(directory: Path, manifest: Manifest) -> list[Any]:
    """The manifest's entries as aggregation records, each with its result when it has one."""
    from llenergymeasure.results.aggregation import RunRecord
    from llenergymeasure.results.schema import load_result

    records = []
    for entry in manifest.entries:
        result = None
        path = result_file(directory, entry)
        if entry.status in ("completed", "skipped") and path.is_file():
            with contextlib.suppress(LLEMError):
                result = load_result(path)
        records.append(
            RunRecord(
                exp_id=entry.exp_id,
                name=entry.name,
                config_hash=entry.config_hash,
                backend=entry.backend,
                cycle=entry.cycle,
                status=entry.status,
                model=entry.model,
                precision=entry.precision,
                error=entry.error,
                result=result,
                result_path=entry.result_path if result is not None else None,
            )
        )
    return records


def run_campaign(
    campaign_file: Path,
    output_dir: Path | None = None,
    *,
    resume: bool = False,
    fresh: bool = False,
    cycles: int | None = None,
    observer: CampaignObserver | None = None,
    **runner_options: Any,
) -> CampaignOutcome:
    """Load, plan and run a campaign file in one call (no prompt; see ``llem campaign run``)."""
    from llenergymeasure.config.loader import load_campaign_config
    from llenergymeasure.orchestration.experiments import plan_campaign

    campaign = load_campaign_config(campaign_file)
    grid = plan_campaign(campaign, campaign_file)
    directory = output_dir or Path(campaign.io.results_dir)
    plan = prepare_campaign(
        campaign,
        grid,
        directory,
        resume=resume,
        fresh=fresh,
        cycles=cycles,
        campaign_file=campaign_file,
    )
    return CampaignRunner(plan, observer=observer, **runner_options).run()


__all__ = [
    "INTERRUPT_EXIT",
    "CampaignObserver",
    "CampaignOutcome",
    "CampaignPlan",
    "CampaignRunner",
    "DesignChange",
    "DurationEstimate",
    "PlannedExperiment",
    "ThermalGuard",
    "campaign_records",
    "choose_executor",
    "gap_between",
    "plan_order",
    "planned_experiments",
    "prepare_campaign",
    "run_campaign",
    "safe_name",
]
