"""Models: the built-in offline model(s) and how any model source is resolved and loaded.

Importing this package is cheap: torch, transformers and tokenizers are imported only when a
model is built or loaded.
"""

from __future__ import annotations

from llenergymeasure.measurement.models.builtin import (
    BUILTIN_MODELS,
    BuiltinModel,
    builtin_model_dir,
    directory_sha256,
    ensure_builtin,
    is_builtin,
    resolve_model_source,
)
from llenergymeasure.measurement.models.loading import (
    load_tokenizer,
    prepare_tokenizer,
    translate_load_errors,
)

__all__ = [
    "BUILTIN_MODELS",
    "BuiltinModel",
    "builtin_model_dir",
    "directory_sha256",
    "ensure_builtin",
    "is_builtin",
    "load_tokenizer",
    "prepare_tokenizer",
    "resolve_model_source",
    "translate_load_errors",
]
