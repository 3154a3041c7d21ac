"""Run a campaign's experiments as Ray tasks: several at once, across every GPU of a cluster.

Each (experiment, cycle) is one task on a fresh worker process (``max_calls=1``: nothing is left
over from the previous experiment), asking Ray for the experiment's GPUs so no two share one.
The worker measures into a private temporary directory and returns the result; the driver (the
process running the campaign) alone writes it into the campaign directory, exactly as the local
executors would. So workers need no shared filesystem, and a worker that outlives a killed
driver can never write into the campaign.

Ray never retries a task (``max_retries=0``): a lost worker or node is reported as
``interrupted`` and the experiment reruns on ``--resume``; the runner decides, not Ray.
Node-wide energy sources (RAPL, CodeCarbon, the estimate) are kept alone on their machine by
``measurement/host_lock.py``, which every experiment takes, whatever its executor.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path
from typing import Any

from llenergymeasure.config.campaign_config import RayConfig
from llenergymeasure.exceptions import LLEMError, ResultWriteError, UnavailableError
from llenergymeasure.log import logger
from llenergymeasure.orchestration.executors.base import (
    TRACEBACK_MARK,
    ExecutionOutcome,
    ExperimentTask,
    describe_error,
)

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray binds every server to the node's routable address (all interfaces) even when told
127.0.0.1; with this set to ``0`` before ``import ray`` it keeps them on loopback. Set for
``address: local`` and loopback addresses, so a single-machine cluster is never reachable from
the network."""

LOST = (
    "WorkerCrashedError",
    "NodeDiedError",
    "ActorDiedError",
    "ObjectLostError",
    "OwnerDiedError",
    "LocalRayletDiedError",
    "ObjectFetchTimedOutError",
)
"""Ray errors meaning the experiment's process or node went away (not that it failed)."""


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why ``host:port`` takes no connection (None: it does). Ray itself would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None  # not host:port: let Ray resolve it
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except OSError as error:
        return error.strerror or str(error)


def _cannot_reach(address: str, problem: str) -> UnavailableError:
    return UnavailableError(
        f"cannot reach the Ray cluster at {address!r}: {problem}",
        where="execution.ray.address",
        fix="start it first (`ray start --head --port=6379` on the head node, see the README), "
        "or use address: local for a cluster on this machine alone",
    )


def gpus_for(config: dict[str, Any], setting: int | str, cluster_gpus: float) -> int:
    """GPUs one experiment asks for: the setting, or (auto) its tensor x pipeline parallel size
    on a cluster with GPUs and 0 on one without."""
    if setting != "auto":
        return int(setting)
    if cluster_gpus <= 0:
        return 0
    backend = config.get("backend", "pytorch")
    section = config.get(backend) or {}
    if backend == "vllm":
        return int(section.get("tensor_parallel_size", 1)) * int(
            section.get("pipeline_parallel_size", 1)
        )
    if backend == "tensorrt":
        return int(section.get("tp_size", 1)) * int(section.get("pp_size", 1))
    return 1


def run_on_worker(config: dict[str, Any], exp_id: str) -> dict[str, Any]:
    """The Ray task: measure one experiment here, return its result (and time series) and
    where it ran. Nothing is written outside a temporary directory."""
    import tempfile

    import ray

    from llenergymeasure.config.models import ExperimentConfig
    from llenergymeasure.measurement.harness import run_experiment

    with tempfile.TemporaryDirectory(prefix="llem-ray-") as scratch:
        result = run_experiment(
            ExperimentConfig.model_validate(config), Path(scratch), experiment_id=exp_id
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
        "ray_gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device_uuids": [d["uuid"] for d in result.model.get("devices", []) if d.get("uuid")],
    }
    result = result.model_copy(
        update={"environment": {**result.environment, "placement": placement}}
    )
    return {"result": result.model_dump(mode="json"), "timeseries_csv": series}


