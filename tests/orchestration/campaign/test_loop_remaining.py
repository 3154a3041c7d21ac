"""The runner's remaining-work tracker: its ETA always equals the sum over what is left."""

from __future__ import annotations

import itertools

import pytest

from llenergymeasure.config.campaign_config import ExecutionConfig
from llenergymeasure.orchestration.campaign.loop import Remaining
from llenergymeasure.orchestration.campaign.manifest import ManifestEntry
from llenergymeasure.orchestration.campaign.order import gap_between


def _entries() -> list[ManifestEntry]:
    return [
        ManifestEntry(exp_id=f"{c}_c{k}", name=c, config_hash=c, backend="fake", cycle=k)
        for k in (1, 2, 3)
        for c in ("a", "b", "c")
    ]


def _brute(left: list[ManifestEntry], ex: ExecutionConfig, timings: dict, mean, slots):
    if not left:
        return 0.0
    gaps = sum(gap_between(x, y, ex)[0] for x, y in itertools.pairwise(left))
    if mean is not None:
        return mean * len(left) / slots + gaps
    if timings and all(e.config_hash in timings for e in left):
        return sum(timings[e.config_hash] for e in left) / slots + gaps
    return None


@pytest.mark.parametrize("structure", ["interleaved", "grouped"])
@pytest.mark.parametrize("timings", [{}, {"a": 2.0, "b": 3.0, "c": 5.0}, {"a": 2.0}])
def test_eta_matches_a_full_walk_as_runs_leave(structure: str, timings: dict) -> None:
    ex = ExecutionConfig(structure=structure, config_gap_seconds=7.0, cycle_gap_seconds=11.0)
    left = _entries()
    remaining = Remaining(left, ex, timings)
    remaining.remove(left[4])  # a parallel executor takes one from the middle
    left.pop(4)
    while left:
        current = remaining.popleft()
        assert current is left.pop(0)
        assert len(remaining) == len(left)
        for mean, slots in ((None, 1), (4.0, 2)):
            want = _brute([current, *left], ex, timings, mean, slots)
            got = remaining.eta_s(current, mean, slots)
            assert got == pytest.approx(want) if want is not None else got is None
            want_after = _brute(left, ex, timings, mean, slots)
            got_after = remaining.eta_s(None, mean, slots)
            assert (
                got_after == pytest.approx(want_after)
                if want_after is not None
                else got_after is None
            )
    assert not remaining
