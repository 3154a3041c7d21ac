"""Across-cycle statistics against hand-computed values, and the exported tables."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest

from llenergymeasure.results.aggregation import (
    EXPERIMENT_COLUMNS,
    RunRecord,
    aggregate,
    summary_columns,
)
from llenergymeasure.results.export import records_from_folder, write_tables
from llenergymeasure.results.statistics import bootstrap_ci

from .helpers import make_result


def record(
    cycle: int, tps: float, *, name: str = "a", status: str = "completed", **kw
) -> RunRecord:  # type: ignore[no-untyped-def]
    digest = name * 8
    result = (
        make_result(f"{name}_c{cycle}", name, digest, tokens_per_second=tps, **kw)
        if status == "completed"
        else None
    )
    return RunRecord(
        exp_id=f"{name}_c{cycle}",
        name=name,
        config_hash=digest,
        backend="pytorch",
        cycle=cycle,
        status=status,
        model="builtin:tiny-gpt2",
        precision="float32",
        error="boom\n--- traceback ---\nTraceback ..." if status == "failed" else None,
        result=result,
    )


def test_mean_std_cv_match_hand_computed_values() -> None:
    # tokens/s 10, 12, 14: mean 12, sample std sqrt(((-2)^2 + 0 + 2^2) / 2) = 2, CV 2/12
    # J/token 0.5, 0.25, 0.75: mean 0.5, std 0.25, CV 0.5
    records = [
        record(1, 10.0, energy_per_token_j=0.5),
        record(2, 12.0, energy_per_token_j=0.25),
        record(3, 14.0, energy_per_token_j=0.75),
    ]
    (summary,) = aggregate(records, seed=5, resamples=2000)
    tps = summary.stats["tokens_per_second"]
    assert tps is not None
    assert (tps.n, tps.mean, tps.std) == (3, pytest.approx(12.0), pytest.approx(2.0))
    assert tps.cv == pytest.approx(2.0 / 12.0)
    ept = summary.stats["energy_per_token_j"]
    assert ept is not None
    assert (ept.mean, ept.std, ept.cv) == (
        pytest.approx(0.5),
        pytest.approx(0.25),
        pytest.approx(0.5),
    )
    assert not summary.low_cycles
    assert summary.row()["tokens_per_second_mean"] == pytest.approx(12.0)


def test_bootstrap_ci_is_reproducible_for_a_seed_and_brackets_the_mean() -> None:
    # 6 cycles: 6**6 resamples is more than 4000, so they are drawn (seeded), not enumerated
    records = [record(c, v) for c, v in enumerate([10.0, 11.0, 15.0, 12.0, 9.0, 11.4], 1)]
    first = aggregate(records, seed=42, resamples=4000)[0].stats["tokens_per_second"]
    again = aggregate(records, seed=42, resamples=4000)[0].stats["tokens_per_second"]
    other = aggregate(records, seed=43, resamples=4000)[0].stats["tokens_per_second"]
    assert first is not None and again is not None and other is not None
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.ci_low is not None and first.ci_high is not None
    assert first.mean == pytest.approx(11.4)
    assert 9.0 <= first.ci_low < first.mean < first.ci_high <= 15.0


def test_few_cycles_get_the_exact_bootstrap_whatever_the_seed() -> None:
    # 3 values: all 27 resamples enumerated; the means' 2.5% and 97.5% points by hand:
    # sorted means of [1, 2, 4]: the lowest is 1 (1/27 = 3.7% > 2.5%), the highest 4
    values = [1.0, 2.0, 4.0]
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=2) == (1.0, 4.0)
    # 5 values: a tighter interval than the data's range, still exact and seed-free
    five = [10.0, 11.0, 15.0, 12.0, 9.0]
    low, high = bootstrap_ci(five, seed=1) or (0.0, 0.0)
    assert (low, high) == bootstrap_ci(five, seed=99)
    assert 9.0 < low < 11.4 < high < 15.0


def test_two_cycles_ci_is_the_two_values_and_is_flagged_low() -> None:
    # with two values the bootstrap means are a (1/4), (a+b)/2 (1/2), b (1/4): the 2.5% and
    # 97.5% percentiles are exactly a and b
    (summary,) = aggregate([record(1, 10.0), record(2, 20.0)], seed=1, resamples=4000)
    tps = summary.stats["tokens_per_second"]
    assert tps is not None
    assert (tps.ci_low, tps.ci_high) == (pytest.approx(10.0), pytest.approx(20.0))
    assert summary.low_cycles
    row = summary.row()
    assert row["low_cycles"] is True
    assert "only 2 completed cycles (< 3)" in row["warnings"]


def test_one_cycle_has_a_mean_and_no_spread() -> None:
    (summary,) = aggregate([record(1, 10.0)], resamples=100)
    tps = summary.stats["tokens_per_second"]
    assert tps is not None
    assert (tps.mean, tps.std, tps.cv, tps.ci_low) == (10.0, None, None, None)


def test_failed_cycles_are_counted_not_averaged_and_skipped_are_left_out() -> None:
    records = [
        record(1, 10.0),
        record(2, 0.0, status="failed"),
        record(3, 14.0),
        record(1, 99.0, name="b", status="skipped"),
    ]
    summaries = aggregate(records, resamples=100)
    assert [s.name for s in summaries] == ["a"]
    (summary,) = summaries
    assert (summary.cycles_planned, summary.cycles_completed, summary.cycles_failed) == (3, 2, 1)
    assert summary.stats["tokens_per_second"].mean == pytest.approx(12.0)  # type: ignore[union-attr]


def test_energy_provenance_is_carried_and_mixed_methods_are_flagged() -> None:
    estimate = aggregate([record(c, 10.0) for c in (1, 2, 3)], resamples=100)[0]
    assert estimate.energy_is_estimate is True
    assert estimate.row()["energy_method"] == "estimate"
    assert "ESTIMATE" in estimate.row()["warnings"]
    mixed = aggregate(
        [
            record(1, 10.0, method="counter", is_estimate=False),
            record(2, 10.0, method="counter", is_estimate=False),
            record(3, 10.0),
        ],
        resamples=100,
    )[0]
    assert mixed.energy_is_estimate is True  # one estimated cycle makes the mean an estimate
    assert mixed.row()["energy_method"] == "counter/estimate"
    assert "energy methods differ" in mixed.row()["warnings"]
    measured = aggregate(
        [record(c, 10.0, method="counter", is_estimate=False) for c in (1, 2, 3)], resamples=100
    )[0]
    assert measured.energy_is_estimate is False
    assert measured.row()["warnings"] is None


def test_ttft_statistics_only_when_streaming_results_have_it() -> None:
    (plain,) = aggregate([record(1, 10.0), record(2, 11.0)], resamples=100)
    assert plain.stats["ttft_p50_s"] is None
    assert plain.row()["ttft_p50_s_n"] == 0
    (streamed,) = aggregate(
        [record(1, 10.0, ttft_s=0.02), record(2, 11.0, ttft_s=0.04)], resamples=100
    )
    assert streamed.stats["ttft_p50_s"].mean == pytest.approx(0.03)  # type: ignore[union-attr]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_parquet_and_json_tables(tmp_path: Path) -> None:
    records = [record(1, 10.0), record(2, 12.0), record(3, 14.0), record(1, 5.0, name="b")]
    records.append(record(2, 0.0, name="b", status="failed"))
    report = write_tables(tmp_path, records, formats=["csv", "parquet", "json"], resamples=200)
    names = sorted(p.name for p in report.paths)
    assert names == sorted(
        [
            "summary.csv",
            "experiments.csv",
            "summary.parquet",
            "experiments.parquet",
            "summary.json",
        ]
    )
    summary = read_csv(tmp_path / "summary.csv")
    assert list(summary[0]) == summary_columns()
    assert [row["name"] for row in summary] == ["a", "b"]
    assert float(summary[0]["tokens_per_second_mean"]) == pytest.approx(12.0)
    assert summary[0]["energy_is_estimate"] == "true"
    assert summary[1]["low_cycles"] == "true"
    experiments = read_csv(tmp_path / "experiments.csv")
    assert list(experiments[0]) == EXPERIMENT_COLUMNS
    assert len(experiments) == 5
    failed = next(row for row in experiments if row["status"] == "failed")
    assert failed["error"] == "boom"  # the headline, not the traceback
    assert failed["tokens_per_second"] == "" and failed["model"] == "builtin:tiny-gpt2"
    done = next(row for row in experiments if row["exp_id"] == "a_c1")
    assert (done["energy_method"], done["energy_is_estimate"]) == ("estimate", "true")

    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "summary.parquet")
    assert table.num_rows == 2
    assert table.column("tokens_per_second_mean").to_pylist()[0] == pytest.approx(12.0)
    assert table.column("energy_is_estimate").to_pylist() == [True, True]
    assert pq.read_table(tmp_path / "experiments.parquet").num_rows == 5
    data = json.loads((tmp_path / "summary.json").read_text())
    assert len(data["configs"]) == 2 and len(data["experiments"]) == 5
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_missing_pyarrow_skips_parquet_with_the_extra_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    report = write_tables(tmp_path, [record(1, 10.0)], formats=["csv", "parquet"], resamples=50)
    assert [p.name for p in report.paths] == ["summary.csv", "experiments.csv"]
    assert any("pip install 'llenergymeasure[parquet]'" in note for note in report.notes)
    assert not (tmp_path / "summary.parquet").exists()


def test_records_from_a_folder_of_runs_number_cycles_per_config(tmp_path: Path) -> None:
    for exp_id, digest, started in [
        ("r1", "x" * 8, "01"),
        ("r2", "y" * 8, "02"),
        ("r3", "x" * 8, "03"),
    ]:
        result = make_result(exp_id, digest[0], digest)
        result.timings.started_at = f"2026-01-{started}T00:00:00+00:00"
        result.save(tmp_path / exp_id)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "result.json").write_text("{not json")
    records = records_from_folder(tmp_path)
    assert [(r.exp_id, r.cycle) for r in records] == [("r1", 1), ("r2", 1), ("r3", 2)]
    assert not math.isnan(aggregate(records, resamples=50)[0].stats["tokens_per_second"].mean)  # type: ignore[union-attr]
