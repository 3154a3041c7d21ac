"""Fixtures shared by the model, dataset and inference tests (the same file in each folder).

The built-in model is built once per test session into the session's temp directory (every
copy of this fixture finds it there); no test touches the user's real cache or the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llenergymeasure.measurement.models.builtin import ensure_builtin


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built ``builtin:tiny-gpt2`` directory, inside a session-wide test cache."""
    root = tmp_path_factory.getbasetemp() / "llem-test-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLEM_CACHE_DIR", str(root))
        return ensure_builtin("builtin:tiny-gpt2")


@pytest.fixture(autouse=True)
def _isolated_cache_and_offline(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> Iterator[None]:
    """LLEM_CACHE_DIR -> the session test cache; the Hugging Face Hub in offline mode."""
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tiny_model_dir.parent.parent))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    try:
        from huggingface_hub import constants
    except ImportError:
        pass
    else:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    yield
