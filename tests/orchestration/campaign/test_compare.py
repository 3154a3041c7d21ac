"""`llem results compare`: Welch-t intervals on the difference, checked by hand, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.results.aggregation import RunRecord, aggregate
from llenergymeasure.results.compare import compare_configs, compare_to_best, pair_by_config
from llenergymeasure.results.statistics import holm, t_sf, welch_difference

from .helpers import completed_record

T_975_DF4 = 2.7764451052  # t(0.975, 4) from a printed table
T_975_DF2 = 4.30265272975
T_975_DF3 = 3.18244630528


def invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def records(name: str, ept: list[float], tps: list[float] | None = None) -> list[RunRecord]:
    speeds = tps or [100.0] * len(ept)
    return [
        completed_record(name, cycle, energy_per_token_j=value, tokens_per_second=speed)
        for cycle, (value, speed) in enumerate(zip(ept, speeds, strict=True), 1)
    ]


def test_welch_interval_by_hand_with_equal_variances() -> None:
    # A: 10 12 14 (mean 12, s^2 4); B: 5 7 9 (mean 7, s^2 4)
    # se = sqrt(4/3 + 4/3) = 1.63299; df = (8/3)^2 / ((4/3)^2/2 * 2) = 4 exactly
    w = welch_difference([10.0, 12.0, 14.0], [5.0, 7.0, 9.0])
    se = math.sqrt(8 / 3)
    assert (w.difference, w.se, w.df) == (-5.0, pytest.approx(se), pytest.approx(4.0))
    assert (w.ci_low, w.ci_high) == (
        pytest.approx(-5 - T_975_DF4 * se, rel=1e-9),
        pytest.approx(-5 + T_975_DF4 * se, rel=1e-9),
    )
    assert (w.ci_low, w.ci_high) == (
        pytest.approx(-9.5339, abs=1e-4),
        pytest.approx(-0.4661, abs=1e-4),
    )
    assert w.significant


def test_welch_interval_by_hand_with_unequal_variances_and_sizes() -> None:
    # A: 1 2 3 (s^2 1, n 3); B: 2 4 6 8 10 (s^2 10, n 5)
    # va = 1/3, vb = 2; se = sqrt(7/3); df = (7/3)^2 / ((1/3)^2/2 + 2^2/4) = 5.4444/1.05556 = 5.1579
    w = welch_difference([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0, 10.0])
    df = (7 / 3) ** 2 / ((1 / 3) ** 2 / 2 + 4 / 4)
    assert w.df == pytest.approx(df) and w.df == pytest.approx(5.15789, abs=1e-5)
    half = (w.ci_high - w.ci_low) / 2
    # t(0.975, 5.158) lies between the table's t(0.975, 6) = 2.44691 and t(0.975, 5) = 2.57058
    assert 2.44691 * math.sqrt(7 / 3) < half < 2.57058 * math.sqrt(7 / 3)
    assert w.difference == pytest.approx(4.0)


def test_comparison_sentence_and_percentages() -> None:
    a = aggregate(records("a", [10.0, 12.0, 14.0]))[0]
    b = aggregate(records("b", [5.0, 7.0, 9.0]))[0]
    comparison = compare_configs(a, b)
    energy = comparison.metrics[0]
    assert energy.metric.column == "energy_per_token_j"
    half_pct = 100 * T_975_DF4 * math.sqrt(8 / 3) / 12
    assert energy.pct == pytest.approx(-500 / 12)
    assert energy.pct_half_width == pytest.approx(half_pct)
    assert energy.sentence == (
        "b uses 42% ± 38% less energy per token than a, 3 cycles each; "
        "energy is an ESTIMATE, not a measurement"  # make_result's energy is an estimate
    )
    assert energy.better == "B"
    tps = comparison.metrics[1]  # both 100 tokens/s every cycle: zero spread, zero difference
    assert tps.welch is not None and tps.welch.difference == 0.0 and not tps.welch.significant
    assert (
        tps.sentence == "b and a have the same throughput (tokens/s) in every cycle, 3 cycles each"
    )
    data = comparison.to_json()
    assert data["ci_method"] == "welch_t"
    assert data["metrics"][0]["ci95_low"] == pytest.approx(-5 - T_975_DF4 * math.sqrt(8 / 3))
    assert data["metrics"][0]["better"] == "b"


def test_small_differences_say_so_and_one_cycle_has_no_interval() -> None:
    a = aggregate(records("a", [10.0, 12.0, 14.0]))[0]
    close = aggregate(records("c", [11.0, 11.5, 13.0]))[0]
    energy = compare_configs(a, close).metrics[0]
    assert energy.welch is not None and not energy.welch.significant
    assert (
        energy.sentence.startswith("c uses ") and "less energy per token than a" in energy.sentence
    )
    assert "(no clear difference: the 95% interval includes 0)" in energy.sentence
    single = aggregate(records("s", [9.0]))[0]
    lonely = compare_configs(a, single).metrics[0]
    assert lonely.welch is None and lonely.pct is None
    assert "s has 1 usable cycle(s)" in lonely.sentence


def test_every_config_against_the_best_one() -> None:
    summaries = aggregate(
        records("a", [10.0, 12.0, 14.0], [90.0, 95.0, 100.0])
        + records("b", [5.0, 7.0, 9.0], [80.0, 81.0, 82.0])
        + records("c", [20.0, 21.0, 22.0], [150.0, 151.0, 149.0])
    )
    best, comparisons = compare_to_best(summaries)
    assert best.name == "b" and [c.b_name for c in comparisons] == ["a", "c"]
    assert all(c.a_name == "b" for c in comparisons)
    fastest, _ = compare_to_best(summaries, by="tokens_per_second")
    assert fastest.name == "c"
    pairs, unpaired = pair_by_config(summaries[:2], summaries[1:])
    assert [(x.name, y.name) for x, y in pairs] == [("b", "b")]
    assert unpaired == ["a", "c"]


def write_folder(directory: Path, name: str, ept: list[float]) -> None:
    for record in records(name, ept):
        assert record.result is not None
        record.result.save(directory / record.exp_id)


def test_cli_compare_two_configs_all_against_best_and_two_directories(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_folder(sweep, "a", [10.0, 12.0, 14.0])
    write_folder(sweep, "b", [5.0, 7.0, 9.0])
    result = invoke("results", "compare", sweep, "a", "b")
    assert_clean(result)
    assert result.exit_code == 0, result.output
    assert "b uses 42% ± 38% less energy per token than a, 3 cycles each" in result.output
    data = json.loads(invoke("results", "compare", sweep, "a", "b", "--json").stdout)
    (comparison,) = data["comparisons"]
    assert comparison["a"]["name"] == "a" and comparison["b"]["name"] == "b"
    energy = comparison["metrics"][0]
    assert energy["difference"] == pytest.approx(-5.0)
    assert energy["ci95_high"] == pytest.approx(-5 + T_975_DF4 * math.sqrt(8 / 3))
    best = json.loads(invoke("results", "compare", sweep, "--json").stdout)
    assert best["mode"] == "against_best" and best["best"] == "b"
    assert [c["b"]["name"] for c in best["comparisons"]] == ["a"]
    # the same configs on another machine: paired by config hash
    other = tmp_path / "other"
    write_folder(other, "a", [11.0, 12.0, 13.0])
    write_folder(other, "b", [6.0, 7.0, 8.0])
    two = json.loads(invoke("results", "compare", sweep, other, "--json").stdout)
    assert two["mode"] == "two_campaigns"
    assert [c["a"]["name"] for c in two["comparisons"]] == [f"a ({sweep})", f"b ({sweep})"]
    assert two["comparisons"][0]["metrics"][0]["difference"] == pytest.approx(0.0)


def test_cli_compare_mistakes_are_one_message(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_folder(sweep, "alpha", [10.0, 12.0, 14.0])
    write_folder(sweep, "beta", [5.0, 7.0, 9.0])
    cases = [
        ((sweep, "alpah", "beta"), "no config named 'alpah'", "did you mean 'alpha'"),
        ((sweep, "alpha"), "two arguments are two campaign directories", "DIR CONFIG_A CONFIG_B"),
        ((tmp_path / "nope",), "no such directory", "give a campaign"),
        ((sweep, "--by", "watts"), "unknown --by 'watts'", "energy_per_token_j"),
    ]
    for args, what, fix in cases:
        result = invoke("results", "compare", *args)
        assert_clean(result)
        assert result.exit_code != 0
        assert what in result.output and fix in result.output
    alone = tmp_path / "alone"
    write_folder(alone, "alpha", [1.0, 2.0])
    result = invoke("results", "compare", alone)
    assert result.exit_code != 0 and "holds one config" in result.output


def test_holm_adjusts_step_down_and_keeps_the_input_order() -> None:
    # sorted 0.01, 0.03, 0.04: x3 = 0.03, x2 = 0.06, x1 = 0.04 -> raised to 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_against_the_best_p_values_are_holm_adjusted_over_the_family() -> None:
    # b beats a and d by 5 J/token: Welch t = 5 / sqrt(4/3 + 4/3) on 4 df, p = 0.0377 each,
    # significant alone; with c, three comparisons: Holm multiplies that p by 2 -> 0.075
    summaries = aggregate(
        records("a", [10.0, 12.0, 14.0])
        + records("b", [5.0, 7.0, 9.0])
        + records("c", [20.0, 21.0, 22.0])
        + records("d", [10.0, 12.0, 14.0])
    )
    best, comparisons = compare_to_best(summaries)
    assert best.name == "b"
    by_name = {c.b_name: c.metrics[0] for c in comparisons}
    p = 2 * t_sf(5 / math.sqrt(8 / 3), 4)
    assert by_name["a"].p_value == pytest.approx(p) and p < 0.05
    assert by_name["a"].welch is not None and by_name["a"].welch.significant  # unadjusted
    assert by_name["a"].p_adjusted == pytest.approx(2 * p)
    assert by_name["a"].correction == "holm" and by_name["a"].significant is False
    assert by_name["a"].better is None
    assert "no clear difference after Holm's correction over 3 comparisons" in (
        by_name["a"].sentence
    )
    assert by_name["c"].significant is True and by_name["c"].better == "A"
    data = by_name["a"].to_json()
    assert (data["correction"], data["significant"]) == ("holm", False)
    assert data["p_adjusted"] == pytest.approx(2 * p)
    # two configs compared on their own: no family, no correction
    (alone,) = [compare_configs(best, s) for s in summaries if s.name == "a"]
    assert alone.metrics[0].correction is None and alone.metrics[0].significant is True


def test_cli_compare_dir_is_one_ranked_table_and_the_detail_behind_a_flag(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_folder(sweep, "a", [10.0, 12.0, 14.0])
    write_folder(sweep, "b", [5.0, 7.0, 9.0])
    write_folder(sweep, "c", [20.0, 21.0, 22.0])
    write_folder(sweep, "d", [5.5, 7.5, 9.5])
    result = invoke("results", "compare", sweep)
    assert_clean(result)
    assert result.exit_code == 0, result.output
    cells = [line.split("│") for line in result.output.splitlines() if "│" in line]
    ranked = [c for c in cells if c[1].strip().isdigit()]
    assert [(c[1].strip(), c[2].strip()) for c in ranked] == [
        ("1", "b"),
        ("2", "d"),
        ("3", "a"),
        ("4", "c"),
    ]
    assert ranked[0][-2].strip() == "best" and "same as best" in ranked[1][-2]
    assert "differs from" in ranked[3][-2]  # the verdict may wrap in a narrow terminal
    assert "Holm-adjusted p < 0.05 over the 3 comparisons" in result.output
    assert "B: " not in result.output  # no per-config detail by default
    detail = invoke("results", "compare", sweep, "--detail")
    assert detail.exit_code == 0 and detail.output.count("B: ") == 3
    data = json.loads(invoke("results", "compare", sweep, "--json").stdout)
    assert data["correction"] == "holm"
    assert [r["name"] for r in data["ranking"]] == ["b", "d", "a", "c"]
    first, second = data["ranking"][:2]
    assert first["rank"] == 1 and first["same_as_best"] is None and first["mean"] == 7.0
    assert second["same_as_best"] is True and second["correction"] == "holm"
    assert second["pct_vs_best"] == pytest.approx(100 * 0.5 / 7)
    refused = invoke("results", "compare", sweep, "--by", "watts", "--json")
    assert refused.exit_code != 0
    assert json.loads(refused.stdout)["error"]["what"] == "unknown --by 'watts'"
