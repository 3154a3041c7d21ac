"""Other processes' CPU use during a CPU-side energy window is measured and flagged."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement import harness
from llenergymeasure.measurement.host_load import BUSY_OTHER_SHARE_PCT, HostLoadSampler

OURS, CHILD, FOREIGN = 4000, 4001, 5000


class FakeProc:
    """A /proc tree with a machine-wide ``stat``, a ``loadavg`` and per-PID ``stat`` files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cpu = [0] * 8  # user nice system idle iowait irq softirq steal
        self.procs: dict[int, tuple[int, int]] = {}  # pid -> (ppid, utime)
        self.load = 0.5

    def write(self) -> None:
        self.root.mkdir(exist_ok=True)
        (self.root / "stat").write_text("cpu  " + " ".join(map(str, self.cpu)) + " 0 0\n")
        (self.root / "loadavg").write_text(f"{self.load} 0.4 0.3 1/100 {FOREIGN}\n")
        for pid, (ppid, utime) in self.procs.items():
            (self.root / str(pid)).mkdir(exist_ok=True)
            fields = ["S", str(ppid)] + ["0"] * 9 + [str(utime), "0", "0", "0"] + ["0"] * 5
            (self.root / str(pid) / "stat").write_text(f"{pid} (a (b) c) " + " ".join(fields))

    def tick(self, *, ours: int, child: int, foreign: int, idle: int) -> None:
        self.cpu[0] += ours + child + foreign
        self.cpu[3] += idle
        for pid, extra in ((OURS, ours), (CHILD, child), (FOREIGN, foreign)):
            ppid, utime = self.procs[pid]
            self.procs[pid] = (ppid, utime + extra)
        self.write()


def fake_proc(tmp_path: Path) -> FakeProc:
    proc = FakeProc(tmp_path / "proc")
    proc.procs = {OURS: (1, 0), CHILD: (OURS, 0), FOREIGN: (1, 0)}
    proc.write()
    return proc


def test_our_tree_including_children_is_ours_and_the_rest_is_other(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    sampler = HostLoadSampler(proc_root=proc.root, pid=OURS)
    sampler.sample()
    proc.tick(ours=50, child=30, foreign=0, idle=120)  # an engine child: still ours
    proc.load = 2.5
    sampler.sample()
    proc.tick(ours=50, child=0, foreign=100, idle=50)  # someone else, half the machine
    sampler.sample()
    load = sampler.summary()
    assert load["other_cpu_share_pct"] == 25.0  # 100 of 400 jiffies
    assert load["other_cpu_share_max_pct"] == 50.0  # the second interval alone
    assert (load["load_average_1m_min"], load["load_average_1m_max"]) == (0.5, 2.5)
    assert load["samples"] == 3


def test_an_idle_machine_is_not_busy(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    sampler = HostLoadSampler(proc_root=proc.root, pid=OURS)
    sampler.sample()
    proc.tick(ours=90, child=10, foreign=2, idle=98)
    sampler.sample()
    assert sampler.summary()["other_cpu_share_pct"] == 1.0


def burner_config() -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "model": "builtin:tiny-gpt2",
            "fp_precision": "float32",
            "max_output_tokens": 4,
            "dataset": {"num_prompts": 4},
            "baseline": {"enabled": False},
            "warmup": {"enabled": False},
            "energy": {"source": "estimate", "min_window_s": 1.0},
        }
    )


def start_burners(count: int) -> list[int]:
    """Busy-loops that are not our descendants (a shell starts them and exits, so they are
    reparented): another job's processes, as the sampler must see them."""
    loop = f"{sys.executable} -c 'while 1: pass' >/dev/null 2>&1 & echo $!; "
    out = subprocess.run(["sh", "-c", loop * count], capture_output=True, text=True, check=True)
    return [int(pid) for pid in out.stdout.split()]


def stop_burners(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_cpu_burner_beside_a_real_experiment_flags_the_machine_busy(tmp_path: Path) -> None:
    """One busy-loop per core beside a real run of the built-in model: whatever else this
    machine runs, other processes hold well over the threshold, so this cannot pass idle."""
    burners: list[int] = []
    try:
        burners = start_burners(os.cpu_count() or 1)
        result = harness.run_experiment(burner_config(), tmp_path / "out", experiment_id="e")
    finally:
        stop_burners(burners)
    load = result.energy.host_load
    assert load is not None and load["other_cpu_share_pct"] > BUSY_OTHER_SHARE_PCT
    (flag,) = [f for f in result.flags if f.code == "machine_busy"]
    assert flag.severity == "warning" and "whole host CPU" in flag.message
    assert not [pid for pid in burners if running(pid)]  # none left behind


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_a_campaign_on_a_loaded_machine_is_flagged_busy_in_its_tables_and_headline(
    tmp_path: Path,
) -> None:
    """The whole path a user sees: `llem campaign run` beside one busy-loop per core writes
    machine_busy into experiments.csv and names it in the campaign's closing table."""
    import csv

    import yaml
    from typer.testing import CliRunner

    from llenergymeasure.cli.app import app

    base = burner_config().model_dump(mode="json", exclude_unset=True)
    campaign = {
        "campaign_name": "busy",
        "base_config": base,
        "grid": {"backends": ["pytorch"], "shared": {"fp_precision": ["float32"]}},
        "execution": {"cycles": 1},
    }
    file = tmp_path / "busy.yaml"
    file.write_text(yaml.safe_dump(campaign))
    out = tmp_path / "out"
    burners: list[int] = []
    try:
        burners = start_burners(os.cpu_count() or 1)
        result = CliRunner().invoke(app, ["campaign", "run", str(file), "-o", str(out), "--yes"])
    finally:
        stop_burners(burners)
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader((out / "experiments.csv").open())
    assert "machine_busy (warning)" in (row["quality_flags"] or "")
    assert "machine_busy" in result.output
    assert not [pid for pid in burners if running(pid)]
