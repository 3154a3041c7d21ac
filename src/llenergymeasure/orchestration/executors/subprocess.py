"""Run each experiment in a fresh Python process: full isolation, an enforceable timeout, and
the child's traceback forwarded into the failure's error. Every experiment loads its model
afresh (a cold start), so there is no model reuse."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from llenergymeasure.log import logger
from llenergymeasure.orchestration.executors.base import (
    FATAL_ERRORS,
    TRACEBACK_MARK,
    ExecutionOutcome,
    ExperimentTask,
    Progress,
)
from llenergymeasure.orchestration.executors.worker import PREFIX

WORKER_MODULE = "llenergymeasure.orchestration.executors.worker"
STDERR_TAIL_LINES = 80
TERMINATE_GRACE_S = 5.0


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


class SubprocessExecutor:
    """``python -m llenergymeasure.orchestration.executors.worker`` per experiment.

    ``timeout_s`` bounds an experiment: the child's whole process group is killed when it runs
    longer, and the experiment fails with a timeout error.
    """

    name = "subprocess"

    def __init__(self, *, timeout_s: float | None = None, python: str | None = None) -> None:
        self.timeout_s = timeout_s
        self.python = python or sys.executable

    def command(self, task: ExperimentTask) -> list[str]:
        return [
            self.python,
            "-m",
            WORKER_MODULE,
            json.dumps(task.config, default=str),
            str(task.output_dir),
            task.exp_id,
        ]

    def run(self, task: ExperimentTask, progress: Progress | None = None) -> ExecutionOutcome:
        say = progress or (lambda _message: None)
        child_error: dict[str, Any] = {}
        tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

        def read_stdout(stream: IO[str]) -> None:
            for line in stream:
                if line.startswith(PREFIX + "progress "):
                    say(line[len(PREFIX) + 9 :].rstrip("\n"))
                elif line.startswith(PREFIX + "error "):
                    with contextlib.suppress(ValueError):
                        child_error.update(json.loads(line[len(PREFIX) + 6 :]))
                else:
                    logger.debug("[{}] {}", task.exp_id, line.rstrip("\n"))

        def read_stderr(stream: IO[str]) -> None:
            for line in stream:
                text = line.rstrip("\n")
                tail.append(text)
                if text.startswith(("WARNING: ", "ERROR: ", "CRITICAL: ")):
                    logger.warning("[{}] {}", task.exp_id, text.split(": ", 1)[1])
                else:
                    logger.debug("[{}] {}", task.exp_id, text)

        task.output_dir.mkdir(parents=True, exist_ok=True)
        child = subprocess.Popen(
            self.command(task),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,  # Ctrl-C reaches us; we decide what the child gets
        )
        assert child.stdout is not None and child.stderr is not None
        readers = [
            threading.Thread(target=read_stdout, args=(child.stdout,), daemon=True),
            threading.Thread(target=read_stderr, args=(child.stderr,), daemon=True),
        ]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            child.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._stop(child, grace_s=0.0)
        except BaseException:  # KeyboardInterrupt: stop the child, then let it through
            self._stop(child, grace_s=TERMINATE_GRACE_S)
            raise
        finally:
            for reader in readers:
                reader.join(timeout=5.0)
        code = child.returncode
        if timed_out:
            return ExecutionOutcome(
                "failed",
                error=f"timed out after {self.timeout_s:g} s (execution.experiment_timeout_seconds); "
                "the experiment's process was killed",
                timed_out=True,
            )
        if code == 0:
            if task.result_path.is_file():
                return ExecutionOutcome("completed", result_path=task.result_path)
            return ExecutionOutcome(
                "failed", error=f"the experiment process exited 0 but wrote no {task.result_path}"
            )
        return ExecutionOutcome(
            "failed",
            error=self._error_text(code, child_error, list(tail)),
            fatal=child_error.get("type") in FATAL_ERRORS,
        )

    @staticmethod
    def _error_text(code: int, child_error: dict[str, Any], tail: list[str]) -> str:
        if child_error:
            message = str(child_error.get("message") or child_error.get("type") or "failed")
            trace = str(child_error.get("traceback") or "").rstrip()
            return f"{message}\n{TRACEBACK_MARK} (experiment process)\n{trace}"
        how = (
            f"was killed by {_signal_name(code)}"
            + (" (out of memory?)" if code == -signal.SIGKILL else "")
            if code < 0
            else f"exited with status {code}"
        )
        text = "\n".join(tail).rstrip()
        return f"the experiment process {how}\n{TRACEBACK_MARK} (experiment process stderr)\n{text}"

    @staticmethod
    def _stop(child: subprocess.Popen[str], *, grace_s: float) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``grace_s`` (or at once)."""
        try:
            if grace_s > 0 and child.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=grace_s)
        finally:  # also when a second Ctrl-C cuts the grace short
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=10.0)

    def close(self) -> None:
        """Nothing is held between experiments."""
