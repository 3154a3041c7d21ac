"""Hints for files written for llenergymeasure's predecessor, whose names differ from ours.

A user porting a study gets the exact replacement in the error, instead of only the nearest
spelling: ``grid.axes`` / ``sweep:`` are ``grid.shared``, a campaign-level ``model:`` is
``base_config.model``, ``bf16`` / ``fp16`` / ``fp32`` are ``bfloat16`` / ``float16`` /
``float32``, and ``n`` is ``dataset.num_prompts``.
"""

from __future__ import annotations

from typing import Any, Literal

Context = Literal["campaign", "grid", "experiment"]

_KEYS: dict[tuple[Context, str], str] = {
    ("grid", "axes"): "grid.shared",
    ("grid", "sweep"): "grid.shared",
    ("campaign", "sweep"): "grid.shared",
    ("campaign", "axes"): "grid.shared",
    ("campaign", "model"): "base_config.model",
    ("campaign", "n"): "base_config.dataset.num_prompts",
    ("experiment", "n"): "dataset.num_prompts",
}
_PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def key_hint(context: Context, key: str) -> str | None:
    """'the predecessor's X is Y here' for a key it used and we name differently."""
    ours = _KEYS.get((context, key))
    if ours is None:
        return None
    return f"'{key}' is the predecessor's name; here it is {ours}; fix: rename it to {ours}"


def value_hint(value: Any) -> str | None:
    """The same for a precision's short name."""
    ours = _PRECISIONS.get(value) if isinstance(value, str) else None
    if ours is None:
        return None
    return f"did you mean '{ours}'? ('{value}' is the predecessor's short name)"
