"""Which Ray worker the ray executor gives each experiment, against a scripted stand-in for Ray
(no cluster): warm workers per (model-load key, GPUs), replaced after a failure, a lost worker
or a timeout, retired to make room, and cold starts under force_cold_start.

The real cluster (PIDs, a killed worker, resume) is in test_ray.py."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.campaign_config import RayConfig
from llenergymeasure.orchestration.executors.base import ExperimentTask
from llenergymeasure.orchestration.executors.ray import RayExecutor, gpus_for

from .helpers import make_result


class ActorDiedError(Exception):
    """Named as Ray names a worker process that died."""


class _Ref:
    def __init__(self, outcome: Any, *, done: bool = True) -> None:
        self.outcome, self.done = outcome, done


class _Handle:
    """A fake actor: its ``measure`` runs at once (or never: ``hang``)."""

    def __init__(self, fake: FakeRay, options: dict[str, Any]) -> None:
        self.fake, self.options = fake, options
        self.number = next(fake.numbers)
        self.alive = True
        self.measure = _Method(self)


class _Method:
    def __init__(self, handle: _Handle) -> None:
        self.handle = handle

    def remote(self, config: dict[str, Any], exp_id: str) -> _Ref:
        assert self.handle.alive, "a killed worker was given an experiment"
        self.handle.fake.calls.append((self.handle.number, exp_id))
        return self.handle.fake.outcome(config, exp_id)


class _Remote:
    """``ray.remote(...)(target)``, and its ``.options(...)``."""

    def __init__(self, fake: FakeRay, target: Any, options: dict[str, Any]) -> None:
        self.fake, self.target, self.given = fake, target, options

    def options(self, **options: Any) -> _Remote:
        return _Remote(self.fake, self.target, {**self.given, **options})

    def remote(self, *args: Any) -> Any:
        options = self.given
        if isinstance(self.target, type):  # an actor class
            handle = _Handle(self.fake, options)
            self.fake.actors.append(handle)
            return handle
        self.fake.tasks.append(options)
        return self.fake.outcome(*args)


class FakeRay:
    """Enough of the ``ray`` module for the executor; ``script[exp_id]`` says what a call does:
    an exception to raise, or ``"hang"``; anything else completes."""

    def __init__(self, tmp_path: Path, *, gpus: float = 2, cpus: float = 2) -> None:
        self.resources = {"GPU": gpus, "CPU": cpus}
        self.tmp_path = tmp_path
        self.script: dict[str, Any] = {}
        self.numbers = itertools.count(1)
        self.actors: list[_Handle] = []
        self.tasks: list[dict[str, Any]] = []
        self.calls: list[tuple[int, str]] = []
        self.cancelled: list[_Ref] = []

    def outcome(self, config: dict[str, Any], exp_id: str) -> _Ref:
        what = self.script.get(exp_id)
        if what == "hang":
            return _Ref(None, done=False)
        if isinstance(what, Exception):
            return _Ref(what)
        result = make_result(exp_id, exp_id, "h" * 16)
        return _Ref({"result": result.model_dump(mode="json"), "timeseries_csv": None})

    def cluster_resources(self) -> dict[str, float]:
        return dict(self.resources)

    def remote(self, **decorator: Any) -> Any:
        return lambda target: _Remote(self, target, decorator)

    def wait(self, refs: list[_Ref], *, num_returns: int, timeout: float) -> Any:
        ready = [r for r in refs if r.done][:num_returns]
        return ready, [r for r in refs if r not in ready]

    def get(self, ref: _Ref) -> Any:
        if isinstance(ref.outcome, Exception):
            raise ref.outcome
        return ref.outcome

    def kill(self, handle: _Handle, *, no_restart: bool) -> None:
        assert no_restart
        handle.alive = False

    def cancel(self, ref: _Ref, *, force: bool) -> None:
        self.cancelled.append(ref)

    def is_initialized(self) -> bool:
        return True

    def shutdown(self) -> None:
        """Nothing to leave."""

    def live(self) -> list[int]:
        return [a.number for a in self.actors if a.alive]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRay:
    stand_in = FakeRay(tmp_path)
    monkeypatch.setattr(RayExecutor, "_connect", lambda self: stand_in)
    return stand_in


def executor(**options: Any) -> RayExecutor:
    timeout_s = options.pop("timeout_s", None)
    reuse = options.pop("reuse_models", True)
    return RayExecutor(config=RayConfig(**options), timeout_s=timeout_s, reuse_models=reuse)


TINY = {"model": "builtin:tiny-gpt2", "fp_precision": "float32", "max_output_tokens": 4}


def task(fake: FakeRay, exp_id: str, **changes: Any) -> ExperimentTask:
    config = {**TINY, **changes}
    return ExperimentTask(
        exp_id=exp_id,
        name=exp_id,
        config=config,
        config_hash=str(sorted(config.items())),
        cycle=1,
        output_dir=fake.tmp_path / "out",
    )


def run_one(ray_executor: RayExecutor, one: ExperimentTask) -> str:
    ray_executor.submit(one)
    ((ended, outcome),) = ray_executor.wait(0.0)
    assert ended is one
    return outcome.status


def test_consecutive_experiments_of_one_load_key_share_one_warm_worker(fake: FakeRay) -> None:
    ray_executor = executor()
    for i, tokens in enumerate((4, 8, 16, 4)):  # max_output_tokens is not in the load key
        assert run_one(ray_executor, task(fake, f"e{i}", max_output_tokens=tokens)) == "completed"
    assert [number for number, _ in fake.calls] == [1, 1, 1, 1]
    assert fake.live() == [1] and not fake.tasks
    assert (fake.tmp_path / "out" / "e3" / "result.json").is_file()  # written by the driver
    ray_executor.close()
    assert fake.live() == []


def test_other_load_keys_and_gpu_sets_get_other_workers(fake: FakeRay) -> None:
    ray_executor = executor()
    run_one(ray_executor, task(fake, "f32"))
    run_one(ray_executor, task(fake, "f16", fp_precision="float16"))  # another load key
    run_one(ray_executor, task(fake, "f32-again", max_output_tokens=8))
    assert fake.calls == [(1, "f32"), (2, "f16"), (1, "f32-again")]  # both kept warm: room

    ray_executor.submit(task(fake, "a", max_output_tokens=2))
    ray_executor.submit(task(fake, "b", max_output_tokens=3))  # same key, while a runs
    ray_executor.wait(0.0)
    ray_executor.wait(0.0)
    (first, _), (second, _) = fake.calls[-2:]
    assert first != second  # two in flight: two workers, each its own GPU
    assert all(a.options["num_gpus"] == 1 for a in fake.actors)


def test_a_worker_reserves_the_experiments_gpus_as_tasks_did(fake: FakeRay) -> None:
    ray_executor = executor(cpus_per_experiment=0.5)
    run_one(ray_executor, task(fake, "tp2", backend="vllm", vllm={"tensor_parallel_size": 2}))
    assert len(fake.calls) == 1
    assert fake.actors[0].options["num_gpus"] == 2 and fake.actors[0].options["num_cpus"] == 0.5
    assert fake.actors[0].options["max_restarts"] == 0


def test_an_idle_worker_of_another_key_is_retired_to_make_room(fake: FakeRay) -> None:
    ray_executor = executor(max_parallel=1)
    run_one(ray_executor, task(fake, "f32"))
    run_one(ray_executor, task(fake, "f16", fp_precision="float16"))
    assert fake.live() == [2]  # one slot: the float32 worker went before the float16 one came


def test_a_failed_experiment_gets_its_worker_killed_and_the_next_a_fresh_one(
    fake: FakeRay,
) -> None:
    ray_executor = executor()
    fake.script["bad"] = RuntimeError("CUDA out of memory")
    run_one(ray_executor, task(fake, "good"))
    ray_executor.submit(task(fake, "bad", max_output_tokens=8))
    ((_, failed),) = ray_executor.wait(0.0)
    assert failed.status == "failed" and "CUDA out of memory" in (failed.error or "")
    assert fake.live() == []  # the worker whose call failed is gone
    run_one(ray_executor, task(fake, "after"))
    assert [number for number, _ in fake.calls] == [1, 1, 2]


def test_a_lost_worker_is_interrupted_and_replaced(fake: FakeRay) -> None:
    ray_executor = executor()
    fake.script["killed"] = ActorDiedError("the actor died unexpectedly")
    assert run_one(ray_executor, task(fake, "killed")) == "interrupted"
    assert run_one(ray_executor, task(fake, "next")) == "completed"
    assert [number for number, _ in fake.calls] == [1, 2]


def test_a_timed_out_experiment_gets_its_worker_killed(fake: FakeRay) -> None:
    ray_executor = executor(timeout_s=0.0)
    fake.script["slow"] = "hang"
    ray_executor.submit(task(fake, "slow"))
    ((_, outcome),) = ray_executor.wait(0.0)
    assert outcome.status == "failed" and outcome.timed_out
    assert "its Ray worker was killed" in (outcome.error or "")
    assert fake.live() == []


def test_force_cold_start_runs_each_experiment_as_a_task_on_a_fresh_process(
    fake: FakeRay,
) -> None:
    ray_executor = executor(reuse_models=False)
    for name in ("one", "two"):
        assert run_one(ray_executor, task(fake, name)) == "completed"
    assert not fake.actors
    assert [(t["max_calls"], t["name"]) for t in fake.tasks] == [(1, "one"), (1, "two")]


def test_close_kills_every_worker_and_what_is_in_flight(fake: FakeRay) -> None:
    ray_executor = executor()
    fake.script["stuck"] = "hang"
    run_one(ray_executor, task(fake, "done"))
    ray_executor.submit(task(fake, "stuck", fp_precision="float16"))
    assert len(fake.live()) == 2
    ray_executor.close()
    assert fake.live() == []


@pytest.mark.parametrize(
    ("config", "setting", "cluster_gpus", "expected"),
    [
        (
            {"backend": "vllm", "vllm": {"tensor_parallel_size": 2, "pipeline_parallel_size": 2}},
            "auto",
            8,
            4,
        ),
        ({"backend": "vllm"}, "auto", 8, 1),
        ({"backend": "tensorrt", "tensorrt": {"tp_size": 4}}, "auto", 8, 4),
        ({"backend": "pytorch", "pytorch": {"batch_size": 8}}, "auto", 8, 1),
        ({"backend": "vllm", "vllm": {"tensor_parallel_size": 2}}, "auto", 0, 0),
        ({"backend": "vllm", "vllm": {"tensor_parallel_size": 2}}, 3, 8, 3),
    ],
)
def test_gpus_per_experiment_follow_the_backends_parallel_sizes(
    config: dict[str, Any], setting: int | str, cluster_gpus: float, expected: int
) -> None:
    assert gpus_for(config, setting, cluster_gpus) == expected
