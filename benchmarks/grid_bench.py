"""Grid expansion + validation cost, relative to bare pydantic validation, and streaming memory.

Prints ratios measured side by side in one run (this machine is shared and noisy):
  ratio = (expand + validate, with names, hashes and dedup) / (bare ExperimentConfig.model_validate
          loop over the same dicts)       target <= 1.5
  peak RSS growth while streaming 1,000,000 configs through iter_campaign_grid   target < 100 MB
and, for reference, the ratio for validating the already expanded list of dicts (the path any
iterable of dicts takes; the lazy grid itself is validated from its axis choices).

Times are CPU seconds of this process (time.process_time), which other load on a shared
machine disturbs less than wall time. Run: .venv/bin/python benchmarks/grid_bench.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.orchestration.grid import (
    count_campaign_grid,
    expand_campaign_grid,
    iter_campaign_grid,
    validate_campaign_grid,
)

BASE = {  # the base_config of examples/campaign.yaml: what a real campaign fixes
    "model": "builtin:tiny-gpt2",
    "max_input_tokens": 256,
    "max_output_tokens": 64,
    "dataset": {"name": "builtin:prompts", "num_prompts": 32},
    "baseline": {"duration_sec": 5},
    "warmup": {"max_prompts": 16},
}


def grid_20k() -> CampaignGridConfig:
    """20,000 points over two backends, with filtered combinations and hardware warnings."""
    return CampaignGridConfig(
        backends=["pytorch", "vllm"],
        shared={
            # float16 twice: those points are duplicates, reported and kept once
            "fp_precision": ["float32", "float16", "bfloat16", "float16"],
            "max_output_tokens": [16, 32, 64, 128, 256],
            "decoder.preset": ["deterministic", "standard", "creative", "factual"],
        },
        backend_overrides={
            "pytorch": {
                "batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                "attn_implementation": ["sdpa", "flash_attention_2"],
                "use_cache": [True, False],
                "torch_compile": [False, True],
                "load_in_8bit": [False, True],
            },
            "vllm": {
                "max_num_seqs": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                "gpu_memory_utilization": [0.8, 0.9, 0.95],
                "block_size": [8, 16, 32],
            },
        },
    )


def grid_1m() -> CampaignGridConfig:
    return CampaignGridConfig(
        backends=["pytorch"],
        shared={
            "max_output_tokens": list(range(1, 101)),
            "random_seed": list(range(100)),
        },
        backend_overrides={"pytorch": {"batch_size": list(range(1, 101))}},
    )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    grid = grid_20k()
    dicts = expand_campaign_grid(grid, BASE)
    print(f"grid points: {len(dicts)} (count_campaign_grid: {count_campaign_grid(grid)})")

    def time_ours(source: Callable[[], Iterable[dict[str, Any]]]) -> float:
        start = time.process_time()
        result = validate_campaign_grid(source())
        elapsed = time.process_time() - start
        del result  # freeing the result is not part of producing it
        return elapsed

    def time_bare() -> float:
        start = time.process_time()
        for config in dicts:
            # plain try/except: contextlib.suppress would slow the bare side and flatter the ratio
            try:  # noqa: SIM105
                ExperimentConfig.model_validate(config)
            except ValidationError:
                pass
        return time.process_time() - start

    def paired_ratios(source: Callable[[], Iterable[dict[str, Any]]]) -> list[float]:
        ratios = []
        for repeat in range(args.repeats):  # back-to-back pairs, alternating who goes first
            gc.collect()
            if repeat % 2:
                bare_s, ours_s = time_bare(), time_ours(source)
            else:
                ours_s, bare_s = time_ours(source), time_bare()
            ratios.append(ours_s / bare_s)
        return ratios

    # The lazy grid, as llem campaign validate and campaign runs use it: validated from its
    # axis choices, building dicts only for the points kept.
    ratios = paired_ratios(lambda: iter_campaign_grid(grid, BASE))
    result = validate_campaign_grid(iter_campaign_grid(grid, BASE))
    print(result.summary)
    print(f"per-pair ratios: {[round(r, 2) for r in ratios]}")
    print(
        f"expand+validate / bare model_validate: ratio {statistics.median(ratios):.2f} "
        f"(target <= 1.5; median of {args.repeats} back-to-back pairs)"
    )
    # For reference: the path any iterable of dicts takes (here the already expanded list).
    from_list = paired_ratios(lambda: dicts)
    print(
        f"for reference, validate the expanded list of dicts / bare: ratio "
        f"{statistics.median(from_list):.2f} (no target)"
    )
    del result
    gc.collect()

    # In a fresh process, so the peak left by the 20k run above does not hide growth.
    script = (
        "import sys; sys.path.insert(0, 'benchmarks'); import grid_bench as b; "
        "before = b.rss_mb(); n = sum(1 for _ in b.iter_campaign_grid(b.grid_1m(), b.BASE)); "
        "print(n, b.rss_mb() - before)"
    )
    n, growth = subprocess.check_output([sys.executable, "-c", script], text=True).split()
    print(f"streamed {n} configs: peak RSS growth {float(growth):.1f} MB (target < 100 MB)")


if __name__ == "__main__":
    main()
