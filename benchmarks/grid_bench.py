"""Grid expansion + validation cost, relative to bare pydantic validation, and streaming memory.

Prints ratios measured side by side in one run (this machine is shared and noisy):
  ratio = (expand + validate, with names, hashes and dedup) / (bare ExperimentConfig.model_validate
          loop over the same dicts)       target <= 1.5
  peak RSS growth while streaming 1,000,000 configs through iter_campaign_grid   target < 100 MB
and, for reference, the ratio for validating the already expanded list of dicts (the path any
iterable of dicts takes; the lazy grid itself is validated from its axis choices). Then, as
`llem campaign validate` does it (load the file + plan), per point:
  the predecessor's explicit thesis list of 4,224 experiments (1.6 MB, no aliases, read through
  the YAML guard; tests/config/thesis_file.py) / a grid file of the same points   target <= 3
  (each side's fastest run: on a shared machine the pair ratios scatter widely)
  a grid with linked axes, groups and exclude entries / a plain grid of the same points (no
  target; says what the v2 constructs cost)

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
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.config.loader import load_campaign_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.orchestration.campaign.experiments import plan_campaign
from llenergymeasure.orchestration.grid import (
    count_campaign_grid,
    expand_campaign_grid,
    iter_campaign_grid,
    validate_campaign_grid,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the thesis file is the YAML guard test's
from tests.config.thesis_file import AXES, FIXED, thesis_text  # noqa: E402

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

    with tempfile.TemporaryDirectory() as tmp:
        campaign_files(Path(tmp), args.repeats)


# --- campaign files, as `llem campaign validate` reads them --------------------------------

EXPLICIT_AXES: dict[str, list[Any]] = {  # 3 x 11 x 4 x 32 = 4,224 points
    "fp_precision": ["float32", "float16", "bfloat16"],
    "pytorch.batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    "max_output_tokens": [16, 32, 64, 128],
    "random_seed": list(range(32)),
}
HEADER = (
    "campaign_name: bench\nbase_config:\n  model: builtin:tiny-gpt2\n  max_output_tokens: 64\n"
    "  dataset: {name: builtin:prompts, num_prompts: 32}\n  warmup: {max_prompts: 3072}\n"
)


def _flow(mapping: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"


def thesis_grid_text() -> str:
    """The 4,224 points of the predecessor's thesis file (tests/config/thesis_file.py) as a
    grid: its fixed values as the base, its axes as grid axes."""
    base = "".join(
        f"  {key}: {str(value).lower() if isinstance(value, bool) else value}\n"
        for key, value in FIXED.items()
        if "." not in key
    )
    sections: dict[str, dict[str, Any]] = {}
    for key, value in FIXED.items():
        if "." in key:
            head, _, rest = key.partition(".")
            sections.setdefault(head, {})[rest] = value
    base += "".join(f"  {head}: {_flow(values)}\n" for head, values in sections.items())
    shared = "".join(
        f"    {key}: {values}\n"
        for key, values in AXES.items()
        if key not in ("model.name", "pytorch.batch_size")
    )
    return (
        (
            f"campaign_name: thesis\nbase_config:\n{base}grid:\n"
            f"  models: {AXES['model.name']}\n  shared:\n{shared}"
            f"  backend_overrides:\n    pytorch:\n      batch_size: {AXES['pytorch.batch_size']}\n"
        )
        .replace("True", "true")
        .replace("False", "false")
    )


def write_campaigns(directory: Path) -> dict[str, Path]:
    """The predecessor's 4,224-entry explicit thesis file (1.6 MB, read through the YAML
    guard) and a grid of the same points; a grid v2 (linked axis + exclude entries + two
    groups) and the plain grid of its points."""
    batch = EXPLICIT_AXES["pytorch.batch_size"]
    grid = (
        HEADER + "grid:\n  shared:\n"
        f"    fp_precision: {EXPLICIT_AXES['fp_precision']}\n"
        f"    max_output_tokens: {EXPLICIT_AXES['max_output_tokens']}\n"
        f"    random_seed: {EXPLICIT_AXES['random_seed']}\n"
        f"  backend_overrides:\n    pytorch:\n      batch_size: {batch}\n"
    )
    # the same points as a grid v2: precision as a linked axis, the seeds split into two
    # groups, and a batch size added only to be excluded again
    linked = "\n".join(
        f"      - {{fp_precision: {p}, max_input_tokens: 512}}"
        for p in EXPLICIT_AXES["fp_precision"]
    )
    v2 = (
        HEADER + "grid:\n  shared:\n"
        f"    max_output_tokens: {EXPLICIT_AXES['max_output_tokens']}\n"
        f"  linked:\n    -\n{linked}\n"
        f"  backend_overrides:\n    pytorch:\n      batch_size: {[*batch, 2048]}\n"
        "  exclude:\n    - {pytorch.batch_size: 2048}\n"
        "  groups:\n"
        f"    - {{name: low, shared: {{random_seed: {list(range(16))}}}}}\n"
        f"    - {{name: high, shared: {{random_seed: {list(range(16, 32))}}}}}\n"
    )
    plain_same = (  # the v2 grid's points without the v2 constructs
        HEADER.replace("max_output_tokens: 64", "max_output_tokens: 64\n  max_input_tokens: 512")
        + grid.split(HEADER, 1)[1]
    )
    paths = {}
    for name, text in (
        ("explicit", thesis_text()),
        ("grid", thesis_grid_text()),
        ("v2", v2),
        ("plain", plain_same),
    ):
        paths[name] = directory / f"{name}.yaml"
        paths[name].write_text(text, encoding="utf-8")
    return paths


def _validate_file(path: Path) -> float:
    """CPU seconds of load + plan: what `llem campaign validate` spends."""
    start = time.process_time()
    campaign = load_campaign_config(path)
    result = plan_campaign(campaign, path)
    elapsed = time.process_time() - start
    del result
    return elapsed


def campaign_files(directory: Path, repeats: int) -> None:
    paths = write_campaigns(directory)
    for path in paths.values():
        _validate_file(path)  # warm: imports, introspection caches
    counts = {}
    for name, path in paths.items():
        result = plan_campaign(load_campaign_config(path), path)
        counts[name] = result.tally.total  # points validated (excluded ones are not)
    print(f"campaign files (points): {counts}")

    def paired(a: Path, b: Path) -> tuple[float, float]:
        """(each side's fastest run, per point, as a ratio; median of back-to-back pair ratios)."""
        times: dict[Path, list[float]] = {a: [], b: []}
        ratios = []
        for repeat in range(repeats):  # alternating who goes first
            gc.collect()
            order = (b, a) if repeat % 2 else (a, b)
            for path in order:
                times[path].append(_validate_file(path) / counts[path.stem])
            ratios.append(times[a][-1] / times[b][-1])
        return min(times[a]) / min(times[b]), statistics.median(ratios)

    best, median = paired(paths["explicit"], paths["grid"])
    print(
        f"validate an explicit list of {counts['explicit']:,} / a grid of the same points, per "
        f"point: ratio {best:.2f} (target <= 3; each side's fastest of {repeats} alternated "
        f"runs, the one least disturbed by other load; median of pair ratios {median:.2f})"
    )
    best, median = paired(paths["v2"], paths["plain"])
    print(
        f"validate a grid with linked axes, exclude and groups / the plain grid of its points, "
        f"per point: ratio {best:.2f} (no target; median of pair ratios {median:.2f})"
    )


if __name__ == "__main__":
    main()
