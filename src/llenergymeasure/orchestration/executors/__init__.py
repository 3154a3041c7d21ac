"""Executors: where an experiment runs (this process, a fresh process, later a cluster)."""

from __future__ import annotations

from llenergymeasure.orchestration.executors.base import (
    ExecutionOutcome,
    Executor,
    ExperimentTask,
)

EXECUTORS = {
    "inprocess": "llenergymeasure.orchestration.executors.inprocess:InProcessExecutor",
    "subprocess": "llenergymeasure.orchestration.executors.subprocess:SubprocessExecutor",
}
"""Executor name -> ``module:Class``; imported only when chosen."""


def create_executor(name: str, **options: object) -> Executor:
    """Instantiate the named executor (options go to its constructor)."""
    import importlib

    try:
        target = EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; choose one of {sorted(EXECUTORS)}") from None
    module, _, cls = target.partition(":")
    executor: Executor = getattr(importlib.import_module(module), cls)(**options)
    return executor


__all__ = ["EXECUTORS", "ExecutionOutcome", "Executor", "ExperimentTask", "create_executor"]
