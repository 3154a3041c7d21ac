"""vLLM backend. Its adapter comes later; today ``load`` explains what is missing here."""

from __future__ import annotations

from llenergymeasure.measurement.inference._gpu import PendingGPUBackend


class VLLMBackend(PendingGPUBackend):
    name = "vllm"
    package = "vllm"
    install = "pip install vllm"
