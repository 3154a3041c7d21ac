"""Fixtures for the campaign tests: the built-in model in a session cache, offline Hub, quiet
logging restored after every CLI call."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built ``builtin:tiny-gpt2`` directory, inside a session-wide test cache."""
    from llenergymeasure.measurement.models.builtin import ensure_builtin

    root = tmp_path_factory.getbasetemp() / "llem-test-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLEM_CACHE_DIR", str(root))
        return ensure_builtin("builtin:tiny-gpt2")


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """LLEM_CACHE_DIR -> the session test cache; no network; no host GPU selection."""
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "llem-test-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield
    logger.remove()
    logger.add(sys.stderr)
    logger.disable("llenergymeasure")
