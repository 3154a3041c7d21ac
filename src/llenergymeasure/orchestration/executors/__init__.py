"""Executors: where an experiment runs (this process, a fresh process, a Ray cluster)."""

from __future__ import annotations

from llenergymeasure.orchestration.executors.base import (
    ExecutionOutcome,
    Executor,
    ExperimentTask,
    ParallelExecutor,
)

EXECUTORS = {
    "inprocess": "llenergymeasure.orchestration.executors.inprocess:InProcessExecutor",
    "subprocess": "llenergymeasure.orchestration.executors.subprocess:SubprocessExecutor",
    "ray": "llenergymeasure.orchestration.executors.ray:RayExecutor",
}
"""Executor name -> ``module:Class``; imported only when chosen."""


def create_executor(name: str, **options: object) -> Executor | ParallelExecutor:
    """Instantiate the named executor (options go to its constructor)."""
    import importlib

    try:
        target = EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; choose one of {sorted(EXECUTORS)}") from None
    module, _, cls = target.partition(":")
    executor: Executor | ParallelExecutor = getattr(importlib.import_module(module), cls)(**options)
    return executor


__all__ = [
    "EXECUTORS",
    "ExecutionOutcome",
    "Executor",
    "ExperimentTask",
    "ParallelExecutor",
    "create_executor",
]
