"""TensorRT-LLM backend. Its adapter comes later; today ``load`` explains what is missing here."""

from __future__ import annotations

from llenergymeasure.measurement.inference._gpu import PendingGPUBackend


class TensorRTBackend(PendingGPUBackend):
    name = "tensorrt"
    package = "tensorrt_llm"
    install = "pip install tensorrt-llm"
