"""A new campaign's plan before its manifest exists: what a dry run shows (count, first runs,
estimate) is what the manifest built for running holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.orchestration.campaign.manifest import design_hash
from llenergymeasure.orchestration.campaign.order import iter_order, plan_order

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


def test_planning_validates_each_config_once_and_stats_no_file_per_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llenergymeasure.config.models import ExperimentConfig
    from llenergymeasure.orchestration import grid_validation

    validations = {"grid": 0, "again": 0}
    validate = grid_validation._validate_config

    def counted(data: object) -> ExperimentConfig:
        validations["grid"] += 1
        return validate(data)

    def again(*args: object, **kwargs: object) -> ExperimentConfig:
        validations["again"] += 1
        raise AssertionError("a planned config was validated a second time")

    monkeypatch.setattr(grid_validation, "_validate_config", counted)
    monkeypatch.setattr(ExperimentConfig, "model_validate", again)
    calls: list[str] = []
    for name in ("exists", "is_file", "is_dir", "stat"):
        original = getattr(Path, name)

        def spy(
            self: Path, *a: object, _original: object = original, _name: str = name, **k: object
        ) -> object:
            calls.append(_name)
            return _original(self, *a, **k)  # type: ignore[operator]

        monkeypatch.setattr(Path, name, spy)

    def dry_run(count: int) -> int:
        calls.clear()
        file = campaign_yaml(
            tmp_path / f"c{count}.yaml", outputs=tuple(range(4, 4 + count)), cycles=3
        )
        out = tmp_path / f"out{count}"
        out.mkdir()
        (out / "campaign.log").write_text("")  # a campaign's own file: the directory is read
        plan = prepare(file, out)
        assert plan.preview(60) and plan.estimate().runs == plan.runs == 3 * count  # a dry run
        assert plan.built is None
        return len(calls)

    few, many = dry_run(3), dry_run(60)
    assert validations == {"grid": 63, "again": 0}
    assert few == many, "file checks grew with the number of experiments"


def test_the_library_refuses_a_plan_above_max_experiments_unless_allowed(tmp_path: Path) -> None:
    from llenergymeasure.exceptions import ConfigError
    from llenergymeasure.orchestration.campaign.prepare import prepare_campaign_file
    from llenergymeasure.orchestration.campaign.runner import run_campaign

    file = campaign_yaml(tmp_path / "c.yaml", outputs=(4, 5, 6), extra="  max_experiments: 2\n")
    out = tmp_path / "out"
    for step in (prepare_campaign_file, run_campaign):
        with pytest.raises(ConfigError, match=r"the plan has 3 experiments \(6 runs, estimated"):
            step(file, out)
    assert not out.exists()  # refused before anything was written
    _, _, plan = prepare_campaign_file(file, out, allow_large=True)
    assert plan is not None and len(plan.experiments) == 3 and plan.runs == 6
