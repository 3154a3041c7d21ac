"""Adaptive cycles: the decision rule, the runner's extra rounds, and resume that continues the
adaptive plan exactly (a fake executor with a scripted noisy energy per config and cycle)."""

from __future__ import annotations

import csv
import json
import math
import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.orchestration.campaign.adaptive import (
    decide,
    design_interval,
    next_round,
    plan_note,
    planned_cycles,
    summary_columns,
)
from llenergymeasure.orchestration.campaign.manifest import ManifestEntry, load_manifest
from llenergymeasure.orchestration.campaign.plan import PlannedExperiment
from llenergymeasure.orchestration.executors.base import ExecutionOutcome, ExperimentTask
from llenergymeasure.results.aggregation import RunRecord
from llenergymeasure.results.schema import QualityFlag
from llenergymeasure.results.statistics import t_quantile

from .helpers import campaign_yaml, completed_record, make_result, prepare
from .test_runner import runner

STEADY, NOISY = "pytorch_tiny-gpt2_out4", "pytorch_tiny-gpt2_out6"


def scripted_ept(name: str, cycle: int) -> float:
    """J/token of (config, cycle): out4 is steady (0.1% noise), anything else swings +/- 30%."""
    rng = random.Random(f"{name}:{cycle}")
    spread = 0.001 if name == STEADY else 0.3
    return 0.5 * (1 + spread * rng.uniform(-1, 1))


