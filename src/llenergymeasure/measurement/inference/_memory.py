"""Peak memory, read the same way by every in-process backend.

On CUDA ``torch.cuda.max_memory_allocated`` (tensors this process allocated on the device). On
Linux CPU, the process's peak resident set size (``VmHWM``), reset through
``/proc/self/clear_refs``: the whole process (Python, torch, weights, activations), not only
the model. Elsewhere unavailable.
"""

from __future__ import annotations

from pathlib import Path

from llenergymeasure.measurement.inference.base import PeakMemoryMethod

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")

MEMORY_NOTES: dict[str, str] = {
    "cuda_max_allocated": "peak memory: torch.cuda.max_memory_allocated (tensors on the GPU)",
    "process_peak_rss": "peak memory: process peak RSS (VmHWM, reset via /proc/self/clear_refs); "
    "covers the whole process, not only the model",
    "unavailable": "peak memory: not measured on this platform (no /proc/self/clear_refs)",
}


def memory_method(device_type: str) -> PeakMemoryMethod:
    """What peak memory can be read as for a model on ``device_type`` (``cuda``, ``cpu``)."""
    if device_type == "cuda":
        return "cuda_max_allocated"
    if reset_peak_rss() and read_peak_rss() is not None:
        return "process_peak_rss"
    return "unavailable"


def reset_peak_rss() -> bool:
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def read_peak_rss() -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
