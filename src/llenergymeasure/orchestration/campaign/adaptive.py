"""Adaptive cycles: a two-stage design whose final 95% interval keeps its coverage.

With ``execution.target_ci_pct`` set, every config first runs ``min_cycles`` (n0, the first
stage). Whenever every entry of the manifest has run, :func:`next_round` looks at each config's
usable cycles (completed, without untrusted flags) of ``target_metric`` (J/token on the table's
one energy basis, as in ``summary.csv``), in cycle order:

- the first n0 usable values give the spread s0 and mean m0; :func:`planned_cycles` turns them
  into the total N: the fewest cycles (at least n0 + 2) whose interval
  t(0.975, N - n0 - 1) * s0 / sqrt(N) would be within ``target_ci_pct`` % of m0;
- fewer than N usable cycles and fewer than ``max_cycles`` run: one more cycle, its manifest
  entry saying why; N usable cycles: stops, ``converged`` (the plan fitted under max_cycles);
  a plan beyond ``max_cycles``: runs to the cap and stops, not converged.

The interval reported at stop (:func:`design_interval`) is the mean of all N values
+/- t(0.975, m - 1) * s2 / sqrt(N), s2 the spread of the m = N - n0 values *after* the first
stage. Why not the plain t interval: stopping is chosen from s0, so the configs that stop early
are those whose first cycles happened to agree; an interval built on that same s0 (Stein's
classic two-stage interval, or the t interval of all N values) covers the true mean only 57%
(Stein) to 84% (plain t) of the time in the rows marked converged (CV 5%, target 2%, min 3,
max 10). s2 is independent of s0, so whatever N the first stage chose, the interval is an exact
t interval for normal cycles: ~95% overall and in the converged rows alike (measured in
docs/statistics.md; ``tests/orchestration/campaign/test_adaptive.py`` simulates it in CI). The relative
target (% of m0) makes N depend a little on the first-stage mean: measured, coverage stays
>= 94%. The price is two cycles past the first stage for every config, steady ones included.

A decision is a function of the completed results only, taken when a round has fully run, so a
campaign killed at any moment and resumed makes exactly the decisions it would have made: entries
already scheduled are in the manifest, completed ones are kept, nothing runs twice.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llenergymeasure.config.campaign_config import CIMethod, ExecutionConfig
from llenergymeasure.orchestration.campaign.manifest import ManifestEntry
from llenergymeasure.orchestration.campaign.plan import PlannedExperiment, new_entry
from llenergymeasure.results.aggregation import (
    CYCLE_METRICS,
    RunRecord,
    energy_per_token,
    table_basis,
    usable_results,
)
from llenergymeasure.results.statistics import (
    CONFIDENCE,
    SECOND_STAGE_MIN,
    design_interval,
    t_quantile,
)

METRIC_LABELS = {
    "energy_per_token_j": "J/token",
    "tokens_per_second": "tokens/s",
    "latency_p50_s": "median latency",
}

Verdict = Literal["converged", "more", "max_cycles", "no_metric"]


@dataclass(frozen=True)
class Decision:
    """Where one config stands against the target."""

    config_hash: str
    name: str
    cycles_run: int
    """Entries of this config that ran or are to run (failed ones included), skipped left out."""
    usable: int
    half_width_pct: float | None
    verdict: Verdict
    text: str

    @property
    def converged(self) -> bool:
        return self.verdict == "converged"


def _label(execution: ExecutionConfig) -> str:
    return METRIC_LABELS.get(execution.target_metric, execution.target_metric)


def plan_note(execution: ExecutionConfig) -> str | None:
    """The plan's line about adaptive cycles (None when they are off)."""
    if not execution.adaptive:
        return None
    return (
        f"adaptive cycles: {execution.first_cycles} cycles for every config, then one more at a "
        f"time up to the number its first {execution.first_cycles} call for to reach a 95% CI of "
        f"{_label(execution)} within +/- {execution.target_ci_pct:g}% of the mean (at least "
        f"{execution.first_cycles + SECOND_STAGE_MIN}, up to {execution.cycle_limit} cycles)"
    )


def _t(df: int) -> float:
    return t_quantile(1 - (1 - CONFIDENCE) / 2, df)


def planned_cycles(first: Sequence[float], target_pct: float, limit: int) -> int | None:
    """The total cycles the first stage calls for: the fewest N >= n0 + 2 with
    t(0.975, N - n0 - 1) * s0 / sqrt(N) <= target_pct % of |m0|; None when no N <= limit does."""
    n0 = len(first)
    if n0 < 2:
        raise ValueError("the first stage needs at least 2 values")
    s0, bound = statistics.stdev(first), target_pct / 100 * abs(statistics.fmean(first))
    for total in range(n0 + SECOND_STAGE_MIN, limit + 1):
        if _t(total - n0 - 1) * s0 / math.sqrt(total) <= bound:
            return total
    return None


