"""Reusing a loaded model for another config applies that config's per-call settings."""

from __future__ import annotations

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement.inference.pytorch import PyTorchBackend


def test_prepare_switches_generation_settings_without_reloading() -> None:
    first = ExperimentConfig.model_validate(
        {
            "model": "builtin:tiny-gpt2",
            "fp_precision": "float32",
            "max_output_tokens": 3,
            "min_output_tokens": 3,
        }
    )
    second = first.model_copy(update={"max_output_tokens": 6, "min_output_tokens": 6})
    backend = PyTorchBackend()
    backend.load(first)
    model = backend.model
    assert [r.output_tokens for r in backend.generate(["hello there"])] == [3]
    backend.prepare(second)
    assert backend.model is model
    assert [r.output_tokens for r in backend.generate(["hello there"])] == [6]
    backend.unload()
