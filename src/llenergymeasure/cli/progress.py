"""Campaign progress where stderr is not a terminal (a log file, a pipe, CI): one plain line per
finished run, ``[k/N] NAME ok 12.3 s ETA 4m05s``, never a Rich live line left behind, names
whole."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


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
