from __future__ import annotations

import pytest

from llenergymeasure.measurement.energy import clear_probe_caches, nvml


@pytest.fixture(autouse=True)
def _isolated_energy_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No test sees the host's GPU selection, writes to the real cache, or a stale probe."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path_factory.mktemp("llem-cache")))
    # fakes whose counter stands still would make every source wait out the full probe
    monkeypatch.setattr(nvml, "PERIOD_PROBE_TIMEOUT_S", 0.05)
    clear_probe_caches()
    yield
    clear_probe_caches()
