"""Run a campaign's experiments on a Ray cluster: several at once, across every GPU of a cluster.

Workers stay warm: one Ray actor per (model-load key, GPU count) keeps its imports and its
loaded model between the experiments it serves, isolated from one another exactly as the
in-process executor isolates them (``executors/ray_worker.py``). Each actor reserves the
experiment's GPUs for its lifetime, so no two experiments share one. An actor is replaced, never
reused, after a call that failed or timed out (it is killed); an idle one is retired when its
resources are needed by an experiment of another key. Under ``cold_start.force_cold_start``
each (experiment, cycle) is instead one task on a fresh worker process (``max_calls=1``).

The worker measures into a private temporary directory and returns the result; the driver (the
process running the campaign) alone writes it into the campaign directory, exactly as the local
executors would. So workers need no shared filesystem, and a worker that outlives a killed
driver can never write into the campaign.

Ray never retries (``max_retries=0``, ``max_restarts=0``): a lost worker or node is reported as
``interrupted`` and the experiment reruns on ``--resume``; the runner decides, not Ray.
Node-wide energy sources (RAPL, CodeCarbon, the estimate) are kept alone on their machine by
``measurement/host_lock.py``, which every experiment takes, whatever its executor.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from llenergymeasure.config.backends import BACKENDS
from llenergymeasure.config.campaign_config import RayConfig
from llenergymeasure.exceptions import LLEMError, ResultWriteError, UnavailableError
from llenergymeasure.log import logger
from llenergymeasure.orchestration.executors.base import (
    TRACEBACK_MARK,
    ExecutionOutcome,
    ExperimentTask,
    describe_error,
)
from llenergymeasure.orchestration.executors.ray_worker import ExperimentActor, run_on_worker

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray binds every server to the node's routable address (all interfaces) even when told
127.0.0.1; with this set to ``0`` before ``import ray`` it keeps them on loopback. Set for
``address: local`` and loopback addresses, so a single-machine cluster is never reachable from
the network."""

