from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from fakes.fake_powercap import FakePowercap
from fakes.fake_pynvml import FakeGPU, install
from llenergymeasure.measurement import environment
from llenergymeasure.measurement.environment import collect_environment, detect_container


@pytest.fixture(autouse=True)
def _no_host_gpu_selection(monkeypatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)


def _roundtrip(data: dict) -> dict:
    return json.loads(json.dumps(data, allow_nan=False))


def test_snapshot_without_nvml_says_why(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    env = _roundtrip(collect_environment(rapl_root=tmp_path / "absent"))
    assert env["gpus"] == []
    assert "nvidia-ml-py (pynvml) is not installed" in env["gpu_unavailable_reason"]
    assert env["rapl"]["available"] is False
    assert env["python"]["version"].count(".") == 2
    assert env["libraries"]["llenergymeasure"]
    assert env["cpu"]["logical_cores"] >= 1
    assert env["memory_total_bytes"] > 0
    assert env["platform"]["kernel"]


def test_snapshot_with_fake_gpus(monkeypatch, tmp_path: Path) -> None:
    install(
        monkeypatch,
        [FakeGPU(), FakeGPU(name="NVIDIA A100-SXM4-40GB", compute_capability=(8, 0))],
        cuda_driver_version=12040,
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_zone("0", "package-0")
    env = _roundtrip(collect_environment(rapl_root=tree.root))

    assert env["gpu_unavailable_reason"] is None
    assert env["gpu_driver_version"] == "550.54.15"
    assert env["cuda_driver_version"] == "12.4"
    assert env["cuda_visible_devices"] == "1"
    gpu0, gpu1 = env["gpus"]
    assert (gpu0["visible"], gpu1["visible"]) == (False, True)
    assert gpu1["name"] == "NVIDIA A100-SXM4-40GB"
    assert gpu1["compute_capability"] == "8.0"
    assert gpu1["memory_total_bytes"] == 80 * 1024**3
    assert gpu1["power_limit_w"] == 700.0
    assert gpu1["energy_counter"] is True
    assert gpu1["uuid"].startswith("GPU-")
    assert env["rapl"]["available"] is True


def test_torch_details_only_when_already_imported(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert environment._torch_runtime() is None
    fake_torch = types.SimpleNamespace(
        version=types.SimpleNamespace(cuda="12.4"),
        cuda=types.SimpleNamespace(is_available=lambda: False),
    )
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    assert environment._torch_runtime() == {"cuda_version": "12.4", "cuda_available": False}


def test_collecting_does_not_import_torch() -> None:
    code = (
        "import sys, json\n"
        "from llenergymeasure.measurement.environment import collect_environment\n"
        "json.dumps(collect_environment())\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_container_detection(tmp_path: Path) -> None:
    assert detect_container(tmp_path, environ={}) == {"in_container": False, "evidence": []}
    (tmp_path / ".dockerenv").touch()
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "cgroup").write_text("0::/kubepods/besteffort/pod1\n")
    found = detect_container(tmp_path, environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert found["in_container"] is True
    assert found["evidence"] == [
        "/.dockerenv exists",
        "/proc/1/cgroup mentions kubepods",
        "KUBERNETES_SERVICE_HOST is set",
    ]


def test_cpu_model_and_os_name_from_files(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    )
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text(
        'NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
    )
    assert environment.cpu_model(tmp_path) == "Intel(R) Xeon(R) Platinum 8480+"
    assert environment.os_pretty_name(tmp_path) == "Ubuntu 22.04.4 LTS"
    assert environment.os_pretty_name(tmp_path / "absent") is None


def test_library_versions_read_metadata(monkeypatch) -> None:
    monkeypatch.setattr(
        environment, "LIBRARIES", {"psutil": ("psutil",), "nope": ("surely-not-installed-x",)}
    )
    versions = environment.library_versions()
    assert versions["nope"] is None
    assert versions["psutil"] and versions["psutil"][0].isdigit()


def test_snapshot_shape_is_the_same_with_and_without_gpus(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    without = collect_environment(rapl_root=tmp_path)
    install(monkeypatch, [FakeGPU()])
    with_gpu = collect_environment(rapl_root=tmp_path)
    assert set(without) == set(with_gpu)
    assert without["gpu_driver_version"] is None
    assert with_gpu["gpu_driver_version"] == "550.54.15"
