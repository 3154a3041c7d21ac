"""The run order of a campaign and the pauses between its experiments.

Order (``execution.structure``): interleaved ``A B C A B C``; shuffled, a seeded permutation per
cycle (``random.Random(f"{seed}:{cycle}")``; consecutive cycles never repeat an order when there
are at least two experiments; reruns reproduce it); grouped ``A A B B C C``.

Gaps: ``cycle_gap_seconds`` where a new cycle starts (grouped: between repetitions of one
experiment), ``config_gap_seconds`` between any other two consecutive experiments.
"""

from __future__ import annotations

import random
from typing import Literal

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.orchestration.manifest import ManifestEntry

Structure = Literal["interleaved", "shuffled", "grouped"]


def plan_order(n: int, cycles: int, structure: str, seed: int = 42) -> list[tuple[int, int]]:
    """The run order as (experiment index, cycle) pairs, cycles numbered from 1."""
    if n <= 0 or cycles <= 0:
        return []
    indices = list(range(n))
    if structure == "grouped":
        return [(i, c) for i in indices for c in range(1, cycles + 1)]
    if structure == "interleaved":
        return [(i, c) for c in range(1, cycles + 1) for i in indices]
    if structure != "shuffled":
        raise ValueError(f"unknown structure {structure!r}")
    order: list[tuple[int, int]] = []
    previous: list[int] | None = None
    for cycle in range(1, cycles + 1):
        rng = random.Random(f"{seed}:{cycle}")
        current = indices[:]
        rng.shuffle(current)
        while n > 1 and current == previous:  # each cycle differs from the one before
            rng.shuffle(current)
        order.extend((i, cycle) for i in current)
        previous = current
    return order


def gap_between(
    previous: ManifestEntry, entry: ManifestEntry, execution: ExecutionConfig
) -> tuple[float, str]:
    """Seconds to pause between two consecutive experiments, and which gap it is."""
    if execution.structure == "grouped":
        new_cycle = previous.config_hash == entry.config_hash
    else:
        new_cycle = previous.cycle != entry.cycle
    if new_cycle:
        return execution.cycle_gap_seconds, "cycle gap"
    return execution.config_gap_seconds, "config gap"
