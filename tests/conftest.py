"""Fixtures shared across the test folders."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from loguru import logger


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[..., Path]:
    """Write dedented YAML text to tmp_path/NAME and return the path."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI callback reconfigures loguru for the process; restore loguru's default after."""
    yield
    logger.remove()
    logger.add(sys.stderr)
    logger.disable("llenergymeasure")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built ``builtin:tiny-gpt2`` directory, inside a session-wide test cache."""
    from llenergymeasure.measurement.models.builtin import ensure_builtin

    root = tmp_path_factory.getbasetemp() / "llem-test-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLEM_CACHE_DIR", str(root))
        return ensure_builtin("builtin:tiny-gpt2")


@pytest.fixture
def offline_model_cache(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Iterator[Path]:
    """LLEM_CACHE_DIR -> the session test cache (model built once); the Hub in offline mode.

    No test touches the user's real cache or the network.
    """
    root = tiny_model_dir.parent.parent
    monkeypatch.setenv("LLEM_CACHE_DIR", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    try:
        from huggingface_hub import constants
    except ImportError:
        pass
    else:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    yield root
