"""Where prompts come from: built-in sets, local files, or a cached Hugging Face dataset.

``load_prompts`` returns exactly ``count`` (default ``dataset.num_prompts``) prompt strings, each
at most ``max_input_tokens`` tokens long for the given tokenizer (special tokens included).
Sources with fewer prompts are cycled. Order is the source's order (``builtin:synthetic`` is
generated from ``seed``), so the same config always yields the same prompts.

Files are read as UTF-8 and resolved from the current directory:

* ``.jsonl`` -- one JSON object per line; the text is field ``dataset.column``, else ``prompt``,
  else ``text`` (a line may also be a bare JSON string);
* ``.csv``   -- a header row; the same column rule;
* ``.txt``   -- one prompt per non-empty line.

Blank prompts are skipped. Every failure is a ``DatasetError`` naming the file (and line) and
the fix. The ``datasets`` package is imported only for Hugging Face datasets.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import llenergymeasure.measurement.datasets.conversations as conversations
from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.exceptions import DatasetError
from llenergymeasure.measurement.datasets.synthetic import synthetic_prompts
from llenergymeasure.measurement.datasets.tokens import truncate_prompt

BUILTIN_DATASETS: dict[str, str] = {
    "builtin:synthetic": "seeded word sequences of exactly dataset.synthetic_input_tokens tokens",
    "builtin:prompts": "52 varied prompts written for this project (questions, summaries, code)",
    "builtin:conversations": "48 ShareGPT-style conversations made for this project (a human "
    "turn and its reply: the reply's length is the request's output length when served)",
}
"""Built-in dataset name -> what it is."""

FILE_SUFFIXES = (".jsonl", ".csv", ".txt")
DEFAULT_COLUMNS = ("prompt", "text")


def load_prompts(
    dataset: DatasetConfig,
    *,
    tokenizer: Any,
    max_input_tokens: int,
    seed: int,
    count: int | None = None,
) -> list[str]:
    """``count`` prompts (default ``dataset.num_prompts``), truncated to ``max_input_tokens``."""
    wanted = dataset.num_prompts if count is None else count
    if wanted <= 0:
        return []
    name = dataset.name
    if name == "builtin:synthetic":
        target = min(dataset.synthetic_input_tokens, max_input_tokens)
        return synthetic_prompts(tokenizer, count=wanted, target_tokens=target, seed=seed)
    if name == "builtin:prompts":
        source = builtin_prompts()
    elif name == "builtin:conversations":
        text = conversations.builtin_conversations_text()
        source = _parse_jsonl(text.splitlines(), name, dataset.column)
    elif name.startswith("builtin:"):
        known = ", ".join(BUILTIN_DATASETS)
        raise DatasetError(
            f"unknown built-in dataset '{name}'; the built-in datasets are: {known}",
            fix=f"use one of {known}, a .jsonl/.csv/.txt file, or a Hugging Face dataset id",
        )
    elif name.lower().endswith(FILE_SUFFIXES) or Path(name).expanduser().exists():
        source = read_prompt_file(Path(name).expanduser(), column=dataset.column)
    else:
        source = _hf_prompts(name, split=dataset.split, column=dataset.column, limit=wanted)
    return [truncate_prompt(p, tokenizer, max_input_tokens) for p in _cycle(source, wanted)]


def builtin_prompts() -> list[str]:
    """The project's own prompt set (``data/prompts.jsonl``)."""
    data = resources.files("llenergymeasure.measurement.datasets").joinpath("data/prompts.jsonl")
    return _parse_jsonl(data.read_text(encoding="utf-8").splitlines(), "builtin:prompts", None)


def read_prompt_file(path: Path, *, column: str | None = None) -> list[str]:
    """Prompts from a ``.jsonl``, ``.csv`` or ``.txt`` file; ``DatasetError`` on any problem."""
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DatasetError(
            f"unsupported dataset file type '{path.suffix or '(none)'}'",
            where=str(path),
            fix="use a .jsonl, .csv or .txt file (one prompt per line for .txt)",
        )
    text = _read_text(path)
    shown = str(path)
    if suffix == ".jsonl":
        prompts = _parse_jsonl(text.splitlines(), shown, column)
    elif suffix == ".csv":
        prompts = _parse_csv(text, shown, column)
    else:
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise DatasetError(
            "the dataset file has no prompts (it is empty or every prompt is blank)",
            where=shown,
            fix="add prompts: one JSON object per line for .jsonl, a header and rows for "
            ".csv, one prompt per line for .txt",
        )
    return prompts


def _cycle(prompts: list[str], count: int) -> list[str]:
    return [prompts[i % len(prompts)] for i in range(count)]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(
            f"dataset file not found (resolved to {path.absolute()})",
            where=str(path),
            fix="check the path; relative paths are resolved from the directory llem runs in",
        ) from None
    except IsADirectoryError:
        raise DatasetError(
            "dataset path is a directory, not a file",
            where=str(path),
            fix="point dataset.name at a .jsonl, .csv or .txt file",
        ) from None
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"dataset file is not valid UTF-8 text (byte {exc.start})",
            where=str(path),
            fix="save the file as UTF-8",
        ) from None
    except OSError as exc:
        raise DatasetError(
            f"cannot read the dataset file: {exc.strerror or exc}",
            where=str(path),
            fix="check the file's permissions",
        ) from None


