"""What the backend is asked, and when: prompts grouped into batches, and the arrival times a
traffic pattern gives them. Warmup and the measured window share it."""

from __future__ import annotations

import random

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement.inference.base import plan_batches


def request_batches(
    config: ExperimentConfig, lengths: list[int], *, self_scheduling: bool = False
) -> list[list[int]]:
    """Indices of the prompts (by their ``lengths``) in each call to the backend."""
    if self_scheduling:  # the engine batches; warmup needs several groups to judge steadiness
        return plan_batches(lengths, warmup_group_size(config))
    section = config.pytorch
    if config.streaming:  # one request at a time, so each is timed per token
        return [[i] for i in range(len(lengths))]
    size = section.batch_size if section is not None else len(lengths)
    strategy = section.batching_strategy if section is not None else "static"
    if config.traffic.mode != "none":
        strategy = "static"  # requests are served in arrival order
    return plan_batches(lengths, size, strategy)


def warmup_group_size(config: ExperimentConfig) -> int:
    """Prompts per warmup call for an engine that schedules its own batches: a group of
    ``max_prompts / (2 x window_size)``, so steadiness is judged on at least two windows."""
    warmup = config.warmup
    return max(1, warmup.prompt_limit // (2 * warmup.window_size))


def arrival_offsets_s(config: ExperimentConfig, count: int) -> list[float] | None:
    """Seconds after the window opens at which each request arrives; None without traffic."""
    traffic = config.traffic
    if traffic.mode == "bursty" and traffic.burst_size and traffic.burst_interval_s:
        return [(i // traffic.burst_size) * traffic.burst_interval_s for i in range(count)]
    if traffic.mode == "none" or traffic.target_qps is None:
        return None
    if traffic.mode == "constant":
        return [i / traffic.target_qps for i in range(count)]
    rng = random.Random(config.random_seed)
    offsets, t = [], 0.0
    for _ in range(count):
        offsets.append(t)
        t += rng.expovariate(traffic.target_qps)
    return offsets
