"""How often a GPU's energy counter moves: what bounds a counter reading's error.

Vendor-neutral: it reads ``GPU.energy_mj()``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

from llenergymeasure.devices.base import GPU

PERIOD_PROBE_STEPS = 4  # counter changes watched to measure its update period


def measure_update_period(gpus: Sequence[GPU], timeout_s: float) -> tuple[float | None, str]:
    """How often the energy counters move: the longest gap between their changes, and how
    that figure was obtained.

    Polls every GPU's counter every ~0.5 ms until each moved ``PERIOD_PROBE_STEPS`` times
    (or ``timeout_s`` passed). The longest gap (not the median) is kept, so an irregular
    counter is not credited with a finer resolution than it has. A counter too slow to
    measure is never given a nominal period: one that moved twice within the timeout updates
    at least that often, so the timeout is its period (method ``probe_timeout``); one that
    moved less has no known period (None: the error bound is unknown and flagged).
    """
    last: dict[int, int | None] = {g.index: g.energy_mj() for g in gpus}
    changes: dict[int, list[float]] = {g.index: [] for g in gpus}
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        now = time.perf_counter()
        for g in gpus:
            value = g.energy_mj()
            if value != last[g.index]:
                last[g.index] = value
                changes[g.index].append(now)
        if all(len(c) >= PERIOD_PROBE_STEPS for c in changes.values()):
            break
        time.sleep(0.0005)
    fewest = min(len(times) for times in changes.values())
    if fewest < 2:
        return None, (
            f"unknown: a counter moved {fewest} time(s) in the {timeout_s:g} s probe, too few "
            "to bound its update period"
        )
    if fewest < 3:
        return timeout_s, (
            f"probe_timeout: a counter moved only {fewest} times in the {timeout_s:g} s probe, "
            f"too few to measure its update period; the timeout ({timeout_s * 1000:.0f} ms) is "
            "taken as the period, an upper bound for a counter that moved twice within it"
        )
    period = max(max(b - a for a, b in itertools.pairwise(times)) for times in changes.values())
    return period, (
        f"measured at source start: longest gap between {PERIOD_PROBE_STEPS} successive "
        f"counter changes, {period * 1000:.1f} ms"
    )
