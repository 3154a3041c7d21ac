"""Prompt loading: synthetic lengths, the built-in set, local files, Hugging Face datasets."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.models import DatasetConfig, ModelConfig
from llenergymeasure.exceptions import DatasetError
from llenergymeasure.measurement.datasets import (
    BUILTIN_DATASETS,
    builtin_prompts,
    load_prompts,
    truncate_prompt,
)
from llenergymeasure.measurement.models import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    return load_tokenizer(ModelConfig(name="builtin:tiny-gpt2"), str(tiny_model_dir))


def n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text)["input_ids"])


def load(tokenizer: Any, max_input_tokens: int = 512, seed: int = 0, **dataset: Any) -> list[str]:
    return load_prompts(
        DatasetConfig(**dataset), tokenizer=tokenizer, max_input_tokens=max_input_tokens, seed=seed
    )


# ---------------------------------------------------------------- builtin:synthetic


@pytest.mark.parametrize("target", [1, 2, 5, 17, 64, 300])
def test_synthetic_prompts_have_exact_token_length(tokenizer: Any, target: int) -> None:
    prompts = load(
        tokenizer, name="builtin:synthetic", synthetic_input_tokens=target, num_prompts=8
    )
    assert len(prompts) == 8
    assert [n_tokens(tokenizer, p) for p in prompts] == [target] * 8
    assert len(set(prompts)) > 1  # varied, not one prompt repeated


def test_synthetic_prompts_are_deterministic_per_seed(tokenizer: Any) -> None:
    first = load(tokenizer, seed=7, num_prompts=4)
    assert first == load(tokenizer, seed=7, num_prompts=4)
    assert first != load(tokenizer, seed=8, num_prompts=4)
    assert all(p.split()[0][0].isupper() for p in first)  # words, not token soup


def test_synthetic_length_is_capped_by_max_input_tokens(tokenizer: Any) -> None:
    prompts = load(tokenizer, max_input_tokens=30, synthetic_input_tokens=100, num_prompts=3)
    assert [n_tokens(tokenizer, p) for p in prompts] == [30, 30, 30]


def test_count_overrides_num_prompts(tokenizer: Any) -> None:
    for name in ("builtin:synthetic", "builtin:prompts"):
        prompts = load_prompts(
            DatasetConfig(name=name, num_prompts=32),
            tokenizer=tokenizer,
            max_input_tokens=64,
            seed=0,
            count=3,
        )
        assert len(prompts) == 3
    assert (
        load_prompts(DatasetConfig(), tokenizer=tokenizer, max_input_tokens=8, seed=0, count=0)
        == []
    )


# ------------------------------------------------------------------ builtin:prompts


def test_builtin_prompt_set(tokenizer: Any) -> None:
    prompts = builtin_prompts()
    assert 45 <= len(prompts) <= 60
    assert len(set(prompts)) == len(prompts)
    assert any("def " in p or "function" in p.lower() for p in prompts)
    assert any(p.lower().startswith("summarise") for p in prompts)
    loaded = load(tokenizer, name="builtin:prompts", num_prompts=10)
    assert loaded == prompts[:10]


def test_builtin_prompts_cycle_when_more_are_asked(tokenizer: Any) -> None:
    prompts = builtin_prompts()
    loaded = load(tokenizer, name="builtin:prompts", num_prompts=len(prompts) + 5)
    assert loaded[len(prompts) :] == prompts[:5]


def test_prompts_are_truncated_to_max_input_tokens(tokenizer: Any) -> None:
    loaded = load(tokenizer, max_input_tokens=12, name="builtin:prompts", num_prompts=52)
    lengths = [n_tokens(tokenizer, p) for p in loaded]
    assert max(lengths) <= 12
    assert lengths.count(12) > 10  # long prompts were cut, not dropped
    originals = builtin_prompts()
    assert all(
        original.startswith(cut.rstrip("\ufffd"))
        for original, cut in zip(originals, loaded, strict=True)
    )


def test_truncate_prompt_leaves_short_text_alone(tokenizer: Any) -> None:
    assert truncate_prompt("Why is the sky blue?", tokenizer, 100) == "Why is the sky blue?"
    cut = truncate_prompt("Why is the sky blue?", tokenizer, 3)
    assert n_tokens(tokenizer, cut) == 3
    assert "Why is the sky blue?".startswith(cut)


def test_unknown_builtin_dataset(tokenizer: Any) -> None:
    with pytest.raises(DatasetError) as info:
        load(tokenizer, name="builtin:nope")
    assert all(name in str(info.value) for name in BUILTIN_DATASETS)


# --------------------------------------------------------------------------- files


def test_jsonl_file(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    lines = [
        json.dumps({"prompt": "first", "id": 1}),
        "",
        json.dumps({"text": "second"}),
        json.dumps("third as a bare string"),
        json.dumps({"prompt": "   "}),  # blank prompt: skipped
    ]
    path.write_text("\n".join(lines) + "\n")
    assert load(tokenizer, name=str(path), num_prompts=3) == [
        "first",
        "second",
        "third as a bare string",
    ]


def test_jsonl_column_override(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "no", "question": "yes"}) + "\n")
    assert load(tokenizer, name=str(path), column="question", num_prompts=1) == ["yes"]


def test_csv_file(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('id,prompt\n1,"Hello, world"\n2,What is energy?\n')
    assert load(tokenizer, name=str(path), num_prompts=2) == ["Hello, world", "What is energy?"]
    path.write_text("id,question\n1,Why?\n")
    assert load(tokenizer, name=str(path), column="question", num_prompts=1) == ["Why?"]


def test_txt_file_relative_to_cwd(
    tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "prompts.txt").write_text("one\n\n   \ntwo  \nthree\n")
    monkeypatch.chdir(tmp_path)
    assert load(tokenizer, name="prompts.txt", num_prompts=4) == ["one", "two", "three", "one"]


def test_missing_file(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    with pytest.raises(DatasetError) as info:
        load(tokenizer, name=str(path))
    assert info.value.where == str(path)
    assert "not found" in info.value.what and info.value.fix


def test_bad_json_line_names_its_line(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok"}\n\n{"prompt": "broken\n')
    with pytest.raises(DatasetError) as info:
        load(tokenizer, name=str(path))
    assert info.value.where == f"{path}:3"
    assert "line 3 is not valid JSON" in str(info.value)


def test_a_line_nested_too_deep_is_named_not_a_crash(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"prompt": "ok"}\n' + "[" * 200_000 + "]" * 200_000 + "\n")
    with pytest.raises(DatasetError) as info:
        load(tokenizer, name=str(path))
    assert info.value.where == f"{path}:2"
    assert "nests JSON too deeply" in str(info.value)


@pytest.mark.parametrize(
    ("filename", "content", "column", "where_line"),
    [
        ("p.jsonl", '{"prompt": "a"}\n{"body": "b"}\n', None, 2),
        ("p.jsonl", '{"prompt": "a"}\n', "question", 1),
        ("p.csv", "id,body\n1,x\n", None, 1),
        ("p.csv", "id,prompt\n1,x\n", "question", 1),
    ],
)
def test_missing_column(
    tokenizer: Any, tmp_path: Path, filename: str, content: str, column: str | None, where_line: int
) -> None:
    path = tmp_path / filename
    path.write_text(content)
    with pytest.raises(DatasetError) as info:
        load(tokenizer, name=str(path), column=column)
    assert info.value.where == f"{path}:{where_line}"
    assert (column or "prompt") in info.value.what
    assert info.value.fix and "dataset.column" in info.value.fix


@pytest.mark.parametrize("filename", ["e.jsonl", "e.csv", "e.txt"])
@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tokenizer: Any, tmp_path: Path, filename: str, content: str) -> None:
    path = tmp_path / filename
    path.write_text(content)
    with pytest.raises(DatasetError, match="no prompts") as info:
        load(tokenizer, name=str(path))
    assert info.value.where == str(path)


def test_unsupported_file_type_and_directory(tokenizer: Any, tmp_path: Path) -> None:
    data = tmp_path / "prompts.json"
    data.write_text("[]")
    with pytest.raises(DatasetError, match="unsupported dataset file type"):
        load(tokenizer, name=str(data))
    folder = tmp_path / "dir.txt"
    folder.mkdir()
    with pytest.raises(DatasetError, match="is a directory"):
        load(tokenizer, name=str(folder))


def test_non_utf8_file(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="UTF-8"):
        load(tokenizer, name=str(path))


# ------------------------------------------------------------ Hugging Face datasets


def test_hf_dataset_without_the_datasets_package(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(DatasetError) as info:
        load(tokenizer, name="some-org/some-dataset")
    assert "pip install datasets" in str(info.value)


class _FakeDataset:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows
        self.column_names = list(rows[0])

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._rows[index]


def _fake_datasets(monkeypatch: pytest.MonkeyPatch, load_dataset: Any) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return load_dataset(*args, **kwargs)

    module = types.ModuleType("datasets")
    module.load_dataset = recording  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_hf_dataset_cached(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"text": f"question {i}", "label": i} for i in range(5)]
    calls = _fake_datasets(monkeypatch, lambda name, split: _FakeDataset(rows))
    prompts = load(tokenizer, name="org/qa", split="validation", num_prompts=7)
    assert prompts == [f"question {i}" for i in range(5)] + ["question 0", "question 1"]
    assert calls == [(("org/qa",), {"split": "validation"})]


def test_hf_dataset_missing_column(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_datasets(monkeypatch, lambda name, split: _FakeDataset([{"body": "x"}]))
    with pytest.raises(DatasetError, match="'prompt' nor a 'text'"):
        load(tokenizer, name="org/qa")


def test_hf_dataset_not_cached_and_offline(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str, split: str) -> Any:
        raise ConnectionError("Couldn't reach 'org/qa' on the Hub (LocalEntryNotFoundError)")

    _fake_datasets(monkeypatch, offline)
    with pytest.raises(DatasetError) as info:
        load(tokenizer, name="org/qa")
    assert "not in the local cache and could not be fetched" in str(info.value)
    assert "ConnectionError" in str(info.value)
