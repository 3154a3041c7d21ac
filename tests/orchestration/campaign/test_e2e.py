"""The real thing on the built-in model: `llem campaign run` end to end, kill -9 and resume,
Ctrl-C and resume, failure isolation, the subprocess executor, status and export."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.orchestration.executors.base import ExperimentTask
from llenergymeasure.orchestration.executors.inprocess import InProcessExecutor
from llenergymeasure.orchestration.executors.subprocess import SubprocessExecutor
from llenergymeasure.results.schema import load_result

from .helpers import TINY_BASE, campaign_yaml, manifest_data

pytestmark = pytest.mark.slow

A, B, C = "pytorch_tiny-gpt2_out4", "pytorch_tiny-gpt2_out6", "pytorch_tiny-gpt2_out8"
LLEM = [sys.executable, "-c", "from llenergymeasure.cli.app import main; main()"]


@pytest.fixture(autouse=True)
def _model(tiny_model_dir: Path) -> None:
    """Build the built-in model once, before any campaign needs it."""


def llem(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def wait_for(condition: Callable[[], bool], timeout_s: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the campaign ended before the test could stop it:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the campaign")
        time.sleep(0.02)


def test_campaign_end_to_end_via_the_cli(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"

    dry = llem("campaign", "run", file, "-o", out, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "4 run(s) to do" in dry.output and "estimated duration: unknown" in dry.output
    assert f"{A}_c1" in dry.output and f"{B}_c2" in dry.output
    assert not out.exists()  # a dry run writes nothing

    run = llem("campaign", "run", file, "-o", out, "--yes")
    assert run.exit_code == 0, run.output
    assert "campaign completed" in run.output
    data = manifest_data(out)
    assert [(e["exp_id"], e["status"]) for e in data["entries"]] == [
        (f"{A}_c1", "completed"),
        (f"{B}_c1", "completed"),
        (f"{A}_c2", "completed"),
        (f"{B}_c2", "completed"),
    ]
    results = {p.parent.name: load_result(p) for p in out.glob("*/result.json")}
    assert sorted(results) == sorted(e["exp_id"] for e in data["entries"])
    assert all(
        r.config_hash == e["config_hash"] for e in data["entries"] for r in [results[e["exp_id"]]]
    )
    # consecutive experiments on one model reuse it; the first loads it
    assert results[f"{A}_c1"].timings.model_reused is False
    assert results[f"{B}_c1"].timings.model_reused is True
    assert results[f"{B}_c1"].timings.model_load_s == 0.0

    summary = rows(out / "summary.csv")
    assert [r["name"] for r in summary] == [A, B]
    assert all(r["cycles_completed"] == "2" and r["low_cycles"] == "true" for r in summary)
    assert all(
        r["energy_method"] == "estimate" and r["energy_is_estimate"] == "true" for r in summary
    )
    assert float(summary[0]["tokens_per_second_mean"]) > 0
    experiments = rows(out / "experiments.csv")
    assert len(experiments) == 4 and {r["status"] for r in experiments} == {"completed"}
    import pyarrow.parquet as pq

    assert pq.read_table(out / "summary.parquet").num_rows == 2

    status = llem("campaign", "status", out)
    assert status.exit_code == 0, status.output
    assert "4/4 completed" in status.output and "no campaign process is running" in status.output
    status_json = json.loads(llem("campaign", "status", out, "--json").output)
    assert status_json["counts"]["completed"] == 4 and status_json["process_running"] is False

    export = llem("results", "export", out, "--format", "json", "--format", "csv")
    assert export.exit_code == 0, export.output
    assert len(json.loads((out / "summary.json").read_text())["experiments"]) == 4

    again = llem("campaign", "run", file, "-o", out, "--yes")
    assert again.exit_code == 2
    assert "--resume" in again.output and "--fresh" in again.output

    # resume with a changed design: the change is shown, new runs only, removed kept
    changed = campaign_yaml(tmp_path / "c2.yaml", outputs=(4, 8))
    resumed = llem("campaign", "run", changed, "-o", out, "--resume", "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert "changed since this run started" in resumed.output
    assert f"added 1 experiment(s), to run: {C}" in resumed.output
    assert f"removed 1 experiment(s), kept as skipped with their results: {B}" in resumed.output
    statuses = {e["exp_id"]: e["status"] for e in manifest_data(out)["entries"]}
    assert statuses[f"{B}_c1"] == "skipped" and statuses[f"{C}_c2"] == "completed"
    assert (out / f"{B}_c1" / "result.json").is_file()

    fresh = llem("campaign", "run", file, "-o", out, "--fresh", "--yes", "--quiet")
    assert fresh.exit_code == 0, fresh.output
    (previous,) = out.glob(".previous-*")
    assert len(list(previous.glob("*/result.json"))) == 6
    assert len(list(out.glob("*/result.json"))) == 4
    assert "campaign.log" in {p.name for p in out.iterdir()}


def test_failures_are_isolated_and_max_consecutive_failures_stops(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    text = (
        "campaign_name: failing\n"
        + TINY_BASE
        + f"grid:\n  backends: [pytorch]\n  models: ['{missing}', builtin:tiny-gpt2]\n"
        + "execution:\n  cycles: 2\n"
    )
    file = tmp_path / "c.yaml"
    file.write_text(text)
    run = llem("campaign", "run", file, "-o", tmp_path / "out", "--yes")
    assert run.exit_code == 1, run.output
    assert "completed_with_failures" in run.output and "Failures" in run.output
    entries = manifest_data(tmp_path / "out")["entries"]
    failed = [e for e in entries if e["status"] == "failed"]
    assert len(failed) == 2 and all(str(missing) in e["error"] for e in failed)
    assert all("no-such-model" in e["name"] for e in failed)
    assert sum(e["status"] == "completed" for e in entries) == 2

    file.write_text(text + "  max_consecutive_failures: 1\n")
    stopped = llem("campaign", "run", file, "-o", tmp_path / "out2", "--yes")
    assert stopped.exit_code == 1
    assert "1 consecutive failures" in stopped.output
    assert [e["status"] for e in manifest_data(tmp_path / "out2")["entries"]] == [
        "failed",
        "pending",
        "pending",
        "pending",
    ]


def _task(tmp_path: Path, exp_id: str, model: str = "builtin:tiny-gpt2") -> ExperimentTask:
    from llenergymeasure.config.identity import config_hash
    from llenergymeasure.config.models import ExperimentConfig

    config = {
        "name": exp_id,
        "model": model,
        "fp_precision": "float32",
        "max_output_tokens": 4,
        "dataset": {"num_prompts": 2, "synthetic_input_tokens": 8},
        "warmup": {"max_prompts": 1, "min_prompts": 1, "convergence_detection": False},
        "baseline": {"enabled": False},
        "energy": {"source": "estimate"},
    }
    digest = config_hash(ExperimentConfig.model_validate(config))
    return ExperimentTask(exp_id, exp_id, config, digest, 1, tmp_path / "out")


def test_subprocess_executor_writes_the_same_result_files_and_forwards_tracebacks(
    tmp_path: Path,
) -> None:
    child = SubprocessExecutor()
    messages: list[str] = []
    done = child.run(_task(tmp_path, "sub"), messages.append)
    assert done.status == "completed", done.error
    assert done.result_path == tmp_path / "out" / "sub" / "result.json"
    assert any("measuring" in m for m in messages)  # the child's progress reached us

    here = InProcessExecutor()
    try:
        local = here.run(_task(tmp_path, "inproc"))
    finally:
        here.close()
    assert local.status == "completed"
    a, b = load_result(done.result_path), load_result(tmp_path / "out" / "inproc" / "result.json")
    assert a.config_hash == b.config_hash
    assert a.model_dump().keys() == b.model_dump().keys()
    assert sorted(p.name for p in (tmp_path / "out" / "sub").iterdir()) == sorted(
        p.name for p in (tmp_path / "out" / "inproc").iterdir()
    )

    failed = child.run(_task(tmp_path, "broken", model=str(tmp_path / "nowhere")))
    assert failed.status == "failed"
    assert failed.error is not None
    assert str(tmp_path / "nowhere") in failed.error.splitlines()[0]  # the message first
    assert "--- traceback --- (experiment process)" in failed.error
    assert "Traceback (most recent call last)" in failed.error
    assert not (tmp_path / "out" / "broken" / "result.json").exists()

    slow = SubprocessExecutor(timeout_s=0.5).run(_task(tmp_path, "slow"))
    assert slow.status == "failed" and slow.timed_out
    assert "timed out after 0.5 s" in (slow.error or "")


def _start(file: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LLEM, "campaign", "run", str(file), "-o", str(out), "--yes", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_mid_run_then_resume_runs_everything_exactly_once(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml", outputs=(4, 6, 8)), tmp_path / "out"
    proc = _start(file, out)
    first = out / f"{A}_c1" / "result.json"
    wait_for(first.is_file, 120, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    kept = {p.parent.name: p.read_bytes() for p in out.glob("*/result.json")}
    assert f"{A}_c1" in kept
    before = manifest_data(out)
    assert before["status"] == "running"  # nobody said goodbye

    resumed = llem("campaign", "run", file, "-o", out, "--resume", "--yes")
    assert resumed.exit_code == 0, resumed.output
    data = manifest_data(out)
    keys = [(e["config_hash"], e["cycle"]) for e in data["entries"]]
    assert len(keys) == len(set(keys)) == 6
    assert {e["status"] for e in data["entries"]} == {"completed"}
    results = sorted(out.glob("*/result.json"))
    assert sorted(p.parent.name for p in results) == sorted(e["exp_id"] for e in data["entries"])
    for exp_id, content in kept.items():  # nothing measured before the kill was redone
        assert (out / exp_id / "result.json").read_bytes() == content
    assert all(e["attempts"] == 1 for e in data["entries"] if e["exp_id"] in kept)
    assert len(rows(out / "experiments.csv")) == 6


def test_ctrl_c_marks_interrupted_exits_130_and_resume_completes(tmp_path: Path) -> None:
    slow_base = TINY_BASE.replace(
        "  baseline: {enabled: false}\n",
        "  baseline: {enabled: true, duration_sec: 1.5, cache_ttl_sec: 0}\n",
    )
    file = campaign_yaml(tmp_path / "c.yaml", base=slow_base)
    out = tmp_path / "out"
    proc = _start(file, out)

    def second_running() -> bool:
        try:
            entries = manifest_data(out)["entries"]
        except AssertionError:  # not written yet
            return False
        return entries[0]["status"] == "completed" and entries[1]["status"] == "running"

    wait_for(second_running, 120, proc)
    time.sleep(0.3)  # inside its 1.5 s idle baseline
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert "campaign interrupted" in stdout
    data = manifest_data(out)
    assert data["status"] == "interrupted"
    assert [e["status"] for e in data["entries"]] == [
        "completed",
        "interrupted",
        "pending",
        "pending",
    ]
    assert "interrupted" in data["entries"][1]["error"]
    first = (out / f"{A}_c1" / "result.json").read_bytes()

    resumed = llem("campaign", "run", file, "-o", out, "--resume", "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert "3 run(s) to do" in resumed.output
    assert {e["status"] for e in manifest_data(out)["entries"]} == {"completed"}
    assert (out / f"{A}_c1" / "result.json").read_bytes() == first
    assert os.path.getsize(out / "summary.csv") > 0


def _read_until(fd: int, marker: str, proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """What a pseudo-terminal shows until ``marker`` appears (fails if the process ends first)."""
    import select

    seen = b""
    deadline = time.monotonic() + timeout_s
    while marker.encode() not in seen:
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {marker!r}; the terminal showed:\n{seen.decode()}")
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the other side closed: the process ended
                pytest.fail(f"the process ended before {marker!r}:\n{seen.decode()}")
    return seen.decode(errors="replace")


def test_a_resume_confirmed_after_another_run_finished_re_measures_nothing(
    tmp_path: Path,
) -> None:
    """Two real processes: A runs; B plans a --resume meanwhile and waits at its prompt in a
    terminal; A finishes; B's user presses Enter. B must re-plan under the lock and measure
    nothing: no result rewritten, no attempt counted."""
    import pty

    slow_base = TINY_BASE.replace(
        "  baseline: {enabled: false}\n",
        "  baseline: {enabled: true, duration_sec: 1.0, cache_ttl_sec: 0}\n",
    )
    file = campaign_yaml(tmp_path / "c.yaml", base=slow_base, outputs=(4, 6, 8))
    out = tmp_path / "out"
    first = _start(file, out)
    wait_for((out / f"{A}_c1" / "result.json").is_file, 120, first)

    controller, terminal = pty.openpty()
    waiting = subprocess.Popen(
        [*LLEM, "campaign", "run", str(file), "-o", str(out), "--resume"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
    )
    os.close(terminal)
    try:
        shown = _read_until(controller, "Proceed?", waiting, 120)
        assert first.poll() is None, "A finished before B planned: the race was not exercised"
        to_do = int(shown.split(" run(s) to do")[0].rsplit(maxsplit=1)[-1])
        assert to_do > 0, shown  # B's plan, made against the live run, still has work in it
        first.communicate(timeout=300)
        assert first.returncode == 0
        after_first = {
            p.relative_to(out): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(out.glob("*/result*.json"))
        }
        attempts = {e["exp_id"]: e["attempts"] for e in manifest_data(out)["entries"]}
        assert len(after_first) == 6 and set(attempts.values()) == {1}

        os.write(controller, b"\r")  # B's user presses Enter
        waiting.wait(timeout=120)
        shown += _drain(controller)
    finally:
        if waiting.poll() is None:
            waiting.kill()
        os.close(controller)
    assert waiting.returncode == 0, shown
    assert "planned again" in shown
    assert {
        p.relative_to(out): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(out.glob("*/result*.json"))
    } == after_first
    assert {e["exp_id"]: e["attempts"] for e in manifest_data(out)["entries"]} == attempts
    assert {e["status"] for e in manifest_data(out)["entries"]} == {"completed"}


def _drain(fd: int) -> str:
    """Whatever is left to read on a pseudo-terminal whose process has ended."""
    import select

    seen = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")
