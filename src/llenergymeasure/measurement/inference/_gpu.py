"""Cheap checks for what GPU features and engines need (no torch, no engine import)."""

from __future__ import annotations

import ctypes
import importlib.util
import os


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
