"""The campaign runner: a prepared plan run entry by entry through an executor, the manifest
rewritten atomically after every change, statistics and tables at the end.

The executor (``executors/``) is the only thing the runner knows about where an experiment
runs; torch is never imported here.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llenergymeasure.files import check_output_dir, remove_stray_temp_files
from llenergymeasure.log import logger
from llenergymeasure.orchestration.campaign.log_file import CampaignLog
from llenergymeasure.orchestration.campaign.manifest import (
    LOG_FILE,
    Manifest,
    ManifestEntry,
    campaign_lock,
    keep_damaged_aside,
    move_aside,
    now_iso,
    result_is_valid,
)
from llenergymeasure.orchestration.campaign.order import gap_between
from llenergymeasure.orchestration.campaign.outcome import CampaignObserver, CampaignOutcome
from llenergymeasure.orchestration.campaign.plan import CampaignPlan
from llenergymeasure.orchestration.campaign.prepare import (
    no_valid_experiment,
    prepare_campaign_file,
)
from llenergymeasure.orchestration.campaign.records import campaign_records, export_tables
from llenergymeasure.orchestration.campaign.remaining import Remaining
from llenergymeasure.orchestration.campaign.schedule import Clock, Scheduler, Sleep
from llenergymeasure.orchestration.campaign.thermal import TemperatureProbe, ThermalGuard
from llenergymeasure.orchestration.executors.base import (
    ExecutionOutcome,
    ExperimentTask,
    ParallelExecutor,
    describe_error,
    error_headline,
)
from llenergymeasure.orchestration.executors.base import Executor as ExecutorProtocol


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


class CampaignRunner:
    """Runs a :class:`CampaignPlan`. Time, sleep, the executor and the GPU temperature probe
    are injectable for tests."""

    def __init__(
        self,
        plan: CampaignPlan,
        *,
        executor: ExecutorProtocol | ParallelExecutor | None = None,
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
        self._in_flight: dict[str, ManifestEntry] = {}
        """Entries running now, by exp_id (several with a parallel executor)."""
        self.manifest: Manifest
        """The manifest this run drives: the plan's, taken once the directory is locked."""

    def _make_executor(self) -> ExecutorProtocol | ParallelExecutor:
        if self._executor is not None:
            return self._executor
        from llenergymeasure.orchestration.executors import create_executor

        execution = self.plan.campaign.execution
        if self.plan.executor == "ray":
            return create_executor(
                "ray",
                config=execution.ray,
                timeout_s=execution.experiment_timeout_seconds,
                reuse_models=self.plan.reuse_models,
            )
        if self.plan.executor == "subprocess":
            return create_executor("subprocess", timeout_s=execution.experiment_timeout_seconds)
        return create_executor("inprocess", reuse_models=self.plan.reuse_models)

    def _save(self, *changed: ManifestEntry) -> None:
        """Durable now: a journal line for ``changed`` entries, else a snapshot."""
        self.manifest.save(self.plan.output_dir, changed)

    def run(self) -> CampaignOutcome:
        """Run every entry still to run. Ctrl-C (or SIGTERM) marks the running experiment
        interrupted, saves the manifest and returns an ``interrupted`` outcome (exit 130).

        The directory is checked first (a writable directory with room: exit 2 otherwise);
        once its lock is held, a plan made against a manifest that has changed since (another
        run went on while this one waited at a prompt) is made again from the disk.
        """
        directory = self.plan.output_dir
        started = self.clock()
        check_output_dir(directory, what="campaign directory")
        with campaign_lock(directory):
            if self.plan.stale() and self.plan.replan is not None:
                self.plan = self.plan.replan()
                self.plan.notes.insert(
                    0,
                    "the campaign directory changed while this run waited to start (another "
                    "run went on): planned again from what is on disk now",
                )
            swept = remove_stray_temp_files(directory)
            if swept:
                self.plan.notes.append(
                    f"removed {len(swept)} temp file(s) left by a write that was cut short"
                )
            if self.plan.damaged_manifest:
                kept = keep_damaged_aside(directory)
                if kept is not None:
                    self.plan.notes.append(f"the damaged manifest is kept as {kept.name}")
            moved_to = move_aside(directory, self.plan.move_aside)
            sink = (
                logger.add(CampaignLog(directory / LOG_FILE), level="INFO")
                if self.log_to_file
                else None
            )
            try:
                outcome = self._run_locked(started, moved_to)
            finally:
                if sink is not None:
                    logger.remove(sink)
        self.observer.on_finish(outcome)
        return outcome

    def _run_locked(self, started: float, moved_to: Path | None) -> CampaignOutcome:
        """The campaign once its directory is locked: started, looped, finished."""
        executor = self._make_executor()  # before anything is marked running: it may refuse
        self.manifest = self.plan.manifest  # a new campaign's is built now
        self._start(moved_to)
        thermal = ThermalGuard(
            self.plan.campaign.execution,
            temperatures=self._temperatures,
            sleep=self.sleep,
            clock=self.clock,
        )
        outcome = CampaignOutcome(
            status="completed",
            output_dir=self.plan.output_dir,
            counts={},
            failures=[],
            executed=0,
            wall_s=0.0,
            moved_to=moved_to,
            notes=list(self.plan.notes),
        )
        try:
            self._guarded_loop(executor, thermal, outcome)
        finally:
            self._in_flight.clear()
            released = time.perf_counter()
            executor.close()
            outcome.release_s = time.perf_counter() - released
        self._finish(outcome, thermal, started)
        return outcome

    def _start(self, moved_to: Path | None) -> None:
        """Say what runs, and mark the manifest running (saved)."""
        plan, manifest = self.plan, self.manifest
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

    def _guarded_loop(
        self,
        executor: ExecutorProtocol | ParallelExecutor,
        thermal: ThermalGuard,
        outcome: CampaignOutcome,
    ) -> None:
        """The loop, with how each way of stopping early is recorded: Ctrl-C or SIGTERM
        (interrupted, resumable), a disk that cannot be written (stopped, resumable), a bug
        (what can be recorded is, then it is raised)."""
        manifest = self.manifest
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
        except OSError as error:  # a full disk or a directory gone read-only: stop, resumable
            reason = f"{error.strerror or error}" + (
                f" ({error.filename})" if error.filename else ""
            )
            for entry in self._in_flight.values():
                entry.status = "interrupted"
                entry.error = f"stopped: cannot write the campaign's files: {reason}"
                entry.finished_at = now_iso()
            outcome.stop_reason = (
                f"cannot write to {self.plan.output_dir}: {reason}; free space or fix "
                "permissions, then --resume (the manifest on disk is the last state that "
                "could be saved)"
            )
            logger.error("{}", outcome.stop_reason)
        except Exception as error:  # a bug: record what we can, then surface it
            for entry in self._in_flight.values():
                entry.status = "failed"
                entry.error = describe_error(error)
                entry.finished_at = now_iso()
            manifest.status = "stopped"
            manifest.log("stopped by an error", str(error))
            with contextlib.suppress(Exception):
                self._save()
            raise

    def _finish(self, outcome: CampaignOutcome, thermal: ThermalGuard, started: float) -> None:
        """The campaign's final status (saved), its counts, tables and webhook."""
        plan, manifest = self.plan, self.manifest
        if outcome.status != "interrupted":
            failed = any(e.status in ("failed", "interrupted") for e in manifest.entries)
            if outcome.stop_reason:
                outcome.status = "stopped"
            elif failed:
                outcome.status = "completed_with_failures"
            manifest.status = outcome.status
            manifest.log(outcome.status, outcome.stop_reason)
            try:
                self._save()
            except OSError as error:
                outcome.notes.append(f"the final manifest update could not be written: {error}")
        outcome.thermal_wait_s = thermal.waited_s
        outcome.counts = manifest.counts()
        outcome.failures = [e for e in manifest.entries if e.status in ("failed", "interrupted")]
        exported = time.perf_counter()
        export_tables(
            plan.campaign,
            plan.output_dir,
            manifest,
            outcome,
            formats=self.export_formats,
            resamples=self.bootstrap_resamples,
        )
        outcome.export_s = time.perf_counter() - exported
        outcome.wall_s = self.clock() - started
        if outcome.status != "interrupted":
            from llenergymeasure.orchestration.campaign.notify import notify

            try:
                outcome.webhook_sent = notify(
                    plan.campaign.notify, outcome.status, outcome.payload(manifest)
                )
            except Exception as error:  # the campaign is done; a webhook never changes that
                outcome.webhook_sent = False
                logger.warning("webhook failed: {} (the campaign is not affected)", error)
        logger.info(
            "campaign {}: {} in {:.1f} s{}",
            outcome.status,
            ", ".join(f"{n} {k}" for k, n in outcome.counts.items() if n),
            outcome.wall_s,
            f" ({outcome.stop_reason})" if outcome.stop_reason else "",
        )

    def _mark_interrupted(self) -> None:
        for entry in self._in_flight.values():
            entry.finished_at = now_iso()
            if result_is_valid(self.plan.output_dir, entry):  # it finished just before Ctrl-C
                entry.status, entry.error = "completed", None
            else:
                entry.status = "interrupted"
                entry.error = "interrupted (Ctrl-C or SIGTERM); --resume runs it again"

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
        self, entry: ManifestEntry, index: int, total: int, eta: float | None
    ) -> ExperimentTask:
        """Mark ``entry`` running (saved) and say so; the task that runs it."""
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
        self._save(entry)
        del self._in_flight[entry.exp_id]
        self.observer.on_experiment_end(run.done, run.total, entry, self._eta(run))
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

    def _loop(
        self,
        executor: ExecutorProtocol | ParallelExecutor,
        thermal: ThermalGuard,
        outcome: CampaignOutcome,
    ) -> None:
        """Every entry still to run, then adaptive rounds while there are any."""
        run = _RunState(
            pending=self._remaining(self.plan.to_run), slots=getattr(executor, "slots", 1)
        )
        self.observer.on_start(self.plan, run.total)
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
            if self._adopted(entry):
                run.done += 1
                self.observer.on_experiment_end(run.done, run.total, entry, None)
                continue
            thermal.wait(self.observer.on_wait)
            task = self._begin(entry, run.done + 1, run.total, self._eta(run, entry))
            run.started[entry.exp_id] = time.perf_counter()
            result = executor.run(task, self._progress_for(entry))
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
                if self._adopted(entry):
                    run.done += 1
                    self.observer.on_experiment_end(run.done, run.total, entry, None)
                    continue
                task = self._begin(entry, run.done + len(self._in_flight) + 1, run.total, None)
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
    _, _, plan = prepare_campaign_file(
        campaign_file, output_dir, resume=resume, fresh=fresh, cycles=cycles
    )
    if plan is None:
        raise no_valid_experiment()
    return CampaignRunner(plan, observer=observer, **runner_options).run()
