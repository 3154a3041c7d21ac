"""One spec per backend: every fact about a backend that more than one layer needs.

The config section class says what a backend accepts (its fields, precisions, install hint);
the spec adds where its measurement code lives, which libraries it imports, and what its
fields *mean* across backends. Everything else derives from here: the ``Backend`` options and
their sections (``config.models``), the backend registry and the engine imports
(``measurement``), the GPUs an experiment reserves (the Ray executor), the batching column of
the tables, what ``--backend`` can move from one section to another, and which dotted keys are
backend keys in the report. A new backend is one section class and one spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llenergymeasure.config.backend_configs import (
    BackendSection,
    PyTorchConfig,
    TensorRTConfig,
    VLLMConfig,
)

ROLES = ("batching", "tensor_parallel", "pipeline_parallel", "quantization")
"""What a section field can mean across backends. ``batching`` (how many requests run at once)
is only the *nearest* equal between backends (a fixed batch is not a scheduler's limit); the
others mean the same wherever they exist, so ``--backend`` moves them."""


@dataclass(frozen=True)
class BackendSpec:
    """A backend: its config section, its measurement class, and its fields' roles."""

    name: str
    section: type[BackendSection]
    engine: str
    """``module:Class`` of its measurement backend, imported only when the backend is chosen."""
    engine_modules: tuple[str, ...]
    """The libraries it imports (timed on their own, not hidden in the model load)."""
    roles: Mapping[str, str] = field(default_factory=dict)
    """Role (see :data:`ROLES`) -> this backend's field in its section."""
    server_engine: str | None = None
    """``module:Class`` of its served mode (a ``server:`` section), None: no served mode."""

    @property
    def batching_key(self) -> str:
        """The dotted key that fixes how many requests run at once (``vllm.max_num_seqs``)."""
        return f"{self.name}.{self.roles['batching']}"

    def setting(self, role: str, section: Mapping[str, Any] | None) -> Any:
        """This backend's value for ``role`` in a section dict (its default where unset)."""
        name = self.roles[role]
        values = section or {}
        return values[name] if name in values else self.section.model_fields[name].default

    def gpu_count(self, section: Mapping[str, Any] | None) -> int:
        """GPUs one experiment uses: tensor x pipeline parallel size (1 without either)."""
        count = 1
        for role in ("tensor_parallel", "pipeline_parallel"):
            if role in self.roles:
                count *= int(self.setting(role, section))
        return count


_INFERENCE = "llenergymeasure.measurement.inference"

BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "pytorch",
            PyTorchConfig,
            f"{_INFERENCE}.pytorch:PyTorchBackend",
            ("torch", "transformers"),
            {"batching": "batch_size"},
        ),
        BackendSpec(
            "vllm",
            VLLMConfig,
            f"{_INFERENCE}.vllm:VLLMBackend",
            ("torch", "vllm"),
            {
                "batching": "max_num_seqs",
                "tensor_parallel": "tensor_parallel_size",
                "pipeline_parallel": "pipeline_parallel_size",
                "quantization": "quantization",
            },
            "llenergymeasure.measurement.serving.backend:VLLMServerBackend",
        ),
        BackendSpec(
            "tensorrt",
            TensorRTConfig,
            f"{_INFERENCE}.tensorrt:TensorRTBackend",
            ("tensorrt_llm",),
            {
                "batching": "max_batch_size",
                "tensor_parallel": "tp_size",
                "pipeline_parallel": "pp_size",
                "quantization": "quantization",
            },
        ),
    )
}
"""Backend name -> its spec; the keys are exactly the ``config.models.Backend`` options."""
