"""Inference backends behind one Protocol, found through a lazy registry.

Importing this package imports no backend and no torch; ``create_backend(name)`` imports the
chosen backend's module, and the backend imports its engine in ``load``.
"""

from __future__ import annotations

from llenergymeasure.measurement.inference.base import (
    InferenceBackend,
    ModelInfo,
    PeakMemoryMethod,
    RequestRecord,
    count_output_tokens,
    plan_batches,
)
from llenergymeasure.measurement.inference.registry import BACKENDS, create_backend

__all__ = [
    "BACKENDS",
    "InferenceBackend",
    "ModelInfo",
    "PeakMemoryMethod",
    "RequestRecord",
    "count_output_tokens",
    "create_backend",
    "plan_batches",
]
