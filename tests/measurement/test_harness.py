"""The harness's own logic, with a scripted backend and energy source (fast, exact)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import ExperimentError, LLEMError
from llenergymeasure.measurement import harness
from llenergymeasure.measurement.energy.base import EnergyReading
from llenergymeasure.measurement.inference.base import ModelInfo, RequestRecord
from llenergymeasure.measurement.workload import arrival_offsets_s
from llenergymeasure.results.schema import load_result


class ScriptedBackend:
    """Generates `tokens` tokens per prompt, taking `seconds` per batch; counts calls."""

    name = "pytorch"
    peak_memory_method = "unavailable"

    def __init__(self, tokens: int = 10, seconds: float = 0.01, fail_on: int | None = None) -> None:
        self.tokens, self.seconds, self.fail_on = tokens, seconds, fail_on
        self.batches: list[list[str]] = []
        self.loads = 0
        self.prepared: list[ExperimentConfig] = []

    def load(self, config: ExperimentConfig) -> ModelInfo:
        self.loads += 1
        return ModelInfo("scripted", "cpu", "float32", 1000, 0.5)

    def prepare(self, config: ExperimentConfig) -> None:
        self.prepared.append(config)

    def tokenizer(self) -> Any:
        return None

    def generate(self, prompts: list[str]) -> list[RequestRecord]:
        if self.fail_on is not None and len(self.batches) == self.fail_on:
            raise ExperimentError("the device fell over")
        self.batches.append(prompts)
        start = time.perf_counter()
        time.sleep(self.seconds)
        end = time.perf_counter()
        return [RequestRecord(5, self.tokens, start, end) for _ in prompts]

    def peak_memory_bytes(self) -> int | None:
        return None

    def reset_peak_memory(self) -> None: ...

    def synchronize(self) -> None: ...

    def unload(self) -> None: ...


class ConstantPowerSource:
    """Reads `power_w` x window (`idle_w` x window for a window in which the backend ran
    nothing, i.e. the baseline); a stand-in for a real sensor with exact arithmetic."""

    name = "scripted"
    method = "counter"

    def __init__(
        self,
        power_w: float,
        fail: bool = False,
        *,
        idle_w: float | None = None,
        backend: ScriptedBackend | None = None,
    ) -> None:
        self.power_w, self.fail = power_w, fail
        self.idle_w = power_w if idle_w is None else idle_w
        self.backend = backend
        self._t0 = 0.0
        self._batches_at_start = 0
        self.windows: list[float] = []

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._batches_at_start = len(self.backend.batches) if self.backend else 0

    def stop(self) -> EnergyReading:
        if self.fail:
            raise ExperimentError("energy counter went backwards")
        duration = time.perf_counter() - self._t0
        self.windows.append(duration)
        busy = self.backend is None or len(self.backend.batches) > self._batches_at_start
        power_w = self.power_w if busy else self.idle_w
        return EnergyReading(
            source="scripted",
            method="counter",
            energy_j=power_w * duration,
            duration_s=duration,
            devices=("dev0",),
            per_device_energy_j={"dev0": power_w * duration},
            sample_interval_ms=None,
            is_estimate=False,
            resolution_warning=None,
        )


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    backend = ScriptedBackend()
    sources = {"measure": ConstantPowerSource(50.0, idle_w=20.0, backend=backend)}
    monkeypatch.setattr(harness, "create_backend", lambda name: backend)
    monkeypatch.setattr(harness, "select_energy_source", lambda *a, **k: sources["measure"])
    monkeypatch.setattr(
        "llenergymeasure.measurement.datasets.load_prompts",
        lambda dataset, **kw: [
            f"prompt {i}" for i in range(kw.get("count") or dataset.num_prompts)
        ],
    )
    return {"backend": backend, "sources": sources, "out": tmp_path / "results"}


def config(**overrides: Any) -> ExperimentConfig:
    data: dict[str, Any] = {
        "model": "builtin:tiny-gpt2",
        "dataset": {"num_prompts": 8},
        "pytorch": {"batch_size": 2},
        "baseline": {"duration_sec": 0.05, "cache_ttl_sec": 0},
        "warmup": {"max_prompts": 12, "min_prompts": 1},
    }
    data.update(overrides)
    return ExperimentConfig.model_validate(data)


def test_result_file_holds_metrics_with_provenance(rig: dict[str, Any]) -> None:
    result = harness.run_experiment(config(), rig["out"], experiment_id="exp1")
    saved = load_result(rig["out"] / "exp1")
    assert saved.model_dump() == result.model_dump()
    m = result.metrics
    assert m.num_requests == 8 and m.output_tokens == 80 and m.input_tokens == 40
    window_s = result.energy.window_s
    assert window_s is not None and window_s >= m.measured_window_s
    assert m.energy_j == pytest.approx(50.0 * window_s, rel=1e-9)
    assert m.mean_power_w == pytest.approx(50.0)
    baseline_w = result.energy.baseline_power_w
    assert baseline_w == pytest.approx(20.0, rel=1e-3)
    assert m.energy_adjusted_j == pytest.approx(m.energy_j - baseline_w * window_s, abs=1e-9)
    assert m.energy_basis == "adjusted"
    assert m.energy_per_token_j == pytest.approx(m.energy_adjusted_j / 80)
    assert m.energy_per_total_token_j == pytest.approx(m.energy_adjusted_j / 120)
    assert m.energy_per_token_raw_j == pytest.approx(m.energy_j / 80)
    assert result.energy.method == "counter" and result.energy.is_estimate is False
    # no non-embedding count from this backend: all parameters, (5 in + 10 out - 1) positions
    assert m.flops == 2.0 * 1000 * 8 * (5 + 10 - 1)
    assert "embeddings are counted" in m.flops_method
    assert result.flags == []
    assert result.timings.model_load_s == 0.5 and not result.timings.model_reused


def test_batches_follow_batch_size(rig: dict[str, Any]) -> None:
    harness.run_experiment(config(warmup={"enabled": False}), rig["out"], experiment_id="e")
    assert [len(b) for b in rig["backend"].batches] == [2, 2, 2, 2]


def test_streaming_sends_one_request_at_a_time(rig: dict[str, Any]) -> None:
    harness.run_experiment(
        config(streaming=True, warmup={"enabled": False}), rig["out"], experiment_id="e"
    )
    assert all(len(b) == 1 for b in rig["backend"].batches)


def test_without_baseline_energy_per_token_is_raw(rig: dict[str, Any]) -> None:
    result = harness.run_experiment(
        config(baseline={"enabled": False}), rig["out"], experiment_id="e"
    )
    m = result.metrics
    assert m.energy_adjusted_j is None and m.energy_basis == "raw"
    assert m.energy_per_token_j == pytest.approx(m.energy_j / m.output_tokens)
    assert m.tokens_per_joule == pytest.approx(m.output_tokens / m.energy_j)


def test_failed_energy_read_keeps_throughput_and_says_why(rig: dict[str, Any]) -> None:
    rig["sources"]["measure"] = ConstantPowerSource(50.0, fail=True)
    result = harness.run_experiment(
        config(baseline={"enabled": False}), rig["out"], experiment_id="e"
    )
    assert result.metrics.energy_j is None and result.metrics.energy_per_token_j is None
    assert "went backwards" in (result.energy.unavailable_reason or "")
    assert result.metrics.tokens_per_second > 0


def test_a_failing_experiment_leaves_no_result(rig: dict[str, Any]) -> None:
    rig["backend"].fail_on = 3
    with pytest.raises(LLEMError):
        harness.run_experiment(config(warmup={"enabled": False}), rig["out"], experiment_id="e")
    assert not (rig["out"] / "e").exists()


def test_warmup_stops_when_throughput_is_steady(rig: dict[str, Any]) -> None:
    result = harness.run_experiment(
        config(warmup={"max_prompts": 20, "min_prompts": 1, "window_size": 3, "cv_threshold": 0.5}),
        rig["out"],
        experiment_id="e",
    )
    t = result.timings
    assert t.warmup_converged and t.warmup_prompts == 6  # 3 batches of 2, then steady
    assert t.warmup_final_cv is not None and t.warmup_final_cv < 0.5


def test_warmup_gives_up_at_max_prompts(rig: dict[str, Any]) -> None:
    result = harness.run_experiment(
        config(warmup={"max_prompts": 4, "convergence_detection": False}),
        rig["out"],
        experiment_id="e",
    )
    assert result.timings.warmup_prompts == 4 and not result.timings.warmup_converged


def test_model_pool_reuses_a_loaded_model(rig: dict[str, Any]) -> None:
    backend = rig["backend"]
    with harness.ModelPool(reuse=True) as pool:
        first = harness.run_experiment(config(), rig["out"], experiment_id="a", models=pool)
        second = harness.run_experiment(
            config(pytorch={"batch_size": 4}), rig["out"], experiment_id="b", models=pool
        )
        third = harness.run_experiment(
            config(fp_precision="float32"), rig["out"], experiment_id="c", models=pool
        )
    assert backend.loads == 2  # a new precision needs a new load; a new batch size does not
    assert (
        not first.timings.model_reused
        and second.timings.model_reused
        and not third.timings.model_reused
    )
    assert second.timings.model_load_s == 0.0
    assert backend.prepared and backend.prepared[0].pytorch.batch_size == 4


def test_cold_start_loads_every_time(rig: dict[str, Any]) -> None:
    with harness.ModelPool(reuse=False) as pool:
        harness.run_experiment(config(), rig["out"], experiment_id="a", models=pool)
        harness.run_experiment(config(), rig["out"], experiment_id="b", models=pool)
    assert rig["backend"].loads == 2


def test_constant_traffic_spaces_arrivals_and_counts_queueing(rig: dict[str, Any]) -> None:
    cfg = config(traffic={"mode": "constant", "target_qps": 40.0}, warmup={"enabled": False})
    assert arrival_offsets_s(cfg, 4) == pytest.approx([0.0, 0.025, 0.05, 0.075])
    result = harness.run_experiment(cfg, rig["out"], experiment_id="e")
    # 8 requests at 40/s: the last arrives at 0.175 s, so the window lasts at least that long
    assert result.metrics.measured_window_s >= 0.175


def test_poisson_arrivals_are_seeded() -> None:
    cfg = config(traffic={"mode": "poisson", "target_qps": 5.0})
    first, again = arrival_offsets_s(cfg, 50), arrival_offsets_s(cfg, 50)
    assert first == again and first is not None
    assert first == sorted(first) and first[0] == 0.0
    mean_gap = first[-1] / 49
    assert 0.1 < mean_gap < 0.4  # around 1 / 5 qps


def test_result_json_is_strict_json(rig: dict[str, Any]) -> None:
    harness.run_experiment(config(), rig["out"], experiment_id="e")
    text = (rig["out"] / "e" / "result.json").read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert data["schema_version"] == "1" and data["config_hash"]


def test_timings_and_environment_say_where_time_went(
    rig: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    imported: list[str] = []
    monkeypatch.setattr(harness.importlib, "import_module", lambda name: imported.append(name))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result = harness.run_experiment(config(), rig["out"], experiment_id="exp1")
    assert imported == ["torch", "transformers"]  # the backend's libraries, timed on their own
    assert result.timings.import_s >= 0.0
    threads = result.environment["threads"]
    assert threads["OMP_NUM_THREADS"] == "1" and threads["cpu_count"] >= 1
    load = result.environment["load_average_1m"]
    assert set(load) == {"window_start", "window_end"}
    assert all(v is None or v >= 0 for v in load.values())
