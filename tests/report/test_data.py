"""The rows each figure is drawn from: front membership, effect lines, accounting, cycles,
power, comparison, and what is trimmed (and said) for large campaigns."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.report import data as D
from llenergymeasure.report import power_trace as PT
from llenergymeasure.report.comparison import comparison_data
from llenergymeasure.results.schema import QualityFlag

from . import synthetic as S


def points_of(*sources: S.ReportSource) -> tuple[list[dict], list[str]]:  # type: ignore[type-arg]
    return D.config_points(list(sources))


def test_one_point_per_config_with_its_varied_parameters_and_ci() -> None:
    src = S.source(S.grid_records((1, 4), (32, 64)))
    points, varied = points_of(src)
    assert len(points) == 4
    assert varied == ["max_output_tokens", "pytorch.batch_size"]
    p = next(p for p in points if p["config"] == "pytorch_bs4_out64_float16")
    assert p["p_pytorch_batch_size"] == "4" and p["p_max_output_tokens"] == "64"
    assert p["params"] == "max_output_tokens=64, batch_size=4"
    assert p["energy_per_token_j_low"] < p["energy_per_token_j"] < p["energy_per_token_j_high"]
    assert p["energy_per_token_j_n"] == 3 and p["cycles_used"] == 3
    assert p["estimate"] and p["energy_label"] == f"{D.ESTIMATE} (estimate)"
    assert p["group"] == "all"  # one backend, one model: no panels


def test_pareto_front_and_what_changes_along_it() -> None:
    # bigger batches: lower J/token and higher tokens/s, so only bs=16 is on the front
    # at one output length; two output lengths trade energy against nothing: same front
    src = S.source(S.grid_records((1, 4, 16), (32,)))
    points, varied = points_of(src)
    fig = D.pareto_data(points, D.TPS, varied)
    on = {r["config"]: r["on_front"] for r in fig.rows}
    assert on == {
        "pytorch_bs1_out32_float16": False,
        "pytorch_bs4_out32_float16": False,
        "pytorch_bs16_out32_float16": True,
    }
    assert fig.estimate
    assert "1 on the Pareto front" in fig.caption


def test_front_steps_name_the_parameter_that_changed() -> None:
    # latency: small batches are faster per request here, so the front spans batch sizes
    records = S.grid_records((1, 4), (32,))
    for r in records:
        assert r.result is not None
        bs = r.result.config["pytorch"]["batch_size"]
        r.result.metrics.latency_s.p50 = 0.01 * bs
    src = S.source(records)
    points, varied = points_of(src)
    fig = D.pareto_data(points, D.LATENCY, varied)
    steps = {r["config"]: r["front_step"] for r in fig.rows}
    assert all(r["on_front"] for r in fig.rows)
    assert steps["pytorch_bs1_out32_float16"] == "best on latency p50 (s)"
    assert steps["pytorch_bs4_out32_float16"] == ("vs pytorch_bs1_out32_float16: batch_size 1 -> 4")


def test_many_configs_keep_bars_and_labels_only_on_the_front(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(D, "MAX_ERROR_BARS", 3)
    monkeypatch.setattr(D, "MAX_LABELS", 1)
    src = S.source(S.grid_records((1, 2, 4, 8), (16, 32, 64)))
    points, varied = points_of(src)
    fig = D.pareto_data(points, D.TPS, varied)
    assert all(r["show_bars"] == r["on_front"] for r in fig.rows)
    assert sum(r["show_label"] for r in fig.rows) == 1
    assert "only front members show CI bars" in fig.caption


def test_pareto_targets_include_ttft_only_when_measured() -> None:
    src = S.source(S.grid_records((1, 4)))
    points, _ = points_of(src)
    assert D.pareto_targets(points) == [D.TPS, D.LATENCY]


def test_effect_lines_hold_the_other_parameters_fixed() -> None:
    src = S.source(S.grid_records((1, 4, 16), (32, 64)))
    points, varied = points_of(src)
    fig = D.effect_data(points, "pytorch.batch_size", varied)
    jpt = [r for r in fig.rows if r["metric"] == D.JPT.label]
    assert {r["line"] for r in jpt} == {"max_output_tokens=32", "max_output_tokens=64"}
    line = sorted((r for r in jpt if r["line"] == "max_output_tokens=32"), key=lambda r: r["order"])
    assert [r["value"] for r in line] == ["1", "4", "16"]
    assert line[0]["mean"] > line[-1]["mean"]  # bigger batches: less energy per token
    assert all(r["low"] <= r["mean"] <= r["high"] for r in line)
    assert {r["metric"] for r in fig.rows} == {D.JPT.label, D.TPS.label}


def test_effect_panels_per_backend_and_crowded_panels_become_a_median(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = S.source(S.grid_records((1, 4), (16, 32, 64), backends=("pytorch", "vllm")))
    points, varied = points_of(src)
    assert "backend" in varied
    fig = D.effect_data(points, "max_output_tokens", varied)
    assert {r["group"] for r in fig.rows} == {"pytorch", "vllm"}
    monkeypatch.setattr(D, "MAX_LINES", 1)
    fig = D.effect_data(points, "max_output_tokens", varied)
    assert "median" in fig.caption
    lines = {r["line"] for r in fig.rows}
    assert lines == {"median of 2 combinations"}
    row = next(r for r in fig.rows if r["value"] == "16" and r["metric"] == D.JPT.label)
    assert row["low"] <= row["mean"] <= row["high"] and row["config"] == "2 configs"


def test_accounting_splits_raw_energy_into_baseline_and_the_rest() -> None:
    src = S.source(S.grid_records((1,), baseline_w=20.0, estimate=False))
    points, _ = points_of(src)
    fig = D.accounting_data(points)
    parts = {r["part"]: r["energy_j"] for r in fig.rows}
    assert set(parts) == {"idle baseline", "above baseline"}
    assert parts["idle baseline"] + parts["above baseline"] == pytest.approx(points[0]["energy_j"])
    assert not fig.estimate
    raw_only = D.accounting_data(points_of(S.source(S.grid_records((1,))))[0])
    assert [r["part"] for r in raw_only.rows] == ["raw (no baseline subtracted)"]
    assert raw_only.estimate


def test_untrusted_cycles_are_drawn_apart_and_not_averaged() -> None:
    records = S.grid_records((1,), cycles=3)
    assert records[0].result is not None
    records[0].result.flags.append(
        QualityFlag(code="gpu_contended", severity="untrusted", message="another process")
    )
    src = S.source(records)
    assert src.summaries[0].stats["energy_per_token_j"].n == 2  # type: ignore[union-attr]
    fig = D.cycle_data([src])
    kinds = sorted(r["kind"] for r in fig.rows)
    assert kinds == ["left out: gpu_contended", "used", "used"]


def test_strip_plot_of_many_configs_draws_the_most_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(D, "MAX_ROWS", 2)
    src = S.source(S.grid_records((1, 2, 4, 8)))
    fig = D.cycle_data([src])
    drawn = {r["config"] for r in fig.rows}
    assert len(drawn) == 2 and "most variable" in fig.caption
    cvs = sorted((s.stats["energy_per_token_j"].cv or 0 for s in src.summaries), reverse=True)  # type: ignore[union-attr]
    assert {r["cv"] for r in fig.rows} == set(cvs[:2])


def _with_series(tmp_path: Path) -> S.ReportSource:
    records = S.grid_records((1, 4), cycles=2)
    for r in records:
        assert r.result is not None
        folder = tmp_path / r.exp_id
        folder.mkdir()
        samples = "".join(f"{i / 10},{100 + i},50\n" for i in range(5))
        (folder / "timeseries.csv").write_text("t_s,power_w,temperature_c\n" + samples)
        r.result.timeseries_file = "timeseries.csv"
        r.result.energy.baseline_power_w = 40.0
    return S.source(records, directory=tmp_path)


def test_power_series_default_to_the_best_configs_first_cycle(tmp_path: Path) -> None:
    src = _with_series(tmp_path)
    fig = PT.power_data([src])
    experiments = list(dict.fromkeys(r["experiment"] for r in fig.rows))
    assert experiments == ["pytorch_bs4_out32_float16_c1", "pytorch_bs1_out32_float16_c1"]
    first = [r for r in fig.rows if r["experiment"] == experiments[0]]
    assert [r["power_w"] for r in first] == [100, 101, 102, 103, 104]
    assert first[0]["baseline_w"] == 40.0 and first[0]["warmup_s"] == 0.5
    chosen = PT.power_data([src], ["pytorch_bs1_out32_float16_c2"])
    assert {r["experiment"] for r in chosen.rows} == {"pytorch_bs1_out32_float16_c2"}


def test_power_series_of_a_missing_file_draw_nothing(tmp_path: Path) -> None:
    src = _with_series(tmp_path)
    for r in src.records:
        (tmp_path / r.exp_id / "timeseries.csv").unlink()
    assert PT.power_data([src]).rows == []


def test_comparison_pairs_configs_by_hash_with_welch_intervals() -> None:
    a = S.source(S.grid_records((1, 4)), label="A")
    slower = S.grid_records((1, 4))
    for r in slower:
        assert r.result is not None
        r.result.metrics.tokens_per_second /= 2
    b = S.source(slower, label="B")
    fig, sentences = comparison_data([a, b])
    tps = [r for r in fig.rows if r["metric"] == "throughput (tokens/s)"]
    assert len(tps) == 2 and all(r["pct"] == pytest.approx(-50, abs=1e-6) for r in tps)
    assert all(r["clear"] and r["low"] <= r["pct"] <= r["high"] for r in tps)
    jpt = [r for r in fig.rows if r["metric"].startswith("energy")]
    assert all(not r["clear"] for r in jpt) and all(r["estimate"] for r in jpt)
    assert any("lower throughput" in s["sentence"] for s in sentences)


def test_comparison_names_configs_in_only_one_directory() -> None:
    a = S.source(S.grid_records((1, 4)), label="A")
    b = S.source(S.grid_records((1, 8)), label="B")
    _, sentences = comparison_data([a, b])
    lonely = [s["sentence"] for s in sentences if "only one" in s["sentence"]]
    assert len(lonely) == 2


def test_energy_on_different_bases_is_not_compared() -> None:
    adjusted = S.source(S.grid_records((1,), baseline_w=30.0, estimate=False), label="A")
    raw = S.source(S.grid_records((1,), estimate=False), label="B")
    fig, sentences = comparison_data([adjusted, raw])
    assert not any(r["metric"].startswith("energy") for r in fig.rows)
    assert {r["metric"] for r in fig.rows} == {"throughput (tokens/s)", "median latency (s)"}
    assert any(
        "NOT comparable: energy bases differ, adjusted vs raw" in s["sentence"] for s in sentences
    )
