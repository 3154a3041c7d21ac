"""Across cycles: per config, mean / std / CV and a 95% CI of each key metric.

Input is a flat list of :class:`RunRecord` (one per experiment-cycle, with its loaded result
when it completed); whoever owns the bookkeeping (the campaign manifest, or a folder of
results) builds them. Every number says how it was obtained:

- the interval's method (``ci_method``: ``student_t`` by default, ``bootstrap_bca`` when asked
  for and there are >= BOOTSTRAP_MIN_CYCLES = 30 values) and n (``<metric>_n``); one usable cycle has no interval;
- in an adaptive campaign (``execution`` given, ``target_ci_pct`` set) the target metric's
  interval is the two-stage design's (``two_stage``, :func:`design_interval` over the usable
  cycles in cycle order, the first ``min_cycles`` being the first stage), which keeps 95%
  coverage after the data-chosen stop; with too few cycles after the first stage, or a lower
  bound <= 0, the usual interval stays and a note says why;
- cycles whose result carries an ``untrusted`` quality flag (other than
  ``adjusted_energy_nonpositive``: kept on the raw basis) are left out of every aggregate and
  counted (``excluded_cycles``, ``excluded_reasons``), never silently averaged in;
- one energy basis per table: J/token is computed from baseline-adjusted energy when every
  aggregated cycle of the table has it, otherwise from raw energy for all (``energy_basis``);
  raw and adjusted energy are both aggregated beside it, with mean power;
- a config whose cycles mix energy methods, or whose energy is an estimate, says so in its
  row, so an estimate is never read as a measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.results.schema import ExperimentResult
from llenergymeasure.results.statistics import (
    SECOND_STAGE_MIN,
    TWO_STAGE,
    CIMethod,
    CycleStats,
    cycle_stats,
    design_interval,
)

MIN_CYCLES = 3
"""Fewer usable cycles than this and the row is flagged ``low_cycles`` (its CI is very wide)."""

BOOTSTRAP_RESAMPLES = 10_000

HIGH_VARIABILITY_CV = 0.10
"""A config whose cycles of a headline metric spread more than this (CV) is flagged
``high_variability``. Repeated cycles of one config on a quiet machine spread by a few percent;
10% means something else varied between them (contention, clocks, thermals), and at n = 3 it
already makes the t interval +/- 25% of the mean (4.30 * 0.10 / sqrt(3)); on skewed cycles of
that spread the interval's coverage also falls below nominal (docs/statistics.md)."""

HEADLINE_METRICS = ("energy_per_token_j", "tokens_per_second", "latency_p50_s")
"""The metrics whose spread decides ``high_variability`` (those comparisons rank by)."""


def _high_spread(stats: dict[str, CycleStats | None]) -> list[tuple[str, float]]:
    """(metric, CV) of the headline metrics spread above HIGH_VARIABILITY_CV."""
    spread = []
    for metric in HEADLINE_METRICS:
        cv = None if (found := stats.get(metric)) is None else found.cv
        if cv is not None and cv > HIGH_VARIABILITY_CV:
            spread.append((metric, cv))
    return spread


def _pct(attr: str, q: str) -> Callable[[ExperimentResult], float | None]:
    def get(result: ExperimentResult) -> float | None:
        dist = getattr(result.metrics, attr)
        return None if dist is None else float(getattr(dist, q))

    return get


EnergyBasis = str
"""'adjusted' (idle baseline subtracted) or 'raw'."""


ADJUSTED_UNRESOLVED = "adjusted_energy_nonpositive"
"""The flag of a cycle whose adjusted energy did not resolve (under 2% of raw, or <= 0). Keyed on
its code whatever its severity (results written before it became a warning say untrusted): the
cycle is kept on the raw basis, never dropped, since dropping the low ones biases a near-idle
config's J/token upward; its adjusted figure is treated as missing."""


def adjusted_unresolved(result: ExperimentResult) -> bool:
    return any(f.code == ADJUSTED_UNRESOLVED for f in result.flags)


def withheld_by(result: ExperimentResult) -> list[str]:
    """Codes of the untrusted flags that keep this result out of the aggregates."""
    return sorted({f.code for f in result.untrusted if f.code != ADJUSTED_UNRESOLVED})


