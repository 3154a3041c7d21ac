"""Daemon-mode pacing: start at a time of day, start cycles at an interval, stop starting them
after a total duration. Time is injected (``clock`` returns epoch seconds, ``sleep`` waits) so
tests run in no time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from llenergymeasure.config.campaign_config import ScheduleConfig

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def seconds_until(at: str, now: datetime) -> float:
    """Seconds from ``now`` (local, naive or aware) to the next ``HH:MM``; 0 when it is now."""
    hour, minute = (int(part) for part in at.split(":"))
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target < now.replace(second=0, microsecond=0):
        target += timedelta(days=1)
    return max(0.0, (target - now).total_seconds())


@dataclass
class Scheduler:
    """Decides how long to wait before the campaign and before each cycle, and when to stop."""

    config: ScheduleConfig
    clock: Clock = time.time
    sleep: Sleep = time.sleep
    started_at: float | None = None
    waited_s: float = 0.0
    cycle_starts: list[float] = field(default_factory=list)

    @property
    def active(self) -> bool:
        c = self.config
        return bool(c.at or c.interval_seconds or c.total_duration_seconds)

    def _wait(self, seconds: float, on_wait: Callable[[str, float], None] | None, why: str) -> None:
        if seconds <= 0:
            return
        if on_wait is not None:
            on_wait(why, seconds)
        self.sleep(seconds)
        self.waited_s += seconds

    def wait_for_start(self, on_wait: Callable[[str, float], None] | None = None) -> None:
        """Wait until ``at`` (if set); the total duration counts from the moment this returns."""
        if self.config.at:
            now = datetime.fromtimestamp(self.clock())
            self._wait(
                seconds_until(self.config.at, now), on_wait, f"waiting until {self.config.at}"
            )
        self.started_at = self.clock()

    def expired(self) -> bool:
        """True once ``total_duration_seconds`` has passed since the start."""
        limit = self.config.total_duration_seconds
        if limit is None or self.started_at is None:
            return False
        return self.clock() - self.started_at >= limit

    def before_cycle(self, on_wait: Callable[[str, float], None] | None = None) -> bool:
        """Pace the start of the next cycle; False when the total duration says stop."""
        if self.started_at is None:
            self.started_at = self.clock()
        if self.expired():
            return False
        interval = self.config.interval_seconds
        if interval is not None and self.cycle_starts:
            due = self.cycle_starts[-1] + interval
            limit = self.config.total_duration_seconds
            if limit is not None and due - self.started_at >= limit:
                return False  # it would start after the end: do not wait for nothing
            self._wait(due - self.clock(), on_wait, f"next cycle at the {interval:g} s interval")
        self.cycle_starts.append(self.clock())
        return True
