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
from array import array
from collections.abc import Iterator

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.orchestration.campaign.manifest import ManifestEntry


def williams_row(n: int, row: int) -> Iterator[int]:
    """Row ``row`` (one cycle) of a Williams design for ``n`` configs labelled 0..n-1, worked
    out label by label (a design for a million configs would not fit in memory as lists).

    First row 0, 1, n-1, 2, n-2, ...; row r adds r (mod n). For even n these n rows are
    balanced for position and first-order carry-over (each ordered pair adjacent once); odd n
    needs the n mirrored rows too (2n rows, each ordered pair adjacent twice).
    """
    shift = row % n
    positions = range(n) if row < n else range(n - 1, -1, -1)
    for p in positions:
        first = 0 if p == 0 else (p + 1) // 2 if p % 2 else n - p // 2
        yield (first + shift) % n


def williams_design(n: int) -> list[list[int]]:
    """Every row of the Williams design for ``n`` configs (see :func:`williams_row`)."""
    return [list(williams_row(n, row)) for row in range(design_length(n))]


def design_length(n: int) -> int:
    """Cycles in one full Williams design: n for even n, 2n for odd n (1 for a single config)."""
    if n <= 1:
        return max(n, 0)
    return n if n % 2 == 0 else 2 * n


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
    return list(iter_order(n, cycles, structure, seed))


def iter_order(n: int, cycles: int, structure: str, seed: int = 42) -> Iterator[tuple[int, int]]:
    """:func:`plan_order` one pair at a time, holding at most two cycles' permutations (as
    compact arrays) in memory."""
    if n <= 0 or cycles <= 0:
        return
    if structure == "grouped":
        yield from ((i, c) for i in range(n) for c in range(1, cycles + 1))
    elif structure == "interleaved":
        yield from ((i, c) for c in range(1, cycles + 1) for i in range(n))
    elif structure == "balanced":
        yield from _balanced(n, cycles, seed)
    elif structure == "shuffled":
        previous: array[int] | None = None
        for cycle in range(1, cycles + 1):
            rng = random.Random(f"{seed}:{cycle}")
            current = array("I", range(n))
            rng.shuffle(current)
            while n > 1 and current == previous:  # each cycle differs from the one before
                rng.shuffle(current)
            yield from ((i, cycle) for i in current)
            previous = current
    else:
        raise ValueError(f"unknown structure {structure!r}")


def _balanced(n: int, cycles: int, seed: int) -> Iterator[tuple[int, int]]:
    """Cycle c runs row (c - 1) mod L of the Williams design; configs take the design's labels
    in a seeded random assignment (``random.Random(f"{seed}:balanced")``), which keeps every
    balance property while not always favouring the file's first config."""
    labels = array("I", range(n))
    random.Random(f"{seed}:balanced").shuffle(labels)
    length = design_length(n)
    for cycle in range(1, cycles + 1):
        yield from ((labels[label], cycle) for label in williams_row(n, (cycle - 1) % length))


def new_cycle(same_config: bool, cycle_changed: bool, structure: str) -> bool:
    """Whether the step from one experiment to the next starts a new cycle (grouped: a
    repetition of the same experiment), which ``cycle_gap_seconds`` separates."""
    return same_config if structure == "grouped" else cycle_changed


def gap_between(
    previous: ManifestEntry, entry: ManifestEntry, execution: ExecutionConfig
) -> tuple[float, str]:
    """Seconds to pause between two consecutive experiments, and which gap it is."""
    if new_cycle(
        previous.config_hash == entry.config_hash,
        previous.cycle != entry.cycle,
        execution.structure,
    ):
        return execution.cycle_gap_seconds, "cycle gap"
    return execution.config_gap_seconds, "config gap"
