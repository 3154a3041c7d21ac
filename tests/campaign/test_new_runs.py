"""A new campaign's plan before its manifest exists: what a dry run shows (count, first runs,
estimate) is what the manifest built for running holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.orchestration.manifest import design_hash
from llenergymeasure.orchestration.order import iter_order, plan_order

from .helpers import TINY_BASE, campaign_yaml, prepare

STRUCTURES = ("interleaved", "shuffled", "grouped", "balanced")


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("cached", [True, False])
def test_dry_run_view_matches_the_built_manifest(
    tmp_path: Path, structure: str, cached: bool
) -> None:
    base = TINY_BASE.replace(
        "baseline: {enabled: false}",
        f"baseline: {{enabled: true, duration_sec: 3, cache_ttl_sec: {60 if cached else 0}}}",
    )
    extra = f"  structure: {structure}\n  config_gap_seconds: 2\n  cycle_gap_seconds: 7\n"
    file = campaign_yaml(
        tmp_path / "c.yaml", outputs=(4, 5, 6, 7, 8), cycles=3, base=base, extra=extra
    )
    plan = prepare(file, tmp_path / "out")
    runs, preview, estimate = plan.runs, plan.preview(7), plan.estimate()
    assert plan.built is None  # none of that built the manifest
    entries = plan.manifest.entries  # what running builds
    assert runs == len(entries) == 15
    assert [(e.exp_id, e.cycle, e.config_hash) for e in preview] == [
        (e.exp_id, e.cycle, e.config_hash) for e in entries[:7]
    ]
    assert plan.estimate() == estimate  # the per-entry count agrees with the closed form
    assert estimate.baselines_s == (3.0 if cached else 3.0 * 15)
    assert len({e.exp_id for e in entries}) == 15


def test_design_hash_is_fed_one_hash_at_a_time_with_the_same_digest() -> None:
    import hashlib

    hashes = [f"{i:064x}" for i in range(5)]
    assert design_hash(iter(hashes)) == hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    assert design_hash([]) == hashlib.sha256(b"").hexdigest()


def test_a_large_order_streams_without_building_the_design() -> None:
    n = 1_000_000  # a Williams design for n configs would hold n x n labels
    first = []
    for pair in iter_order(n, 2, "balanced", seed=3):
        first.append(pair)
        if len(first) == 5:
            break
    assert [c for _, c in first] == [1] * 5 and len({i for i, _ in first}) == 5
    assert plan_order(6, 2, "balanced", 3) == list(iter_order(6, 2, "balanced", 3))
