"""Adaptive cycles: run a config again only while its interval is still wider than the target.

With ``execution.target_ci_pct`` set, every config first runs ``min_cycles``. Whenever every
entry of the manifest has run, :func:`next_round` looks at each config's usable cycles (completed,
without untrusted flags) and the 95% CI of ``target_metric`` (the campaign's ``ci_method``; J/token
on the table's one energy basis, as in ``summary.csv``):

- half-width <= target_ci_pct % of the mean: converged, no more cycles;
- wider, and fewer than ``max_cycles`` cycles run: one more cycle, its manifest entry saying why;
- wider at ``max_cycles``: stops, not converged.

A decision is a function of the completed results only, taken when a round has fully run, so a
campaign killed at any moment and resumed makes exactly the decisions it would have made: entries
already scheduled are in the manifest, completed ones are kept, nothing runs twice.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llenergymeasure.config.campaign_config import CIMethod, ExecutionConfig
from llenergymeasure.orchestration.manifest import ManifestEntry
from llenergymeasure.orchestration.planned import PlannedExperiment, new_entry
from llenergymeasure.results.aggregation import (
    CYCLE_METRICS,
    RunRecord,
    energy_per_token,
    table_basis,
    usable_results,
)
from llenergymeasure.results.statistics import cycle_stats

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
        f"time only for configs whose 95% CI of {_label(execution)} is wider than "
        f"+/- {execution.target_ci_pct:g}% of the mean, up to {execution.cycle_limit} cycles"
    )


def decide(
    records: Sequence[RunRecord],
    execution: ExecutionConfig,
    *,
    ci_method: CIMethod = "student_t",
    seed: int = 0,
    resamples: int = 10_000,
) -> list[Decision]:
    """Each config's standing, in first-seen order (skipped records are left out)."""
    target = execution.target_ci_pct
    if target is None:
        return []
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.status != "skipped":
            groups.setdefault(record.config_hash, []).append(record)
    basis = table_basis(usable_results(records))
    metric, label, limit = execution.target_metric, _label(execution), execution.cycle_limit
    decisions = []
    for digest, group in groups.items():
        done = usable_results(group)
        if metric == "energy_per_token_j":
            raw = [energy_per_token(r, basis) if basis else None for r in done]
        else:
            raw = [CYCLE_METRICS[metric](r) for r in done]
        values = [v for v in raw if v is not None]
        run, name = len(group), group[-1].name
        half = (
            cycle_stats(values, method=ci_method, seed=seed, resamples=resamples).half_width_pct
            if len(values) >= 2
            else None
        )
        verdict: Verdict
        if done and not values:
            verdict = "no_metric"
            text = f"{label} was not measured in its cycles: adaptive cycles cannot judge it"
        elif half is not None and half <= target:
            verdict = "converged"
            text = (
                f"converged: 95% CI of {label} is +/- {half:.2f}% after {len(values)} usable "
                f"cycles (target +/- {target:g}%)"
            )
        else:
            where = (
                f"the 95% CI of {label} is +/- {half:.2f}% of the mean after {len(values)} "
                f"usable cycles, wider than the target +/- {target:g}%"
                if half is not None
                else f"{len(values)} usable cycle(s) of {label}: no interval yet"
            )
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
    "next_round",
    "plan_note",
    "round_event",
    "summary_columns",
]
