"""The machine-wide measurement lock: node-wide sources run alone, per-device ones together,
across real processes; and how each source's scope is decided."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from llenergymeasure.measurement import host_lock

HOLD = """
import sys, time
from llenergymeasure.measurement import host_lock
lock = host_lock.acquire(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


@pytest.fixture(autouse=True)
def _private_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLEM_HOST_LOCK", str(tmp_path / "machine.lock"))


def _holder(scope: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, scope, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize(
    ("held", "wanted", "waits"),
    [("node", "node", True), ("node", "device", True), ("device", "node", True),
     ("device", "device", False)],
)  # fmt: skip
def test_node_wide_experiments_run_alone_and_per_device_ones_together(
    held: str, wanted: str, waits: bool
) -> None:
    other = _holder(held, 1.5)
    said: list[str] = []
    try:
        lock = host_lock.acquire(wanted, said.append)  # type: ignore[arg-type]
        lock.release()
    finally:
        other.wait(timeout=30)
    assert (lock.waited_s > 0.5) is waits
    assert bool(said) is waits
    if waits:
        assert said[0].startswith("waiting for other experiments on this machine")


def test_a_killed_holder_releases_the_machine() -> None:
    other = _holder("node", 60)
    other.kill()
    other.wait(timeout=30)
    started = time.monotonic()
    host_lock.acquire("node").release()
    assert time.monotonic() - started < 5


def test_which_sources_are_node_wide() -> None:
    assert host_lock.energy_scope("estimate") == "node"
    assert host_lock.energy_scope("rapl") == "node"
    assert host_lock.energy_scope("codecarbon") == "node"
    assert host_lock.energy_scope("nvml") == "device"
    assert host_lock.energy_scope("auto", gpu_present=lambda: True) == "device"
    assert host_lock.energy_scope("auto", gpu_present=lambda: False) == "node"
