"""Report tests: the user's cache is never touched (the Vega bundle is cached per session)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "llem-test-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("COLUMNS", "200")
