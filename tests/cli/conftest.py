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
