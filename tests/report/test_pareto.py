"""Pareto front membership against a brute-force definition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llenergymeasure.report.pareto import front


def brute(xs: list[float], ys: list[float], minimize_x: bool, minimize_y: bool) -> list[bool]:
    sx = [x if minimize_x else -x for x in xs]
    sy = [y if minimize_y else -y for y in ys]
    n = len(xs)
    return [
        not any(
            sx[j] <= sx[i] and sy[j] <= sy[i] and (sx[j] < sx[i] or sy[j] < sy[i]) for j in range(n)
        )
        for i in range(n)
    ]


def test_front_of_energy_against_throughput() -> None:
    # (tokens/s, J/token): higher throughput and lower energy are better
    tps = [100.0, 200.0, 150.0, 50.0, 200.0]
    jpt = [0.5, 0.8, 0.4, 0.6, 0.9]
    assert front(tps, jpt, minimize_x=False, minimize_y=True) == [False, True, True, False, False]


def test_equal_points_are_all_on_the_front_and_one_point_is_its_own_front() -> None:
    assert front([1.0, 1.0, 2.0], [1.0, 1.0, 2.0], minimize_x=True, minimize_y=True) == [
        True,
        True,
        False,
    ]
    assert front([3.0], [4.0], minimize_x=True, minimize_y=True) == [True]
    assert front([], [], minimize_x=True, minimize_y=True) == []


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError):
        front([1.0], [], minimize_x=True, minimize_y=True)


@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=30),
    st.booleans(),
    st.booleans(),
)
def test_front_matches_the_definition(
    points: list[tuple[int, int]], minimize_x: bool, minimize_y: bool
) -> None:
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    got = front(xs, ys, minimize_x=minimize_x, minimize_y=minimize_y)
    assert got == brute(xs, ys, minimize_x, minimize_y)
