"""What the measurement harness costs, measured side by side in one run.

1. Throughput: output tokens/s inside the harness's measured window vs a bare
   ``model.generate`` loop over the same model, prompts, batches and settings, alternated
   run by run so machine noise hits both alike.   ratio = harness / bare   target >= 0.97
2. The energy sampler's own CPU cost: CPU seconds the process burns per wall second while a
   source is sampling an idle window, for the auto-selected source and for the polling thread
   used by NVML polling and time series (100 ms).

Run: .venv/bin/python benchmarks/harness_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.measurement.datasets import load_prompts
from llenergymeasure.measurement.energy import select_energy_source
from llenergymeasure.measurement.energy.base import PeriodicSampler
from llenergymeasure.measurement.harness import ModelPool, run_experiment
from llenergymeasure.measurement.inference.base import plan_batches

CONFIG = {
    "model": "builtin:tiny-gpt2",
    "fp_precision": "float32",
    "max_input_tokens": 128,
    "max_output_tokens": 32,
    "min_output_tokens": 32,  # every request generates exactly 32 tokens on both sides
    "dataset": {"name": "builtin:prompts", "num_prompts": 48},
    "pytorch": {"batch_size": 8, "batching_strategy": "sorted"},
    "baseline": {"enabled": False},
    "warmup": {"max_prompts": 8},
    "energy": {"source": "auto"},
}


def bare_tokens_per_second(backend: Any, config: ExperimentConfig) -> float:
    """The same batches through model.generate directly: no harness, no energy source."""
    import torch

    model, tokenizer = backend.model, backend.tokenizer()
    prompts = load_prompts(
        config.dataset,
        tokenizer=tokenizer,
        max_input_tokens=config.max_input_tokens,
        seed=config.random_seed,
    )
    assert config.pytorch is not None
    batches = plan_batches(
        [len(p) for p in prompts], config.pytorch.batch_size, config.pytorch.batching_strategy
    )
    kwargs = {
        "max_new_tokens": config.max_output_tokens,
        "min_new_tokens": config.min_output_tokens,
        "do_sample": False,
        "pad_token_id": tokenizer.pad_token_id,
    }
    tokens, started = 0, time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            encoded = tokenizer(
                [prompts[i] for i in batch],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=config.max_input_tokens,
            )
            torch.manual_seed(config.random_seed)
            output = model.generate(**encoded, **kwargs)
            tokens += (output.shape[1] - encoded["input_ids"].shape[1]) * len(batch)
    return tokens / (time.perf_counter() - started)


def sampler_cpu_share(start: Any, stop: Any, seconds: float = 2.0) -> float:
    """CPU seconds per wall second spent while sampling an idle window."""
    cpu, wall = time.process_time(), time.perf_counter()
    start()
    time.sleep(seconds)
    stop()
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    config = ExperimentConfig.model_validate(CONFIG)

    harness, bare = [], []
    with tempfile.TemporaryDirectory() as out, ModelPool(reuse=True) as pool:
        backend, _info, _reused = pool.acquire(config)
        for repeat in range(args.repeats):  # alternate which side goes first
            if repeat % 2:
                bare.append(bare_tokens_per_second(backend, config))
            result = run_experiment(config, Path(out), models=pool)
            harness.append(result.metrics.tokens_per_second)
            if not repeat % 2:
                bare.append(bare_tokens_per_second(backend, config))
    energy_method = f"{result.energy.source}/{result.energy.method}"
    # each pair ran back to back, so its ratio shares the machine's state
    ratios = [h / b for h, b in zip(harness, bare, strict=True)]
    print(f"harness tokens/s: {[round(x) for x in harness]}")
    print(f"bare    tokens/s: {[round(x) for x in bare]}")
    print(f"per-pair ratios: {[round(r, 3) for r in ratios]}")
    print(
        f"harness / bare tokens/s: ratio {statistics.median(ratios):.3f} (target >= 0.97; median "
        f"of {args.repeats} back-to-back pairs; energy source {energy_method})"
    )

    source = select_energy_source("auto")
    share = sampler_cpu_share(source.start, source.stop)
    print(
        f"energy source {source.name} ({source.method}): {share * 100:.2f}% of one core while sampling"
    )
    t0 = time.perf_counter()
    sampler = PeriodicSampler(lambda: None, 0.1, t0, "bench")
    share = sampler_cpu_share(sampler.start, sampler.halt)
    print(
        f"polling thread at 100 ms: {share * 100:.2f}% of one core (the NVML polling / time-series loop)"
    )


if __name__ == "__main__":
    main()
