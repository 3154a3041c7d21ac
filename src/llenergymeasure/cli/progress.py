"""Campaign progress: Rich live progress on a terminal; where stderr is not a terminal (a log
file, a pipe, CI) one plain line per finished run, ``[k/N] NAME ok 12.3 s ETA 4m05s``, never a
Rich live line left behind, names whole."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from llenergymeasure.cli.render import err, escape


def short_duration(seconds: float) -> str:
    """``45s``, ``4m05s``, ``2h07m``: an ETA read at a glance."""
    whole = int(max(0.0, seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class PlainProgress:
    """The runner's observer as plain lines on a stream (stderr by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.started: dict[str, float] = {}

    def _line(self, text: str) -> None:
        stream = self.stream or sys.stderr  # looked up late: a test may swap sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def on_start(self, plan: Any, total: int) -> None:
        self._line(f"{total} run(s) to do")

    def on_wait(self, reason: str, seconds: float) -> None:
        pass  # a wait is not a finished run; the next run's line carries the ETA

    def on_experiment_start(self, index: int, total: int, entry: Any, eta_s: float | None) -> None:
        self.started[entry.exp_id] = time.perf_counter()

    def on_progress(self, entry: Any, message: str) -> None:
        pass

    def on_adaptive_round(self, added: Any, decisions: Any) -> None:
        for decision in decisions:
            verdict = "done" if decision.converged else decision.verdict
            self._line(f"adaptive {verdict} {decision.name}: {decision.text}")

    def on_experiment_end(self, index: int, total: int, entry: Any, eta_s: float | None) -> None:
        from llenergymeasure.orchestration.executors.base import error_headline

        started = self.started.pop(entry.exp_id, None)
        ok = entry.status == "completed"
        parts = [f"[{index}/{total}]", entry.exp_id, "ok" if ok else "FAILED"]
        if started is not None:
            parts.append(f"{time.perf_counter() - started:.1f} s")
        else:
            parts.append("(already done)" if ok else "")
        if eta_s is not None and index < total:
            parts.append(f"ETA {short_duration(eta_s)}")
        line = " ".join(p for p in parts if p)
        if not ok:
            line += f": {error_headline(entry.error)}"
        self._line(line)

    def on_finish(self, outcome: Any) -> None:
        pass


class LiveProgress:
    """Rich progress on stderr: experiment i/N, cycle, backend, name, phase, ETA."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=err,
        )
        self.task: Any = None
        self.current = ""

    def on_start(self, plan: Any, total: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("starting", total=total, eta="")

    def _describe(self, text: str, eta_s: float | None = None) -> None:
        fields: dict[str, Any] = {"description": text}
        if eta_s is not None:
            fields["eta"] = f"ETA {clock_duration(eta_s)}"
        self.progress.update(self.task, **fields)

    def on_wait(self, reason: str, seconds: float) -> None:
        if self.task is not None:
            self._describe(f"waiting {seconds:g} s ({escape(reason)})")

    def on_experiment_start(self, index: int, total: int, entry: Any, eta_s: float | None) -> None:
        extra = " (adaptive)" if entry.why else ""
        self.current = (
            f"[{index}/{total}] cycle {entry.cycle}{extra} {entry.backend} "
            f"[bold]{escape(entry.name)}[/]"
        )
        self._describe(self.current, eta_s)

    def on_progress(self, entry: Any, message: str) -> None:
        self._describe(f"{self.current} [dim]{escape(message)}[/]")

    def on_adaptive_round(self, added: Any, decisions: Any) -> None:
        for decision in decisions:
            if decision.verdict == "more":
                mark, text = "[cyan]more[/]", f"another cycle: {decision.text}"
            else:
                mark = "[green]done[/]" if decision.converged else "[yellow]stop[/]"
                text = decision.text
            self.progress.console.print(f"{mark} {escape(decision.name)}: {escape(text)}")
        if added:
            self.progress.update(self.task, total=(self.progress.tasks[0].total or 0) + len(added))

    def on_experiment_end(self, index: int, total: int, entry: Any, eta_s: float | None) -> None:
        from llenergymeasure.orchestration.executors.base import error_headline

        if entry.status == "completed":
            self.progress.console.print(f"[green]ok[/]   {escape(entry.exp_id)}")
        else:
            self.progress.console.print(
                f"[red]FAIL[/] {escape(entry.exp_id)}: {escape(error_headline(entry.error))}"
            )
        self.progress.update(self.task, advance=1)
        if eta_s is not None:
            self.progress.update(self.task, eta=f"ETA {clock_duration(eta_s)}")

    def on_finish(self, outcome: Any) -> None:
        self.progress.stop()


def campaign_observer() -> Any:
    """Rich live progress on a terminal; elsewhere one plain line per finished run (a live
    line would be left behind in a log, and a pipe cuts nothing it is given whole)."""
    if err.is_terminal:
        return LiveProgress()
    return PlainProgress()


def clock_duration(seconds: float) -> str:
    """``1:02:05``: the live display's ETA."""
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
