"""The seed plan's <verify> block, verbatim: binding, it must pass as written."""

from __future__ import annotations

import subprocess
import sys

# Copied verbatim from ../shared/seed/02-05-PLAN-grid-expansion.md (<verify>, `python -c "..."`).
SEED_VERIFY = """
from llenergymeasure.orchestration.grid import (
    expand_campaign_grid, validate_campaign_grid, GridExpansionResult
)
from llenergymeasure.config.campaign_config import CampaignGridConfig

# Test basic grid expansion
grid = CampaignGridConfig(
    backends=['pytorch'],
    shared={'fp_precision': ['float16', 'bfloat16']},
)
base = {'model': {'name': 'gpt2'}, 'max_output_tokens': 32}
configs = expand_campaign_grid(grid, base_config=base)
assert len(configs) == 2  # 1 backend x 2 precisions
assert all(c['backend'] == 'pytorch' for c in configs)
print(f'Basic expansion: {len(configs)} configs')

# Test multi-backend expansion
grid2 = CampaignGridConfig(
    backends=['pytorch', 'vllm'],
    shared={'fp_precision': ['float16']},
    backend_overrides={
        'pytorch': {'batch_size': [1, 4]},
        'vllm': {'max_num_seqs': [1, 4]},
    }
)
configs2 = expand_campaign_grid(grid2, base_config=base)
# pytorch: 1 precision x 2 batch_sizes = 2
# vllm: 1 precision x 2 max_num_seqs = 2
assert len(configs2) == 4
print(f'Multi-backend expansion: {len(configs2)} configs')

# Test validation (GridExpansionResult)
result = validate_campaign_grid(configs)
assert isinstance(result, GridExpansionResult)
assert result.total_generated == 2
print(f'Validation: {len(result.valid_configs)} valid, {len(result.filtered_configs)} filtered')

print('All grid tests passed')
"""


def test_seed_verify_block_passes_in_a_fresh_interpreter() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SEED_VERIFY], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "Basic expansion: 2 configs",
        "Multi-backend expansion: 4 configs",
        "Validation: 2 valid, 0 filtered",
        "All grid tests passed",
    ]


def test_seed_verify_block_passes_in_process() -> None:
    exec(compile(SEED_VERIFY, "<seed-verify>", "exec"), {"__name__": "__seed__"})
