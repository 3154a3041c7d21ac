"""The harness with a backend that schedules its own batches: whole passes, arrival times,
warmup groups; and bursty traffic, which both kinds of backend get."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from test_harness import ConstantPowerSource, ScriptedBackend  # this folder is on sys.path

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement import harness
from llenergymeasure.measurement.inference.base import RequestRecord, SelfSchedulingBackend
from llenergymeasure.measurement.workload import arrival_offsets_s


class ScriptedEngine(ScriptedBackend):
    """A ScriptedBackend that takes whole passes (``generate_pass``), like vLLM."""

    def __init__(self) -> None:
        super().__init__()
        self.passes: list[tuple[list[str], list[float] | None]] = []

    def generate_pass(
        self, prompts: list[str], arrivals_s: list[float] | None = None
    ) -> list[RequestRecord]:
        self.passes.append((prompts, arrivals_s))
        self.batches.append(prompts)  # the energy source's "busy" check counts these
        records = []
        for index, _prompt in enumerate(prompts):
            if arrivals_s is not None:
                time.sleep(max(0.0, arrivals_s[index] - time.perf_counter()))
            start = time.perf_counter()
            records.append(RequestRecord(5, self.tokens, start, start + self.seconds))
        return records


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ScriptedEngine:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    backend = ScriptedEngine()
    source = ConstantPowerSource(50.0, idle_w=20.0, backend=backend)
    monkeypatch.setattr(harness, "create_backend", lambda name: backend)
    monkeypatch.setattr(harness, "select_energy_source", lambda *a, **k: source)
    monkeypatch.setattr(
        "llenergymeasure.measurement.datasets.load_prompts",
        lambda dataset, **kw: [
            f"prompt {i}" for i in range(kw.get("count") or dataset.num_prompts)
        ],
    )
    return backend


def config(**overrides: Any) -> ExperimentConfig:
    data: dict[str, Any] = {
        "model": "builtin:tiny-gpt2",
        "backend": "vllm",
        "dataset": {"num_prompts": 8},
        "baseline": {"enabled": False},
        "warmup": {"max_prompts": 12, "min_prompts": 1, "window_size": 3},
        **overrides,
    }
    return ExperimentConfig.model_validate(data)


def test_the_engine_gets_whole_passes_and_warmup_groups(
    engine: ScriptedEngine, tmp_path: Path
) -> None:
    assert isinstance(engine, SelfSchedulingBackend)
    result = harness.run_experiment(config(), tmp_path / "out", experiment_id="e")
    warmup = result.timings.warmup_prompts
    warm_passes = engine.passes[: len(engine.passes) - result.timings.measured_passes]
    # 12 warmup prompts in groups of 12 // (2 x 3) = 2, so steadiness can be judged
    assert {len(p) for p, _ in warm_passes} == {2} and sum(len(p) for p, _ in warm_passes) == warmup
    measured = engine.passes[len(warm_passes) :]
    assert all(len(prompts) == 8 and arrivals is None for prompts, arrivals in measured)
    assert result.metrics.num_requests == 8 * result.timings.measured_passes


def test_traffic_hands_the_engine_each_arrival_time(engine: ScriptedEngine, tmp_path: Path) -> None:
    cfg = config(traffic={"mode": "constant", "target_qps": 100.0}, warmup={"enabled": False})
    harness.run_experiment(cfg, tmp_path / "out", experiment_id="e")
    prompts, arrivals = engine.passes[0]
    assert arrivals is not None and len(arrivals) == len(prompts) == 8
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps == pytest.approx([0.01] * 7)


def test_bursty_arrivals_come_in_bursts() -> None:
    cfg = config(traffic={"mode": "bursty", "burst_size": 3, "burst_interval_s": 0.5})
    assert arrival_offsets_s(cfg, 7) == [0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 1.0]


def test_bursty_traffic_batches_a_pytorch_backend_at_each_burst(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    backend = ScriptedBackend()
    monkeypatch.setattr(harness, "create_backend", lambda name: backend)
    monkeypatch.setattr(
        harness, "select_energy_source", lambda *a, **k: ConstantPowerSource(50.0, backend=backend)
    )
    monkeypatch.setattr(
        "llenergymeasure.measurement.datasets.load_prompts",
        lambda dataset, **kw: [f"p{i}" for i in range(dataset.num_prompts)],
    )
    cfg = config(
        backend="pytorch",
        pytorch={"batch_size": 2},
        traffic={"mode": "bursty", "burst_size": 4, "burst_interval_s": 0.1},
        warmup={"enabled": False},
    )
    result = harness.run_experiment(cfg, tmp_path / "out", experiment_id="e")
    # 8 requests in two bursts 0.1 s apart: the window lasts at least that long
    assert result.metrics.measured_window_s >= 0.1 * result.timings.measured_passes


@pytest.mark.parametrize(
    ("traffic", "rule"),
    [
        ({"mode": "bursty", "burst_size": 4}, "burst_size and traffic.burst_interval_s"),
        (
            {"mode": "bursty", "burst_size": 4, "burst_interval_s": 1, "target_qps": 2},
            "remove target_qps",
        ),
        ({"mode": "poisson", "target_qps": 2, "burst_size": 4}, "only apply to mode bursty"),
    ],
)
def test_each_traffic_mode_takes_only_its_own_settings(traffic: dict[str, Any], rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        config(traffic=traffic)
