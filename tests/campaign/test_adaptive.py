"""Adaptive cycles: the decision rule, the runner's extra rounds, and resume that continues the
adaptive plan exactly (a fake executor with a scripted noisy energy per config and cycle)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.orchestration.adaptive import decide, next_round, plan_note, summary_columns
from llenergymeasure.orchestration.executors.base import ExecutionOutcome, ExperimentTask
from llenergymeasure.orchestration.manifest import ManifestEntry
from llenergymeasure.orchestration.planned import PlannedExperiment
from llenergymeasure.results.aggregation import RunRecord
from llenergymeasure.results.schema import QualityFlag

from .helpers import make_result

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
    result = make_result(f"{name}_c{cycle}", name, name * 8, energy_per_token_j=ept)
    result = result.model_copy(update={"flags": flags or []})
    return RunRecord(
        exp_id=result.experiment_id,
        name=name,
        config_hash=name * 8,
        backend="pytorch",
        cycle=cycle,
        status="completed",
        result=result,
    )


EXECUTION = ExecutionConfig(target_ci_pct=5.0, min_cycles=3, max_cycles=5)


def test_decide_converged_wider_and_at_max_cycles() -> None:
    # steady: 1.00 1.01 0.99 -> mean 1, s 0.01, half = 4.303 * 0.01 / sqrt(3) = 2.48% <= 5%
    # wide: 1 2 3 -> half = 4.303 * 1 / sqrt(3) / 2 = 124% > 5%
    records = [record("s", c, v) for c, v in enumerate([1.0, 1.01, 0.99], 1)]
    records += [record("w", c, v) for c, v in enumerate([1.0, 2.0, 3.0], 1)]
    records += [record("m", c, v) for c, v in enumerate([1.0, 2.0, 3.0, 1.0, 2.0], 1)]
    steady, wide, at_max = decide(records, EXECUTION)
    assert steady.verdict == "converged" and steady.half_width_pct == pytest.approx(
        4.30265272975 * 0.01 / 3**0.5 * 100
    )
    assert "converged: 95% CI of J/token is +/- 2.48% after 3 usable cycles" in steady.text
    assert wide.verdict == "more" and wide.half_width_pct == pytest.approx(
        4.30265272975 / 3**0.5 / 2 * 100
    )
    assert "wider than the target +/- 5%" in wide.text
    assert at_max.verdict == "max_cycles" and at_max.cycles_run == 5
    assert at_max.text.startswith("max_cycles (5) reached and the 95% CI")


def test_untrusted_cycles_do_not_count_towards_the_interval() -> None:
    flag = QualityFlag(code="gpu_contended", severity="untrusted", message="x")
    records = [record("s", 1, 1.0), record("s", 2, 1.01), record("s", 3, 9.0, flags=[flag])]
    (only,) = decide(records, EXECUTION)
    assert (only.usable, only.cycles_run, only.verdict) == (2, 3, "more")


def test_other_metrics_and_no_metric() -> None:
    execution = ExecutionConfig(target_ci_pct=5.0, target_metric="tokens_per_second")
    records = [record("s", c, v) for c, v in enumerate([1.0, 2.0, 3.0], 1)]
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
        config={},
    )


def test_next_round_adds_one_cycle_for_each_wide_config_and_says_why() -> None:
    records = [record("s", c, v) for c, v in enumerate([1.0, 1.01, 0.99], 1)]
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
    assert new[0].why.startswith("adaptive cycle 4 (of at most 5): the 95% CI of J/token is")
    assert [d.verdict for d in decisions] == ["converged", "more"]
    columns = summary_columns(records, EXECUTION)
    assert columns["s" * 8]["converged"] is True and columns["w" * 8]["converged"] is False
    assert "--resume continues" in columns["w" * 8]["adaptive_stop"]
    assert plan_note(EXECUTION) == (
        "adaptive cycles: 3 cycles for every config, then one more at a time only for configs "
        "whose 95% CI of J/token is wider than +/- 5% of the mean, up to 5 cycles"
    )
    assert plan_note(ExecutionConfig()) is None