class RayExecutor:
    """Up to ``slots`` experiments in flight on a Ray cluster (see the module docstring)."""

    name = "ray"

    def __init__(self, *, config: RayConfig | None = None, timeout_s: float | None = None) -> None:
        self.config = config or RayConfig()
        self.timeout_s = timeout_s
        self._ray = self._connect()
        resources = self._ray.cluster_resources()
        self.cluster_gpus = float(resources.get("GPU", 0.0))
        cpus = float(resources.get("CPU", 1.0))
        wide = (
            self.cluster_gpus if self.cluster_gpus > 0 else cpus / self.config.cpus_per_experiment
        )
        self.slots = self.config.max_parallel or max(1, int(wide))
        self._task = self._ray.remote(max_calls=1, max_retries=0)(run_on_worker)
        self._in_flight: dict[Any, tuple[ExperimentTask, float]] = {}
        logger.info(
            "ray: {} ({:g} CPU, {:g} GPU), up to {} experiment(s) at once",
            self.config.address,
            cpus,
            self.cluster_gpus,
            self.slots,
        )

    def _connect(self) -> Any:
        address = self.config.address
        if address == "local" or _is_loopback(address):
            os.environ.setdefault(LOOPBACK_ENV, "0")
        try:
            import ray
        except ImportError:
            raise UnavailableError(
                "execution.executor: ray needs the ray package, which is not installed",
                where="execution.executor",
                fix='pip install "llenergymeasure[ray]", or use executor: inprocess',
            ) from None
        if ray.is_initialized():
            return ray
        problem = None if address in ("local", "auto") else _unreachable(address)
        if problem is not None:
            raise _cannot_reach(address, problem)
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": "WARNING"}
        try:
            if address == "local":
                ray.init(include_dashboard=False, **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            causes = f"{error} {error.__cause__ or ''} {os.environ.get('RAY_AUTH_MODE')}"
            if "InvalidAuthToken" in causes or "Authentication" in causes:
                raise UnavailableError(
                    f"the Ray cluster at {address!r} refused this process's authentication",
                    where="execution.ray.address",
                    fix="the cluster uses token authentication: export RAY_AUTH_MODE=token, with "
                    "the cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token",
                ) from None
            raise _cannot_reach(address, str(error)) from None
        return ray

    def submit(self, task: ExperimentTask) -> None:
        gpus = gpus_for(task.config, self.config.gpus_per_experiment, self.cluster_gpus)
        ref = self._task.options(
            num_gpus=gpus, num_cpus=self.config.cpus_per_experiment, name=task.exp_id
        ).remote(task.config, task.exp_id)
        self._in_flight[ref] = (task, time.monotonic())

    def wait(self, timeout_s: float) -> list[tuple[ExperimentTask, ExecutionOutcome]]:
        if not self._in_flight:
            return []
        ready, _ = self._ray.wait(list(self._in_flight), num_returns=1, timeout=timeout_s)
        ended = []
        for ref in ready:
            task, _ = self._in_flight.pop(ref)
            ended.append((task, self._collect(ref, task)))
        if self.timeout_s is not None:
            now = time.monotonic()
            for ref, (task, submitted) in list(self._in_flight.items()):
                if now - submitted > self.timeout_s:
                    self._ray.cancel(ref, force=True)
                    del self._in_flight[ref]
                    error = (
                        f"timed out after {self.timeout_s:g} s "
                        "(execution.experiment_timeout_seconds); its Ray task was killed"
                    )
                    ended.append((task, ExecutionOutcome("failed", error=error, timed_out=True)))
        return ended

    def _collect(self, ref: Any, task: ExperimentTask) -> ExecutionOutcome:
        """The outcome of a finished task: its result written by this process, or why not."""
        from llenergymeasure.results.schema import ExperimentResult

        try:
            payload = self._ray.get(ref)
        except Exception as error:
            return self._failure(error)
        result = ExperimentResult.model_validate(payload["result"])
        try:
            path = result.save(
                task.output_dir / task.exp_id, timeseries_csv=payload.get("timeseries_csv")
            )
        except ResultWriteError as error:
            return ExecutionOutcome("failed", error=error.render(), fatal=True)
        return ExecutionOutcome("completed", result_path=path, result=result)

    def _failure(self, error: Exception) -> ExecutionOutcome:
        kind = type(error).__name__
        if kind in LOST:
            return ExecutionOutcome(
                "interrupted",
                error=f"its Ray worker or node was lost ({kind}: {error}); --resume runs it again",
            )
        cause = getattr(error, "cause", None)
        if isinstance(cause, LLEMError):
            return ExecutionOutcome("failed", error=cause.render())
        if cause is not None and kind.startswith("RayTaskError"):
            return ExecutionOutcome(
                "failed",
                error=f"{type(cause).__name__}: {cause}\n{TRACEBACK_MARK} (ray worker)\n{error}",
            )
        return ExecutionOutcome("failed", error=describe_error(error))

    def close(self) -> None:
        """Cancel whatever is in flight (its worker killed), then leave the cluster (a local
        one started here stops with it)."""
        for ref in list(self._in_flight):
            try:
                self._ray.cancel(ref, force=True)
            except Exception as error:  # closing must go on
                logger.debug("cancelling a ray task failed: {}", error)
        self._in_flight.clear()
        if self._ray.is_initialized():
            self._ray.shutdown()