def adjusted_energy(result: ExperimentResult) -> float | None:
    """The baseline-adjusted energy, None when missing or flagged as not resolved."""
    return None if adjusted_unresolved(result) else result.metrics.energy_adjusted_j


def energy_per_token(result: ExperimentResult, basis: EnergyBasis) -> float | None:
    """J per output token on the given basis (None when that energy or the tokens are missing)."""
    m = result.metrics
    energy = adjusted_energy(result) if basis == "adjusted" else m.energy_j
    return energy / m.output_tokens if energy is not None and m.output_tokens else None


def table_basis(results: Iterable[ExperimentResult]) -> EnergyBasis | None:
    """One energy basis for a whole table: adjusted when every result with energy has it."""
    with_energy = [r for r in results if r.metrics.energy_j is not None]
    if not with_energy:
        return None
    return "adjusted" if all(adjusted_energy(r) is not None for r in with_energy) else "raw"


CYCLE_METRICS: dict[str, Callable[[ExperimentResult], float | None]] = {
    "energy_per_token_j": lambda r: r.metrics.energy_per_token_j,
    "energy_j": lambda r: r.metrics.energy_j,
    "energy_adjusted_j": adjusted_energy,
    "mean_power_w": lambda r: r.metrics.mean_power_w,
    "tokens_per_second": lambda r: r.metrics.tokens_per_second,
    "latency_p50_s": _pct("latency_s", "p50"),
    "latency_p90_s": _pct("latency_s", "p90"),
    "latency_p99_s": _pct("latency_s", "p99"),
    "ttft_p50_s": _pct("ttft_s", "p50"),
    "itl_p50_s": _pct("itl_s", "p50"),
}
"""Metric column prefix -> how to read it from one result (None when the result lacks it).
Every one is strictly positive: an interval that would reach zero is taken on the log scale.

In summaries ``energy_per_token_j`` is recomputed on the table's one basis (``energy_per_token``);
the reader here is the result's own figure, on its own basis (the per-experiment table)."""

STAT_FIELDS = ("n", "mean", "std", "cv", "ci95_low", "ci95_high")


@dataclass(frozen=True)
class RunRecord:
    """One experiment-cycle as the bookkeeping knows it."""

    exp_id: str
    name: str
    config_hash: str
    backend: str
    cycle: int
    status: str
    model: str | None = None
    precision: str | None = None
    error: str | None = None
    result: ExperimentResult | None = None
    result_path: str | None = None


@dataclass
class ConfigSummary:
    """One config across its cycles."""

    name: str
    config_hash: str
    backend: str
    model: str | None
    precision: str | None
    cycles_planned: int
    cycles_completed: int
    cycles_failed: int
    stats: dict[str, CycleStats | None]
    energy_sources: list[str]
    energy_methods: list[str]
    energy_is_estimate: bool | None
    energy_bases: list[str]
    warnings: list[str] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)
    """Untrusted cycles left out: flag code -> how many cycles carried it."""
    cycles_excluded: int = 0
    ci_methods: list[str] = field(default_factory=list)
    adjusted_unresolved_raw_j: list[float] = field(default_factory=list)
    """Raw energy of the used cycles whose adjusted energy did not resolve (flag
    adjusted_energy_nonpositive): kept on the raw basis, their adjusted energy withheld."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Columns added by whoever ran the cycles (adaptive cycles: converged, target, ...)."""

    @property
    def cycles_used(self) -> int:
        """Completed cycles that went into the aggregates (completed minus excluded)."""
        return self.cycles_completed - self.cycles_excluded

    @property
    def low_cycles(self) -> bool:
        return self.cycles_used < MIN_CYCLES

    @property
    def variable_metrics(self) -> list[str]:
        """Headline metrics whose CV across the used cycles is above HIGH_VARIABILITY_CV."""
        return [metric for metric, _ in _high_spread(self.stats)]

    @property
    def high_variability(self) -> bool:
        return bool(self.variable_metrics)

    def row(self) -> dict[str, Any]:
        """A flat, table-ready row (one column per metric statistic)."""
        row: dict[str, Any] = {
            "name": self.name,
            "config_hash": self.config_hash,
            "backend": self.backend,
            "model": self.model,
            "precision": self.precision,
            "cycles_completed": self.cycles_completed,
            "cycles_planned": self.cycles_planned,
            "cycles_failed": self.cycles_failed,
            "cycles_used": self.cycles_used,
            "excluded_cycles": self.cycles_excluded,
            "excluded_reasons": "; ".join(f"{c}: {n}" for c, n in sorted(self.excluded.items()))
            or None,
            "ci_method": "/".join(self.ci_methods) or "none",
            "low_cycles": self.low_cycles,
            "high_variability": self.high_variability,
            "adjusted_energy_unresolved": len(self.adjusted_unresolved_raw_j),
            "energy_source": "/".join(self.energy_sources) or None,
            "energy_method": "/".join(self.energy_methods) or None,
            "energy_is_estimate": self.energy_is_estimate,
            "energy_basis": "/".join(self.energy_bases) or None,
            "warnings": "; ".join(self.warnings) or None,
        }
        row.update(self.extra)
        for metric in CYCLE_METRICS:
            stats = self.stats.get(metric)
            values = (
                (stats.n, stats.mean, stats.std, stats.cv, stats.ci_low, stats.ci_high)
                if stats is not None
                else (0, None, None, None, None, None)
            )
            for stat, value in zip(STAT_FIELDS, values, strict=True):
                row[f"{metric}_{stat}"] = value
        return row


