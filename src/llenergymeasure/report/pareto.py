"""Pareto front membership in two objectives (which configs no other config beats on both)."""

from __future__ import annotations

from collections.abc import Sequence


def front(
    xs: Sequence[float], ys: Sequence[float], *, minimize_x: bool, minimize_y: bool
) -> list[bool]:
    """For each point, whether it is on the Pareto front.

    A point is dominated when another is at least as good on both objectives and strictly
    better on one; equal points are all on the front. One sort and a sweep, O(n log n), so a
    2,000-config campaign costs nothing.
    """
    if len(xs) != len(ys):
        raise ValueError("xs and ys must have the same length")
    sx = [x if minimize_x else -x for x in xs]
    sy = [y if minimize_y else -y for y in ys]
    order = sorted(range(len(sx)), key=lambda i: (sx[i], sy[i]))
    on = [False] * len(sx)
    best_y = float("inf")
    best_at_x: tuple[float, float] | None = None  # (x, y) of the best point at the current x
    for i in order:
        if best_at_x is not None and sx[i] == best_at_x[0] and sy[i] == best_at_x[1]:
            on[i] = True  # a duplicate of a front point is as good as it
        elif sy[i] < best_y:
            on[i] = True
            best_y = sy[i]
            best_at_x = (sx[i], sy[i])
    return on


__all__ = ["front"]
