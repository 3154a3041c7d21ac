from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from fakes import fake_pynvml
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
    monkeypatch.setattr(environment.importlib.util, "find_spec", lambda name: None)
    assert environment._torch_runtime() is None  # torch not installed
    monkeypatch.undo()
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    before_import = environment._torch_runtime()
    assert before_import is not None and before_import["cuda_available"] is None
    assert "not imported yet" in before_import["note"]
    assert "torch" not in sys.modules
    fake_torch = types.SimpleNamespace(
        version=types.SimpleNamespace(cuda="12.4"),
        cuda=types.SimpleNamespace(is_available=lambda: False),
    )
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    assert environment._torch_runtime() == {"cuda_version": "12.4", "cuda_available": False}


@pytest.mark.parametrize(
    ("line", "cuda"),
    [
        ("cuda: Optional[str] = '12.8'", "12.8"),
        ("cuda = '11.8'", "11.8"),
        ("cuda: Optional[str] = None", None),
        ("cuda = weird(", None),
    ],
)
def test_torch_build_cuda_from_its_version_file(tmp_path: Path, line: str, cuda) -> None:
    version = tmp_path / "version.py"
    version.write_text(f"__version__ = '2.11.0+cu128'\ndebug = False\n{line}\nhip = None\n")
    assert environment._torch_build_cuda(version) == cuda
    assert environment._torch_build_cuda(tmp_path / "absent.py") is None


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


def test_gpu_settings_that_change_energy_are_recorded(monkeypatch, tmp_path: Path) -> None:
    install(
        monkeypatch,
        [
            FakeGPU(persistence_mode=1, ecc_mode=(1, 0), mig_mode=0, pstate=2),
            FakeGPU(persistence_mode=0, ecc_mode=None, mig_mode=None, enforced_power_limit_w=450),
        ],
    )
    gpu0, gpu1 = _roundtrip(collect_environment(rapl_root=tmp_path))["gpus"]
    assert gpu0["persistence_mode"] == "enabled" and gpu1["persistence_mode"] == "disabled"
    assert gpu0["ecc_mode"] == {"current": "enabled", "pending": "disabled"}
    assert gpu0["mig_mode"] == {"current": "disabled", "pending": "disabled"}
    assert gpu0["pstate"] == "P2"
    assert gpu0["clocks_mhz"] == {
        "sm": 1980,
        "memory": 2619,
        "application_sm": 1755,
        "application_memory": 2619,
        "max_sm": 1980,
        "max_memory": 2619,
    }
    assert gpu1["power_limit_w"] == 700.0 and gpu1["enforced_power_limit_w"] == 450.0
    assert gpu0["locked_clocks"] is None and "no query" in gpu0["unavailable"]["locked_clocks"]
    # a GPU without ECC or MIG: null, with the reason, not a crash
    assert gpu1["ecc_mode"] is None and gpu1["mig_mode"] is None
    assert "NOT_SUPPORTED" in gpu1["unavailable"]["ecc_mode"]
    assert "NOT_SUPPORTED" in gpu1["unavailable"]["mig_mode"]
    assert "ecc_mode" not in gpu0["unavailable"]


def test_each_unreadable_gpu_setting_is_null_with_its_reason(monkeypatch, tmp_path: Path) -> None:
    fake = install(
        monkeypatch,
        [FakeGPU()],
        fail={
            "nvmlDeviceGetPersistenceMode": fake_pynvml.NVML_ERROR_NOT_SUPPORTED,
            "nvmlDeviceGetClockInfo": fake_pynvml.NVML_ERROR_NO_PERMISSION,
            "nvmlDeviceGetPowerManagementLimit": fake_pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
            "nvmlDeviceGetPerformanceState": fake_pynvml.NVML_ERROR_UNKNOWN,
        },
    )
    fake.nvmlDeviceGetApplicationsClock = None  # a binding without the deprecated query
    fake.fail["nvmlDeviceGetClock"] = fake_pynvml.NVML_ERROR_NOT_SUPPORTED  # nor the new one
    env = _roundtrip(collect_environment(rapl_root=tmp_path))
    assert env["gpu_unavailable_reason"] is None
    (gpu,) = env["gpus"]
    why = gpu["unavailable"]
    assert gpu["persistence_mode"] is None and "NOT_SUPPORTED" in why["persistence_mode"]
    assert gpu["clocks_mhz"]["sm"] is None and "NO_PERMISSION" in why["clocks_mhz.sm"]
    assert gpu["power_limit_w"] is None and "too old" in why["power_limit_w"]
    assert gpu["pstate"] is None and "nvmlDeviceGetPerformanceState failed" in why["pstate"]
    assert gpu["clocks_mhz"]["application_sm"] is None
    assert "has no nvmlDeviceGetApplicationsClock" in why["clocks_mhz.application_sm"]
    # what could be read still is
    assert gpu["ecc_mode"] == {"current": "enabled", "pending": "enabled"}
    assert gpu["clocks_mhz"]["max_sm"] == 1980 and gpu["enforced_power_limit_w"] == 700.0


def _cpufreq(root: Path, governors: list[str]) -> None:
    for i, governor in enumerate(governors):
        folder = root / "sys" / "devices" / "system" / "cpu" / f"cpu{i}" / "cpufreq"
        folder.mkdir(parents=True)
        (folder / "scaling_governor").write_text(governor + "\n")
        (folder / "scaling_driver").write_text("intel_pstate\n")


def test_cpu_frequency_governor_from_sysfs(tmp_path: Path) -> None:
    _cpufreq(tmp_path / "same", ["performance"] * 4)
    assert environment.cpu_frequency_governor(tmp_path / "same") == {
        "governor": "performance",
        "governors": {"performance": 4},
        "driver": "intel_pstate",
        "unavailable_reason": None,
    }
    _cpufreq(tmp_path / "mixed", ["performance", "powersave", "powersave"])
    mixed = environment.cpu_frequency_governor(tmp_path / "mixed")
    assert mixed["governor"] == "mixed"
    assert mixed["governors"] == {"performance": 1, "powersave": 2}
    absent = environment.cpu_frequency_governor(tmp_path / "absent")
    assert absent["governor"] is None and absent["driver"] is None
    assert "scaling_governor" in absent["unavailable_reason"]


def test_snapshot_records_the_cpu_governor_or_why_not(tmp_path: Path) -> None:
    frequency = _roundtrip(collect_environment(rapl_root=tmp_path))["cpu"]["frequency"]
    assert set(frequency) == {"governor", "governors", "driver", "unavailable_reason"}
    assert (frequency["governor"] is None) == (frequency["unavailable_reason"] is not None)


def test_application_clocks_fall_back_to_the_deprecated_query(monkeypatch, tmp_path) -> None:
    fake = install(monkeypatch, [FakeGPU(app_sm_clock_mhz=1500)])
    fake.fail["nvmlDeviceGetClock"] = fake_pynvml.NVML_ERROR_FUNCTION_NOT_FOUND  # old driver
    (gpu,) = collect_environment(rapl_root=tmp_path)["gpus"]
    assert gpu["clocks_mhz"]["application_sm"] == 1500
    assert "clocks_mhz.application_sm" not in gpu["unavailable"]
    assert fake.calls["nvmlDeviceGetApplicationsClock"] >= 1