def low_cycles_note(summaries: Sequence[ConfigSummary]) -> str | None:
    """The one sentence about configs with too few usable cycles (None: there are none)."""
    low = sum(s.low_cycles for s in summaries)
    if not low:
        return None
    return (
        f"{low} of {len(summaries)} config(s) have fewer than {MIN_CYCLES} usable cycles: "
        "their CIs are wide and their std and CV rough (column low_cycles)"
    )


def summary_columns() -> list[str]:
    """The column order of a summary row (stable, whatever the data)."""
    head = [
        "name",
        "config_hash",
        "backend",
        "model",
        "precision",
        "cycles_completed",
        "cycles_planned",
        "cycles_failed",
        "cycles_used",
        "excluded_cycles",
        "excluded_reasons",
        "ci_method",
        "low_cycles",
        "high_variability",
        "adjusted_energy_unresolved",
        "energy_source",
        "energy_method",
        "energy_is_estimate",
        "energy_basis",
        "warnings",
        *EXTRA_COLUMNS,
    ]
    return head + [f"{m}_{s}" for m in CYCLE_METRICS for s in STAT_FIELDS]


EXTRA_COLUMNS: tuple[str, ...] = (
    "converged",
    "target_metric",
    "target_ci_pct",
    "ci_half_width_pct",
    "adaptive_stop",
)
"""Columns from ``ConfigSummary.extra``: adaptive cycles (``orchestration/campaign/adaptive.py``) fill
them; empty cells in a campaign without ``target_ci_pct``."""


def _unique(values: Iterable[str | None]) -> list[str]:
    return sorted({v for v in values if v})


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _two_stage(stats: CycleStats, values: Sequence[float], first: int) -> CycleStats:
    """The adaptive target metric's stats with the design interval, or the usual one and why."""
    interval = design_interval(values, first)
    kept = stats.ci_method or "no interval"
    if interval is None:
        why = (
            f"adaptive cycles: the two-stage design interval needs >= "
            f"{first + SECOND_STAGE_MIN} usable cycles (the first {first} and "
            f"{SECOND_STAGE_MIN} after them) and has {len(values)}: {kept} used instead"
        )
    elif interval[0] <= 0:
        why = (
            "adaptive cycles: the two-stage design interval reached zero or below for a "
            f"positive metric: {kept} used instead (its coverage after an adaptive stop is "
            "not guaranteed)"
        )
    else:
        return replace(
            stats,
            ci_low=interval[0],
            ci_high=interval[1],
            ci_method=TWO_STAGE,
            note=(
                "adaptive cycles: the two-stage design interval (mean of all cycles +/- t * the "
                f"spread of the cycles after the first {first}; ci_method {TWO_STAGE})"
            ),
        )
    return replace(stats, note="; ".join(n for n in (stats.note, why) if n))


