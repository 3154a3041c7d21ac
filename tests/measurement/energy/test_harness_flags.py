"""Each quality flag, through the real harness: the built-in model on the pytorch backend
(CPU), measured by the real NVML source on a fake 8-GPU pynvml (``gpu_node``) whose model GPU
draws ``busy_w`` while the backend generates and ``idle_w`` once it is synchronised.

A control run with honest power shows no flag, so each flag below is caused by its own fault.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fakes.fake_pynvml import FOREIGN_PID, FakeNVML, FakeProcess
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import UnavailableError
from llenergymeasure.measurement import harness
from llenergymeasure.measurement.energy import nvml
from llenergymeasure.measurement.energy.base import EnergyReading
from llenergymeasure.results.schema import ExperimentResult

from .gpu_node import MODEL_GPU, config, drive, install_node


@pytest.fixture(autouse=True)
def _model_cache(
    _isolated_energy_env: None, offline_model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in model from the session cache (after the energy tests' own cache dir)."""
    monkeypatch.setenv("LLEM_CACHE_DIR", str(offline_model_cache))


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNVML:
    return install_node(monkeypatch)


def run(tmp_path: Path, cfg: ExperimentConfig | None = None) -> ExperimentResult:
    return harness.run_experiment(cfg or config(), tmp_path / "out", experiment_id="e")


def codes(result: ExperimentResult) -> dict[str, str]:
    return {f.code: f.severity for f in result.flags}


def assert_adjusted_withheld(result: ExperimentResult) -> None:
    m = result.metrics
    assert m.energy_j is not None and m.energy_per_token_raw_j is not None  # raw stays
    assert m.energy_adjusted_j is None and m.energy_basis == "adjusted"
    assert m.energy_per_token_j is None and m.tokens_per_joule is None
    assert m.energy_per_total_token_j is None and m.energy_per_request_j is None
    assert codes(result)["adjusted_energy_nonpositive"] == "warning"  # the cycle is kept


def test_control_honest_power_gives_adjusted_energy_and_no_flag(
    monkeypatch, node, tmp_path
) -> None:
    drive(monkeypatch, node, busy_w=[300.0], idle_w=70.0)
    result = run(tmp_path)
    assert result.flags == []
    e, m = result.energy, result.metrics
    assert [d["uuid"] for d in e.device_info] == [node.gpus[MODEL_GPU].uuid]
    assert e.baseline_power_w == pytest.approx(70.0, rel=0.02)
    assert m.mean_power_w is not None and 70.0 < m.mean_power_w <= 300.0 * 1.01
    assert m.energy_adjusted_j is not None and m.energy_adjusted_j > 0
    assert m.energy_per_token_j == pytest.approx(m.energy_adjusted_j / m.output_tokens)
    assert e.crosscheck is not None
    assert e.crosscheck["disagreement_pct"] <= e.crosscheck["allowance_pct"]
    assert e.window_s is not None and e.window_s >= 0.6


def test_window_below_idle_power_withholds_adjusted_figures(monkeypatch, node, tmp_path) -> None:
    """The issue's case: a 120 W baseline against a 100 W window."""
    drive(monkeypatch, node, busy_w=[100.0], idle_w=120.0)
    result = run(tmp_path)
    assert_adjusted_withheld(result)
    assert "not above idle" in (result.metrics.energy_adjusted_null_reason or "")


def test_adjusted_energy_inside_baseline_noise_is_withheld(monkeypatch, node, tmp_path) -> None:
    drive(monkeypatch, node, busy_w=[101.0], idle_w=100.0)  # adjusted ~1% of raw
    result = run(tmp_path)
    assert_adjusted_withheld(result)
    assert "under 2%" in (result.metrics.energy_adjusted_null_reason or "")


def test_instant_power_that_disagrees_with_the_counter_is_flagged(
    monkeypatch, node, tmp_path
) -> None:
    node.gpus[MODEL_GPU].instant_power_w = 30.0  # the sensor misses the load
    drive(monkeypatch, node, busy_w=[300.0], idle_w=70.0)
    result = run(tmp_path)
    check = result.energy.crosscheck
    assert check is not None and check["disagreement_pct"] > check["allowance_pct"]
    assert codes(result) == {"energy_crosscheck_disagreement": "untrusted"}


@pytest.mark.parametrize(("on_gpu", "flagged"), [(MODEL_GPU, True), (2, False)])
def test_another_process_on_the_measured_gpu_flags_contention(
    monkeypatch, node, tmp_path, on_gpu, flagged
) -> None:
    node.gpus[on_gpu].processes = [FakeProcess(pid=FOREIGN_PID, usedGpuMemory=2**30)]
    drive(monkeypatch, node, busy_w=[300.0], idle_w=70.0)
    result = run(tmp_path)
    assert codes(result) == ({"gpu_contended": "untrusted"} if flagged else {})
    if flagged:
        assert str(FOREIGN_PID) in result.flags[0].message
        assert result.energy.baseline is not None
        assert [p["pid"] for p in result.energy.baseline["other_processes"]] == [FOREIGN_PID]


