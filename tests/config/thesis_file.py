"""A generated equivalent of the predecessor's 4,224-entry thesis campaign file: an explicit
``experiments:`` list, each entry spelling out its whole config as dotted overrides in block
style, no aliases, about 1.6 MB. Shared by the YAML guard's test and benchmarks/grid_bench.py."""

from __future__ import annotations

import itertools
from pathlib import Path

AXES = {  # 2 x 3 x 11 x 2 x 32 = 4,224 entries
    "model.name": ["builtin:tiny-gpt2", "gpt2"],
    "fp_precision": ["float32", "float16", "bfloat16"],
    "pytorch.batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    "decoder.preset": ["deterministic", "standard"],
    "random_seed": list(range(32)),
}
FIXED = {  # what every entry of the predecessor's file repeated
    "backend": "pytorch",
    "max_input_tokens": 256,
    "max_output_tokens": 64,
    "dataset.name": "builtin:prompts",
    "dataset.num_prompts": 64,
    "warmup.window_size": 3,
    "warmup.cv_threshold": 0.05,
    "baseline.duration_sec": 5.0,
    "energy.sample_interval_ms": 100.0,
    "pytorch.attn_implementation": "sdpa",
    "pytorch.use_cache": True,
    "pytorch.load_in_8bit": False,
}
ENTRIES = 4_224


def thesis_text() -> str:
    """The file's text."""
    lines = ["campaign_name: thesis\n", "experiments:\n"]
    for values in itertools.product(*AXES.values()):
        lines.append("  - overrides:\n")
        for key, value in (*zip(AXES, values, strict=True), *FIXED.items()):
            shown = str(value).lower() if isinstance(value, bool) else value
            lines.append(f"      {key}: {shown}\n")
    return "".join(lines)


def write_thesis_file(directory: Path) -> Path:
    path = directory / "campaign-thesis-4224.yaml"
    path.write_text(thesis_text(), encoding="utf-8")
    return path
