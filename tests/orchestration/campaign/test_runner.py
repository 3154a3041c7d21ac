"""The runner's bookkeeping with a fake executor (no model): manifest, order, gaps, failures,
Ctrl-C, resume after a crash, design changes, --fresh, thermal wait, schedule, webhook."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.exceptions import ConfigError
from llenergymeasure.orchestration.campaign.manifest import (
    MANIFEST_FILE,
    campaign_lock,
    design_hash,
    load_manifest,
)
from llenergymeasure.orchestration.campaign.outcome import CampaignObserver
from llenergymeasure.orchestration.campaign.runner import CampaignRunner
from llenergymeasure.orchestration.executors.base import ExperimentTask

from .helpers import TINY_BASE, FakeExecutor, FakeTime, campaign_yaml, make_result, prepare

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fakes.fake_pynvml import FakeGPU, install


class Recorder(CampaignObserver):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_start(self, plan: Any, total: int) -> None:
        self.events.append(("start", total))

    def on_wait(self, reason: str, seconds: float) -> None:
        self.events.append(("wait", reason, seconds))

    def on_experiment_start(self, index: int, total: int, entry: Any, eta_s: float | None) -> None:
        self.events.append(("begin", index, total, entry.exp_id))

    def on_progress(self, entry: Any, message: str) -> None:
        self.events.append(("progress", entry.exp_id, message))

    def on_experiment_end(self, index: int, total: int, entry: Any, eta_s: float | None) -> None:
        self.events.append(("end", entry.exp_id, entry.status, eta_s))

    def on_finish(self, outcome: Any) -> None:
        self.events.append(("finish", outcome.status))


def runner(plan: Any, executor: Any = None, **kw: Any) -> CampaignRunner:
    kw.setdefault("sleep", lambda s: None)
    kw.setdefault("temperatures", lambda: {})
    kw.setdefault("bootstrap_resamples", 200)
    return CampaignRunner(plan, executor=executor or FakeExecutor(), **kw)


def statuses(directory: Path) -> dict[str, str]:
    manifest = load_manifest(directory)
    assert manifest is not None
    return {e.exp_id: e.status for e in manifest.entries}


A, B, C = "pytorch_tiny-gpt2_out4", "pytorch_tiny-gpt2_out6", "pytorch_tiny-gpt2_out8"


def test_a_campaign_runs_every_pair_once_in_order_and_writes_manifest_and_tables(
    tmp_path: Path,
) -> None:
    plan = prepare(campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # preparing writes nothing
    executor, observer = FakeExecutor(), Recorder()
    outcome = runner(plan, executor, observer=observer).run()

    assert outcome.status == "completed" and outcome.exit_code == 0
    assert executor.calls == [f"{A}_c1", f"{B}_c1", f"{A}_c2", f"{B}_c2"]
    assert executor.closed == 1
    data = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())
    assert data["campaign_name"] == "test-campaign"
    assert data["status"] == "completed"
    assert data["design_hash"] == design_hash([e.config_hash for e in plan.experiments])
    assert [(e["exp_id"], e["cycle"], e["status"]) for e in data["entries"]] == [
        (f"{A}_c1", 1, "completed"),
        (f"{B}_c1", 1, "completed"),
        (f"{A}_c2", 2, "completed"),
        (f"{B}_c2", 2, "completed"),
    ]
    for entry in data["entries"]:
        assert entry["result_path"] == f"{entry['exp_id']}/result.json"
        assert (tmp_path / "out" / entry["result_path"]).is_file()
        assert entry["started_at"] and entry["finished_at"] and entry["error"] is None
        assert {"name", "config_hash", "backend"} <= entry.keys()
    for name in ("summary.csv", "experiments.csv", "summary.parquet", "campaign.log"):
        assert (tmp_path / "out" / name).is_file(), name
    kinds = [e[0] for e in observer.events]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert ("begin", 3, 4, f"{A}_c2") in observer.events
    assert ("progress", f"{A}_c1", "measuring") in observer.events
    assert observer.events[-2][3] == 0.0  # ETA 0 after the last


def test_the_manifest_is_written_before_each_experiment_with_it_running(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []
    executor = FakeExecutor(on_run=lambda task: seen.append(statuses(tmp_path / "out")))
    runner(prepare(campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"), executor).run()
    assert seen[0] == {
        f"{A}_c1": "running",
        f"{B}_c1": "pending",
        f"{A}_c2": "pending",
        f"{B}_c2": "pending",
    }
    assert seen[2][f"{B}_c1"] == "completed" and seen[2][f"{A}_c2"] == "running"


def test_gaps_are_slept_between_experiments_and_cycles(tmp_path: Path) -> None:
    file = campaign_yaml(
        tmp_path / "c.yaml",
        extra="  config_gap_seconds: 1.5\n  cycle_gap_seconds: 7\n",
    )
    sleeps: list[float] = []
    outcome = runner(prepare(file, tmp_path / "out"), sleep=sleeps.append).run()
    assert sleeps == [1.5, 7, 1.5]
    assert outcome.gaps_s == pytest.approx(10.0)


def test_dry_run_estimate_counts_gaps_and_says_unknown_without_timings(tmp_path: Path) -> None:
    file = campaign_yaml(
        tmp_path / "c.yaml", extra="  config_gap_seconds: 2\n  cycle_gap_seconds: 10\n"
    )
    estimate = prepare(file, tmp_path / "out").estimate()
    assert (estimate.runs, estimate.gaps_s, estimate.unknown_runs) == (4, 14.0, 4)
    assert estimate.text().startswith("unknown")
    assert estimate.baselines_s == 0  # the tiny configs disable it
    slow = campaign_yaml(
        tmp_path / "s.yaml",
        base=TINY_BASE.replace(
            "{enabled: false}", "{enabled: true, duration_sec: 3, cache_ttl_sec: 0}"
        ),
    )
    with_baselines = prepare(slow, tmp_path / "out2").estimate()
    assert with_baselines.baselines_s == 12.0
    assert "at least 12 s" in with_baselines.text()
    cached = campaign_yaml(
        tmp_path / "k.yaml", base=TINY_BASE.replace("{enabled: false}", "{duration_sec: 3}")
    )
    assert prepare(cached, tmp_path / "out3").estimate().baselines_s == 3.0  # measured once


def test_failures_are_isolated_recorded_and_listed(tmp_path: Path) -> None:
    executor = FakeExecutor(fail={B})
    outcome = runner(prepare(campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"), executor).run()
    assert outcome.status == "completed_with_failures" and outcome.exit_code == 1
    assert statuses(tmp_path / "out") == {
        f"{A}_c1": "completed",
        f"{B}_c1": "failed",
        f"{A}_c2": "completed",
        f"{B}_c2": "failed",
    }
    assert [e.exp_id for e in outcome.failures] == [f"{B}_c1", f"{B}_c2"]
    manifest = load_manifest(tmp_path / "out")
    assert manifest is not None
    assert manifest.entries[1].error == f"boom in {B}_c1"


def test_max_consecutive_failures_stops_the_campaign_early(tmp_path: Path) -> None:
    file = campaign_yaml(
        tmp_path / "c.yaml", outputs=(4, 6, 8), extra="  max_consecutive_failures: 2\n"
    )
    executor = FakeExecutor(fail={A, B, C})
    outcome = runner(prepare(file, tmp_path / "out"), executor).run()
    assert executor.calls == [f"{A}_c1", f"{B}_c1"]
    assert outcome.status == "stopped" and outcome.exit_code == 1
    assert "2 consecutive failures" in (outcome.stop_reason or "")
    assert outcome.counts["failed"] == 2 and outcome.counts["pending"] == 4
    assert load_manifest(tmp_path / "out").status == "stopped"  # type: ignore[union-attr]


def test_a_success_resets_the_consecutive_failure_count(tmp_path: Path) -> None:
    file = campaign_yaml(
        tmp_path / "c.yaml", outputs=(4, 6, 8), extra="  max_consecutive_failures: 2\n"
    )
    executor = FakeExecutor(fail={A})  # A1 fails, B1 and C1 pass, A2 fails: never 2 in a row
    outcome = runner(prepare(file, tmp_path / "out"), executor).run()
    assert len(executor.calls) == 6 and outcome.status == "completed_with_failures"


def test_ctrl_c_marks_the_running_experiment_interrupted_and_resume_finishes(
    tmp_path: Path,
) -> None:
    file = campaign_yaml(tmp_path / "c.yaml")
    out = tmp_path / "out"
    outcome = runner(prepare(file, out), FakeExecutor(interrupt={f"{B}_c1"})).run()
    assert outcome.status == "interrupted" and outcome.exit_code == 130
    assert statuses(out) == {
        f"{A}_c1": "completed",
        f"{B}_c1": "interrupted",
        f"{A}_c2": "pending",
        f"{B}_c2": "pending",
    }
    manifest = load_manifest(out)
    assert manifest is not None and manifest.status == "interrupted"
    assert "interrupted" in (manifest.entries[1].error or "")

    first = (out / f"{A}_c1" / "result.json").read_bytes()
    executor = FakeExecutor()
    plan = prepare(file, out, resume=True)
    assert [e.exp_id for e in plan.to_run] == [f"{B}_c1", f"{A}_c2", f"{B}_c2"]
    assert runner(plan, executor).run().status == "completed"
    assert executor.calls == [f"{B}_c1", f"{A}_c2", f"{B}_c2"]
    assert (out / f"{A}_c1" / "result.json").read_bytes() == first  # never rerun
    assert set(statuses(out).values()) == {"completed"}
    assert load_manifest(out).entries[1].attempts == 2  # type: ignore[union-attr]


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    import signal

    def terminate(task: ExperimentTask) -> None:
        if task.exp_id == f"{B}_c1":
            os.kill(os.getpid(), signal.SIGTERM)

    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGTERM)
    outcome = runner(
        prepare(campaign_yaml(tmp_path / "c.yaml"), out), FakeExecutor(on_run=terminate)
    ).run()
    assert outcome.exit_code == 130
    assert statuses(out)[f"{B}_c1"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_an_unexpected_runner_error_is_recorded_then_raised(tmp_path: Path) -> None:
    def explode(task: ExperimentTask) -> None:
        raise RuntimeError("disk on fire")

    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk on fire"):
        runner(prepare(campaign_yaml(tmp_path / "c.yaml"), out), FakeExecutor(on_run=explode)).run()
    manifest = load_manifest(out)
    assert manifest is not None and manifest.status == "stopped"
    assert manifest.entries[0].status == "failed"
    assert "RuntimeError: disk on fire" in (manifest.entries[0].error or "")


def test_ctrl_c_after_the_result_was_written_counts_it_completed(tmp_path: Path) -> None:
    def write_then_interrupt(task: ExperimentTask) -> None:
        if task.exp_id == f"{A}_c1":
            make_result(task.exp_id, task.name, task.config_hash).save(
                task.output_dir / task.exp_id
            )
            raise KeyboardInterrupt

    out = tmp_path / "out"
    runner(
        prepare(campaign_yaml(tmp_path / "c.yaml"), out), FakeExecutor(on_run=write_then_interrupt)
    ).run()
    assert statuses(out)[f"{A}_c1"] == "completed"


def _crash_after_result(out: Path, file: Path) -> None:
    """The state a kill -9 between writing result.json and the manifest leaves behind."""
    plan = prepare(file, out)
    runner(plan, FakeExecutor(interrupt={f"{B}_c1"})).run()
    data = json.loads((out / MANIFEST_FILE).read_text())
    data["status"] = "running"
    data["entries"][1]["status"] = "running"  # B_c1: the process died...
    entry = data["entries"][1]
    make_result(entry["exp_id"], entry["name"], entry["config_hash"]).save(out / entry["exp_id"])
    data["entries"][2]["status"] = "running"  # A_c2: ...and this one died mid-run, no result
    (out / MANIFEST_FILE).write_text(json.dumps(data))


def test_resume_after_kill_counts_a_written_result_completed_and_reruns_the_rest(
    tmp_path: Path,
) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    _crash_after_result(out, file)
    plan = prepare(file, out, resume=True)
    assert [e.status for e in plan.manifest.entries] == [
        "completed",
        "completed",
        "interrupted",
        "pending",
    ]
    assert any("marked completed" in note for note in plan.notes)
    executor = FakeExecutor()
    runner(plan, executor).run()
    assert executor.calls == [f"{A}_c2", f"{B}_c2"]
    assert sorted(p.parent.name for p in out.glob("*/result.json")) == sorted(statuses(out))


def test_a_completed_entry_whose_result_vanished_runs_again(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    runner(prepare(file, out)).run()
    (out / f"{B}_c2" / "result.json").unlink()
    executor = FakeExecutor()
    runner(prepare(file, out, resume=True), executor).run()
    assert executor.calls == [f"{B}_c2"]


def test_existing_manifest_without_flags_is_an_exit_2_error_naming_both_flags(
    tmp_path: Path,
) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    runner(prepare(file, out)).run()
    with pytest.raises(ConfigError) as info:
        prepare(file, out)
    assert info.value.exit_code == 2
    assert "--resume" in (info.value.fix or "") and "--fresh" in (info.value.fix or "")
    assert "4/4 completed" in info.value.what
    with pytest.raises(ConfigError, match="exclude each other"):
        prepare(file, out, resume=True, fresh=True)


def test_results_without_a_manifest_are_never_overwritten(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    make_result(f"{A}_c1", A, "x" * 64).save(out / f"{A}_c1")
    with pytest.raises(ConfigError, match="without a campaign manifest"):
        prepare(file, out)


def test_fresh_moves_the_previous_run_aside_and_starts_over(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    runner(prepare(file, out)).run()
    old = (out / f"{A}_c1" / "result.json").read_bytes()
    plan = prepare(file, out, fresh=True)
    assert plan.move_aside and len(plan.to_run) == 4
    outcome = runner(plan).run()
    assert outcome.moved_to is not None and outcome.moved_to.name.startswith(".previous-")
    assert (outcome.moved_to / f"{A}_c1" / "result.json").read_bytes() == old
    assert (outcome.moved_to / MANIFEST_FILE).is_file()
    assert set(statuses(out).values()) == {"completed"}
    assert len(list(out.glob("*/result.json"))) == 4  # the old ones are one level deeper


def test_resume_shows_a_design_change_and_keeps_removed_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner(prepare(campaign_yaml(tmp_path / "c.yaml", outputs=(4, 6)), out)).run()
    changed = campaign_yaml(tmp_path / "c2.yaml", outputs=(4, 8))
    plan = prepare(changed, out, resume=True)
    assert plan.change.added == [C] and plan.change.removed == [B]
    lines = "\n".join(plan.change.lines())
    assert C in lines and B in lines and "skipped" in lines
    executor = FakeExecutor()
    runner(plan, executor).run()
    assert executor.calls == [f"{C}_c1", f"{C}_c2"]
    manifest = load_manifest(out)
    assert manifest is not None
    skipped = [e for e in manifest.entries if e.status == "skipped"]
    assert [e.exp_id for e in skipped] == [f"{B}_c1", f"{B}_c2"]
    assert all(e.reason == "removed from the campaign file" for e in skipped)
    assert all((out / e.exp_id / "result.json").is_file() for e in skipped)
    assert manifest.design_hash == design_hash([e.config_hash for e in plan.experiments])
    assert any(ev.event == "resumed" and C in (ev.detail or "") for ev in manifest.events)
    summary = (out / "summary.csv").read_text()
    assert A in summary and C in summary and B not in summary

    # put B back: its kept results count again, nothing reruns
    back = prepare(campaign_yaml(tmp_path / "c3.yaml", outputs=(4, 6, 8)), out, resume=True)
    assert back.change.added == [B] and back.to_run == []


def test_resume_with_more_cycles_adds_them_and_fewer_keeps_the_rest_skipped(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    runner(prepare(file, out)).run()
    plan = prepare(file, out, resume=True, cycles=3)
    assert plan.change.cycles == (2, 3)
    assert [e.exp_id for e in plan.to_run] == [f"{A}_c3", f"{B}_c3"]
    runner(plan).run()
    fewer = prepare(file, out, resume=True, cycles=1)
    assert fewer.to_run == []
    skipped = [e for e in fewer.manifest.entries if e.status == "skipped"]
    assert {e.cycle for e in skipped} == {2, 3}
    assert all("beyond cycles=1" in (e.reason or "") for e in skipped)


def test_a_renamed_config_keeps_its_results_and_ids(tmp_path: Path) -> None:
    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    runner(prepare(file, out)).run()
    data = json.loads((out / MANIFEST_FILE).read_text())
    for entry in data["entries"]:
        if entry["name"] == A:
            entry["name"] = "old-name"
    (out / MANIFEST_FILE).write_text(json.dumps(data))
    plan = prepare(file, out, resume=True)
    assert plan.change.renamed == [("old-name", A)]
    assert plan.change.added == [] and plan.change.removed == [] and plan.to_run == []
    assert [e.name for e in plan.manifest.entries][:1] == [A]
    assert plan.manifest.entries[0].exp_id == f"{A}_c1"


def test_thermal_wait_polls_until_cool_with_fake_nvml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = install(monkeypatch, [FakeGPU(temperature_c=85.0)])
    clock = FakeTime()

    def cool(seconds: float) -> None:
        clock.sleep(seconds)
        fake.gpus[0].temperature_c -= 10.0

    file = campaign_yaml(
        tmp_path / "c.yaml",
        outputs=(4,),
        cycles=1,
        extra="  thermal_wait: {max_temperature_c: 60, timeout_seconds: 100}\n",
    )
    outcome = CampaignRunner(
        prepare(file, tmp_path / "out"),
        executor=FakeExecutor(),
        sleep=cool,
        clock=clock.clock,
        bootstrap_resamples=50,
    ).run()
    assert clock.sleeps == [5.0, 5.0, 5.0]  # 85 -> 75 -> 65 -> 55 C
    assert outcome.thermal_wait_s == pytest.approx(15.0)


def test_thermal_wait_gives_up_after_its_timeout(tmp_path: Path) -> None:
    clock = FakeTime()
    file = campaign_yaml(
        tmp_path / "c.yaml",
        outputs=(4,),
        cycles=1,
        extra="  thermal_wait: {max_temperature_c: 60, timeout_seconds: 12}\n",
    )
    executor = FakeExecutor()
    CampaignRunner(
        prepare(file, tmp_path / "out"),
        executor=executor,
        sleep=clock.sleep,
        clock=clock.clock,
        temperatures=lambda: {0: 90.0},
        bootstrap_resamples=50,
    ).run()
    assert sum(clock.sleeps) == pytest.approx(12.0) and executor.calls  # ran anyway


def test_without_nvml_the_thermal_wait_is_skipped_once_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    from loguru import logger

    from llenergymeasure.measurement.energy import clear_probe_caches

    logger.enable("llenergymeasure")  # as the CLI does (conftest disables it again)
    clear_probe_caches()
    sleeps: list[float] = []
    outcome = CampaignRunner(
        prepare(campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"),
        executor=FakeExecutor(),
        sleep=sleeps.append,
        bootstrap_resamples=50,
    ).run()
    assert outcome.status == "completed" and sleeps == []
    assert not any("thermal" in note for note in outcome.notes)  # quietly, in the log only
    assert "thermal wait skipped" in (tmp_path / "out" / "campaign.log").read_text()


def test_timeout_with_the_inprocess_executor_runs_experiments_in_subprocesses(
    tmp_path: Path,
) -> None:
    file = campaign_yaml(tmp_path / "c.yaml", extra="  experiment_timeout_seconds: 30\n")
    plan = prepare(file, tmp_path / "out")
    assert plan.executor == "subprocess" and not plan.reuse_models
    assert any("timeout can be enforced" in note for note in plan.notes)
    cold = prepare(
        campaign_yaml(tmp_path / "d.yaml", extra="cold_start: {force_cold_start: true}\n"),
        tmp_path / "o2",
    )
    assert cold.executor == "inprocess" and not cold.reuse_models


def test_a_second_run_in_the_same_directory_is_refused_while_one_holds_the_lock(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    plan = prepare(campaign_yaml(tmp_path / "c.yaml"), out)
    with campaign_lock(out), pytest.raises(ConfigError, match="another llem campaign is running"):
        runner(plan).run()
    from llenergymeasure.orchestration.campaign.manifest import lock_holder

    assert lock_holder(out) is None
    with campaign_lock(out):
        assert lock_holder(out) == os.getpid()  # flock is per open file, even in one process


def test_a_stopped_campaign_writes_its_tables_from_the_runs_that_ran(tmp_path: Path) -> None:
    """Stopping must take seconds at any size: the pending runs are left out of the tables
    (the finished campaign's tables, after --resume, hold every run)."""
    import csv

    file, out = campaign_yaml(tmp_path / "c.yaml"), tmp_path / "out"
    outcome = runner(
        prepare(file, out), FakeExecutor(interrupt={f"{B}_c1"}), export_formats=("csv",)
    ).run()
    assert outcome.status == "interrupted"
    with (out / "experiments.csv").open(encoding="utf-8") as handle:
        rows = {row["exp_id"] for row in csv.DictReader(handle)}
    assert rows == {f"{A}_c1", f"{B}_c1"}
    assert any("pending ones join them" in note for note in outcome.notes)
