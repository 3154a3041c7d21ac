"""vLLM through the harness with one engine pool for the module: traffic, and reuse by load key.

Other modules build their own engines, and an in-process engine is torn down before another
is built, so the pool lives only as long as this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement.harness import ModelPool, run_experiment

from .test_end_to_end import FAST

pytestmark = pytest.mark.slow


def experiment(**extra: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**FAST, **extra})


@pytest.fixture(scope="module")
def pool(vllm_module: Any, one_thread: None) -> Iterator[ModelPool]:
    with ModelPool(reuse=True) as models:
        yield models


@pytest.mark.parametrize(
    "traffic",
    [
        {"mode": "constant", "target_qps": 40.0},
        {"mode": "poisson", "target_qps": 40.0},
        {"mode": "bursty", "burst_size": 3, "burst_interval_s": 0.1},
    ],
)
def test_traffic_requests_arrive_on_schedule(
    traffic: dict[str, Any], pool: ModelPool, tmp_path: Path
) -> None:
    result = run_experiment(experiment(traffic=traffic, streaming=True), tmp_path, models=pool)
    metrics, passes = result.metrics, result.timings.measured_passes
    assert metrics.num_requests == 6 * passes
    if traffic["mode"] != "poisson":  # a seeded poisson schedule may span less than 0.1 s
        # six requests arrive over >= 0.1 s, so each pass lasts at least that long
        assert metrics.measured_window_s >= 0.1 * passes
    assert metrics.ttft_from_arrival_s is not None
    assert metrics.ttft_from_arrival_s.count == 6 * passes


def test_one_engine_serves_consecutive_experiments_with_one_load_key(
    pool: ModelPool, tmp_path: Path
) -> None:
    run_experiment(experiment(), tmp_path, models=pool)
    engine = pool.acquire(experiment())[0]
    same_key = run_experiment(experiment(max_output_tokens=3), tmp_path, models=pool)
    assert same_key.timings.model_reused and same_key.timings.model_load_s == 0.0
    assert same_key.metrics.output_tokens <= 3 * same_key.metrics.num_requests
    assert pool.acquire(experiment())[0] is engine
    other = run_experiment(experiment(vllm={"max_num_seqs": 2}), tmp_path, models=pool)
    assert not other.timings.model_reused and other.timings.model_load_s > 0
    back = run_experiment(experiment(), tmp_path, models=pool)
    assert not back.timings.model_reused  # the first engine was torn down for the second