def test_mig_gpu_is_refused_and_nothing_is_written(monkeypatch, node, tmp_path) -> None:
    node.gpus[MODEL_GPU].mig_mode = 1
    drive(monkeypatch, node, busy_w=[300.0], idle_w=70.0)
    with pytest.raises(UnavailableError, match="MIG mode") as info:
        run(tmp_path)
    assert "allow_mig_whole_gpu" in (info.value.fix or "")
    assert not (tmp_path / "out" / "e").exists()


def test_mig_gpu_measured_whole_when_allowed_is_flagged(monkeypatch, node, tmp_path) -> None:
    node.gpus[MODEL_GPU].mig_mode = 1
    drive(monkeypatch, node, busy_w=[300.0], idle_w=70.0)
    energy = {"source": "nvml", "min_window_s": 0.6, "allow_mig_whole_gpu": True}
    result = run(tmp_path, config(energy=energy))
    assert codes(result) == {"mig_whole_gpu": "warning"}
    assert result.energy.mig_whole_gpu and result.metrics.energy_adjusted_j is not None


def test_a_stepping_counter_gets_whole_passes_until_its_error_bound_is_met(
    monkeypatch, node, tmp_path
) -> None:
    """A counter that moves every 100 ms: K = 100 / 25% = 4 periods, so >= 0.4 s of passes."""
    monkeypatch.setattr(nvml, "PERIOD_PROBE_TIMEOUT_S", 1.0)  # let the probe see it step
    node.gpus[MODEL_GPU].counter_period_s = 0.1
    drive(monkeypatch, node, busy_w=[300.0], idle_w=300.0)
    energy = {"source": "nvml", "min_window_s": 0.0, "max_error_pct": 25.0}
    result = run(tmp_path, config(baseline={"enabled": False}, energy=energy))
    e = result.energy
    # never credited with a finer period than the real one; a late poll on a busy machine
    # only makes the measured (longest) gap longer
    assert e.update_period_s is not None and 0.098 <= e.update_period_s < 0.3
    assert e.required_window_s == pytest.approx(4 * e.update_period_s)
    assert e.window_s is not None and e.window_s >= e.required_window_s
    assert e.passes > 1 and result.timings.measured_passes == e.passes
    assert e.error_bound_pct is not None and e.error_bound_pct <= 25.0
    assert "window_too_short" not in codes(result)
    assert result.metrics.energy_j == pytest.approx(300.0 * e.window_s, rel=e.error_bound_pct / 100)


class _LateResolutionSource:
    """Learns its reading's update period only at stop(): the harness cannot aim for it."""

    name = "late"
    method = "counter"
    target_error_pct = 1.0
    default_min_window_s = 0.0
    update_period_s = None

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> EnergyReading:
        duration = time.perf_counter() - self._t0
        return EnergyReading(
            source=self.name,
            method="counter",
            energy_j=100.0 * duration,
            duration_s=duration,
            devices=("dev0",),
            per_device_energy_j={"dev0": 100.0 * duration},
            sample_interval_ms=None,
            is_estimate=False,
            resolution_warning=None,
            update_period_s=0.5,
        )


def test_a_window_shorter_than_the_error_bound_needs_is_flagged(
    monkeypatch, node, tmp_path
) -> None:
    drive(monkeypatch, node, busy_w=[300.0], idle_w=70.0)
    monkeypatch.setattr(harness, "select_energy_source", lambda *a, **k: _LateResolutionSource())
    result = run(tmp_path, config(baseline={"enabled": False}))
    assert codes(result) == {"window_too_short": "untrusted"}
    assert "energy.min_window_s" in result.flags[0].message
    assert result.energy.error_bound_pct is not None and result.energy.error_bound_pct > 1.0


WARMUP = {"max_prompts": 12, "min_prompts": 1, "window_size": 3, "cv_threshold": 0.5}


def test_warmup_converges_on_throughput_and_power(monkeypatch, node, tmp_path) -> None:
    drive(monkeypatch, node, busy_w=[300.0], idle_w=70.0)
    result = run(tmp_path, config(warmup=WARMUP))
    t = result.timings
    assert t.warmup_converged_on == "throughput and power"
    assert t.warmup_converged and t.warmup_power_cv is not None and t.warmup_power_cv < 0.5
    assert "warmup_not_converged" not in codes(result)


def test_warmup_with_unsteady_power_does_not_converge_and_is_flagged(
    monkeypatch, node, tmp_path
) -> None:
    drive(monkeypatch, node, busy_w=[50.0, 450.0], idle_w=70.0)  # power swings batch to batch
    result = run(tmp_path, config(warmup=WARMUP))
    t = result.timings
    assert not t.warmup_converged and t.warmup_prompts == 12
    assert t.warmup_power_cv is not None and t.warmup_power_cv > 0.5
    assert codes(result)["warmup_not_converged"] == "warning"
    assert "steady throughput and power" in result.flags[-1].message
