"""Goodput: the requests that completed within a service-level objective (TTFT and TPOT).

A request meets the SLO when it completed, its first token came at most ``ttft_ms`` after it
arrived (queueing included) and its time per output token after the first is at most
``tpot_ms`` (a one-token reply has no TPOT and meets that half). An unset threshold is not
checked; with neither set there is no goodput figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from llenergymeasure.config.server_config import ServingSLO


@dataclass(frozen=True)
class RequestTiming:
    """What the SLO reads of one request, in seconds."""

    completed: bool
    ttft_s: float | None
    tpot_s: float | None


def meets_slo(timing: RequestTiming, slo: ServingSLO) -> bool | None:
    """Whether one request meets ``slo`` (None: no SLO set)."""
    if slo.ttft_ms is None and slo.tpot_ms is None:
        return None
    if not timing.completed:
        return False
    if slo.ttft_ms is not None and (timing.ttft_s is None or timing.ttft_s * 1e3 > slo.ttft_ms):
        return False
    return not (
        slo.tpot_ms is not None and timing.tpot_s is not None and timing.tpot_s * 1e3 > slo.tpot_ms
    )


@dataclass(frozen=True)
class Goodput:
    requests: int
    fraction: float
    per_second: float


def goodput(verdicts: list[bool | None], window_s: float) -> Goodput | None:
    """Requests within the SLO, their share of all sent, and their rate over the window."""
    if not verdicts or any(v is None for v in verdicts):
        return None
    good = sum(1 for v in verdicts if v)
    return Goodput(good, good / len(verdicts), good / window_s if window_s > 0 else 0.0)
