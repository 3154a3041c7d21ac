from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _offline(offline_model_cache: Path) -> None:
    """Every measurement test runs offline, on the session's built-in model cache."""
