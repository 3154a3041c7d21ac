"""A JSON-ready snapshot of where an experiment ran: software, hardware, container, GPUs
(with the settings that change energy: persistence, ECC, MIG, clocks, power limit) and the
CPU frequency governor.

Stored beside every result so a number can be traced to the machine that produced it.
Collecting never fails: what cannot be read becomes None (and, for GPUs, a reason).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import platform
import socket
import sys
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from llenergymeasure.exceptions import LLEMError

# Distribution names to report, by the key they get in the snapshot.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "llenergymeasure": ("llenergymeasure",),
    "torch": ("torch",),
    "transformers": ("transformers",),
    "vllm": ("vllm",),
    "tensorrt_llm": ("tensorrt-llm", "tensorrt_llm"),
    "nvidia-ml-py": ("nvidia-ml-py",),
    "pynvml": ("pynvml",),
    "numpy": ("numpy",),
    "psutil": ("psutil",),
    "pydantic": ("pydantic",),
    "zeus": ("zeus", "zeus-ml"),
    "codecarbon": ("codecarbon",),
}
_CONTAINER_CGROUP_MARKERS = ("docker", "kubepods", "containerd", "libpod", "lxc")


def library_versions() -> dict[str, str | None]:
    """Installed versions from package metadata; never imports the libraries themselves."""
    return {key: _installed_version(candidates) for key, candidates in LIBRARIES.items()}


@cache  # metadata lookups are slow and installs do not change under a running process
def _installed_version(candidates: tuple[str, ...]) -> str | None:
    for dist in candidates:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def cpu_model(root: Path = Path("/")) -> str | None:
    cpuinfo = _read_text(root / "proc" / "cpuinfo") or ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or None


def os_pretty_name(root: Path = Path("/")) -> str | None:
    for line in (_read_text(root / "etc" / "os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"') or None
    return None


def cpu_frequency_governor(root: Path = Path("/")) -> dict[str, Any]:
    """The cpufreq governor of every CPU (``powersave`` can slow the host side of inference,
    so it changes throughput and energy); None with a reason where sysfs does not say."""
    cpu_dir = root / "sys" / "devices" / "system" / "cpu"
    try:
        files = sorted(cpu_dir.glob("cpu[0-9]*/cpufreq/scaling_governor"))
    except OSError:
        files = []
    counts: dict[str, int] = {}
    for path in files:
        value = (_read_text(path) or "").strip()
        if value:
            counts[value] = counts.get(value, 0) + 1
    if not counts:
        return {
            "governor": None,
            "governors": {},
            "driver": None,
            "unavailable_reason": f"no readable {cpu_dir}/cpu*/cpufreq/scaling_governor (no "
            "cpufreq driver, or a VM or container that hides it)",
        }
    driver = (_read_text(files[0].parent / "scaling_driver") or "").strip() or None
    return {
        "governor": next(iter(counts)) if len(counts) == 1 else "mixed",
        "governors": counts,
        "driver": driver,
        "unavailable_reason": None,
    }


def detect_container(
    root: Path = Path("/"), environ: dict[str, str] | None = None
) -> dict[str, Any]:
    """Best-effort: is this process in a container, and what says so."""
    env = os.environ if environ is None else environ
    evidence: list[str] = []
    if (root / ".dockerenv").exists():
        evidence.append("/.dockerenv exists")
    if (root / "run" / ".containerenv").exists():
        evidence.append("/run/.containerenv exists (podman)")
    cgroup = _read_text(root / "proc" / "1" / "cgroup") or ""
    markers = [m for m in _CONTAINER_CGROUP_MARKERS if m in cgroup]
    if markers:
        evidence.append(f"/proc/1/cgroup mentions {', '.join(markers)}")
    if "KUBERNETES_SERVICE_HOST" in env:
        evidence.append("KUBERNETES_SERVICE_HOST is set")
    return {"in_container": bool(evidence), "evidence": evidence}


def _torch_build_cuda(version_file: Path) -> str | None:
    """The ``cuda = '12.8'`` line of torch's generated version.py (None on CPU builds)."""
    for line in (_read_text(version_file) or "").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.split(":")[0].strip() == "cuda":
            try:
                found = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                return None
            return found if isinstance(found, str) else None
    return None


def _torch_runtime() -> dict[str, Any] | None:
    """CUDA details from torch. Torch is never imported here: when the caller has not
    imported it yet (the snapshot precedes model load), the CUDA version it was built for
    is read from its version.py, and whether CUDA works is left unchecked, saying so."""
    torch = sys.modules.get("torch")
    if torch is None:
        spec = importlib.util.find_spec("torch")
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations)))
        return {
            "cuda_version": _torch_build_cuda(folder / "version.py"),
            "cuda_available": None,
            "note": "torch was not imported yet when the environment was collected, so "
            "cuda_available was not checked (the model's device is in the result's model "
            "section)",
        }
    try:
        return {
            "cuda_version": getattr(torch.version, "cuda", None),
            "cuda_available": bool(torch.cuda.is_available()),
        }
    except Exception as err:  # a half-initialised torch must not break the snapshot
        return {"error": f"{type(err).__name__}: {err}"}


def _gpus() -> dict[str, Any]:
    from llenergymeasure.devices import nvidia_inventory

    absent: dict[str, Any] = {
        "gpus": [],
        "gpu_driver_version": None,
        "cuda_driver_version": None,
        "gpu_notes": [],
    }
    try:
        inventory = nvidia_inventory.inventory()
    except LLEMError as err:
        return {**absent, "gpu_unavailable_reason": err.what}
    except Exception as err:  # never let a vendor surprise break the snapshot
        return {**absent, "gpu_unavailable_reason": f"{type(err).__name__}: {err}"}
    return {
        "gpus": inventory["gpus"],
        "gpu_driver_version": inventory["driver_version"],
        "cuda_driver_version": inventory["cuda_driver_version"],
        "gpu_notes": inventory["notes"],
        "gpu_unavailable_reason": None if inventory["gpus"] else "NVML found no NVIDIA GPU",
    }


def _rapl(rapl_root: Path | None) -> dict[str, Any]:
    from llenergymeasure.measurement.energy import rapl

    try:
        return rapl.probe(rapl_root or rapl.DEFAULT_ROOT).to_dict()
    except Exception as err:  # the snapshot never fails
        return {"available": False, "reason": f"{type(err).__name__}: {err}", "fix": None}


def _memory_total_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        return None


def _physical_cores() -> int | None:
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
        return None if cores is None else int(cores)
    except Exception:
        return None


def collect_environment(*, rapl_root: Path | None = None) -> dict[str, Any]:
    """The snapshot: plain JSON types only; absent things are None with a reason."""
    uname = platform.uname()
    gpus = _gpus()
    return {
        "collected_at": datetime.now(timezone.utc).isoformat(),
        "hostname": socket.gethostname(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": uname.system,
            "kernel": uname.release,
            "kernel_version": uname.version,
            "machine": uname.machine,
            "os": os_pretty_name(),
            "platform": platform.platform(),
        },
        "cpu": {
            "model": cpu_model(),
            "logical_cores": os.cpu_count(),
            "physical_cores": _physical_cores(),
            "frequency": cpu_frequency_governor(),
        },
        "memory_total_bytes": _memory_total_bytes(),
        "container": detect_container(),
        "libraries": library_versions(),
        "torch_runtime": _torch_runtime(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        **gpus,
        "rapl": _rapl(rapl_root),
    }
