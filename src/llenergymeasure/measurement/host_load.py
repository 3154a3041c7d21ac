"""How busy the rest of the machine was during a measured window, read from ``/proc``.

CPU-side energy (RAPL, the CPU-utilisation estimate, CodeCarbon) covers the whole host CPU,
so other processes' work is in the reading. This samples, through the window: the machine's
busy CPU time (``/proc/stat``), this process tree's CPU time (``/proc/<pid>/stat`` utime +
stime + reaped children's cutime + cstime, for this process and every living descendant,
e.g. vLLM's engine process) and the load average (``/proc/loadavg``). The other processes'
share is (busy - ours) / all CPU time of all cores; above ``BUSY_OTHER_SHARE_PCT`` the result
is flagged ``machine_busy``.

A descendant that starts and exits between two samples without being reaped by us is counted
as another process's time: the flag errs towards "busy", never towards "idle".
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llenergymeasure.measurement.energy.base import PeriodicSampler

SAMPLE_INTERVAL_S = 0.25  # /proc is walked once per sample: coarser than power polling
# Other processes' CPU time as a share of every core's time, above which CPU-side energy is
# flagged: on 8 cores, 10% is nearly one core kept busy by someone else all window long.
BUSY_OTHER_SHARE_PCT = 10.0
_IDLE_FIELDS = (3, 4)  # idle, iowait in the "cpu" line's value list (0-based)
_CPU_FIELDS = 8  # user nice system idle iowait irq softirq steal (guest is inside user)


@dataclass(frozen=True)
class _Snapshot:
    t_s: float
    busy_ticks: int
    total_ticks: int
    own_ticks: int
    load_1m: float | None


@dataclass
class HostLoadSampler:
    """Sample the machine's CPU use and this process tree's between start() and stop()."""

    proc_root: Path = Path("/proc")
    pid: int = field(default_factory=os.getpid)
    interval_s: float = SAMPLE_INTERVAL_S
    snapshots: list[_Snapshot] = field(default_factory=list)
    _thread: PeriodicSampler | None = None

    def _cpu_ticks(self) -> tuple[int, int]:
        with (self.proc_root / "stat").open() as f:
            first = f.readline().split()
        values = [int(v) for v in first[1 : 1 + _CPU_FIELDS]]
        idle = sum(values[i] for i in _IDLE_FIELDS)
        total = sum(values)
        return total - idle, total

    def _stat_fields(self, pid: str) -> list[str] | None:
        try:
            text = (self.proc_root / pid / "stat").read_text()
        except OSError:  # exited between the listing and the read
            return None
        return text[text.rindex(")") + 2 :].split()  # after "pid (comm) ", comm may hold spaces

    def _own_ticks(self) -> int:
        """CPU ticks of this process and its living descendants (each with its reaped
        children's), from one walk of /proc."""
        parent: dict[str, str] = {}
        ticks: dict[str, int] = {}
        for entry in self.proc_root.iterdir():
            if not entry.name.isdigit():
                continue
            fields = self._stat_fields(entry.name)
            if fields is None:
                continue
            parent[entry.name] = fields[1]  # ppid; utime stime cutime cstime follow at 11-14
            ticks[entry.name] = sum(int(v) for v in fields[11:15])
        tree = {str(self.pid)}
        grew = True
        while grew:
            grew = False
            for pid, ppid in parent.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        return sum(ticks.get(pid, 0) for pid in tree)

    def _load_1m(self) -> float | None:
        try:
            return float((self.proc_root / "loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def sample(self) -> None:
        busy, total = self._cpu_ticks()
        self.snapshots.append(
            _Snapshot(time.perf_counter(), busy, total, self._own_ticks(), self._load_1m())
        )

    def start(self) -> None:
        self.snapshots.clear()
        self.sample()
        self._thread = PeriodicSampler(
            self.sample, self.interval_s, time.perf_counter(), "llem-host-load"
        )
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the window's host load (see ``summary``)."""
        if self._thread is not None:
            self._thread.halt()
            self._thread = None
        self.sample()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Other processes' CPU share over the window (and its worst interval), the load
        average's range, and how it was read."""
        first, last = self.snapshots[0], self.snapshots[-1]
        pairs = zip(self.snapshots, self.snapshots[1:], strict=False)
        shares = [s for a, b in pairs if (s := _other_share_pct(a, b)) is not None]
        loads = [s.load_1m for s in self.snapshots if s.load_1m is not None]
        share = _other_share_pct(first, last)
        return {
            "other_cpu_share_pct": share,
            "other_cpu_share_max_pct": max(shares) if shares else share,
            "load_average_1m_min": min(loads) if loads else None,
            "load_average_1m_max": max(loads) if loads else None,
            "cpus": os.cpu_count(),
            "samples": len(self.snapshots),
            "interval_s": self.interval_s,
            "threshold_pct": BUSY_OTHER_SHARE_PCT,
            "method": (
                "/proc/stat busy jiffies minus this process tree's /proc/<pid>/stat utime + "
                "stime + cutime + cstime, as a share of all cores' jiffies; /proc/loadavg"
            ),
        }


def _other_share_pct(a: _Snapshot, b: _Snapshot) -> float | None:
    total = b.total_ticks - a.total_ticks
    if total <= 0:
        return None
    other = (b.busy_ticks - a.busy_ticks) - (b.own_ticks - a.own_ticks)
    return max(0.0, 100.0 * other / total)


def machine_busy(load: dict[str, Any] | None) -> bool:
    """Did other processes use more of the CPU than the threshold during the window?"""
    share = None if load is None else load.get("other_cpu_share_pct")
    return share is not None and share > BUSY_OTHER_SHARE_PCT