def _parse_jsonl(lines: Iterable[str], shown: str, column: str | None) -> list[str]:
    prompts: list[str] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{shown}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"line {lineno} is not valid JSON ({exc.msg}, column {exc.colno})",
                where=where,
                fix='write one JSON object per line, e.g. {"prompt": "What is energy?"}',
            ) from None
        except RecursionError:  # a line of thousands of nested brackets
            raise DatasetError(
                f"line {lineno} nests JSON too deeply to read",
                where=where,
                fix='write one flat JSON object per line, e.g. {"prompt": "What is energy?"}',
            ) from None
        if isinstance(record, str):
            value: Any = record
        elif isinstance(record, dict) and column is None and "conversations" in record:
            value = conversations.conversation_turns(record, where)[0]  # ShareGPT style
        elif isinstance(record, dict):
            key = _pick_column(list(record), column, where, f"line {lineno}")
            value = record[key]
        else:
            raise DatasetError(
                f"line {lineno} is a JSON {type(record).__name__}, not an object or a string",
                where=where,
                fix='write one JSON object per line, e.g. {"prompt": "What is energy?"}',
            )
        if not isinstance(value, str):
            raise DatasetError(
                f"line {lineno}: the prompt is a JSON {type(value).__name__}, not a string",
                where=where,
                fix="make the prompt field a string",
            )
        if value.strip():
            prompts.append(value)
    return prompts


def _parse_csv(text: str, shown: str, column: str | None) -> list[str]:
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames
    if not header:
        return []
    key = _pick_column(list(header), column, f"{shown}:1", "the header (line 1)")
    prompts: list[str] = []
    try:
        for row in reader:
            value = row.get(key)
            if value is None:
                raise DatasetError(
                    f"line {reader.line_num} has fewer fields than the header (no '{key}')",
                    where=f"{shown}:{reader.line_num}",
                    fix="give every row a value for each header column (quote values with commas)",
                )
            if value.strip():
                prompts.append(value)
    except csv.Error as exc:
        raise DatasetError(
            f"line {reader.line_num} is not valid CSV ({exc})",
            where=f"{shown}:{reader.line_num}",
            fix="check the quoting on that line",
        ) from None
    return prompts


def _pick_column(available: list[str], column: str | None, where: str, what: str) -> str:
    if column is not None:
        if column in available:
            return column
        raise DatasetError(
            f"{what} has no column '{column}' (it has: {', '.join(available) or 'none'})",
            where=where,
            fix=f"set dataset.column to one of: {', '.join(available)}"
            if available
            else "add the column",
        )
    for key in DEFAULT_COLUMNS:
        if key in available:
            return key
    raise DatasetError(
        f"{what} has neither a 'prompt' nor a 'text' column "
        f"(it has: {', '.join(available) or 'none'})",
        where=where,
        fix="set dataset.column to the column that holds the prompt text",
    )


def _hf_prompts(name: str, *, split: str, column: str | None, limit: int) -> list[str]:
    """The first ``limit`` texts of a Hugging Face dataset (cached, or fetched when online)."""
    try:
        import datasets as hf_datasets
    except ImportError:
        hf_datasets = None
    if not hasattr(hf_datasets, "load_dataset"):  # absent, or a stray namespace package
        raise DatasetError(
            f"dataset '{name}' is not a built-in or a .jsonl/.csv/.txt file, so it would be a "
            "Hugging Face dataset, but the 'datasets' package is not installed",
            fix="pip install datasets, or use builtin:prompts, builtin:synthetic or a local file",
        )
    try:
        data = hf_datasets.load_dataset(name, split=split)
    except Exception as exc:  # the vendor boundary: every failure becomes one DatasetError
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "split" in detail.lower() and "unknown" in detail.lower():
            raise DatasetError(
                f"Hugging Face dataset '{name}' has no split '{split}': {detail}",
                fix="set dataset.split to an existing split, e.g. train, validation or test",
            ) from exc
        raise DatasetError(
            f"Hugging Face dataset '{name}' (split '{split}') could not be loaded: it is not in "
            f"the local cache and could not be fetched (no network, offline mode, or no such "
            f"dataset) [{type(exc).__name__}: {detail}]",
            fix="check the dataset id; on a machine without network, download it once elsewhere "
            "and copy the Hugging Face cache (HF_HOME), or use a local .jsonl/.csv/.txt file",
        ) from exc
    columns = list(getattr(data, "column_names", None) or [])
    key = _pick_column(columns, column, f"{name}[{split}]", "the dataset")
    prompts: list[str] = []
    for index in range(min(len(data), limit)):
        value = data[index][key]
        if not isinstance(value, str):
            raise DatasetError(
                f"row {index} of column '{key}' is a {type(value).__name__}, not text",
                where=f"{name}[{split}]",
                fix="set dataset.column to a text column",
            )
        if value.strip():
            prompts.append(value)
    if not prompts:
        raise DatasetError(
            f"Hugging Face dataset '{name}' (split '{split}') has no non-empty '{key}' values",
            fix="choose another split or column",
        )
    return prompts
