"""Files written for the predecessor get the exact replacement for its names, at load (exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llenergymeasure.config.loader import load_campaign_config, load_experiment_config
from llenergymeasure.exceptions import ConfigError

WriteYaml = Callable[..., Path]


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("campaign_name: c\nmodel: gpt2\ngrid: {}\n", 2, "here it is base_config.model"),
        ("campaign_name: c\nsweep: {fp_precision: [float16]}\n", 2, "here it is grid.shared"),
        ("campaign_name: c\ngrid:\n  axes: {max_output_tokens: [8]}\n", 3, "grid.shared"),
        ("campaign_name: c\nbase_config: {n: 10}\ngrid: {}\n", 2, "dataset.num_prompts"),
        (
            "campaign_name: c\ngrid:\n  shared: {fp_precision: [float16, bf16]}\n",
            3,
            "did you mean 'bfloat16'?",
        ),
    ],
)
def test_campaign_hints(write_yaml: WriteYaml, text: str, line: int, expected: str) -> None:
    path = write_yaml(text)
    with pytest.raises(ConfigError) as info:
        load_campaign_config(path)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert f"{path}:{line}:" in message
    assert expected in message
    assert "predecessor" in message


def test_experiment_hints(write_yaml: WriteYaml) -> None:
    path = write_yaml("model: gpt2\nn: 5\nfp_precision: fp16\n")
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    message = str(info.value)
    assert f"{path}:2: n: unknown key 'n'" in message and "dataset.num_prompts" in message
    assert f"{path}:3: fp_precision" in message and "did you mean 'float16'?" in message
