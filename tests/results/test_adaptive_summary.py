"""An adaptive campaign's summary reports the two-stage design interval for its target metric
(``ci_method`` two_stage), in cycle order; other metrics and non-adaptive campaigns keep theirs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.results.aggregation import RunRecord, aggregate
from llenergymeasure.results.export import write_tables
from llenergymeasure.results.statistics import design_interval, t_interval
from orchestration.campaign.helpers import completed_record

EXECUTION = ExecutionConfig(target_ci_pct=5.0, min_cycles=3, max_cycles=6)
EPT = [0.50, 0.52, 0.49, 0.51, 0.55, 0.47]  # J/token by cycle 1..6


def record(cycle: int, ept: float, *, name: str = "cfg") -> RunRecord:
    return completed_record(name, cycle, energy_per_token_j=ept)


def records(values: list[float]) -> list[RunRecord]:
    shuffled = [record(c, v) for c, v in enumerate(values, start=1)]
    return shuffled[::-1]  # the first stage is chosen by cycle number, not by list order


def test_the_target_metric_interval_is_the_design_interval() -> None:
    (summary,) = aggregate(records(EPT), execution=EXECUTION)
    row = summary.row()
    low, high = design_interval(EPT, EXECUTION.first_cycles) or (0.0, 0.0)
    assert row["energy_per_token_j_ci95_low"] == pytest.approx(low)
    assert row["energy_per_token_j_ci95_high"] == pytest.approx(high)
    assert summary.stats["energy_per_token_j"].ci_method == "two_stage"  # type: ignore[union-attr]
    assert "two_stage" in row["ci_method"].split("/")
    assert "ci_method two_stage) (energy_per_token_j)" in row["warnings"]
    # every other metric keeps its usual interval
    assert summary.stats["tokens_per_second"].ci_method == "student_t"  # type: ignore[union-attr]


def test_another_target_metric_and_non_adaptive_rows_are_unchanged() -> None:
    plain = aggregate(records(EPT))[0].row()
    low, high = t_interval(EPT) or (0.0, 0.0)
    assert plain["energy_per_token_j_ci95_low"] == pytest.approx(low)
    assert plain["energy_per_token_j_ci95_high"] == pytest.approx(high)
    assert plain["ci_method"] == "student_t"
    assert aggregate(records(EPT), execution=ExecutionConfig())[0].row() == plain
    speed = ExecutionConfig(target_ci_pct=5.0, min_cycles=3, target_metric="tokens_per_second")
    row = aggregate(records(EPT), execution=speed)[0].row()
    for column in ("energy_per_token_j_ci95_low", "energy_per_token_j_ci95_high"):
        assert row[column] == plain[column]


def test_too_few_cycles_after_the_first_stage_keep_the_t_interval_with_a_note() -> None:
    (summary,) = aggregate(records(EPT[:4]), execution=EXECUTION)
    stats = summary.stats["energy_per_token_j"]
    assert stats is not None and stats.ci_method == "student_t"
    low, high = t_interval(EPT[:4]) or (0.0, 0.0)
    assert (stats.ci_low, stats.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert "needs >= 5 usable cycles" in (summary.row()["warnings"] or "")


def test_a_design_interval_reaching_zero_falls_back_and_stays_positive() -> None:
    values = [0.5, 0.5, 0.5, 0.01, 2.0]  # s2 from (0.01, 2.0): the design interval reaches < 0
    assert (design_interval(values, 3) or (1.0, 1.0))[0] <= 0
    (summary,) = aggregate(records(values), execution=EXECUTION)
    stats = summary.stats["energy_per_token_j"]
    assert stats is not None and stats.ci_method != "two_stage"
    assert stats.ci_low is not None and stats.ci_low > 0
    assert "reached zero or below" in (summary.row()["warnings"] or "")


def test_summary_csv_carries_the_design_interval(tmp_path: Path) -> None:
    write_tables(tmp_path, records(EPT), formats=["csv"], resamples=50, execution=EXECUTION)
    with (tmp_path / "summary.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    low, _ = design_interval(EPT, 3) or (0.0, 0.0)
    assert float(row["energy_per_token_j_ci95_low"]) == pytest.approx(low)
    assert "two_stage" in row["ci_method"]
