"""Where one experiment of a campaign runs, behind one small interface.

The campaign runner hands an executor an :class:`ExperimentTask` and gets an
:class:`ExecutionOutcome` back; it never knows whether the experiment ran in this process, in a
fresh Python process or on a Ray cluster. Whatever the executor, a completed
experiment leaves ``<output_dir>/<exp_id>/result.json`` (written atomically by the harness).

An executor turns every *experiment* failure into a failed outcome with a readable error; it
lets ``KeyboardInterrupt`` through (after stopping any work it started) so the runner can mark
the experiment interrupted.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from llenergymeasure.exceptions import LLEMError

Progress = Callable[[str], None]

TRACEBACK_MARK = "--- traceback ---"
"""Separates an error's message from the traceback appended to it."""


@dataclass(frozen=True)
class ExperimentTask:
    """One (experiment, cycle) to run."""

    exp_id: str
    """Directory name under ``output_dir``; the result lands in ``output_dir/exp_id/result.json``."""
    name: str
    config: dict[str, Any]
    """The experiment's config dict as planned (validated again by the executor)."""
    config_hash: str
    cycle: int
    output_dir: Path

    @property
    def result_path(self) -> Path:
        return self.output_dir / self.exp_id / "result.json"


@dataclass
class ExecutionOutcome:
    """What happened to one task."""

    status: Literal["completed", "failed", "interrupted"]
    """interrupted: the experiment did not end by itself (its worker or node was lost); it
    reruns on ``--resume``."""
    result_path: Path | None = None
    error: str | None = None
    result: Any = None
    """The ``ExperimentResult`` when the executor has it in memory (in-process), else None."""
    timed_out: bool = False
    fatal: bool = False
    """The failure is the campaign's, not the experiment's (its result could not be written
    where it belongs): the runner stops rather than go on to the next experiment."""
    notes: list[str] = field(default_factory=list)


@runtime_checkable
class Executor(Protocol):
    """Runs experiments; ``close`` releases whatever it holds (a loaded model, a pool)."""

    name: str

    def run(self, task: ExperimentTask, progress: Progress | None = None) -> ExecutionOutcome:
        """Run one task to completion or failure; ``KeyboardInterrupt`` propagates."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ParallelExecutor(Protocol):
    """Runs up to ``slots`` experiments at once (a cluster); the runner submits and collects.

    ``close`` cancels whatever is still in flight (Ctrl-C, a stopped campaign)."""

    name: str
    slots: int

    def submit(self, task: ExperimentTask) -> None: ...

    def wait(self, timeout_s: float) -> list[tuple[ExperimentTask, ExecutionOutcome]]:
        """Those in flight that ended within ``timeout_s`` (maybe none)."""
        ...

    def close(self) -> None: ...


FATAL_ERRORS = ("ResultWriteError",)
"""Exception class names that stop a campaign (by name: they may come from a child process)."""


def describe_error(error: BaseException) -> str:
    """A failure as text: our errors by their message; anything else with its traceback."""
    if isinstance(error, LLEMError):
        return error.render()
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return f"{type(error).__name__}: {error}\n{TRACEBACK_MARK}\n{text.rstrip()}"


def error_headline(error: str | None) -> str:
    """The part of an error worth one line in a table (before any traceback)."""
    if not error:
        return ""
    head = error.split(TRACEBACK_MARK, 1)[0].strip()
    return head.splitlines()[0] if head else error.strip().splitlines()[-1]
