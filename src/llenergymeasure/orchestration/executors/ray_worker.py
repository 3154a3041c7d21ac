"""What runs on a Ray worker: one experiment measured into a private scratch directory, its
result (and time series) sent back to the driver, which alone writes into the campaign.

Two kinds of worker run it:

- :class:`ExperimentActor`, a warm worker: one process that keeps its imports and a
  :class:`~llenergymeasure.measurement.harness.ModelPool` between experiments, so consecutive
  experiments sharing a model-load key reuse the loaded model exactly as the in-process executor
  does (``ModelPool.acquire`` re-applies each experiment's settings; every generation seeds
  from its own config). The driver never hands it another experiment after a call that failed.
- :func:`run_on_worker`, a cold start (``cold_start.force_cold_start``): a Ray task on a fresh
  process per experiment (``max_calls=1``), nothing left over from the previous one.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any


def _measure_here(
    config: dict[str, Any], exp_id: str, *, models: Any = None, runs: int = 1
) -> dict[str, Any]:
    """Measure one experiment in this worker; ``runs``: experiments this worker process has
    measured, this one included (1 for a cold start)."""
    import ray

    from llenergymeasure.config.models import ExperimentConfig
    from llenergymeasure.measurement.harness import run_experiment

    with tempfile.TemporaryDirectory(prefix="llem-ray-") as scratch:
        result = run_experiment(
            ExperimentConfig.model_validate(config),
            Path(scratch),
            experiment_id=exp_id,
            models=models,
        )
        series_file = Path(scratch) / exp_id / (result.timeseries_file or "")
        series = series_file.read_text(encoding="utf-8") if result.timeseries_file else None
    context = ray.get_runtime_context()
    placement = {
        "executor": "ray",
        "host": socket.gethostname(),
        "node_id": context.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "worker_pid": os.getpid(),
        "worker_runs": runs,
        "warm_worker": models is not None,
        "ray_gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device_uuids": [d["uuid"] for d in result.model.get("devices", []) if d.get("uuid")],
    }
    result = result.model_copy(
        update={"environment": {**result.environment, "placement": placement}}
    )
    return {"result": result.model_dump(mode="json"), "timeseries_csv": series}


def run_on_worker(config: dict[str, Any], exp_id: str) -> dict[str, Any]:
    """The cold-start Ray task: one experiment on a fresh worker process."""
    return _measure_here(config, exp_id)


class ExperimentActor:
    """A warm worker: measures experiments one after another, keeping its loaded model while
    they share its model-load key. Constructing it imports nothing (it cannot fail)."""

    def __init__(self) -> None:
        self._pool: Any = None
        self._runs = 0

    def measure(self, config: dict[str, Any], exp_id: str) -> dict[str, Any]:
        if self._pool is None:
            from llenergymeasure.measurement.harness import ModelPool

            self._pool = ModelPool(reuse=True)
        self._runs += 1
        return _measure_here(config, exp_id, models=self._pool, runs=self._runs)
