"""The end of `llem campaign run`: the best configs and the Pareto set, with intervals, flags
and the energy method (ESTIMATE where it is one), at most ten rows, then `llem report DIR`."""

from __future__ import annotations

from typing import Any

from llenergymeasure.cli.headline import HEADLINE_ROWS, flags_of, headlines
from llenergymeasure.results.aggregation import ConfigSummary
from llenergymeasure.results.statistics import CycleStats


def _stats(mean: float, low: float | None = None, high: float | None = None) -> CycleStats:
    return CycleStats(n=3, mean=mean, std=0.0, cv=0.0, ci_low=low, ci_high=high)


def summary(
    name: str, jpt: float | None, p50: float, *, estimate: bool = False, **extra: Any
) -> ConfigSummary:
    stats = {
        "energy_per_token_j": None if jpt is None else _stats(jpt, jpt * 0.9, jpt * 1.2),
        "tokens_per_second": _stats(100.0),
        "latency_p50_s": _stats(p50),
        "latency_p90_s": _stats(p50 * 2),
    }
    return ConfigSummary(
        name=name, config_hash=name, backend="pytorch", model="m", precision="float32",
        cycles_planned=3, cycles_completed=3, cycles_failed=0, stats=stats,
        energy_sources=["nvml"], energy_methods=["counter"], energy_is_estimate=estimate,
        energy_bases=["adjusted"], extra=extra,
    )  # fmt: skip


def test_rows_are_ranked_by_j_per_token_with_the_pareto_set_marked() -> None:
    rows, without = headlines(
        [summary("slow", 0.5, 0.1), summary("fast", 0.2, 0.3), summary("bad", 0.6, 0.4)]
    )
    assert [r.name for r in rows] == ["fast", "slow", "bad"] and without == 0
    assert [r.pareto for r in rows] == [True, True, False]  # bad is beaten on both
    assert rows[0].jpt == "0.2 J [0.18, 0.24]"  # the bounds as computed, not +/-
    assert rows[0].latency == "0.3 / 0.6 s" and rows[0].tps == "100"


def test_at_most_ten_rows_and_the_pareto_set_is_kept() -> None:
    many = [summary(f"c{i}", 1.0 + i, 0.5) for i in range(20)] + [summary("quick", 99.0, 0.01)]
    rows, _ = headlines(many)
    assert len(rows) == HEADLINE_ROWS
    assert "quick" in [r.name for r in rows]  # on the front though last by J/token


def test_configs_without_j_per_token_are_counted_not_ranked() -> None:
    rows, without = headlines([summary("a", 0.3, 0.1), summary("dark", None, 0.1)])
    assert [r.name for r in rows] == ["a"] and without == 1


def test_flags_are_rendered_generically_with_estimate_first() -> None:
    flagged = summary("x", 0.3, 0.1, estimate=True, machine_busy=True, converged=True)
    flagged.warnings.append("flagged, kept: thermal_throttle x2")
    flagged.excluded["gpu_contended"] = 1
    assert flags_of(flagged) == [
        "ESTIMATE",
        "machine_busy",
        "thermal_throttle x2",
        "gpu_contended x1 left out",
    ]
