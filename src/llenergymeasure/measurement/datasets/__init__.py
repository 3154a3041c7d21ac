"""Prompt sources: built-in sets, local files and (cached) Hugging Face datasets.

Importing this package is cheap; ``datasets`` is imported only for a Hugging Face dataset.
"""

from __future__ import annotations

from llenergymeasure.measurement.datasets.loader import (
    BUILTIN_DATASETS,
    builtin_prompts,
    load_prompts,
    read_prompt_file,
)
from llenergymeasure.measurement.datasets.synthetic import synthetic_prompts
from llenergymeasure.measurement.datasets.tokens import truncate_prompt

__all__ = [
    "BUILTIN_DATASETS",
    "builtin_prompts",
    "load_prompts",
    "read_prompt_file",
    "synthetic_prompts",
    "truncate_prompt",
]
