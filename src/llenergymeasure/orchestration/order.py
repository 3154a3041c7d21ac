"""The run order of a campaign and the pauses between its experiments.

Order (``execution.structure``): interleaved ``A B C A B C``; shuffled, a seeded permutation per
cycle (``random.Random(f"{seed}:{cycle}")``; consecutive cycles never repeat an order when there
are at least two experiments; reruns reproduce it); grouped ``A A B B C C``; balanced, a
Williams design (see :func:`williams_design`): across the design's cycles every config runs in
every position equally often and directly follows every other config equally often, so
carry-over from the experiment before (a warm GPU, a resident model) cancels in the means.

Gaps: ``cycle_gap_seconds`` where a new cycle starts (grouped: between repetitions of one
experiment), ``config_gap_seconds`` between any other two consecutive experiments.
"""

from __future__ import annotations

import random

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.orchestration.manifest import ManifestEntry


def williams_design(n: int) -> list[list[int]]:
    """The rows (one per cycle) of a Williams design for ``n`` configs labelled 0..n-1.

    First row 0, 1, n-1, 2, n-2, ...; row r adds r (mod n). For even n these n rows are
    balanced for position and first-order carry-over (each ordered pair adjacent once); odd n
    needs the n mirrored rows too (2n rows, each ordered pair adjacent twice).
    """
    if n <= 0:
        return []
    first, low, high = [0], 1, n - 1
    while low <= high:
        first.append(low)
        if low != high:
            first.append(high)
        low, high = low + 1, high - 1
    rows = [[(label + r) % n for label in first] for r in range(n)]
    if n % 2 == 1 and n > 1:
        rows += [row[::-1] for row in rows]
    return rows


def design_length(n: int) -> int:
    """Cycles in one full Williams design: n for even n, 2n for odd n (1 for a single config)."""
    return len(williams_design(n)) if n > 0 else 0


def balance_note(n: int, cycles: int) -> str | None:
    """What balance a ``balanced`` order of ``n`` configs keeps over ``cycles`` cycles."""
    if n < 2 or cycles <= 0:
        return None
    length = design_length(n)
    if cycles % length == 0:
        return (
            f"balanced order: {cycles} cycles = {cycles // length} x the {length}-cycle "
            f"Williams design for {n} configs: every config runs {cycles // n}x in each position "
            f"and directly follows each other config {cycles // n}x"
        )
    positions = cycles // n * n
    carry = cycles // length * length
    kept = [
        f"positions are balanced over the first {positions} cycles"
        if positions
        else "positions are not balanced",
        f"predecessors over the first {carry}" if carry else "predecessors are not balanced",
    ]
    return (
        f"balanced order: {cycles} cycles is not a multiple of the {length}-cycle Williams design "
        f"for {n} configs: {', '.join(kept)}; every cycle still runs each config once "
        f"(use a multiple of {length} cycles for full counterbalancing)"
    )


def plan_order(n: int, cycles: int, structure: str, seed: int = 42) -> list[tuple[int, int]]:
    """The run order as (experiment index, cycle) pairs, cycles numbered from 1."""
    if n <= 0 or cycles <= 0:
        return []
    indices = list(range(n))
    if structure == "grouped":
        return [(i, c) for i in indices for c in range(1, cycles + 1)]
    if structure == "interleaved":
        return [(i, c) for c in range(1, cycles + 1) for i in indices]
    if structure == "balanced":
        return _balanced(n, cycles, seed)
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


def _balanced(n: int, cycles: int, seed: int) -> list[tuple[int, int]]:
    """Cycle c runs row (c - 1) mod L of the Williams design; configs take the design's labels
    in a seeded random assignment (``random.Random(f"{seed}:balanced")``), which keeps every
    balance property while not always favouring the file's first config."""
    labels = list(range(n))
    random.Random(f"{seed}:balanced").shuffle(labels)
    rows = williams_design(n)
    return [
        (labels[label], cycle)
        for cycle in range(1, cycles + 1)
        for label in rows[(cycle - 1) % len(rows)]
    ]


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