def _cycle_statistics(
    done: Sequence[ExperimentResult],
    basis: EnergyBasis | None,
    *,
    adjusted_withheld: bool,
    design: ExecutionConfig | None,
    ci_method: CIMethod,
    seed: int,
    resamples: int,
) -> dict[str, CycleStats | None]:
    """Each cycle metric's statistics over the usable cycles (J/token on ``basis``); the
    adaptive target metric's interval is the two-stage design's."""
    stats: dict[str, CycleStats | None] = {}
    for metric, get in CYCLE_METRICS.items():
        if metric == "energy_per_token_j":
            raw = [energy_per_token(result, basis) if basis else None for result in done]
        else:
            raw = [get(result) for result in done]
        values = [v for v in raw if v is not None]
        if metric == "energy_adjusted_j" and adjusted_withheld:
            values = []  # never the subset whose adjusted figure happened to resolve
        stats[metric] = (
            cycle_stats(values, method=ci_method, seed=seed, resamples=resamples, positive=True)
            if values
            else None
        )
        found = stats[metric]
        if design is not None and metric == design.target_metric and found is not None:
            stats[metric] = _two_stage(found, values, design.first_cycles)
    return stats


def _summary_warnings(
    completed: Sequence[ExperimentResult],
    done: Sequence[ExperimentResult],
    stats: dict[str, CycleStats | None],
    excluded: dict[str, int],
    unresolved: Sequence[float | None],
    *,
    sources: Sequence[str],
    methods: Sequence[str],
) -> list[str]:
    """What a reader of the config's row must know: cycles left out and why, too few cycles,
    withheld adjusted energy, estimates, mixed methods, flags kept, high variability."""
    warnings: list[str] = []
    skipped = len(completed) - len(done)
    if skipped:
        reasons = ", ".join(f"{c} x{n}" for c, n in sorted(excluded.items()))
        warnings.append(
            f"{skipped} of {_plural(len(completed), 'completed cycle')} left out of the "
            f"aggregates as untrusted ({reasons})"
        )
    if unresolved:
        shown = ", ".join("?" if j is None else f"{j:.4g} J" for j in unresolved)
        warnings.append(
            f"adjusted_energy_unresolved: adjusted energy did not resolve in "
            f"{len(unresolved)} of {_plural(len(done), 'used cycle')} (raw energy {shown}); "
            "they are kept on the raw basis and this config's adjusted energy is withheld"
        )
    if len(done) == 1:
        warnings.append("only 1 usable cycle: no std, CV or confidence interval")
    elif 1 < len(done) < MIN_CYCLES:
        warnings.append(
            f"only {len(done)} usable cycles (< {MIN_CYCLES}): the 95% CI is valid but very wide"
        )
    noted: dict[str, list[str]] = {}
    for metric, metric_stats in stats.items():
        if metric_stats is not None and metric_stats.note:
            noted.setdefault(metric_stats.note, []).append(metric)
    warnings.extend(f"{note} ({', '.join(metrics)})" for note, metrics in sorted(noted.items()))
    if len(methods) > 1 or len(sources) > 1:
        warnings.append(f"energy methods differ across cycles ({', '.join([*sources, *methods])})")
    if any(r.energy.is_estimate for r in done):
        warnings.append("energy is an ESTIMATE, not a measurement")
    kept_flags: dict[str, int] = {}
    for result in done:
        for code in sorted({f.code for f in result.flags if f.severity == "warning"}):
            kept_flags[code] = kept_flags.get(code, 0) + 1
    if kept_flags:
        warnings.append(
            "flagged, kept: " + ", ".join(f"{c} x{n}" for c, n in sorted(kept_flags.items()))
        )
    spread = [f"{metric} {100 * cv:.0f}%" for metric, cv in _high_spread(stats)]
    if spread:
        warnings.append(
            f"high variability across cycles (CV {', '.join(spread)} > "
            f"{100 * HIGH_VARIABILITY_CV:.0f}%): check the machine was quiet; the interval is "
            "wide and, on skewed cycles, less reliable"
        )
    return warnings


