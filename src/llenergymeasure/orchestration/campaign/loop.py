"""The run loop: every run still to do through the executor, one at a time (gaps, thermal
waits, the schedule) or in parallel, each begun and ended in the manifest (saved each time),
then adaptive rounds; with the queue of runs left and their ETA (:class:`Remaining`).

The runner asks for an ETA twice per experiment; summing the gaps over every remaining run
each time made a campaign's bookkeeping grow with the square of its size. ``Remaining``
adjusts the gap total and the known timings as each run leaves, so an ETA costs the same at
1e2 and 1e5 runs.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.log import logger
from llenergymeasure.orchestration.campaign.manifest import (
    Manifest,
    ManifestEntry,
    now_iso,
    result_is_valid,
)
from llenergymeasure.orchestration.campaign.order import gap_between
from llenergymeasure.orchestration.campaign.outcome import CampaignObserver, CampaignOutcome
from llenergymeasure.orchestration.campaign.plan import CampaignPlan
from llenergymeasure.orchestration.campaign.records import campaign_records
from llenergymeasure.orchestration.campaign.schedule import Clock, Scheduler, Sleep
from llenergymeasure.orchestration.campaign.thermal import ThermalGuard
from llenergymeasure.orchestration.executors.base import (
    ExecutionOutcome,
    ExperimentTask,
    ParallelExecutor,
    error_headline,
)
from llenergymeasure.orchestration.executors.base import Executor as ExecutorProtocol


class Remaining:
    """Runs still to do, in plan order; taking the first is O(1), taking any other O(n)."""

    def __init__(
        self,
        entries: Iterable[ManifestEntry],
        execution: ExecutionConfig,
        timings_s: Mapping[str, float],
    ) -> None:
        self._items: deque[ManifestEntry] = deque(entries)
        self._execution = execution
        self._timings = timings_s
        self._gaps_s = sum(self._gap(a, b) for a, b in itertools.pairwise(self._items))
        self._known_s = sum(timings_s.get(e.config_hash, 0.0) for e in self._items)
        self._unknown = sum(e.config_hash not in timings_s for e in self._items)

    def _gap(self, a: ManifestEntry, b: ManifestEntry) -> float:
        return gap_between(a, b, self._execution)[0]

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self._items)

    def _forget(self, entry: ManifestEntry) -> None:
        if entry.config_hash in self._timings:
            self._known_s -= self._timings[entry.config_hash]
        else:
            self._unknown -= 1
        if not self._items:  # no float drift survives an empty queue
            self._gaps_s = self._known_s = 0.0

    def popleft(self) -> ManifestEntry:
        """The next run in plan order."""
        entry = self._items.popleft()
        if self._items:
            self._gaps_s -= self._gap(entry, self._items[0])
        self._forget(entry)
        return entry

    def remove(self, entry: ManifestEntry) -> None:
        """Take ``entry`` out of the middle (a parallel executor starts runs out of order)."""
        index = self._items.index(entry)
        before = self._items[index - 1] if index > 0 else None
        after = self._items[index + 1] if index + 1 < len(self._items) else None
        if before is not None:
            self._gaps_s -= self._gap(before, entry)
        if after is not None:
            self._gaps_s -= self._gap(entry, after)
        if before is not None and after is not None:
            self._gaps_s += self._gap(before, after)
        del self._items[index]
        self._forget(entry)

    def eta_s(
        self, current: ManifestEntry | None, mean_run_s: float | None, slots: int
    ) -> float | None:
        """Seconds until the campaign ends: ``current`` (running now) and every remaining run,
        at ``mean_run_s`` each when runs have been timed this session, else at the earlier
        campaign's timings when every one of them has one; None when neither is known."""
        count = len(self._items) + (current is not None)
        if not count:
            return 0.0
        gaps = max(0.0, self._gaps_s)
        if current is not None and self._items:
            gaps += self._gap(current, self._items[0])
        if mean_run_s is not None:
            return mean_run_s * count / slots + gaps
        unknown = self._unknown + (current is not None and current.config_hash not in self._timings)
        if not self._timings or unknown:
            return None
        known = self._known_s + (self._timings[current.config_hash] if current is not None else 0.0)
        return max(0.0, known) / slots + gaps


PARALLEL_POLL_S = 0.5
"""How long a parallel run waits for an experiment to end before looking again."""


@dataclass
class _RunState:
    """Where the loop is: what is left, what ran, how long it took."""

    pending: Remaining
    total: int = 0
    done: int = 0
    slots: int = 1
    consecutive: int = 0
    timed: int = 0
    timed_s: float = 0.0
    started: dict[str, float] = field(default_factory=dict)
    units: set[Any] = field(default_factory=set)
    previous: ManifestEntry | None = None

    def __post_init__(self) -> None:
        self.total = self.total or len(self.pending)


