"""The bounded YAML reader: plain data out, limits refused with file, line and key path."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from llenergymeasure.config import yaml_reader
from llenergymeasure.config.loader import read_yaml
from llenergymeasure.config.yaml_reader import (
    ALIAS_RATIO,
    MAX_ALIAS_VALUES,
    MAX_DEPTH,
    parse_yaml,
)
from llenergymeasure.exceptions import ConfigError


def refusal(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, source="f.yaml")
    return info.value


def test_plain_data_yaml_1_2_booleans_dates_as_strings_and_merge_keys() -> None:
    data, lines = parse_yaml(
        "on: yes\nwhen: 2024-01-01\nbase: &b {x: 1}\nuse:\n  <<: *b\n  y: [true, 1.5, ~]\n",
        source="f.yaml",
    )
    assert data == {
        "on": "yes",
        "when": "2024-01-01",
        "base": {"x": 1},
        "use": {"x": 1, "y": [True, 1.5, None]},
    }
    assert lines[("use", "y")] == 6 and lines[("use", "y", 1)] == 6 and lines[("base",)] == 3


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("a:\n  b: " + "9" * 5000, "f.yaml:2: a.b", "beyond the range of every field"),
        ("a: 0x" + "f" * 16, "f.yaml:1: a", "beyond the range"),
        ("a: [1, .nan]", "f.yaml:1: a.1", "not a finite number"),
        ("a: !!float 1e999", "f.yaml:1: a", "not a finite number"),
        ('a: "x\\0y"', "f.yaml:1: a", "control character '\\x00'"),
        ("a: !!binary aGk=", "f.yaml:1: a", "tag !!binary is not supported"),
        ("a: !!python/name:os.system x", "f.yaml:1: a", "is not supported"),
        ("a: !!bool perhaps", "f.yaml:1: a", "not a boolean"),
        ("a: !!int twelve", "f.yaml:1: a", "not an integer"),
        ("a: &x [*x]", "f.yaml:1: a.0", "used inside its own anchor"),
        ("a: *nowhere", "f.yaml:1: a", "names no anchor"),
        ("a: 1\n---\nb: 2", "f.yaml:2", "another document"),
    ],
)
def test_values_no_config_can_hold_are_refused_where_they_are(
    text: str, where: str, what: str
) -> None:
    error = refusal(text)
    assert error.where == where and what in error.what and error.fix


def test_nesting_beyond_the_limit_is_refused_literal_or_through_aliases() -> None:
    assert "levels deep" in refusal("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)).what
    half = MAX_DEPTH // 2 + 2
    text = f"a: &a {'[' * half}{']' * half}\nb: {'[' * half}*a{']' * half}"
    assert "levels deep" in refusal(text).what
    assert "levels deep" in refusal("a: " + "[" * 100_000 + "]" * 100_000).what  # no RecursionError


def test_alias_bombs_are_refused_quickly_by_their_expanded_size() -> None:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    started = time.perf_counter()
    error = refusal("\n".join(lines))
    assert f"more than {MAX_ALIAS_VALUES:,} values" in error.what
    assert time.perf_counter() - started < 5  # 10^12 values: refused after ~10^5


def test_a_long_document_without_aliases_is_not_bounded_by_value_count() -> None:
    """The file size limit bounds what is written; only what aliases add is counted."""
    data, _ = parse_yaml("a: [" + ", ".join(["1"] * (3 * MAX_ALIAS_VALUES)) + "]", source="f")
    assert len(data["a"]) == 3 * MAX_ALIAS_VALUES


def test_aliases_may_add_a_multiple_of_what_is_written_but_no_more() -> None:
    written = 2 * MAX_ALIAS_VALUES
    pad = "pad: [" + ", ".join(["1"] * written) + "]\n"
    base = "base: &b [" + ", ".join(["x"] * 9) + "]\n"  # 10 values a use
    uses = lambda n: "uses: [" + ", ".join(["*b"] * n) + "]\n"  # noqa: E731
    within = (ALIAS_RATIO * written) // 10 - 1
    data, _ = parse_yaml(pad + base + uses(within), source="f")
    assert len(data["uses"]) == within
    error = refusal(pad + base + uses(within + written // 10 + 10))  # the uses count as written
    assert f"{ALIAS_RATIO} times" in error.what and error.where.startswith("f.yaml:3")


def test_files_that_are_not_config_files_are_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" + b"#" * yaml_reader.MAX_DOCUMENT_BYTES)
    assert "larger than" in _read_error(big)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in _read_error(fifo)  # opening it would block for ever
    assert "not a regular file" in _read_error(tmp_path)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in _read_error(latin)
    assert "NUL" in _read_error(Path("a\0b.yaml"))


def _read_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    return info.value.what