class ScriptedExecutor:
    """Writes a result whose energy is scripted per (name, cycle); stops on request."""

    name = "scripted"

    def __init__(self, *, stop_at: tuple[str, int] | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.stop_at = stop_at

    def run(self, task: ExperimentTask, progress: Any = None) -> ExecutionOutcome:
        if self.stop_at == (task.name, task.cycle):
            raise KeyboardInterrupt  # the process dies here, before this result exists
        self.calls.append((task.name, task.cycle))
        result = make_result(
            task.exp_id,
            task.name,
            task.config_hash,
            energy_per_token_j=scripted_ept(task.name, task.cycle),
        )
        result.save(task.output_dir / task.exp_id)
        return ExecutionOutcome("completed", result_path=task.result_path, result=result)

    def close(self) -> None:
        pass


def record(
    name: str, cycle: int, ept: float, *, flags: list[QualityFlag] | None = None
) -> RunRecord:
    return completed_record(name, cycle, flags=flags, energy_per_token_j=ept)


EXECUTION = ExecutionConfig(target_ci_pct=5.0, min_cycles=3, max_cycles=5)
T1, T2 = 12.7062047362, 4.30265272975  # t(0.975, 1), t(0.975, 2)


def test_the_first_stage_fixes_the_cycles_and_the_later_ones_the_interval() -> None:
    # steady: s0 = 0.001 -> N = 5 (t(0.975, 1) * 0.001 / sqrt(5) = 0.57% <= 5%)
    assert planned_cycles([1.0, 1.001, 0.999], 5.0, 10) == 5
    # s0 = 0.1: 19 cycles give t(0.975, 15) * 0.1 / sqrt(19) = 4.89%, 18 give 5.06%
    assert planned_cycles([1.0, 1.1, 0.9], 5.0, 10) is None
    assert planned_cycles([1.0, 1.1, 0.9], 5.0, 30) == 19
    low, high = design_interval([1.0, 1.001, 0.999, 1.0, 1.02], 3) or (0.0, 0.0)
    mean, half = 1.004, T1 * 0.02 / 2**0.5 / 5**0.5  # s2 = stdev(1.0, 1.02), n = 5
    assert (low, high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert design_interval([1.0, 1.001, 0.999, 1.0], 3) is None


def test_decide_converged_more_and_at_max_cycles() -> None:
    records = [record("s", c, v) for c, v in enumerate([1.0, 1.001, 0.999, 1.0, 1.002], 1)]
    records += [record("p", c, v) for c, v in enumerate([1.0, 1.001, 0.999], 1)]
    records += [record("w", c, v) for c, v in enumerate([1.0, 2.0, 3.0], 1)]
    records += [record("m", c, v) for c, v in enumerate([1.0, 2.0, 3.0, 1.0, 2.0], 1)]
    records += [record("x", c, v) for c, v in enumerate([1.0, 1.001, 0.999, 1.0, 1.2], 1)]
    steady, pending, wide, at_max, lucky = decide(records, EXECUTION)
    assert steady.verdict == "converged" and steady.half_width_pct == pytest.approx(
        T1 * 0.002 / 2**0.5 / 5**0.5 / 1.0004 * 100
    )
    assert steady.text.startswith("converged: ran the 5 cycles its first 3 called for; 95% CI")
    assert "wider" not in steady.text
    assert lucky.verdict == "converged" and lucky.half_width_pct is not None
    assert lucky.half_width_pct > 5 and "wider: the first cycles understated the spread" in (
        lucky.text
    )
    assert pending.verdict == "more" and pending.half_width_pct is None
    assert "the first 3 usable cycles call for 5 to reach +/- 5%" in pending.text
    assert wide.verdict == "more" and "call for more than 5" in wide.text
    assert at_max.verdict == "max_cycles" and at_max.cycles_run == 5
    assert at_max.text.startswith("max_cycles (5) reached and the 95% CI of J/token is +/- ")
    assert at_max.half_width_pct == pytest.approx(
        T1 * 0.5**0.5 / 5**0.5 / 1.8 * 100
    )  # s2 = stdev(1, 2)


def _simulate(
    first: int, limit: int, cv: float, target: float, trials: int, lognormal: bool
) -> tuple[list[bool], list[bool], list[bool]]:
    """(covered by the design's interval, converged, covered by Stein's classic interval on the
    first stage's spread) per trial, the rule run as the runner runs it: one more cycle until
    the plan is met or the cap hit."""
    rng = random.Random(f"{first}:{limit}:{cv}:{lognormal}")
    sigma = math.sqrt(math.log(1 + cv * cv))
    covered, converged, plain = [], [], []
    for _ in range(trials):
        draw = [
            rng.lognormvariate(-sigma * sigma / 2, sigma) if lognormal else rng.gauss(1.0, cv)
            for _ in range(limit)
        ]
        values = draw[:first]
        plan = planned_cycles(values, target, limit)
        while len(values) < (plan or limit):
            values.append(draw[len(values)])
        low, high = design_interval(values, first) or (math.inf, -math.inf)
        covered.append(low <= 1.0 <= high)
        converged.append(plan is not None)
        stein = t_quantile(0.975, first - 1) * statistics.stdev(draw[:first]) / len(values) ** 0.5
        plain.append(abs(statistics.fmean(values) - 1.0) <= stein)
    return covered, converged, plain


@pytest.mark.parametrize(("first", "lognormal"), [(3, False), (2, False), (3, True)])
def test_the_interval_reported_at_stop_keeps_its_coverage_in_the_converged_rows_too(
    first: int, lognormal: bool
) -> None:
    """True CV 5%, target 2%, max_cycles 10: only configs whose first cycles agree by luck
    converge; the rule used before (stop once the t interval is narrow enough) covered the
    true mean 53% of the time in those rows, and Stein's classic interval (the first stage's
    spread) about as badly."""
    covered, converged, plain = _simulate(first, 10, 0.05, 2.0, 4000, lognormal)
    in_converged = [c for c, done in zip(covered, converged, strict=True) if done]
    plain_converged = [c for c, done in zip(plain, converged, strict=True) if done]
    assert len(in_converged) > 500  # enough rows to judge
    assert sum(covered) / len(covered) >= 0.93
    assert sum(in_converged) / len(in_converged) >= 0.93
    assert sum(plain_converged) / len(plain_converged) < 0.90  # why the later cycles' spread


def test_untrusted_cycles_do_not_count_towards_the_interval() -> None:
    flag = QualityFlag(code="gpu_contended", severity="untrusted", message="x")
    records = [record("s", 1, 1.0), record("s", 2, 1.01), record("s", 3, 9.0, flags=[flag])]
    (only,) = decide(records, EXECUTION)
    assert (only.usable, only.cycles_run, only.verdict) == (2, 3, "more")


def test_other_metrics_and_no_metric() -> None:
    execution = ExecutionConfig(target_ci_pct=5.0, target_metric="tokens_per_second")
    records = [record("s", c, v) for c, v in enumerate([1.0, 2.0, 3.0, 4.0, 5.0], 1)]
    (tps,) = decide(records, execution)  # make_result: 100 tokens/s every cycle
    assert tps.verdict == "converged" and tps.half_width_pct == 0.0
    no_energy = [
        RunRecord(
            **{**r.__dict__, "result": make_result(r.exp_id, "s", "s" * 8, energy_per_token_j=None)}
        )
        for r in records
    ]
    (none,) = decide(no_energy, EXECUTION)
    assert none.verdict == "no_metric" and "was not measured" in none.text


def _planned(name: str) -> PlannedExperiment:
    return PlannedExperiment(
        name=name,
        config_hash=name * 8,
        backend="pytorch",
        model="m",
        precision="float32",
        build=dict,
    )


def test_next_round_adds_one_cycle_for_each_wide_config_and_says_why() -> None:
    records = [record("s", c, v) for c, v in enumerate([1.0, 1.001, 0.999, 1.0, 1.002], 1)]
    records += [record("w", c, v) for c, v in enumerate([1.0, 2.0, 3.0], 1)]
    entries = [
        ManifestEntry(
            exp_id=r.exp_id,
            name=r.name,
            config_hash=r.config_hash,
            backend="pytorch",
            cycle=r.cycle,
            status="completed",
        )
        for r in records
    ]
    new, decisions = next_round(entries, records, [_planned("s"), _planned("w")], EXECUTION)
    assert [(e.name, e.cycle, e.exp_id, e.status) for e in new] == [("w", 4, "w_c4", "pending")]
    assert new[0].why is not None
    assert new[0].why.startswith("adaptive cycle 4 (of at most 5): the first 3 usable cycles")
    assert [d.verdict for d in decisions] == ["converged", "more"]
    columns = summary_columns(records, EXECUTION)
    assert columns["s" * 8]["converged"] is True and columns["w" * 8]["converged"] is False
    assert "--resume continues" in columns["w" * 8]["adaptive_stop"]
    assert plan_note(EXECUTION) == (
        "adaptive cycles: 3 cycles for every config, then one more at a time up to the number "
        "its first 3 call for to reach a 95% CI of J/token within +/- 5% of the mean (at least "
        "5, up to 5 cycles)"
    )
    assert plan_note(ExecutionConfig()) is None


# --- the runner's extra rounds ------------------------------------------------------------------

ADAPTIVE = "  target_ci_pct: 5\n  max_cycles: 7\n"


def _adaptive_campaign(tmp_path: Path) -> tuple[Path, Path]:
    return campaign_yaml(tmp_path / "c.yaml", cycles=3, extra=ADAPTIVE), tmp_path / "out"


def _cycles(out: Path) -> dict[str, list[tuple[int, str]]]:
    manifest = load_manifest(out)
    assert manifest is not None
    seen: dict[str, list[tuple[int, str]]] = {}
    for entry in manifest.entries:
        seen.setdefault(entry.name, []).append((entry.cycle, entry.status))
    return seen


def test_a_steady_config_stops_two_cycles_after_the_first_stage_and_a_noisy_one_runs_to_max(
    tmp_path: Path,
) -> None:
    file, out = _adaptive_campaign(tmp_path)
    plan = prepare(file, out)
    assert len(plan.to_run) == 6  # 2 configs x min_cycles first
    assert any(note.startswith("adaptive cycles: 3 cycles for every config") for note in plan.notes)
    executor = ScriptedExecutor()
    outcome = runner(plan, executor, export_formats=("csv",)).run()
    assert outcome.status == "completed"
    assert sorted(c for n, c in executor.calls if n == STEADY) == [1, 2, 3, 4, 5]
    assert sorted(c for n, c in executor.calls if n == NOISY) == [1, 2, 3, 4, 5, 6, 7]
    manifest = load_manifest(out)
    assert manifest is not None
    extra = [e for e in manifest.entries if e.cycle > 3]
    assert [(e.name, e.cycle) for e in extra] == [
        (STEADY, 4),
        (NOISY, 4),
        (STEADY, 5),
        (NOISY, 5),
        (NOISY, 6),
        (NOISY, 7),
    ]
    assert all(
        e.why and e.why.startswith(f"adaptive cycle {e.cycle} (of at most 7)") for e in extra
    )
    assert all(e.why is None for e in manifest.entries if e.cycle <= 3)
    events = [e.detail or "" for e in manifest.events if e.event == "adaptive cycles"]
    assert events[0] == f"2 more cycle(s): {STEADY} (cycle 4), {NOISY} (cycle 4)"
    assert events[2].startswith(f"1 more cycle(s): {NOISY} (cycle 6); converged: {STEADY}")
    assert events[-1] == f"converged: {STEADY}; max_cycles: {NOISY}"
    assert f"adaptive cycles: converged: {STEADY}; max_cycles: {NOISY}" in outcome.notes
    rows = {r["name"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows[STEADY]["converged"] == "true" and rows[STEADY]["cycles_completed"] == "5"
    assert rows[NOISY]["converged"] == "false" and rows[NOISY]["cycles_completed"] == "7"
    assert rows[NOISY]["adaptive_stop"].startswith("max_cycles (7) reached")


def test_resume_after_a_stop_mid_round_continues_the_adaptive_plan_exactly(
    tmp_path: Path,
) -> None:
    file, out = _adaptive_campaign(tmp_path)
    whole = tmp_path / "whole"
    runner(prepare(file, whole), ScriptedExecutor()).run()
    first = runner(prepare(file, out), ScriptedExecutor(stop_at=(NOISY, 5))).run()
    assert first.status == "interrupted"
    before = {p.parent.name: p.read_bytes() for p in out.glob("*/result.json")}
    assert f"{NOISY}_c4" in before
    again = ScriptedExecutor()
    assert runner(prepare(file, out, resume=True), again).run().status == "completed"
    assert again.calls == [(NOISY, 5), (NOISY, 6), (NOISY, 7)]  # nothing ran twice
    for exp_id, content in before.items():
        assert (out / exp_id / "result.json").read_bytes() == content
    assert _cycles(out) == _cycles(whole)  # the same decisions as a run never stopped


def test_an_extra_cycle_measured_but_never_indexed_is_adopted_on_resume(tmp_path: Path) -> None:
    file, out = _adaptive_campaign(tmp_path)
    runner(prepare(file, out), ScriptedExecutor(stop_at=(NOISY, 5))).run()
    manifest_file = out / "manifest.json"
    data = json.loads(manifest_file.read_text())
    data["entries"] = [e for e in data["entries"] if e["cycle"] <= 3]  # killed before it saved
    manifest_file.write_text(json.dumps(data))
    plan = prepare(file, out, resume=True)
    assert any("adopted as completed" in note for note in plan.notes)
    again = ScriptedExecutor()
    runner(plan, again).run()
    assert again.calls == [(NOISY, 5), (NOISY, 6), (NOISY, 7)]
    assert [c for c, _ in _cycles(out)[NOISY]] == [1, 2, 3, 4, 5, 6, 7]


def test_resume_with_a_lower_max_cycles_keeps_the_extra_cycles_as_skipped(tmp_path: Path) -> None:
    file, out = _adaptive_campaign(tmp_path)
    runner(prepare(file, out), ScriptedExecutor()).run()
    lower = campaign_yaml(
        tmp_path / "c.yaml", cycles=3, extra="  target_ci_pct: 5\n  max_cycles: 6\n"
    )
    plan = prepare(lower, out, resume=True)
    (skipped,) = [e for e in plan.manifest.entries if e.status == "skipped"]
    assert (skipped.name, skipped.cycle) == (NOISY, 7)
    assert skipped.reason == "cycle 7 is beyond max_cycles=6"
    assert (out / skipped.exp_id / "result.json").is_file()  # kept, never deleted


@pytest.mark.slow
def test_adaptive_cycles_on_the_built_in_model_survive_kill_9(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """The real harness with a scripted noisy energy source, in a process killed with SIGKILL
    once the first extra cycle is on disk, then resumed: the same plan, nothing run twice."""
    import signal
    import subprocess
    import sys
    import time

    file, out = _adaptive_campaign(tmp_path)
    script = [sys.executable, str(Path(__file__).with_name("scripted_energy.py")), file, out]
    proc = subprocess.Popen(script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_extra = out / f"{NOISY}_c4" / "result.json"
    deadline = time.monotonic() + 300
    while not first_extra.is_file():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first extra cycle never appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    kept = {p.parent.name: p.read_bytes() for p in out.glob("*/result.json")}
    assert len(kept) >= 7  # 6 first cycles + the extra one

    resumed = subprocess.run([*script, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    cycles = _cycles(out)
    assert cycles[STEADY] == [(c, "completed") for c in (1, 2, 3, 4, 5)]
    assert cycles[NOISY] == [(c, "completed") for c in range(1, 8)]
    for exp_id, content in kept.items():  # nothing measured before the kill was redone
        assert (out / exp_id / "result.json").read_bytes() == content
    manifest = load_manifest(out)
    assert manifest is not None
    assert all(e.attempts == 1 for e in manifest.entries if e.exp_id in kept)
    rows = {r["name"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert (rows[STEADY]["converged"], rows[NOISY]["converged"]) == ("true", "false")


def test_the_dry_run_says_how_many_cycles_come_first_and_how_many_at_most(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from llenergymeasure.cli.app import app

    file, out = _adaptive_campaign(tmp_path)
    dry = CliRunner().invoke(app, ["campaign", "run", str(file), "-o", str(out), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    text = " ".join(dry.output.split())
    assert "6 run(s) to do (2 experiments x 3 cycles first, interleaved)" in text
    assert "up to 7 cycles" in text
    assert not out.exists()


def test_results_export_reports_the_design_interval_as_the_run_wrote_it(tmp_path: Path) -> None:
    """`llem results export` reads the manifest's execution settings, so a rebuilt table keeps
    the two-stage interval of the target metric instead of the plain one over all cycles."""
    from typer.testing import CliRunner

    from llenergymeasure.cli.app import app

    file, out = _adaptive_campaign(tmp_path)
    assert runner(prepare(file, out), ScriptedExecutor(), export_formats=("csv",)).run()
    written = {r["name"]: r for r in csv.DictReader((out / "summary.csv").open())}
    (out / "summary.csv").unlink()
    result = CliRunner().invoke(app, ["results", "export", str(out), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rebuilt = {r["name"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert "two_stage" in rebuilt[STEADY]["ci_method"]
    for name in (STEADY, NOISY):
        for column in ("energy_per_token_j_ci95_low", "energy_per_token_j_ci95_high", "ci_method"):
            assert rebuilt[name][column] == written[name][column]