class RunLoop:
    """The runs of one campaign run, through one executor; the runner around it locks the
    directory, records how the loop stopped and finishes the campaign."""

    def __init__(
        self,
        plan: CampaignPlan,
        manifest: Manifest,
        to_run: Sequence[ManifestEntry],
        *,
        observer: CampaignObserver,
        save: Callable[..., None],
        in_flight: dict[str, ManifestEntry],
        sleep: Sleep,
        clock: Clock,
        bootstrap_resamples: int | None,
    ) -> None:
        self.plan, self.manifest, self.observer = plan, manifest, observer
        self.to_run = to_run
        """The entries still to run when the loop starts, in run order."""
        self._save = save
        self._in_flight = in_flight
        """Entries running now, by exp_id (the runner's: it records them when the loop stops)."""
        self.sleep, self.clock = sleep, clock
        self.bootstrap_resamples = bootstrap_resamples

    def _adopted(self, entry: ManifestEntry) -> bool:
        """A result already on disk for ``entry`` is adopted: measured once, never again."""
        if not result_is_valid(self.plan.output_dir, entry):
            return False
        entry.status, entry.error, entry.reason = "completed", None, None
        entry.result_path = f"{entry.exp_id}/result.json"
        self._save(entry)
        logger.info("{}: its result is already on disk; adopted, not measured", entry.exp_id)
        return True

    def _begin(
        self,
        entry: ManifestEntry,
        index: int,
        total: int,
        eta: float | None,
        thermal: ThermalGuard | None = None,
    ) -> ExperimentTask | None:
        """Start ``entry``: None when its result is already on disk (adopted); else, after the
        thermal wait, marked running (saved) and said, with the task that runs it."""
        if self._adopted(entry):
            return None
        if thermal is not None:
            thermal.wait(self.observer.on_wait)
        entry.status, entry.error, entry.reason = "running", None, None
        entry.started_at, entry.finished_at = now_iso(), None
        entry.attempts += 1
        self._in_flight[entry.exp_id] = entry
        self._save(entry)
        logger.info(
            "[{}/{}] {} (cycle {}, {}) started",
            index,
            total,
            entry.exp_id,
            entry.cycle,
            entry.backend,
        )
        self.observer.on_experiment_start(index, total, entry, eta)
        return ExperimentTask(
            exp_id=entry.exp_id,
            name=entry.name,
            config=self.plan.experiment(entry.config_hash).config,
            config_hash=entry.config_hash,
            cycle=entry.cycle,
            output_dir=self.plan.output_dir,
        )

    def _end(
        self,
        entry: ManifestEntry,
        result: ExecutionOutcome,
        run: _RunState,
        outcome: CampaignOutcome,
    ) -> None:
        """Record how ``entry`` ended (saved), and whether the campaign must stop."""
        took = time.perf_counter() - run.started.pop(entry.exp_id)
        run.timed, run.timed_s = run.timed + 1, run.timed_s + took
        outcome.executor_s += took
        outcome.executed += 1
        run.done += 1
        entry.finished_at = now_iso()
        if result.status == "completed":
            entry.status, entry.error = "completed", None
            entry.result_path = f"{entry.exp_id}/result.json"
            run.consecutive = 0
            logger.info("[{}/{}] {} completed in {:.1f} s", run.done, run.total, entry.exp_id, took)
        else:
            entry.status, entry.error = result.status, result.error or result.status
            run.consecutive += result.status == "failed"
            logger.warning("{} {}: {}", entry.exp_id, result.status, error_headline(entry.error))
        eta = self._eta(run)
        self._save(entry)
        del self._in_flight[entry.exp_id]
        self.observer.on_experiment_end(run.done, run.total, entry, eta)
        limit = self.plan.campaign.execution.max_consecutive_failures
        if result.fatal:
            outcome.stop_reason = (
                f"{error_headline(entry.error)}; the campaign stopped: fix the cause, then --resume"
            )
        elif limit is not None and run.consecutive >= limit:
            outcome.stop_reason = (
                f"{run.consecutive} consecutive failures (execution.max_consecutive_failures="
                f"{limit}); fix the cause, then --resume"
            )

    def run(
        self,
        executor: ExecutorProtocol | ParallelExecutor,
        thermal: ThermalGuard,
        outcome: CampaignOutcome,
    ) -> None:
        """Every entry still to run, then adaptive rounds while there are any."""
        run = _RunState(pending=self._remaining(self.to_run), slots=getattr(executor, "slots", 1))
        scheduler = Scheduler(self.plan.campaign.schedule, clock=self.clock, sleep=self.sleep)
        if scheduler.active:
            scheduler.wait_for_start(self.observer.on_wait)
            outcome.schedule_wait_s = scheduler.waited_s
        while True:
            if isinstance(executor, ParallelExecutor):
                self._run_parallel(executor, run, outcome)
            else:
                self._run_in_turn(executor, thermal, scheduler, run, outcome)
            if outcome.stop_reason:
                return
            run.pending = self._remaining(self._adaptive_round(outcome))
            if not run.pending:
                return
            run.total += len(run.pending)

    def _run_in_turn(
        self,
        executor: ExecutorProtocol,
        thermal: ThermalGuard,
        scheduler: Scheduler,
        run: _RunState,
        outcome: CampaignOutcome,
    ) -> None:
        """One at a time, in plan order, with the configured gaps, thermal waits and schedule."""
        campaign = self.plan.campaign
        execution = campaign.execution
        while run.pending and not outcome.stop_reason:
            entry = run.pending.popleft()
            unit = entry.config_hash if execution.structure == "grouped" else entry.cycle
            if scheduler.active and unit not in run.units:
                run.units.add(unit)
                if not scheduler.before_cycle(self.observer.on_wait):
                    outcome.stop_reason = (
                        f"schedule.total_duration_seconds ({campaign.schedule.total_duration_seconds:g} s) "
                        f"reached; {len(run.pending) + 1} run(s) left for --resume"
                    )
                    return
                outcome.schedule_wait_s = scheduler.waited_s
            if run.previous is not None:
                gap, kind = gap_between(run.previous, entry, execution)
                if gap > 0:
                    logger.info("{}: {:g} s", kind, gap)
                    self.observer.on_wait(kind, gap)
                    self.sleep(gap)
                    outcome.gaps_s += gap
            progress = self._progress_for(entry)
            task = self._begin(entry, run.done + 1, run.total, self._eta(run, entry), thermal)
            if task is None:
                run.done += 1
                self.observer.on_experiment_end(run.done, run.total, entry, None)
                continue
            run.started[entry.exp_id] = time.perf_counter()
            result = executor.run(task, progress)
            self._end(entry, result, run, outcome)
            run.previous = entry

    def _run_parallel(
        self, executor: ParallelExecutor, run: _RunState, outcome: CampaignOutcome
    ) -> None:
        """Up to ``executor.slots`` at once, in plan order, a config's cycle k+1 never before
        its cycle k has ended. Once the campaign must stop, nothing new starts and what is in
        flight is waited for (its measurements are kept)."""
        while (run.pending and not outcome.stop_reason) or self._in_flight:
            busy = {e.config_hash for e in self._in_flight.values()}
            for entry in list(run.pending):
                if outcome.stop_reason or len(self._in_flight) >= executor.slots:
                    break
                if entry.config_hash in busy:
                    continue
                busy.add(entry.config_hash)  # its later cycles wait, even when this one is done
                run.pending.remove(entry)
                task = self._begin(entry, run.done + len(self._in_flight) + 1, run.total, None)
                if task is None:
                    run.done += 1
                    self.observer.on_experiment_end(run.done, run.total, entry, None)
                    continue
                run.started[entry.exp_id] = time.perf_counter()
                executor.submit(task)
            if not self._in_flight:
                continue
            for task, result in executor.wait(PARALLEL_POLL_S):
                self._end(self._in_flight[task.exp_id], result, run, outcome)

    def _adaptive_round(self, outcome: CampaignOutcome) -> list[ManifestEntry]:
        """Once every entry has run: the next adaptive round (one more cycle for each config
        whose interval is still too wide), added to the manifest with why; [] when none."""
        execution = self.plan.campaign.execution
        if not execution.adaptive:
            return []
        from llenergymeasure.orchestration.campaign.adaptive import next_round, round_event
        from llenergymeasure.results.aggregation import BOOTSTRAP_RESAMPLES

        manifest = self.manifest
        new, decisions = next_round(
            manifest.entries,
            campaign_records(self.plan.output_dir, manifest),
            self.plan.experiments,
            execution,
            ci_method=self.plan.campaign.statistics.ci_method,
            seed=execution.seed,
            resamples=self.bootstrap_resamples or BOOTSTRAP_RESAMPLES,
        )
        event = round_event(new, decisions)
        manifest.entries.extend(new)
        manifest.log("adaptive cycles", event)
        self._save(*new)
        logger.info("adaptive cycles: {}", event)
        self.observer.on_adaptive_round(new, decisions)
        if not new:
            outcome.notes.append(f"adaptive cycles: {event}")
        return new

    def _progress_for(self, entry: ManifestEntry) -> Callable[[str], None]:
        def progress(message: str) -> None:
            self.observer.on_progress(entry, message)

        return progress

    def _eta(self, run: _RunState, current: ManifestEntry | None = None) -> float | None:
        mean = run.timed_s / run.timed if run.timed else None
        return run.pending.eta_s(current, mean, run.slots)

    def _remaining(self, entries: Sequence[ManifestEntry]) -> Remaining:
        return Remaining(entries, self.plan.campaign.execution, self.plan.timings_s)
