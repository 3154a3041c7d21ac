"""Shared helpers: tiny campaign YAML, hand-made results, a fake executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakes.results import experiment_result
from llenergymeasure.config.loader import load_campaign_config
from llenergymeasure.orchestration.campaign.experiments import plan_campaign
from llenergymeasure.orchestration.campaign.plan import CampaignPlan
from llenergymeasure.orchestration.campaign.prepare import prepare_campaign
from llenergymeasure.orchestration.executors.base import ExecutionOutcome, ExperimentTask
from llenergymeasure.results.aggregation import RunRecord
from llenergymeasure.results.schema import (
    EnergyProvenance,
    ExperimentResult,
    QualityFlag,
)

TINY_BASE = """\
base_config:
  model: builtin:tiny-gpt2
  fp_precision: float32
  max_output_tokens: 4
  dataset: {num_prompts: 2, synthetic_input_tokens: 8}
  warmup: {max_prompts: 1, min_prompts: 1, convergence_detection: false}
  baseline: {enabled: false}
  energy: {source: estimate}
"""


def campaign_yaml(
    path: Path,
    *,
    name: str = "test-campaign",
    outputs: tuple[int, ...] = (4, 6),
    cycles: int = 2,
    extra: str = "",
    base: str = TINY_BASE,
) -> Path:
    """A campaign of ``len(outputs)`` tiny experiments (max_output_tokens axis) x cycles."""
    text = (
        f"campaign_name: {name}\n"
        + base
        + "grid:\n  backends: [pytorch]\n  shared:\n"
        + f"    max_output_tokens: [{', '.join(map(str, outputs))}]\n"
        + f"execution:\n  cycles: {cycles}\n"
        + extra
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def manifest_data(directory: Path) -> dict[str, Any]:
    """The manifest as llem reads it (the snapshot and its journal), as plain JSON data."""
    from llenergymeasure.orchestration.campaign.manifest import load_manifest

    loaded = load_manifest(directory)
    assert loaded is not None
    return loaded.model_dump(mode="json")


def prepare(file: Path, directory: Path, **options: Any) -> CampaignPlan:
    campaign = load_campaign_config(file)
    return prepare_campaign(
        campaign, plan_campaign(campaign, file), directory, campaign_file=file, **options
    )


def make_result(
    exp_id: str,
    name: str,
    config_hash: str,
    *,
    tokens_per_second: float = 100.0,
    energy_per_token_j: float | None = 0.5,
    latency_s: float = 0.1,
    method: str = "estimate",
    is_estimate: bool = True,
    ttft_s: float | None = None,
    config: dict[str, Any] | None = None,
) -> ExperimentResult:
    """A schema-valid result with chosen metrics (no model run): 2 requests, 8 tokens."""
    tokens = 8
    return experiment_result(
        exp_id,
        name,
        config
        or {
            "model": {"name": "builtin:tiny-gpt2"},
            "fp_precision": "float32",
            "backend": "pytorch",
        },
        config_hash,
        requests=2,
        tokens=tokens,
        window_s=tokens / tokens_per_second,
        energy_j=None if energy_per_token_j is None else energy_per_token_j * tokens,
        energy=EnergyProvenance(source=method, method=method, is_estimate=is_estimate),
        latency_s=latency_s,
        ttft_s=ttft_s,
        model={"source": "test", "device": "cpu", "dtype": "float32", "num_parameters": 1},
    )


class FakeExecutor:
    """Writes a hand-made result per task; fails, or raises KeyboardInterrupt, on request."""

    name = "fake"

    def __init__(
        self,
        *,
        fail: set[str] | None = None,
        interrupt: set[str] | None = None,
        on_run: Any = None,
    ) -> None:
        self.fail = fail or set()
        self.interrupt = interrupt or set()
        self.on_run = on_run
        self.calls: list[str] = []
        self.closed = 0

    def run(self, task: ExperimentTask, progress: Any = None) -> ExecutionOutcome:
        self.calls.append(task.exp_id)
        if progress is not None:
            progress("measuring")
        if self.on_run is not None:
            self.on_run(task)
        if task.exp_id in self.interrupt or task.name in self.interrupt:
            raise KeyboardInterrupt
        if task.exp_id in self.fail or task.name in self.fail:
            return ExecutionOutcome("failed", error=f"boom in {task.exp_id}")
        result = make_result(
            task.exp_id, task.name, task.config_hash, tokens_per_second=100.0 + task.cycle
        )
        result.save(task.output_dir / task.exp_id)
        return ExecutionOutcome("completed", result_path=task.result_path, result=result)

    def close(self) -> None:
        self.closed += 1


class FakeTime:
    """A clock that only moves when something sleeps; records every sleep."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def completed_record(
    name: str, cycle: int, *, flags: list[QualityFlag] | None = None, **metrics: Any
) -> RunRecord:
    """A completed cycle of config ``name`` (hash ``name * 8``) with a hand-made result."""
    result = make_result(f"{name}_c{cycle}", name, name * 8, **metrics)
    result = result.model_copy(update={"flags": flags or []})
    return RunRecord(
        exp_id=result.experiment_id,
        name=name,
        config_hash=name * 8,
        backend="pytorch",
        cycle=cycle,
        status="completed",
        result=result,
    )
