"""Whose processes run on a measured GPU: ours, another job's, or a PID we cannot place.

Vendor-neutral: it reads ``GPU.processes()`` and this PID namespace's ``/proc``.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from llenergymeasure.devices.base import GPU

PROC_ROOT = Path("/proc")  # where this PID namespace's processes are listed


class ProcessAttribution:
    """The compute processes seen on the measured GPUs at any sample of a window (a union).

    Each listed PID is ours (this process or a child, such as an engine worker), another
    process (it exists in this PID namespace), or unresolved: a PID missing from ``/proc``.
    Drivers that do not translate PIDs into a container's namespace list host PIDs
    (NVIDIA/nvidia-docker#1483), so an unresolved PID may be this very process, or a job in
    another container: it is reported as unknown, never taken to be ours. Once the driver has
    listed one of our PIDs as we know them it does translate, so an unresolved PID then is
    another namespace's process.
    """

    def __init__(self) -> None:
        self._own = _own_pids()
        self._ours_listed = False
        self._others: dict[tuple[int, int], dict[str, Any]] = {}
        self._unknown: dict[tuple[int, int], dict[str, Any]] = {}

    def observe(self, gpu: GPU, t_s: float) -> None:
        for p in gpu.processes():
            key = (gpu.index, p["pid"])
            known = self._others.get(key) or self._unknown.get(key)
            if known is not None:
                known["last_seen_s"] = t_s
                continue
            if p["pid"] not in self._own:
                self._own = _own_pids()  # a child started since the last look
            if p["pid"] in self._own:
                self._ours_listed = True
                continue
            exists = (PROC_ROOT / str(p["pid"])).exists()
            record = {"device": gpu.label, **p, "first_seen_s": t_s, "last_seen_s": t_s}
            (self._others if exists else self._unknown)[key] = record

    def others(self) -> tuple[dict[str, Any], ...]:
        found = dict(self._others)
        if self._ours_listed:
            found.update(self._unknown)
        return tuple(found[key] for key in sorted(found))

    def unknown(self) -> tuple[dict[str, Any], ...]:
        if self._ours_listed:
            return ()
        return tuple(self._unknown[key] for key in sorted(self._unknown))


def _own_pids() -> frozenset[int]:
    """This process and its children (engines may run workers)."""
    pids = {os.getpid()}
    with suppress(Exception):
        import psutil

        pids.update(c.pid for c in psutil.Process().children(recursive=True))
    return frozenset(pids)
