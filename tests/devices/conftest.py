from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_host_gpu_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the host's GPU selection."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
