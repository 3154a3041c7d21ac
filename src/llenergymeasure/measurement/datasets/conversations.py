"""Request sets with output lengths: ShareGPT-style conversations, or prompts with an
``output_tokens`` field, so a served run asks each request for the reply length real traffic
had (``builtin:conversations``, or a .jsonl/.csv file of either shape).

A conversation line is ``{"conversations": [{"from": "human", "value": ...}, {"from": "gpt",
"value": ...}, ...]}`` (``role``/``content`` keys and ``user``/``assistant`` roles too): the
prompt is its first human turn, the output length the token count of the reply that follows.
A prompt line may carry ``"output_tokens": N`` instead; a CSV an ``output_tokens`` column.
"""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path
from typing import Any

from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.exceptions import DatasetError

BUILTIN_NAME = "builtin:conversations"
DATA_FILE = "data/conversations.jsonl"
OUTPUT_FIELD = "output_tokens"
HUMAN = frozenset({"human", "user"})
REPLY = frozenset({"gpt", "assistant", "chatgpt", "bard", "model"})


def builtin_conversations_text() -> str:
    data = resources.files("llenergymeasure.measurement.datasets").joinpath(DATA_FILE)
    return data.read_text(encoding="utf-8")


def _turn(turn: Any, where: str) -> tuple[str, str]:
    if not isinstance(turn, dict):
        raise DatasetError(
            "a conversation turn is not a JSON object",
            where=where,
            fix='write turns as {"from": "human", "value": "..."}',
        )
    speaker = turn.get("from", turn.get("role"))
    text = turn.get("value", turn.get("content"))
    if not isinstance(speaker, str) or not isinstance(text, str):
        raise DatasetError(
            "a conversation turn lacks a speaker (from/role) or its text (value/content)",
            where=where,
            fix='write turns as {"from": "human", "value": "..."}',
        )
    return speaker.lower(), text


def conversation_turns(record: dict[str, Any], where: str) -> tuple[str, str | None]:
    """A conversation's first human turn and the reply right after it (None: no reply)."""
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise DatasetError(
            "'conversations' is not a list of turns",
            where=where,
            fix='write "conversations": [{"from": "human", "value": "..."}, ...]',
        )
    parsed = [_turn(t, where) for t in turns]
    for index, (speaker, text) in enumerate(parsed):
        if speaker in HUMAN:
            following = parsed[index + 1] if index + 1 < len(parsed) else None
            reply = following[1] if following is not None and following[0] in REPLY else None
            return text, reply
    raise DatasetError(
        "the conversation has no human (or user) turn",
        where=where,
        fix="give each conversation a human turn to use as the prompt",
    )


def _rows(text: str, shown: str, suffix: str) -> list[tuple[str, int | str | None]]:
    """(prompt, output length in tokens or the reply text, or None) per usable row."""
    rows: list[tuple[str, int | str | None]] = []
    if suffix == ".csv":
        for row in csv.DictReader(text.splitlines()):
            prompt = row.get("prompt") or row.get("text") or ""
            value = (row.get(OUTPUT_FIELD) or "").strip()
            rows.append((prompt, int(value) if value.isdigit() else None))
        return rows
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue  # load_prompts reports a broken line with its fix
        if not isinstance(record, dict):
            rows.append((str(record), None))
        elif "conversations" in record:
            prompt, reply = conversation_turns(record, f"{shown}:{lineno}")
            rows.append((prompt, reply))
        else:
            prompt = record.get("prompt", record.get("text", ""))
            length = record.get(OUTPUT_FIELD)
            rows.append((str(prompt), length if isinstance(length, int) else None))
    return rows


def reference_output_lengths(
    dataset: DatasetConfig, *, tokenizer: Any, max_input_tokens: int
) -> dict[str, int]:
    """Prompt (as ``load_prompts`` returns it, truncated) -> the output length its source
    gives, in the tokenizer's tokens; {} for sources without output lengths. A prompt that
    appears twice keeps its first length."""
    from llenergymeasure.measurement.datasets.tokens import token_ids, truncate_prompt

    name = dataset.name
    if name == BUILTIN_NAME:
        rows = _rows(builtin_conversations_text(), name, ".jsonl")
    elif name.lower().endswith((".jsonl", ".csv")) and Path(name).expanduser().is_file():
        path = Path(name).expanduser()
        rows = _rows(path.read_text(encoding="utf-8"), str(path), path.suffix.lower())
    else:
        return {}
    lengths: dict[str, int] = {}
    for prompt, output in rows:
        if output is None or not prompt.strip():
            continue
        count = (
            output if isinstance(output, int) else len(token_ids(tokenizer, output, special=False))
        )
        key = truncate_prompt(prompt, tokenizer, max_input_tokens)
        lengths.setdefault(key, max(1, count))
    return lengths
