"""GPU-only backends: cheap checks for what they need (no torch, no engine import)."""

from __future__ import annotations

import ctypes
import importlib.util
import os
from typing import Any

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import ExperimentError, UnavailableError
from llenergymeasure.measurement.inference.base import ModelInfo, RequestRecord


def package_installed(module: str) -> bool:
    """Whether ``module`` is importable (found on the path; not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def nvidia_gpu_present() -> bool:
    """Whether an NVIDIA driver with at least one visible GPU seems present.

    Looks for the kernel driver and the CUDA driver library; ``CUDA_VISIBLE_DEVICES`` set to an
    empty string or ``-1`` hides all GPUs, as it does for CUDA itself.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in {"", "-1"}:
        return False
    if not os.path.exists("/proc/driver/nvidia/version"):
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


class PendingGPUBackend:
    """A GPU engine whose adapter is not written yet: ``load`` says exactly what is missing.

    Never generates anything: without the engine there is nothing honest to measure.
    """

    name: str = ""
    package: str = ""
    """Importable module name of the engine, e.g. ``vllm``."""
    install: str = ""
    """How to install the engine."""

    def load(self, config: ExperimentConfig) -> ModelInfo:
        missing = []
        if not nvidia_gpu_present():
            missing.append("no NVIDIA GPU is visible")
        if not package_installed(self.package):
            missing.append(f"the {self.package} package is not installed")
        if missing:
            raise UnavailableError(
                f"the {self.name} backend needs an NVIDIA GPU and the {self.package} package "
                f"({'; '.join(missing)})",
                where=f"backend: {self.name}",
                fix=f"run on a machine with an NVIDIA GPU and `{self.install}`, or use "
                "backend: pytorch",
            )
        raise UnavailableError(
            f"the {self.name} backend adapter is not part of this version of llenergymeasure "
            f"yet (the GPU and the {self.package} package are present)",
            where=f"backend: {self.name}",
            fix="use backend: pytorch for now",
        )

    def _not_loaded(self) -> ExperimentError:
        return ExperimentError(
            f"the {self.name} backend has no model loaded",
            fix="call load() first (it reports why this backend is unavailable here)",
        )

    def tokenizer(self) -> Any:
        raise self._not_loaded()

    def prepare(self, config: ExperimentConfig) -> None:
        raise self._not_loaded()

    def generate(self, prompts: list[str]) -> list[RequestRecord]:
        raise self._not_loaded()

    def peak_memory_bytes(self) -> int | None:
        return None

    def reset_peak_memory(self) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def unload(self) -> None:
        return None
