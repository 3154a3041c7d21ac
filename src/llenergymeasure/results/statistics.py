"""Small, dependency-free statistics: percentiles per run, and across cycles mean / std / CV and
a seeded bootstrap confidence interval."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llenergymeasure.results.schema import Percentiles


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values, q in [0, 100]."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def summarize(values: Sequence[float]) -> Percentiles | None:
    """mean / p50 / p90 / p99 of per-request values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return Percentiles(
        mean=statistics.fmean(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        count=len(ordered),
    )


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Sample std / mean; None for fewer than two values or a zero mean."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return None if mean == 0 else statistics.stdev(values) / abs(mean)


@dataclass(frozen=True)
class CycleStats:
    """One metric of one config across cycles."""

    n: int
    mean: float
    std: float | None
    cv: float | None
    ci_low: float | None
    ci_high: float | None


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean; None for fewer than 2 values.

    With few values (n**n <= resamples: up to 5 cycles at the default) every one of the n**n
    equally likely resamples is enumerated, so the CI is exact and needs no seed; otherwise
    ``resamples`` are drawn with a seeded generator, reproducibly.
    """
    n = len(values)
    if n < 2:
        return None
    if n**n <= resamples:
        samples: Iterable[tuple[float, ...]] = itertools.product(values, repeat=n)
    else:
        draws = random.Random(seed).choices(values, k=n * resamples)
        samples = zip(*[iter(draws)] * n, strict=True)  # consecutive groups of n draws
    means = sorted(total / n for total in map(math.fsum, samples))
    # inverted-CDF quantiles: exact for the enumerated distribution's equally likely atoms
    tail = (1 - confidence) / 2 * len(means)
    return means[max(math.ceil(tail) - 1, 0)], means[
        min(math.floor(len(means) - tail), len(means) - 1)
    ]


def cycle_stats(values: Sequence[float], *, seed: int = 0, resamples: int = 10_000) -> CycleStats:
    """mean, std, CV and 95% bootstrap CI of a metric across cycles."""
    if not values:
        raise ValueError("no values")
    ci = bootstrap_ci(values, seed=seed, resamples=resamples)
    return CycleStats(
        n=len(values),
        mean=statistics.fmean(values),
        std=statistics.stdev(values) if len(values) > 1 else None,
        cv=coefficient_of_variation(values),
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
    )
