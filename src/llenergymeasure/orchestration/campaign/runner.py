"""The campaign runner: a prepared plan's directory checked and locked, its run loop
(``loop``) guarded (Ctrl-C, SIGTERM, a full disk, a bug each recorded), then its final status,
tables and webhook. The manifest is rewritten atomically after every change.

The executor (``executors/``) is the only thing the runner knows about where an experiment
runs; torch is never imported here.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llenergymeasure.files import check_output_dir, remove_stray_temp_files
from llenergymeasure.log import logger
from llenergymeasure.orchestration.campaign.log_file import CampaignLog
from llenergymeasure.orchestration.campaign.loop import RunLoop
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
from llenergymeasure.orchestration.campaign.outcome import CampaignObserver, CampaignOutcome
from llenergymeasure.orchestration.campaign.plan import CampaignPlan
from llenergymeasure.orchestration.campaign.prepare import (
    no_valid_experiment,
    prepare_campaign_file,
)
from llenergymeasure.orchestration.campaign.records import export_tables
from llenergymeasure.orchestration.campaign.schedule import Clock, Sleep
from llenergymeasure.orchestration.campaign.thermal import TemperatureProbe, ThermalGuard
from llenergymeasure.orchestration.executors.base import Executor as ExecutorProtocol
from llenergymeasure.orchestration.executors.base import (
    ParallelExecutor,
    describe_error,
)


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
        to_run = self.plan.to_run
        self._start(moved_to, len(to_run))
        loop = RunLoop(
            self.plan,
            self.manifest,
            to_run,
            observer=self.observer,
            save=self._save,
            in_flight=self._in_flight,
            sleep=self.sleep,
            clock=self.clock,
            bootstrap_resamples=self.bootstrap_resamples,
        )
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
            self._guarded_loop(loop, executor, thermal, outcome)
        finally:
            self._in_flight.clear()
            released = time.perf_counter()
            executor.close()
            outcome.release_s = time.perf_counter() - released
        self._finish(outcome, thermal, started)
        return outcome

    def _start(self, moved_to: Path | None, runs: int) -> None:
        """Say what runs, mark the manifest running (saved), tell the observer."""
        plan, manifest = self.plan, self.manifest
        if moved_to is not None:
            logger.info("previous run moved to {}", moved_to)
        logger.info(
            "campaign {} ({}): {} run(s) to do, executor {}, model reuse {}",
            manifest.campaign_name,
            plan.mode,
            runs,
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
        self.observer.on_start(self.plan, runs)

    def _guarded_loop(
        self,
        loop: RunLoop,
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
                loop.run(executor, thermal, outcome)
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
                outcome.webhook_sent = notify(plan.campaign.notify, outcome, manifest)
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


def run_campaign(
    campaign_file: Path,
    output_dir: Path | None = None,
    *,
    resume: bool = False,
    fresh: bool = False,
    cycles: int | None = None,
    allow_large: bool = False,
    observer: CampaignObserver | None = None,
    **runner_options: Any,
) -> CampaignOutcome:
    """Load, plan and run a campaign file in one call (no prompt; see ``llem campaign run``)."""
    _, _, plan = prepare_campaign_file(
        campaign_file,
        output_dir,
        resume=resume,
        fresh=fresh,
        cycles=cycles,
        allow_large=allow_large,
    )
    if plan is None:
        raise no_valid_experiment()
    return CampaignRunner(plan, observer=observer, **runner_options).run()
