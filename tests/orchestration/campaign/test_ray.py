"""The ray executor on a real local Ray cluster (bound to 127.0.0.1, 2 CPUs, 2 logical GPUs),
started by a fixture and stopped by its own processes: the same manifest and tables as the
in-process executor, a worker killed mid-experiment, the driver killed and resumed, a timeout.

Under ``CI=true`` these fail rather than skip when Ray is missing."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.orchestration.executors.ray import LOOPBACK_ENV

from .helpers import TINY_BASE, campaign_yaml, manifest_data

os.environ[LOOPBACK_ENV] = "0"  # before anything imports ray: the drivers here stay on loopback
os.environ.setdefault("RAY_AUTH_MODE", "token")  # as Ray 2.60 clusters are by default
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # the cluster's and its drivers'
if not os.environ.get("CI"):
    pytest.importorskip("ray")

pytestmark = pytest.mark.slow

LLEM = [sys.executable, "-c", "from llenergymeasure.cli.app import main; main()"]
ONE_PROMPT = TINY_BASE.replace("num_prompts: 2", "num_prompts: 1")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ours(marker: str) -> list[int]:
    """PIDs of the processes of the cluster whose temp dir is ``marker``."""
    import psutil

    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with_marker = any(marker in part for part in (proc.info["cmdline"] or []))
        if with_marker and proc.info["pid"] != os.getpid():
            pids.append(proc.info["pid"])
    return pids


@pytest.fixture(scope="module")
def ray_cluster(tiny_model_dir: Path) -> Iterator[str]:
    """``host:port`` of a Ray head on 127.0.0.1 with 2 logical GPUs; its workers see the
    session's model cache and no Hub."""
    temp = tempfile.mkdtemp(prefix="llray", dir="/tmp")  # short: Ray's socket paths
    port = _free_port()
    env = {
        **os.environ,
        LOOPBACK_ENV: "0",
        "LLEM_CACHE_DIR": str(tiny_model_dir.parent.parent),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    ray_cli = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--num-gpus=2", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert head.poll() is None, "ray start --head exited"
        assert time.monotonic() < deadline, "the Ray head did not come up"
        time.sleep(0.2)
    try:
        yield address
    finally:
        for pid in [head.pid, *_ours(temp)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        head.wait(timeout=30)


def _yaml(tmp_path: Path, address: str, *, outputs: tuple[int, ...], extra: str = "") -> Path:
    return campaign_yaml(
        tmp_path / "c.yaml",
        outputs=outputs,
        base=ONE_PROMPT,
        extra=f"  executor: ray\n  ray: {{address: '{address}', max_parallel: 2}}\n" + extra,
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def llem(*args: object) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_two_in_parallel_give_the_manifest_and_tables_of_the_inprocess_executor(
    tmp_path: Path, ray_cluster: str
) -> None:
    outputs = (2, 3, 4, 5, 6, 7)  # 6 experiments x 2 cycles
    ray_file = _yaml(tmp_path / "ray", ray_cluster, outputs=outputs)
    local_file = campaign_yaml(tmp_path / "local" / "c.yaml", outputs=outputs, base=ONE_PROMPT)
    ray_out, local_out = tmp_path / "ray-out", tmp_path / "local-out"

    done = llem("campaign", "run", ray_file, "-o", ray_out, "--yes")
    assert done.exit_code == 0, done.output
    assert "executor ray" in done.output and "runs alone on its machine" in done.output
    local = llem("campaign", "run", local_file, "-o", local_out, "--yes")
    assert local.exit_code == 0, local.output

    def entries(out: Path) -> list[tuple[str, int, str, int]]:
        return [
            (e["exp_id"], e["cycle"], e["status"], e["attempts"])
            for e in manifest_data(out)["entries"]
        ]

    assert entries(ray_out) == entries(local_out)
    assert len(entries(ray_out)) == 12
    ray_rows, local_rows = _rows(ray_out / "summary.csv"), _rows(local_out / "summary.csv")
    assert [(r["name"], r["cycles_completed"]) for r in ray_rows] == [
        (r["name"], r["cycles_completed"]) for r in local_rows
    ]
    assert list(ray_rows[0]) == list(local_rows[0])  # the same columns
    assert len(_rows(ray_out / "experiments.csv")) == 12

    results = [json.loads(p.read_text()) for p in sorted(ray_out.glob("*/result.json"))]
    placements = [r["environment"]["placement"] for r in results]
    assert {p["executor"] for p in placements} == {"ray"}
    assert all(p["node_id"] and p["host"] and len(p["ray_gpu_ids"]) == 1 for p in placements)
    by_worker: dict[int, list[dict[str, Any]]] = {}
    for result in results:
        by_worker.setdefault(result["environment"]["placement"]["worker_pid"], []).append(result)
    assert 1 <= len(by_worker) <= 2  # warm workers: one per GPU in use, not one per run
    for served in by_worker.values():
        runs = sorted(r["environment"]["placement"]["worker_runs"] for r in served)
        assert runs == list(range(1, len(served) + 1))
        assert sum(not r["timings"]["model_reused"] for r in served) == 1  # loaded once
        assert len({tuple(r["environment"]["placement"]["ray_gpu_ids"]) for r in served}) == 1
    gpu_sets = {tuple(r[0]["environment"]["placement"]["ray_gpu_ids"]) for r in by_worker.values()}
    assert len(gpu_sets) == len(by_worker)  # each worker its own GPU
    assert {r["timings"]["host_lock"] for r in results} == {"node"}  # the estimate: alone
    assert any(r["timings"]["host_wait_s"] > 0.05 for r in results)  # two were in flight


def _driver(file: Path, out: Path) -> subprocess.Popen[str]:
    """``llem campaign run`` in its own process (a driver the test can signal or kill)."""
    return subprocess.Popen(
        [*LLEM, "campaign", "run", str(file), "-o", str(out), "--yes", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


SLOW = ONE_PROMPT.replace(
    "  baseline: {enabled: false}\n",
    "  baseline: {enabled: true, duration_sec: 4, cache_ttl_sec: 0}\n",
)


def test_a_worker_killed_mid_experiment_is_interrupted_and_rerun_on_resume(
    tmp_path: Path, ray_cluster: str
) -> None:
    file = campaign_yaml(
        tmp_path / "c.yaml",
        outputs=(4,),
        cycles=2,
        base=SLOW,
        extra=f"  executor: ray\n  ray: {{address: '{ray_cluster}'}}\n",
    )
    out = tmp_path / "out"
    driver = _driver(file, out)
    try:
        _wait_for(lambda: bool(_workers()), 120, "a worker running the first experiment")
        time.sleep(1.0)  # inside the experiment (its imports, then its 4 s idle baseline)
        for pid in _workers():  # the warm worker's process, by its PID
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 1, stdout + stderr
    statuses = [(e["cycle"], e["status"]) for e in manifest_data(out)["entries"]]
    assert statuses == [(1, "interrupted"), (2, "completed")]
    first = manifest_data(out)["entries"][0]
    assert "Ray worker or node was lost" in first["error"]
    assert not (out / first["exp_id"] / "result.json").exists()
    kept = (out / manifest_data(out)["entries"][1]["exp_id"] / "result.json").read_bytes()

    resumed = llem("campaign", "run", file, "-o", out, "--resume", "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert [e["status"] for e in manifest_data(out)["entries"]] == ["completed", "completed"]
    assert [e["attempts"] for e in manifest_data(out)["entries"]] == [2, 1]
    assert (out / manifest_data(out)["entries"][1]["exp_id"] / "result.json").read_bytes() == kept


def _workers() -> list[int]:
    """PIDs of the Ray worker processes serving these tests' experiments: warm workers (Ray
    titles an actor's process ``ray::<class>``) and cold-start tasks (``ray::<task name>``,
    each named by its exp_id)."""
    import psutil

    return [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if " ".join(p.info["cmdline"] or []).startswith(
            ("ray::ExperimentActor", "ray::pytorch_tiny-gpt2")
        )
    ]


def test_the_driver_killed_then_resumed_loses_and_repeats_nothing(
    tmp_path: Path, ray_cluster: str
) -> None:
    file, out = _yaml(tmp_path, ray_cluster, outputs=(4, 6, 8)), tmp_path / "out"
    driver = subprocess.Popen(
        [*LLEM, "campaign", "run", str(file), "-o", str(out), "--yes", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: any(out.glob("*/result.json")), 180, "the first result")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    kept = {p.parent.name: p.read_bytes() for p in out.glob("*/result.json")}
    _wait_for(lambda: not _workers(), 60, "the killed driver's Ray tasks to end")
    assert {p.parent.name for p in out.glob("*/result.json")} == set(kept)  # none wrote late

    resumed = llem("campaign", "run", file, "-o", out, "--resume", "--yes")
    assert resumed.exit_code == 0, resumed.output
    data = manifest_data(out)
    keys = [(e["config_hash"], e["cycle"]) for e in data["entries"]]
    assert len(keys) == len(set(keys)) == 6
    assert {e["status"] for e in data["entries"]} == {"completed"}
    for exp_id, content in kept.items():
        assert (out / exp_id / "result.json").read_bytes() == content
    assert all(e["attempts"] == 1 for e in data["entries"] if e["exp_id"] in kept)
    assert len(list(out.glob("*/result*.json"))) == 6


def test_an_experiment_over_its_timeout_is_killed_and_failed(
    tmp_path: Path, ray_cluster: str
) -> None:
    file = campaign_yaml(
        tmp_path / "c.yaml",
        outputs=(4,),
        cycles=1,
        base=SLOW.replace("duration_sec: 4", "duration_sec: 60"),
        extra=f"  executor: ray\n  ray: {{address: '{ray_cluster}'}}\n"
        "  experiment_timeout_seconds: 20\n",
    )
    out = tmp_path / "out"
    started = time.monotonic()
    done = llem("campaign", "run", file, "-o", out, "--yes")
    assert done.exit_code == 1, done.output
    assert time.monotonic() - started < 55  # not the 60 s baseline
    (entry,) = manifest_data(out)["entries"]
    assert entry["status"] == "failed" and "timed out after 20 s" in entry["error"]
    _wait_for(lambda: not _workers(), 30, "the timed-out worker to be killed")


def test_an_unreachable_cluster_is_one_clear_message(tmp_path: Path) -> None:
    file = _yaml(tmp_path, f"127.0.0.1:{_free_port()}", outputs=(4,))
    started = time.monotonic()
    done = llem("campaign", "run", file, "-o", tmp_path / "out", "--yes")
    assert done.exit_code == 1, done.output  # the cluster is unavailable, the file is fine
    assert "cannot reach the Ray cluster" in done.output
    assert time.monotonic() - started < 30  # Ray alone would retry for minutes
    assert not (tmp_path / "out" / "manifest.json").exists()  # nothing marked running
    assert "Traceback" not in done.output


def test_ctrl_c_cancels_everything_in_flight(tmp_path: Path, ray_cluster: str) -> None:
    file = campaign_yaml(
        tmp_path / "c.yaml",
        outputs=(4, 6),
        cycles=1,
        base=SLOW.replace("duration_sec: 4", "duration_sec: 60"),
        extra=f"  executor: ray\n  ray: {{address: '{ray_cluster}', max_parallel: 2}}\n",
    )
    out = tmp_path / "out"
    driver = _driver(file, out)
    try:
        _wait_for(lambda: len(_workers()) == 2, 120, "two experiments in flight")
        driver.send_signal(signal.SIGINT)
        stdout, stderr = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    _wait_for(lambda: not _workers(), 30, "the cancelled workers to be gone")
    data = manifest_data(out)
    assert data["status"] == "interrupted"
    assert [e["status"] for e in data["entries"]] == ["interrupted", "interrupted"]
    assert not list(out.glob("*/result*.json"))


def _placement(out: Path, entry: dict[str, Any]) -> dict[str, Any]:
    result = json.loads((out / entry["exp_id"] / "result.json").read_text())
    return {**result["environment"]["placement"], "reused": result["timings"]["model_reused"]}


def test_a_warm_worker_serves_its_load_key_and_is_replaced_after_a_failure(
    tmp_path: Path, ray_cluster: str
) -> None:
    missing = tmp_path / "no-such-prompts.jsonl"  # fails after the model is loaded
    file = tmp_path / "c.yaml"
    file.write_text(
        "campaign_name: warm\n"
        + ONE_PROMPT
        + "experiments:\n"
        + "  - overrides: {max_output_tokens: 2}\n"
        + "  - overrides: {max_output_tokens: 3}\n"
        + f"  - overrides: {{dataset.name: '{missing}'}}\n"
        + "  - overrides: {max_output_tokens: 5}\n"
        + "  - overrides: {fp_precision: bfloat16}\n"  # another model-load key
        + "execution:\n  cycles: 1\n  executor: ray\n"
        + f"  ray: {{address: '{ray_cluster}', max_parallel: 1}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    done = llem("campaign", "run", file, "-o", out, "--yes")
    assert done.exit_code == 1, done.output  # completed with one failure
    entries = manifest_data(out)["entries"]
    assert [e["status"] for e in entries] == ["completed"] * 2 + ["failed"] + ["completed"] * 2
    assert "dataset file not found" in entries[2]["error"]
    first, second, after_failure, other_key = (_placement(out, entries[i]) for i in (0, 1, 3, 4))
    assert first["worker_pid"] == second["worker_pid"]  # one warm worker, its model reused
    assert (first["worker_runs"], second["worker_runs"]) == (1, 2)
    assert (first["reused"], second["reused"]) == (False, True)
    assert first["warm_worker"] and second["warm_worker"]
    # the worker whose call failed was killed: the next experiment of the key gets a fresh one
    assert after_failure["worker_pid"] != first["worker_pid"]
    assert (after_failure["worker_runs"], after_failure["reused"]) == (1, False)
    assert other_key["worker_pid"] not in {first["worker_pid"], after_failure["worker_pid"]}
    assert (other_key["worker_runs"], other_key["reused"]) == (1, False)


def test_force_cold_start_gives_each_run_a_fresh_worker_process(
    tmp_path: Path, ray_cluster: str
) -> None:
    file = campaign_yaml(
        tmp_path / "c.yaml",
        outputs=(2, 3),
        cycles=1,
        base=ONE_PROMPT,
        extra=f"  executor: ray\n  ray: {{address: '{ray_cluster}', max_parallel: 1}}\n"
        "cold_start: {force_cold_start: true}\n",
    )
    out = tmp_path / "out"
    done = llem("campaign", "run", file, "-o", out, "--yes")
    assert done.exit_code == 0, done.output
    assert "model reuse off" in done.output
    placements = [_placement(out, e) for e in manifest_data(out)["entries"]]
    assert len({p["worker_pid"] for p in placements}) == 2
    assert [(p["worker_runs"], p["warm_worker"], p["reused"]) for p in placements] == [
        (1, False, False)
    ] * 2
