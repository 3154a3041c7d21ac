"""One node-wide measurement at a time on a machine.

RAPL, CodeCarbon and the CPU estimate read the whole machine: any other experiment running beside
one of them (a second campaign, a second Ray worker on the node) would be counted in its energy.
So every experiment holds this machine's lock for its whole run (model load to the end of its
measured window): *shared* when its energy is read per device (GPU counters: experiments on other
GPUs do not touch it), *exclusive* when it is node-wide. Processes of any campaign, executor or
user take the same lock; the kernel releases it when a holder dies, even by ``kill -9``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from llenergymeasure.config.models import NODE_WIDE_SOURCES

Scope = Literal["device", "node"]

LOCK_NAME = "llenergymeasure-measurement.lock"


def energy_scope(source: str, *, gpu_present: Callable[[], bool] | None = None) -> Scope:
    """``node`` for a node-wide source; ``auto`` is per device only where it will pick NVML."""
    if source == "auto":
        if gpu_present is None:
            from llenergymeasure.measurement.inference._gpu import nvidia_gpu_present

            gpu_present = nvidia_gpu_present
        return "device" if gpu_present() else "node"
    return "node" if source in NODE_WIDE_SOURCES else "device"


def lock_path() -> Path:
    """The machine's lock file (``LLEM_HOST_LOCK`` overrides it, e.g. for a shared /tmp)."""
    return Path(os.environ.get("LLEM_HOST_LOCK") or Path(tempfile.gettempdir()) / LOCK_NAME)


@dataclass
class HostLock:
    """A held lock: ``waited_s`` is how long it took to get, ``release`` gives it back."""

    scope: Scope
    waited_s: float
    _handle: IO[str] | None

    def release(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()  # closing drops the flock


def acquire(scope: Scope, say: Callable[[str], None] | None = None) -> HostLock:
    """Wait for and take the machine's lock in ``scope``; say once when it has to wait."""
    try:
        import fcntl
    except ImportError:  # not POSIX: nothing to coordinate with
        return HostLock(scope, 0.0, None)
    path = lock_path()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # another user's lock file we cannot open: lock our own
        path = path.with_name(f"{path.name}.{os.getuid()}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    mode = fcntl.LOCK_EX if scope == "node" else fcntl.LOCK_SH
    started = time.perf_counter()
    try:
        fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
    except OSError:
        if say is not None:
            what = (
                "a node-wide energy source needs the machine to itself"
                if scope == "node"
                else "another experiment on this machine reads node-wide energy"
            )
            say(f"waiting for other experiments on this machine ({what})")
        try:
            fcntl.flock(handle.fileno(), mode)
        except BaseException:
            handle.close()
            raise
    return HostLock(scope, time.perf_counter() - started, handle)
