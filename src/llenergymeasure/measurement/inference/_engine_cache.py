"""Built engines on disk, keyed by everything the build depends on.

A TensorRT-LLM engine is compiled for one model, dtype, parallelism, batch and sequence limits,
quantisation, engine library version and GPU; building one takes minutes, so it is kept under
``default_cache_dir()/engines/<key>`` and reused while every input of the build is the same.
A directory only counts once the build finished (a ``complete`` marker written last).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llenergymeasure.files import default_cache_dir

MARKER = "complete"


def engine_key(inputs: dict[str, Any]) -> str:
    """A short stable digest of the build's inputs (JSON, keys sorted)."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def engine_dir(key: str) -> Path:
    return default_cache_dir() / "engines" / key


def cached_engine(key: str) -> Path | None:
    """The finished engine directory for ``key``, if one was built."""
    directory = engine_dir(key)
    return directory if (directory / MARKER).is_file() else None


def store_engine(key: str, inputs: dict[str, Any], save: Callable[[Path], None]) -> Path:
    """``save(tmp)`` writes the engine; it becomes the cached directory only when complete."""
    final = engine_dir(key)
    temporary = final.with_name(f".{final.name}.partial")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save(temporary)
    (temporary / "llem-build-inputs.json").write_text(
        json.dumps(inputs, sort_keys=True, indent=1, default=str), encoding="utf-8"
    )
    (temporary / MARKER).write_text("", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    temporary.rename(final)
    return final