def summarize_config(
    records: Sequence[RunRecord],
    *,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    ci_method: CIMethod = "student_t",
    basis: EnergyBasis | None = None,
    execution: ExecutionConfig | None = None,
) -> ConfigSummary:
    """Statistics of one config's records (all with the same config hash).

    ``basis`` is the table's energy basis for J/token (``table_basis`` of every aggregated
    result); by default this config's own. ``execution``: the campaign's execution settings;
    when adaptive, the target metric's interval is the two-stage design interval.
    """
    first = records[0]
    design = execution if execution is not None and execution.adaptive else None
    if design is not None:  # the first stage is the first usable cycles by cycle number
        records = sorted(records, key=lambda r: r.cycle)
    completed = [r.result for r in records if r.status == "completed" and r.result is not None]
    done = [r for r in completed if not withheld_by(r)]
    excluded: dict[str, int] = {}
    for result in completed:
        for code in withheld_by(result):
            excluded[code] = excluded.get(code, 0) + 1
    unresolved = [r.metrics.energy_j for r in done if adjusted_unresolved(r)]
    if basis is None:
        basis = table_basis(done)
    stats = _cycle_statistics(
        done,
        basis,
        adjusted_withheld=bool(unresolved),
        design=design,
        ci_method=ci_method,
        seed=seed,
        resamples=resamples,
    )
    sources = _unique(r.energy.source for r in done)
    methods = _unique(r.energy.method for r in done)
    estimate = any(r.energy.is_estimate for r in done) if done else None
    skipped = len(completed) - len(done)
    warnings = _summary_warnings(
        completed, done, stats, excluded, unresolved, sources=sources, methods=methods
    )
    model = next((r.result.config["model"]["name"] for r in records if r.result), first.model)
    precision = next(
        (r.result.config["fp_precision"] for r in records if r.result), first.precision
    )
    return ConfigSummary(
        name=records[-1].name,
        config_hash=first.config_hash,
        backend=first.backend,
        model=model,
        precision=precision,
        cycles_planned=len(records),
        cycles_completed=len(completed),
        cycles_failed=sum(r.status in ("failed", "interrupted") for r in records),
        stats=stats,
        energy_sources=sources,
        energy_methods=methods,
        energy_is_estimate=estimate,
        energy_bases=[basis] if basis and stats["energy_per_token_j"] else [],
        warnings=warnings,
        excluded=excluded,
        cycles_excluded=skipped,
        ci_methods=_unique(s.ci_method for s in stats.values() if s is not None),
        adjusted_unresolved_raw_j=[j for j in unresolved if j is not None],
    )


def usable_results(records: Iterable[RunRecord]) -> list[ExperimentResult]:
    """Completed results without untrusted flags: what the aggregates are made of."""
    return [
        r.result
        for r in records
        if r.status == "completed" and r.result is not None and not withheld_by(r.result)
    ]


def aggregate(
    records: Iterable[RunRecord],
    *,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    ci_method: CIMethod = "student_t",
    execution: ExecutionConfig | None = None,
) -> list[ConfigSummary]:
    """One summary per config hash, in first-seen order; skipped records are left out.

    J/token uses one energy basis for the whole table (``table_basis`` of the usable results).
    ``execution``: the campaign's execution settings (adaptive: the target metric's interval
    is the two-stage design interval, see :func:`summarize_config`).
    """
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.status != "skipped":
            groups.setdefault(record.config_hash, []).append(record)
    basis = table_basis(usable_results(r for group in groups.values() for r in group))
    return [
        summarize_config(
            sorted(group, key=lambda r: r.cycle),
            seed=seed,
            resamples=resamples,
            ci_method=ci_method,
            basis=basis,
            execution=execution,
        )
        for group in groups.values()
    ]


__all__ = [
    "ADJUSTED_UNRESOLVED",
    "BOOTSTRAP_RESAMPLES",
    "CYCLE_METRICS",
    "EXTRA_COLUMNS",
    "HEADLINE_METRICS",
    "HIGH_VARIABILITY_CV",
    "MIN_CYCLES",
    "ConfigSummary",
    "RunRecord",
    "adjusted_energy",
    "adjusted_unresolved",
    "aggregate",
    "energy_per_token",
    "low_cycles_note",
    "summarize_config",
    "summary_columns",
    "table_basis",
    "usable_results",
    "withheld_by",
]
