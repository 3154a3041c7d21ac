"""The compact store of kept experiments: exact lookups, names unique as directory names,
configs rebuilt as they were validated."""

from __future__ import annotations

import hashlib
from typing import Any

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.files import safe_name
from llenergymeasure.orchestration.grid import (
    expand_campaign_grid,
    iter_campaign_grid,
    validate_campaign_grid,
)
from llenergymeasure.orchestration.grid_kept import KeptPoints

INFO = ("pytorch", "m", "float32", None, True, "auto")


def _digest(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


def test_find_is_exact_when_digests_share_the_table_key() -> None:
    kept = KeptPoints()
    first, second = b"A" * 8 + b"1" * 24, b"A" * 8 + b"2" * 24  # same first 8 bytes
    key = kept.name_key("one")
    assert key is not None
    kept.add(None, {"name": "one"}, first, "one", key, INFO, renamed=False)
    assert kept.find(first) == 0 and kept.find(second) is None
    key = kept.name_key("two")
    assert key is not None
    kept.add(None, {"name": "two"}, second, "two", key, INFO, renamed=False)
    assert (kept.find(first), kept.find(second)) == (0, 1)
    assert kept.find_hash(second.hex()) == 1
    assert kept.find_hash("not hex") is None and kept.find_hash("ab") is None


def test_tables_grow_past_their_first_size_and_keep_every_item() -> None:
    kept = KeptPoints()
    for i in range(5000):
        key = kept.name_key(f"n{i}")
        assert key is not None
        kept.add(None, {"name": f"n{i}"}, _digest(i), f"n{i}", key, INFO, renamed=False)
    assert all(kept.find(_digest(i)) == i for i in range(0, 5000, 7))
    assert kept.find(_digest(5000)) is None
    assert kept.name_key("n4999") is None and kept.name_key("n5000") is not None
    assert kept.digest(123) == _digest(123).hex() and kept.name(123) == "n123"
    assert kept.info_counts == [5000] and kept.infos[0].backend == "pytorch"


def test_names_are_unique_as_directory_names() -> None:
    base: dict[str, Any] = {"model": "builtin:tiny-gpt2", "energy": {"source": "estimate"}}
    configs = [
        {**base, "name": "a b", "max_output_tokens": 8},
        {**base, "name": "a/b", "max_output_tokens": 9},  # the same directory as "a b"
        {**base, "max_output_tokens": 10},  # no name: one is made
    ]
    result = validate_campaign_grid(configs)
    names = [c["name"] for c in result.valid_configs]
    assert names[:2] == ["a b", "a/b-2"]
    assert len({safe_name(n) for n in names}) == 3
    assert result.valid_configs[0] is configs[0]  # a plain dict comes back as given
    assert "name" not in configs[2]  # and is never mutated


def test_grid_points_are_rebuilt_exactly_with_groups_links_and_exclusions() -> None:
    grid = CampaignGridConfig.model_validate(
        {
            "backends": ["pytorch"],
            "groups": [
                {
                    "name": "main",
                    "shared": {"max_output_tokens": [8, 16], "random_seed": [1, 2, 3]},
                    "linked": [[{"fp_precision": "float32"}, {"fp_precision": "float16"}]],
                    "exclude": [{"max_output_tokens": 16, "random_seed": 2}],
                },
                {  # an unnamed difference: the same names as main's points, other configs
                    "name": "warm",
                    "shared": {
                        "max_output_tokens": [8],
                        "random_seed": [1],
                        "warmup.max_prompts": [3],
                    },
                    "linked": [[{"fp_precision": "float32"}]],
                },
            ],
        }
    )
    base = {"model": "builtin:tiny-gpt2", "energy": {"source": "estimate"}}
    lazy = validate_campaign_grid(iter_campaign_grid(grid, base))
    eager = validate_campaign_grid(expand_campaign_grid(grid, base))
    unnamed = [{k: v for k, v in c.items() if k != "name"} for c in lazy.valid_configs]
    assert unnamed == [{k: v for k, v in c.items() if k != "name"} for c in eager.valid_configs]
    assert lazy.config_hashes == eager.config_hashes
    names = [c["name"] for c in lazy.valid_configs]
    assert names[:-1] == [c["name"] for c in eager.valid_configs][:-1]
    assert len(set(names)) == len(names) == 10 + 1
    assert names[-1] == "pytorch_tiny-gpt2_out8_seed1_fp32_warm"  # renamed by its group