def decide(
    records: Sequence[RunRecord],
    execution: ExecutionConfig,
    *,
    ci_method: CIMethod = "student_t",
    seed: int = 0,
    resamples: int = 10_000,
) -> list[Decision]:
    """Each config's standing, in first-seen order (skipped records are left out).

    ``ci_method``, ``seed`` and ``resamples`` are the summary's settings, accepted so callers
    pass one set; the design's interval is always :func:`design_interval` (a bootstrap after a
    data-chosen stop has no coverage guarantee)."""
    del ci_method, seed, resamples
    target = execution.target_ci_pct
    if target is None:
        return []
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.status != "skipped":
            groups.setdefault(record.config_hash, []).append(record)
    basis = table_basis(usable_results(records))
    metric, label, limit = execution.target_metric, _label(execution), execution.cycle_limit
    n0 = execution.first_cycles
    decisions = []
    for digest, group in groups.items():
        ordered = sorted(group, key=lambda r: r.cycle)
        done = usable_results(ordered)
        if metric == "energy_per_token_j":
            raw = [energy_per_token(r, basis) if basis else None for r in done]
        else:
            raw = [CYCLE_METRICS[metric](r) for r in done]
        values = [v for v in raw if v is not None]
        run, name = len(group), group[-1].name
        planned = planned_cycles(values[:n0], target, limit) if len(values) >= n0 else None
        interval = design_interval(values, n0) if len(values) >= n0 else None
        mean = statistics.fmean(values) if values else 0.0
        half = 100 * (interval[1] - interval[0]) / 2 / abs(mean) if interval and mean else None
        verdict: Verdict
        if done and not values:
            verdict = "no_metric"
            text = f"{label} was not measured in its cycles: adaptive cycles cannot judge it"
        elif planned is not None and len(values) >= planned and half is not None:
            verdict = "converged"
            text = (
                f"converged: ran the {planned} cycles its first {n0} called for; 95% CI of "
                f"{label} is +/- {half:.2f}% after {len(values)} usable cycles (target "
                f"+/- {target:g}%{'; wider: the first cycles understated the spread' if half > target else ''})"
            )
        else:
            if len(values) < n0:
                where = f"{len(values)} usable cycle(s) of {label}: the first {n0} are not in yet"
            elif planned is not None:
                where = (
                    f"the first {n0} usable cycles call for {planned} to reach +/- {target:g}% "
                    f"on {label}; {len(values)} usable so far"
                )
            else:
                where = (
                    f"the first {n0} usable cycles call for more than {limit} to reach "
                    f"+/- {target:g}% on {label}"
                )
            if half is not None:
                where = f"the 95% CI of {label} is +/- {half:.2f}% after {len(values)} usable cycles; {where}"
            if run < limit:
                verdict, text = "more", where
            else:
                verdict, text = "max_cycles", f"max_cycles ({limit}) reached and {where}"
        decisions.append(Decision(digest, name, run, len(values), half, verdict, text))
    return decisions


def next_round(
    entries: Sequence[ManifestEntry],
    records: Sequence[RunRecord],
    experiments: Sequence[PlannedExperiment],
    execution: ExecutionConfig,
    *,
    ci_method: CIMethod = "student_t",
    seed: int = 0,
    resamples: int = 10_000,
) -> tuple[list[ManifestEntry], list[Decision]]:
    """The entries of the next adaptive round (one more cycle per config still too wide), each
    with ``why`` set, and every config's decision. Call it only when no entry is left to run."""
    decisions = decide(records, execution, ci_method=ci_method, seed=seed, resamples=resamples)
    by_hash = {e.config_hash: e for e in experiments}
    used = {e.exp_id for e in entries}
    last_cycle: dict[str, int] = {}
    for entry in entries:
        last_cycle[entry.config_hash] = max(last_cycle.get(entry.config_hash, 0), entry.cycle)
    more = [d for d in decisions if d.verdict == "more" and d.config_hash in by_hash]
    wanted = {d.config_hash for d in more}
    order = [e.config_hash for e in experiments if e.config_hash in wanted]
    if execution.structure == "shuffled" and order:
        cycle = min(last_cycle[h] for h in order) + 1
        random.Random(f"{execution.seed}:adaptive:{cycle}").shuffle(order)
    why = {d.config_hash: d.text for d in more}
    new = []
    for digest in order:
        cycle = last_cycle[digest] + 1
        entry = new_entry(by_hash[digest], cycle, used)
        entry.why = f"adaptive cycle {cycle} (of at most {execution.cycle_limit}): {why[digest]}"
        new.append(entry)
    return new, decisions


def round_event(new: Sequence[ManifestEntry], decisions: Sequence[Decision]) -> str:
    """One line for the manifest's event log: who gets another cycle, who stopped and why."""
    parts = []
    if new:
        parts.append(
            f"{len(new)} more cycle(s): " + ", ".join(f"{e.name} (cycle {e.cycle})" for e in new)
        )
    done = [d for d in decisions if d.verdict != "more"]
    for verdict in ("converged", "max_cycles", "no_metric"):
        names = [d.name for d in done if d.verdict == verdict]
        if names:
            parts.append(f"{verdict}: {', '.join(names)}")
    return "; ".join(parts) or "no configs"


def summary_columns(
    records: Sequence[RunRecord],
    execution: ExecutionConfig,
    *,
    ci_method: CIMethod = "student_t",
    seed: int = 0,
    resamples: int = 10_000,
) -> dict[str, dict[str, Any]]:
    """config hash -> the summary's adaptive columns (converged, target, half-width, stop)."""
    if not execution.adaptive:
        return {}
    columns = {}
    for d in decide(records, execution, ci_method=ci_method, seed=seed, resamples=resamples):
        if d.verdict == "more":
            stop = f"stopped before converging ({d.text}); --resume continues"
        else:
            stop = d.text
        columns[d.config_hash] = {
            "converged": d.converged,
            "target_metric": execution.target_metric,
            "target_ci_pct": execution.target_ci_pct,
            "ci_half_width_pct": d.half_width_pct,
            "adaptive_stop": stop,
        }
    return columns


__all__ = [
    "METRIC_LABELS",
    "Decision",
    "decide",
    "design_interval",
    "next_round",
    "plan_note",
    "planned_cycles",
    "round_event",
    "summary_columns",
]