LOST = (
    "WorkerCrashedError",
    "NodeDiedError",
    "ActorDiedError",
    "RayActorError",
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
    backend = str(config.get("backend", "pytorch"))
    spec = BACKENDS.get(backend)
    return spec.gpu_count(config.get(backend)) if spec is not None else 1


@dataclass(eq=False)
class _Worker:
    """A warm worker (a Ray actor) and what it holds."""

    handle: Any
    key: tuple[Any, ...]
    """(model-load key, GPUs): the experiments it may serve."""
    gpus: int
    cpus: float
    busy: bool = False
    last_used: float = 0.0


@dataclass(frozen=True)
class _InFlight:
    task: ExperimentTask
    submitted: float
    worker: _Worker | None
    """The warm worker running it; None for a cold-start task."""


class RayExecutor:
    """Up to ``slots`` experiments in flight on a Ray cluster (see the module docstring);
    ``reuse_models=False`` (``cold_start.force_cold_start``) runs each on a fresh process."""

    name = "ray"

    def __init__(
        self,
        *,
        config: RayConfig | None = None,
        timeout_s: float | None = None,
        reuse_models: bool = True,
    ) -> None:
        self.config = config or RayConfig()
        self.timeout_s = timeout_s
        self.reuse_models = reuse_models
        self._ray = self._connect()
        resources = self._ray.cluster_resources()
        self.cluster_gpus = float(resources.get("GPU", 0.0))
        self.cluster_cpus = float(resources.get("CPU", 1.0))
        wide = (
            self.cluster_gpus
            if self.cluster_gpus > 0
            else self.cluster_cpus / self.config.cpus_per_experiment
        )
        self.slots = self.config.max_parallel or max(1, int(wide))
        self._task = self._ray.remote(max_calls=1, max_retries=0)(run_on_worker)
        self._actor = self._ray.remote(max_restarts=0, max_task_retries=0)(ExperimentActor)
        self._workers: list[_Worker] = []
        self._load_keys: dict[str, tuple[Any, ...]] = {}
        self._in_flight: dict[Any, _InFlight] = {}
        logger.info(
            "ray: {} ({:g} CPU, {:g} GPU), up to {} experiment(s) at once, {}",
            self.config.address,
            self.cluster_cpus,
            self.cluster_gpus,
            self.slots,
            "warm workers (one per model and GPU count)"
            if reuse_models
            else "a fresh worker per experiment (force_cold_start)",
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
        cpus = self.config.cpus_per_experiment
        if not self.reuse_models:
            ref = self._task.options(num_gpus=gpus, num_cpus=cpus, name=task.exp_id).remote(
                task.config, task.exp_id
            )
            self._in_flight[ref] = _InFlight(task, time.monotonic(), None)
            return
        worker = self._worker_for(task, gpus, cpus)
        worker.busy = True
        ref = worker.handle.measure.remote(task.config, task.exp_id)
        self._in_flight[ref] = _InFlight(task, time.monotonic(), worker)

    def _load_key(self, task: ExperimentTask) -> tuple[Any, ...]:
        """The task's model-load key (computed once per config)."""
        key = self._load_keys.get(task.config_hash)
        if key is None:
            from llenergymeasure.config.introspection import model_load_key
            from llenergymeasure.config.models import ExperimentConfig

            key = model_load_key(ExperimentConfig.model_validate(task.config))
            self._load_keys[task.config_hash] = key
        return key

    def _worker_for(self, task: ExperimentTask, gpus: int, cpus: float) -> _Worker:
        """An idle warm worker of the task's key (the one used last), else a new one, retiring
        idle workers of other keys (least recently used first) to make room for it."""
        key = (self._load_key(task), gpus)
        idle = sorted((w for w in self._workers if not w.busy), key=lambda w: w.last_used)
        for worker in reversed(idle):
            if worker.key == key:
                return worker
        while idle and not self._room_for(gpus, cpus):
            self._retire(idle.pop(0))
        handle = self._actor.options(num_gpus=gpus, num_cpus=cpus).remote()
        worker = _Worker(handle, key, gpus, cpus)
        self._workers.append(worker)
        return worker

    def _room_for(self, gpus: int, cpus: float) -> bool:
        """Whether one more worker fits beside the live ones (each holds its reservation while
        it lives, idle or not)."""
        held_gpus = sum(w.gpus for w in self._workers)
        held_cpus = sum(w.cpus for w in self._workers)
        return (
            len(self._workers) < self.slots
            and held_gpus + gpus <= self.cluster_gpus + 1e-9
            and held_cpus + cpus <= self.cluster_cpus + 1e-9
        )

    def _retire(self, worker: _Worker) -> None:
        """Kill a worker (its model and reservation go with it); it is never used again."""
        if worker in self._workers:
            self._workers.remove(worker)
        try:
            self._ray.kill(worker.handle, no_restart=True)
        except Exception as error:  # already gone: nothing to release
            logger.debug("killing a ray worker failed: {}", error)

    def wait(self, timeout_s: float) -> list[tuple[ExperimentTask, ExecutionOutcome]]:
        if not self._in_flight:
            return []
        ready, _ = self._ray.wait(list(self._in_flight), num_returns=1, timeout=timeout_s)
        ended = []
        for ref in ready:
            flight = self._in_flight.pop(ref)
            ended.append((flight.task, self._collect(ref, flight)))
        if self.timeout_s is not None:
            now = time.monotonic()
            for ref, flight in list(self._in_flight.items()):
                if now - flight.submitted > self.timeout_s:
                    self._stop(ref, flight)
                    del self._in_flight[ref]
                    error = (
                        f"timed out after {self.timeout_s:g} s "
                        "(execution.experiment_timeout_seconds); its Ray worker was killed"
                    )
                    ended.append(
                        (flight.task, ExecutionOutcome("failed", error=error, timed_out=True))
                    )
        return ended

    def _stop(self, ref: Any, flight: _InFlight) -> None:
        """Kill what runs ``ref``: its warm worker, or its cold task's process."""
        if flight.worker is not None:
            self._retire(flight.worker)
            return
        try:
            self._ray.cancel(ref, force=True)
        except Exception as error:  # stopping must go on
            logger.debug("cancelling a ray task failed: {}", error)

    def _collect(self, ref: Any, flight: _InFlight) -> ExecutionOutcome:
        """The outcome of a finished call: its result written by this process, or why not."""
        from llenergymeasure.results.schema import ExperimentResult

        task, worker = flight.task, flight.worker
        try:
            payload = self._ray.get(ref)
        except Exception as error:
            if worker is not None:
                self._retire(worker)  # never reuse a worker whose call failed
            return self._failure(error)
        if worker is not None:
            worker.busy, worker.last_used = False, time.monotonic()
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
        """Stop whatever is in flight (its worker killed) and every warm worker, then leave the
        cluster (a local one started here stops with it)."""
        for ref, flight in list(self._in_flight.items()):
            self._stop(ref, flight)
        self._in_flight.clear()
        for worker in list(self._workers):
            self._retire(worker)
        if self._ray.is_initialized():
            self._ray.shutdown()
