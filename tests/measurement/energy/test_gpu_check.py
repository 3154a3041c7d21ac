"""benchmarks/gpu_check.py: without a GPU it says so in one line with its own exit code; its
checks on a measured result pass on an honest one and fail on a flagged one (fake NVML)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from fakes import fake_pynvml
from fakes.fake_pynvml import FOREIGN_PID, FakeNVML, FakeProcess, install
from llenergymeasure.measurement import harness

from .gpu_node import MODEL_GPU, config, drive, install_node, model_ref

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu_check.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = load_script()


def host_has_gpu() -> bool:
    return gpu_check.no_gpu_reason() is None


def test_without_a_gpu_it_prints_one_line_and_exits_3() -> None:
    if host_has_gpu():
        pytest.skip("this machine has an NVIDIA GPU")
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == gpu_check.EXIT_NO_GPU == 3
    assert done.stdout.startswith("no NVIDIA GPU: ") and done.stdout.count("\n") == 1
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("fake", "words"),
    [
        (None, "nvidia-ml-py (pynvml) is not installed"),
        (FakeNVML([], init_error=fake_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND), "did not start"),
        (FakeNVML([], init_error=fake_pynvml.NVML_ERROR_DRIVER_NOT_LOADED), "did not start"),
        (FakeNVML([]), "NVML found no device"),
    ],
)
def test_each_reason_for_no_gpu_is_one_line(monkeypatch, capsys, fake, words) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert gpu_check.main([]) == 3
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("no NVIDIA GPU: ") and words in line


def test_a_fake_gpu_counts_as_a_gpu(monkeypatch) -> None:
    fake = install(monkeypatch)
    assert gpu_check.no_gpu_reason() is None
    assert not fake.initialised  # shut down again


def test_the_wheels_it_names_are_what_the_project_imports() -> None:
    """The preparation lists every pure-Python dependency a CUDA image lacks."""
    doc = gpu_check.__doc__ or ""
    for wheel in ("pydantic==", "pydantic-core==", "annotated-types==", "typing-inspection=="):
        assert wheel in doc
    assert "loguru==" in doc and "--platform manylinux2014_x86_64" in doc
    assert ".gpu-wheels/site" in doc


@pytest.fixture
def measured(monkeypatch, tmp_path, offline_model_cache) -> dict[str, Any]:
    """A real harness result on the fake node, as `llem run --json` prints it."""
    monkeypatch.setenv("LLEM_CACHE_DIR", str(offline_model_cache))  # the built-in model's cache
    node = install_node(monkeypatch)
    drive(monkeypatch, node, busy_w=[300.0], idle_w=70.0)

    def run(**faults: Any) -> dict[str, Any]:
        if faults.get("contended"):
            node.gpus[MODEL_GPU].processes = [FakeProcess(pid=FOREIGN_PID)]
        timeseries = {"enabled": True, "sample_interval_ms": 50}
        energy = {"source": "nvml", "min_window_s": 1.0, "sample_interval_ms": 20}
        cfg = config(timeseries=timeseries, energy=energy)  # >= 20 series samples per window
        result = harness.run_experiment(cfg, tmp_path / "results", experiment_id="e")
        return result.model_dump(mode="json")

    return {"run": run, "node": node, "work": tmp_path}


def test_its_result_checks_pass_on_an_honest_measurement(measured, capsys) -> None:
    result = measured["run"]()
    assert gpu_check.model_uuids(result) == [model_ref(measured["node"]).uuid]
    result["model"]["device"] = "cuda:0"  # where the fake GPU stands in for the CPU
    report = gpu_check.Report()
    gpu_check.check_result(report, "pytorch", result, measured["work"])
    gpu_check.check_baseline_state(report, result)
    gpu_check.check_environment(report, result)
    seen = report.outcomes
    assert set(seen.values()) == {"PASS"}, capsys.readouterr().out
    assert {
        "llem run pytorch: attribution",
        "llem run pytorch: window long enough",
        "llem run pytorch: adjusted energy",
        "llem run pytorch: no untrusted flag",
        "llem run pytorch: no other or unresolved GPU process",
        "llem run pytorch: counter vs polled power",
        "llem run pytorch: time series vs counter",
        "baseline in the window's state",
        "environment fields",
    } == set(seen)


def test_its_result_checks_fail_on_a_contended_measurement(measured, capsys) -> None:
    result = measured["run"](contended=True)
    report = gpu_check.Report()
    gpu_check.check_result(report, "pytorch", result, measured["work"])
    assert report.outcomes["llem run pytorch: no untrusted flag"] == "FAIL"
    assert report.outcomes["llem run pytorch: no other or unresolved GPU process"] == "FAIL"
    assert report.outcomes["llem run pytorch: attribution"] == "PASS"
    assert str(FOREIGN_PID) in capsys.readouterr().out


def test_environment_fails_for_a_model_on_cpu(measured, capsys) -> None:
    result = measured["run"]()
    report = gpu_check.Report()
    gpu_check.check_environment(report, result)
    assert report.outcomes["environment fields"] == "FAIL"
    assert "model on cpu" in capsys.readouterr().out


def test_attribution_fails_when_another_gpu_was_measured(measured, capsys) -> None:
    result = measured["run"]()
    result["energy"]["device_info"][0]["uuid"] = measured["node"].gpus[0].uuid
    report = gpu_check.Report()
    gpu_check.check_result(report, "pytorch", result, measured["work"])
    assert report.outcomes["llem run pytorch: attribution"] == "FAIL"


def test_an_exception_in_a_check_is_that_checks_fail(capsys) -> None:
    report = gpu_check.Report()
    assert report.guarded("boom", lambda: 1 / 0) is None
    assert capsys.readouterr().out == "FAIL boom: ZeroDivisionError: division by zero\n"
    assert report.counts["FAIL"] == 1


@pytest.mark.gpu
def test_the_gpu_check_passes_on_this_gpu() -> None:
    if not host_has_gpu():
        pytest.skip("no NVIDIA GPU here")
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_backend_without_its_package_or_time_is_skipped(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    report = gpu_check.Report()
    gpu_check.check_backend(report, "vllm", tmp_path, left_s=300)
    monkeypatch.undo()
    gpu_check.check_backend(report, "pytorch", tmp_path, left_s=10)
    assert report.outcomes == {"llem run vllm": "SKIP", "llem run pytorch": "SKIP"}
    out = capsys.readouterr().out
    assert "vllm is not importable here" in out and "10 s left" in out


def test_a_run_that_fails_is_a_fail_line_with_its_error(tmp_path, capsys) -> None:
    """The real `llem run` in a subprocess; on this CPU machine pytorch cannot use CUDA."""
    if host_has_gpu():
        pytest.skip("this machine has an NVIDIA GPU")
    report = gpu_check.Report()
    gpu_check.check_backend(report, "pytorch", tmp_path / "pytorch", left_s=120)
    assert report.outcomes == {"llem run pytorch": "FAIL"}
    assert "exit " in capsys.readouterr().out
    assert (tmp_path / "pytorch" / "experiment.yaml").read_text().startswith("name: gpu-check")


def test_torch_without_cuda_is_a_fail_not_a_crash(capsys) -> None:
    pytest.importorskip("torch")
    if host_has_gpu():
        pytest.skip("this machine has an NVIDIA GPU")
    report = gpu_check.Report()
    gpu_check.check_torch_checks(report)
    assert report.outcomes == {"device mapping by UUID": "FAIL"}
    assert "cannot use CUDA" in capsys.readouterr().out


@pytest.mark.slow
def test_llem_run_returns_the_saved_result(monkeypatch, tmp_path) -> None:
    """The real CLI in a fresh process, on a CPU config instead of the CUDA one."""
    cpu = gpu_check.run_config("pytorch")
    for cuda, here in [
        ("device: cuda", "device: cpu"),
        ("source: nvml", "source: estimate"),
        ("num_prompts: 64", "num_prompts: 4"),
        ("max_output_tokens: 64", "max_output_tokens: 4"),
        ("max_prompts: 96", "max_prompts: 48"),
        ("duration_sec: 3", "duration_sec: 0.2"),
    ]:
        assert cuda in cpu
        cpu = cpu.replace(cuda, here)
    monkeypatch.setattr(gpu_check, "run_config", lambda backend: cpu)
    result, error = gpu_check.llem_run("pytorch", tmp_path, timeout_s=300)
    assert error == "" and result is not None
    assert result["name"] == "gpu-check-pytorch" and result["energy"]["source"] == "estimate"
    assert gpu_check.timeseries_energy_j(tmp_path) is None  # the estimate samples no power


class _FakeTensor:
    """A matrix whose product sets the fake GPU to full power, as a matmul loop would."""

    def __init__(self, fake: FakeNVML) -> None:
        self.fake = fake

    def __matmul__(self, other: _FakeTensor) -> _FakeTensor:
        self.fake.set_power(0, 500.0)
        return self


def fake_torch(fake: FakeNVML, uuid: str | None = None) -> Any:
    """torch.cuda as the torch checks use it, over GPU 0 of the fake NVML."""
    gpu = fake.gpus[0]
    props = SimpleNamespace(name=gpu.name, uuid=(uuid or gpu.uuid).removeprefix("GPU-"))
    cuda = SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 1,
        get_device_properties=lambda index: props,
        get_device_name=lambda index: gpu.name,
        synchronize=lambda: None,
        empty_cache=lambda: None,
    )
    return SimpleNamespace(
        __version__="2.11.0+cu128",
        cuda=cuda,
        bfloat16="bfloat16",
        randn=lambda shape, device, dtype: _FakeTensor(fake),
    )


def test_the_torch_checks_pass_on_a_fake_gpu(monkeypatch, capsys) -> None:
    fake = install(monkeypatch, advance_with_time=True)  # idles at 100 W
    monkeypatch.setitem(sys.modules, "torch", fake_torch(fake))
    monkeypatch.setattr(gpu_check, "MATMUL_S", 0.5)
    report = gpu_check.Report()
    gpu_check.check_torch_checks(report)
    assert report.outcomes == {
        "device mapping by UUID": "PASS",
        "one device measured": "PASS",
        "counter update period": "PASS",
        "matmul load seen by the counter": "PASS",
        "counter vs instant-power integral": "PASS",
    }, capsys.readouterr().out


def test_a_uuid_nvml_does_not_know_fails_the_mapping(monkeypatch, capsys) -> None:
    fake = install(monkeypatch)
    monkeypatch.setitem(sys.modules, "torch", fake_torch(fake, uuid="GPU-not-this-one"))
    report = gpu_check.Report()
    gpu_check.check_torch_checks(report)
    assert report.outcomes == {"device mapping by UUID": "FAIL"}
    assert not fake.initialised
