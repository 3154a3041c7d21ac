"""The plan builder: each structure's order, seeded shuffles, gaps, experiment ids."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.orchestration.campaign.manifest import ManifestEntry
from llenergymeasure.orchestration.campaign.order import (
    balance_note,
    design_length,
    gap_between,
    plan_order,
    williams_design,
)
from llenergymeasure.orchestration.campaign.plan import safe_name


def names(order: list[tuple[int, int]]) -> list[str]:
    return [f"{'ABCDE'[i]}{c}" for i, c in order]


def test_interleaved_runs_every_experiment_once_per_cycle_in_file_order() -> None:
    assert names(plan_order(3, 2, "interleaved")) == ["A1", "B1", "C1", "A2", "B2", "C2"]


def test_grouped_repeats_each_experiment_back_to_back() -> None:
    assert names(plan_order(3, 2, "grouped")) == ["A1", "A2", "B1", "B2", "C1", "C2"]


def test_shuffled_is_a_permutation_per_cycle_reproducible_for_a_seed() -> None:
    order = plan_order(5, 4, "shuffled", seed=7)
    assert order == plan_order(5, 4, "shuffled", seed=7)
    for cycle in range(1, 5):
        assert sorted(i for i, c in order if c == cycle) == list(range(5))
    assert [c for _, c in order] == [c for c in range(1, 5) for _ in range(5)]  # cycle by cycle
    cycles = [[i for i, c in order if c == cycle] for cycle in range(1, 5)]
    assert all(a != b for a, b in itertools.pairwise(cycles))
    assert order != plan_order(5, 4, "shuffled", seed=8)


def test_shuffled_order_follows_the_documented_per_cycle_seed() -> None:
    import random

    order = plan_order(6, 1, "shuffled", seed=3)
    expected = list(range(6))
    random.Random("3:1").shuffle(expected)
    assert [i for i, _ in order] == expected


def test_shuffled_never_repeats_the_previous_cycle_even_with_two_experiments() -> None:
    order = plan_order(2, 6, "shuffled", seed=1)
    cycles = [[i for i, c in order if c == cycle] for cycle in range(1, 7)]
    assert all(a != b for a, b in itertools.pairwise(cycles))


@pytest.mark.parametrize("structure", ["interleaved", "shuffled", "grouped", "balanced"])
def test_every_pair_exactly_once(structure: str) -> None:
    order = plan_order(4, 3, structure, seed=11)
    assert sorted(order) == [(i, c) for i in range(4) for c in range(1, 4)]


def test_single_experiment_and_empty_plans() -> None:
    assert plan_order(1, 3, "shuffled") == [(0, 1), (0, 2), (0, 3)]
    assert plan_order(0, 3, "interleaved") == []
    with pytest.raises(ValueError, match="unknown structure"):
        plan_order(2, 2, "random")


def _entry(name: str, cycle: int) -> ManifestEntry:
    return ManifestEntry(
        exp_id=f"{name}_c{cycle}", name=name, config_hash=name * 4, backend="pytorch", cycle=cycle
    )


def test_gaps_config_gap_within_a_cycle_cycle_gap_between_cycles() -> None:
    execution = ExecutionConfig(config_gap_seconds=2, cycle_gap_seconds=9)
    assert gap_between(_entry("a", 1), _entry("b", 1), execution) == (2, "config gap")
    assert gap_between(_entry("b", 1), _entry("a", 2), execution) == (9, "cycle gap")


def test_gaps_in_grouped_order_cycle_gap_between_repetitions() -> None:
    execution = ExecutionConfig(structure="grouped", config_gap_seconds=2, cycle_gap_seconds=9)
    assert gap_between(_entry("a", 1), _entry("a", 2), execution) == (9, "cycle gap")
    assert gap_between(_entry("a", 2), _entry("b", 1), execution) == (2, "config gap")


def test_safe_name_keeps_readable_names_and_replaces_path_characters() -> None:
    assert safe_name("pytorch_tiny-gpt2_bs4") == "pytorch_tiny-gpt2_bs4"
    assert safe_name("org/model x:1") == "org-model-x-1"
    assert safe_name("..") == "experiment"


# --- balanced: a Williams design -----------------------------------------------------------------


def _cycles_of(order: list[tuple[int, int]]) -> list[list[int]]:
    by_cycle: dict[int, list[int]] = {}
    for index, cycle in order:
        by_cycle.setdefault(cycle, []).append(index)
    return [by_cycle[c] for c in sorted(by_cycle)]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_balanced_order_counterbalances_positions_and_predecessors(n: int) -> None:
    length = design_length(n)
    assert length == (n if n % 2 == 0 else 2 * n)
    for repeats in (1, 2):
        cycles = _cycles_of(plan_order(n, length * repeats, "balanced", seed=5))
        assert len(cycles) == length * repeats
        assert all(sorted(c) == list(range(n)) for c in cycles)  # each config once per cycle
        positions = Counter((config, pos) for c in cycles for pos, config in enumerate(c))
        assert set(positions.values()) == {length * repeats // n}
        assert len(positions) == n * n  # every config in every position
        follows = Counter(pair for c in cycles for pair in itertools.pairwise(c))
        assert len(follows) == n * (n - 1)  # every ordered pair of distinct configs ...
        assert set(follows.values()) == {length * repeats // n}  # ... equally often


def test_williams_rows_by_hand() -> None:
    # 4 configs: first row 0 1 3 2, each next row + 1 (mod 4)
    assert williams_design(4) == [[0, 1, 3, 2], [1, 2, 0, 3], [2, 3, 1, 0], [3, 0, 2, 1]]
    # 3 configs: the 3 rows and their mirror images
    assert williams_design(3) == [[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert williams_design(1) == [[0]]


def test_balanced_order_is_seeded_and_a_single_config_is_trivial() -> None:
    assert plan_order(4, 4, "balanced", seed=1) == plan_order(4, 4, "balanced", seed=1)
    assert plan_order(4, 4, "balanced", seed=1) != plan_order(4, 4, "balanced", seed=2)
    assert plan_order(1, 3, "balanced") == [(0, 1), (0, 2), (0, 3)]
    assert sorted(plan_order(3, 5, "balanced")) == [(i, c) for i in range(3) for c in range(1, 6)]


def test_balance_note_says_what_balance_a_partial_design_keeps() -> None:
    full = balance_note(4, 8)
    assert full is not None and "2 x the 4-cycle Williams design" in full
    assert "2x in each position" in full
    # odd n: the first n rows are a Latin square, carry-over needs all 2n
    odd = balance_note(3, 4)
    assert odd is not None and "not a multiple of the 6-cycle Williams design" in odd
    assert "positions are balanced over the first 3 cycles" in odd
    assert "predecessors are not balanced" in odd
    even = balance_note(4, 6)
    assert even is not None and "positions are balanced over the first 4 cycles" in even
    assert "predecessors over the first 4" in even
    assert "positions are not balanced" in (balance_note(4, 3) or "")
    assert balance_note(1, 3) is None
    # and the partial design really keeps what it says: positions over the first 3 cycles
    cycles = _cycles_of(plan_order(3, 4, "balanced"))[:3]
    assert all(sorted(c[pos] for c in cycles) == [0, 1, 2] for pos in range(3))
