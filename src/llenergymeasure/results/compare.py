"""Two configurations compared: the difference of their means with a Welch-t 95% interval.

For each of J/token, tokens/s and median latency, ``B - A`` on the per-cycle values (the cycles
each summary aggregated: untrusted ones already left out), Welch's interval on that difference
(unequal variances, Welch-Satterthwaite degrees of freedom), and the same as a percentage of A's
mean, in one plain sentence: "B uses 18% ± 4% less energy per token than A, 3 cycles each".

The percentage divides the difference and its interval by A's mean, taken as known; A's own
uncertainty is inside the difference's interval, not in the denominator.

Against the best config (:func:`compare_to_best`) the best is picked by its observed mean, and
every other config is tested against it: a family of comparisons. Each metric's p-values across
that family are Holm-adjusted (``correction: "holm"``, ``p_adjusted``), and "a clear difference"
means an adjusted p below 0.05; the intervals shown stay the unadjusted Welch 95% ones.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llenergymeasure.exceptions import LLEMError
from llenergymeasure.results.aggregation import ConfigSummary
from llenergymeasure.results.statistics import WelchDifference, holm, welch_difference


@dataclass(frozen=True)
class CompareMetric:
    """A metric worth comparing, which direction is better, and how to say it."""

    column: str
    label: str
    lower_is_better: bool
    less: str
    more: str
    """Sentence verbs for B below / above A: "uses {pct} less energy per token than"."""


COMPARE_METRICS: tuple[CompareMetric, ...] = (
    CompareMetric(
        "energy_per_token_j",
        "energy per token (J/token)",
        True,
        "uses {pct} less energy per token than",
        "uses {pct} more energy per token than",
    ),
    CompareMetric(
        "tokens_per_second",
        "throughput (tokens/s)",
        False,
        "has {pct} lower throughput (tokens/s) than",
        "has {pct} higher throughput (tokens/s) than",
    ),
    CompareMetric(
        "latency_p50_s",
        "median latency (s)",
        True,
        "has {pct} lower median latency than",
        "has {pct} higher median latency than",
    ),
)
METRICS_BY_COLUMN = {m.column: m for m in COMPARE_METRICS}


def _pct(value: float) -> str:
    size = abs(value)
    return f"{size:.0f}%" if size >= 10 else f"{size:.1f}%" if size >= 1 else f"{size:.2f}%"


def _cycles(n_a: int, n_b: int) -> str:
    if n_a == n_b:
        return f"{n_a} cycle{'s' if n_a != 1 else ''} each"
    return f"{n_a} and {n_b} cycles"


@dataclass(frozen=True)
class MetricComparison:
    """B against A on one metric."""

    metric: CompareMetric
    a_mean: float | None
    b_mean: float | None
    n_a: int
    n_b: int
    welch: WelchDifference | None
    sentence: str
    a_name: str = "A"
    b_name: str = "B"
    p_adjusted: float | None = None
    correction: str | None = None
    """``holm`` when this comparison is one of a family (every config against the best)."""

    @property
    def p_value(self) -> float | None:
        return self.welch.p_value if self.welch else None

    @property
    def significant(self) -> bool | None:
        """A clear difference at 5%: the Holm-adjusted p below 0.05 in a family, else the
        interval excluding zero (None without an interval)."""
        if self.welch is None:
            return None
        if self.p_adjusted is not None:
            return self.p_adjusted < 0.05
        return self.welch.significant

    @property
    def pct(self) -> float | None:
        """(B - A) / A in percent."""
        if self.welch is None or not self.a_mean:
            return None
        return 100 * self.welch.difference / self.a_mean

    @property
    def pct_half_width(self) -> float | None:
        if self.welch is None or not self.a_mean:
            return None
        return 100 * self.welch.half_width / abs(self.a_mean)

    @property
    def better(self) -> str | None:
        """'A', 'B' or None (no clear difference at 95%)."""
        if self.welch is None or not self.significant:
            return None
        b_lower = self.welch.difference < 0
        return "B" if b_lower == self.metric.lower_is_better else "A"

    def to_json(self) -> dict[str, Any]:
        w = self.welch
        return {
            "metric": self.metric.column,
            "a_mean": self.a_mean,
            "b_mean": self.b_mean,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "difference": w.difference if w else None,
            "ci95_low": w.ci_low if w else None,
            "ci95_high": w.ci_high if w else None,
            "df": w.df if w else None,
            "ci_method": "welch_t" if w else None,
            "pct": self.pct,
            "pct_half_width": self.pct_half_width,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "correction": self.correction,
            "significant": self.significant,
            "better": {"A": self.a_name, "B": self.b_name}.get(self.better or ""),
            "sentence": self.sentence,
        }


def compare_metric(
    a: ConfigSummary, b: ConfigSummary, metric: CompareMetric, *, a_name: str, b_name: str
) -> MetricComparison:
    sa, sb = a.stats.get(metric.column), b.stats.get(metric.column)
    na, nb = (sa.n if sa else 0), (sb.n if sb else 0)
    a_mean, b_mean = (sa.mean if sa else None), (sb.mean if sb else None)
    if sa is None or sb is None or na < 2 or nb < 2:
        short = [f"{name} has {n}" for name, n in ((a_name, na), (b_name, nb)) if n < 2]
        sentence = (
            f"{metric.label}: no interval on the difference ({'; '.join(short)} usable "
            "cycle(s); Welch's interval needs at least 2 on each side)"
        )
        return MetricComparison(metric, a_mean, b_mean, na, nb, None, sentence, a_name, b_name)
    welch = welch_difference(sa.values, sb.values)
    cycles = _cycles(na, nb)
    if welch.difference == 0 and welch.se == 0:
        sentence = f"{b_name} and {a_name} have the same {metric.label} in every cycle, {cycles}"
    elif not sa.mean:
        sentence = (
            f"{b_name} - {a_name} = {welch.difference:.4g} ± {welch.half_width:.4g} "
            f"{metric.label} ({a_name}'s mean is 0, so no percentage), {cycles}"
        )
    else:
        pct = 100 * welch.difference / sa.mean
        half = 100 * welch.half_width / abs(sa.mean)
        verb = metric.less if pct < 0 else metric.more
        amount = f"{_pct(pct)} ± {_pct(half)}"
        sentence = f"{b_name} {verb.format(pct=amount)} {a_name}, {cycles}"
        if not welch.significant:
            sentence += " (no clear difference: the 95% interval includes 0)"
    if metric.column.startswith("energy") and (a.energy_is_estimate or b.energy_is_estimate):
        sentence += "; energy is an ESTIMATE, not a measurement"
    return MetricComparison(metric, a_mean, b_mean, na, nb, welch, sentence, a_name, b_name)


@dataclass(frozen=True)
class Comparison:
    """Config B against config A on every compared metric."""

    a: ConfigSummary
    b: ConfigSummary
    a_name: str
    b_name: str
    metrics: list[MetricComparison]

    def to_json(self) -> dict[str, Any]:
        return {
            "a": {"name": self.a_name, "config_hash": self.a.config_hash},
            "b": {"name": self.b_name, "config_hash": self.b.config_hash},
            "confidence": 0.95,
            "ci_method": "welch_t",
            "metrics": [m.to_json() for m in self.metrics],
        }


def compare_configs(
    a: ConfigSummary,
    b: ConfigSummary,
    *,
    a_name: str | None = None,
    b_name: str | None = None,
    metrics: Sequence[CompareMetric] = COMPARE_METRICS,
) -> Comparison:
    """B against A: the difference of means with a Welch-t 95% interval, per metric."""
    a_label, b_label = a_name or a.name, b_name or b.name
    return Comparison(
        a,
        b,
        a_label,
        b_label,
        [compare_metric(a, b, m, a_name=a_label, b_name=b_label) for m in metrics],
    )


def best_config(summaries: Sequence[ConfigSummary], column: str) -> ConfigSummary:
    """The config with the best mean of ``column`` (lowest J/token or latency, highest tokens/s)."""
    metric = METRICS_BY_COLUMN[column]
    scored = [(s.stats[column].mean, s) for s in summaries if s.stats.get(column) is not None]  # type: ignore[union-attr]
    if not scored:
        raise LLEMError(
            f"no config has a {metric.label} to rank by",
            fix="rank by another metric with --by, or check that the cycles completed",
        )
    pick = min if metric.lower_is_better else max
    return pick(scored, key=lambda item: item[0])[1]


def compare_to_best(
    summaries: Sequence[ConfigSummary], *, by: str = "energy_per_token_j"
) -> tuple[ConfigSummary, list[Comparison]]:
    """Every other config (B) against the best one by ``by`` (A), each metric's p-values
    Holm-adjusted over the family of these comparisons."""
    best = best_config(summaries, by)
    comparisons = [compare_configs(best, s) for s in summaries if s is not best]
    for index in range(len(COMPARE_METRICS)):
        tested = [c for c in comparisons if c.metrics[index].welch is not None]
        adjusted = holm([c.metrics[index].p_value or 0.0 for c in tested])
        for comparison, p_adjusted in zip(tested, adjusted, strict=True):
            comparison.metrics[index] = _holm_adjusted(
                comparison.metrics[index], p_adjusted, len(tested)
            )
    return best, comparisons


@dataclass(frozen=True)
class RankedConfig:
    """One row of the ranking against the best: the config's mean and interval of the ranking
    metric, and its comparison with the best (None for the best itself)."""

    rank: int
    summary: ConfigSummary
    vs_best: MetricComparison | None

    @property
    def same_as_best(self) -> bool | None:
        """No clear difference from the best after Holm's correction (None: the best itself,
        or no interval to tell)."""
        if self.vs_best is None or self.vs_best.welch is None:
            return None
        return not self.vs_best.significant

    def to_json(self, column: str) -> dict[str, Any]:
        stats = self.summary.stats.get(column)
        m = self.vs_best
        return {
            "rank": self.rank,
            "name": self.summary.name,
            "config_hash": self.summary.config_hash,
            "n": stats.n if stats else 0,
            "mean": stats.mean if stats else None,
            "ci95_low": stats.ci_low if stats else None,
            "ci95_high": stats.ci_high if stats else None,
            "ci_method": stats.ci_method if stats else None,
            "pct_vs_best": m.pct if m else None,
            "pct_half_width": m.pct_half_width if m else None,
            "p_adjusted": m.p_adjusted if m else None,
            "correction": m.correction if m else None,
            "same_as_best": self.same_as_best,
        }


def rank_against_best(
    best: ConfigSummary, comparisons: Sequence[Comparison], column: str
) -> list[RankedConfig]:
    """The best first, then every other config by its mean of ``column`` (best to worst);
    configs without that metric last."""
    index = [m.column for m in COMPARE_METRICS].index(column)
    metric = METRICS_BY_COLUMN[column]
    others = sorted(
        comparisons,
        key=lambda c: (
            c.metrics[index].b_mean is None,
            (c.metrics[index].b_mean or 0.0) * (1 if metric.lower_is_better else -1),
        ),
    )
    rows = [RankedConfig(1, best, None)]
    rows += [RankedConfig(i, c.b, c.metrics[index]) for i, c in enumerate(others, 2)]
    return rows


def _holm_adjusted(m: MetricComparison, p_adjusted: float, family: int) -> MetricComparison:
    """The comparison with its Holm-adjusted p, and a sentence that says what it changes."""
    sentence = m.sentence
    if m.welch is not None and m.welch.significant and p_adjusted >= 0.05:
        sentence += (
            f" (no clear difference after Holm's correction over {family} comparisons with the "
            f"best: adjusted p = {p_adjusted:.2g}; the unadjusted 95% interval excludes 0)"
        )
    return dataclasses.replace(m, sentence=sentence, p_adjusted=p_adjusted, correction="holm")


def find_config(summaries: Sequence[ConfigSummary], key: str, where: str) -> ConfigSummary:
    """A config by exact name, or by a unique prefix of its config hash."""
    for summary in summaries:
        if summary.name == key:
            return summary
    by_hash = [s for s in summaries if len(key) >= 6 and s.config_hash.startswith(key)]
    if len(by_hash) == 1:
        return by_hash[0]
    names = [s.name for s in summaries]
    near = difflib.get_close_matches(key, names, n=3)
    hint = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
    raise LLEMError(
        f"no config named {key!r} in {where}"
        + (" (the hash prefix matches several)" if len(by_hash) > 1 else ""),
        fix=f"{hint}give a config name as in summary.csv (`llem results compare {where}` "
        "lists them against the best one) or 6+ characters of its config_hash",
    )


def pair_by_config(
    left: Sequence[ConfigSummary], right: Sequence[ConfigSummary]
) -> tuple[list[tuple[ConfigSummary, ConfigSummary]], list[str]]:
    """Two campaigns' configs paired by config hash (the same config on two machines).

    When no hash matches and each side has exactly one config, those two are paired. The
    second value names the configs left without a partner.
    """
    right_by_hash = {s.config_hash: s for s in right}
    pairs = [(s, right_by_hash[s.config_hash]) for s in left if s.config_hash in right_by_hash]
    if not pairs and len(left) == 1 and len(right) == 1:
        return [(left[0], right[0])], []
    paired = {a.config_hash for a, _ in pairs}
    unpaired = [s.name for s in [*left, *right] if s.config_hash not in paired]
    return pairs, unpaired


__all__ = [
    "COMPARE_METRICS",
    "CompareMetric",
    "Comparison",
    "MetricComparison",
    "RankedConfig",
    "best_config",
    "compare_configs",
    "compare_metric",
    "compare_to_best",
    "find_config",
    "pair_by_config",
    "rank_against_best",
]
