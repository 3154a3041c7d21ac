"""Request sets with output lengths: the shipped ShareGPT-style set, conversation files and
prompt files with an output_tokens field or column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.exceptions import DatasetError
from llenergymeasure.measurement.datasets import load_prompts
from llenergymeasure.measurement.datasets.conversations import (
    builtin_conversations_text,
    reference_output_lengths,
)
from llenergymeasure.measurement.datasets.make_conversations import CONVERSATIONS, render
from llenergymeasure.measurement.models.loading import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from llenergymeasure.config.models import ModelConfig

    return load_tokenizer(ModelConfig(name=str(tiny_model_dir)), str(tiny_model_dir))


def test_the_shipped_conversations_are_exactly_what_the_generator_writes() -> None:
    assert builtin_conversations_text() == render()
    assert len(builtin_conversations_text().splitlines()) == CONVERSATIONS


def test_builtin_conversations_give_each_prompt_its_reply_length(tokenizer: Any) -> None:
    dataset = DatasetConfig(name="builtin:conversations", num_prompts=60)
    prompts = load_prompts(dataset, tokenizer=tokenizer, max_input_tokens=48, seed=0)
    lengths = reference_output_lengths(dataset, tokenizer=tokenizer, max_input_tokens=48)
    assert len(prompts) == 60  # 48 conversations, cycled
    assert all(prompt in lengths for prompt in prompts)
    assert len(set(lengths.values())) > 10  # long-tailed, not one length
    assert min(lengths.values()) >= 1


def test_a_sharegpt_file_and_an_output_tokens_field(tmp_path: Path, tokenizer: Any) -> None:
    jsonl = tmp_path / "chats.jsonl"
    jsonl.write_text(
        '{"conversations": [{"from": "system", "value": "be brief"}, '
        '{"from": "human", "value": "Why is the sky blue?"}, '
        '{"from": "gpt", "value": "Rayleigh scattering of sunlight"}]}\n'
        '{"conversations": [{"role": "user", "content": "Hi"}]}\n'
        '{"prompt": "Count to ten", "output_tokens": 40}\n',
        encoding="utf-8",
    )
    dataset = DatasetConfig(name=str(jsonl), num_prompts=3)
    prompts = load_prompts(dataset, tokenizer=tokenizer, max_input_tokens=64, seed=0)
    assert prompts == ["Why is the sky blue?", "Hi", "Count to ten"]
    lengths = reference_output_lengths(dataset, tokenizer=tokenizer, max_input_tokens=64)
    reply = len(tokenizer("Rayleigh scattering of sunlight", add_special_tokens=False)["input_ids"])
    assert lengths == {"Why is the sky blue?": reply, "Count to ten": 40}  # "Hi": no reply

    csv = tmp_path / "requests.csv"
    csv.write_text("prompt,output_tokens\nHello there,12\nNo length,\n", encoding="utf-8")
    lengths = reference_output_lengths(
        DatasetConfig(name=str(csv)), tokenizer=tokenizer, max_input_tokens=64
    )
    assert lengths == {"Hello there": 12}


def test_a_conversation_without_a_human_turn_names_its_line(tmp_path: Path, tokenizer: Any) -> None:
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"conversations": [{"from": "gpt", "value": "hello"}]}\n', encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        load_prompts(
            DatasetConfig(name=str(jsonl)), tokenizer=tokenizer, max_input_tokens=8, seed=0
        )
    assert f"{jsonl}:1" in caught.value.render() and "no human" in caught.value.render()


def test_sources_without_output_lengths_give_none(tokenizer: Any) -> None:
    for name in ("builtin:prompts", "builtin:synthetic"):
        assert (
            reference_output_lengths(
                DatasetConfig(name=name), tokenizer=tokenizer, max_input_tokens=8
            )
            == {}
        )
