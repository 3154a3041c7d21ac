"""Run experiments in this Python process, keeping the loaded model between experiments that
share it (unless cold starts are forced)."""

from __future__ import annotations

from typing import Any

from llenergymeasure.log import logger
from llenergymeasure.orchestration.executors.base import (
    FATAL_ERRORS,
    ExecutionOutcome,
    ExperimentTask,
    Progress,
    describe_error,
)


class InProcessExecutor:
    """The default executor: fastest, and the only one that can reuse a loaded model.

    It cannot bound an experiment's run time (a Python thread running a long native call cannot
    be stopped honestly); the runner uses :class:`SubprocessExecutor` when
    ``experiment_timeout_seconds`` is set.
    """

    name = "inprocess"

    def __init__(self, *, reuse_models: bool = True) -> None:
        self.reuse_models = reuse_models
        self._pool: Any = None

    def _models(self) -> Any:
        if self._pool is None:
            from llenergymeasure.measurement.harness import ModelPool

            self._pool = ModelPool(reuse=self.reuse_models)
        return self._pool

    def run(self, task: ExperimentTask, progress: Progress | None = None) -> ExecutionOutcome:
        from llenergymeasure.config.models import ExperimentConfig
        from llenergymeasure.measurement.harness import run_experiment

        try:
            config = ExperimentConfig.model_validate(task.config)
            result = run_experiment(
                config,
                task.output_dir,
                experiment_id=task.exp_id,
                models=self._models(),
                progress=progress,
            )
        except KeyboardInterrupt:
            self.close()  # the model may be mid-generation; never hand it out again
            raise
        except Exception as error:  # an experiment's failure is data, not a crash
            logger.opt(exception=error).debug("experiment {} failed", task.exp_id)
            self.close()  # e.g. after out-of-memory, start the next experiment clean
            return ExecutionOutcome(
                "failed",
                error=describe_error(error),
                fatal=type(error).__name__ in FATAL_ERRORS,
            )
        return ExecutionOutcome("completed", result_path=task.result_path, result=result)

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                pool.release()
            except Exception as error:  # releasing must not hide the original outcome
                logger.warning("releasing the model failed: {}", error)
