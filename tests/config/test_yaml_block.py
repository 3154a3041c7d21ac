"""The fast block-style reader gives exactly what the full reader gives, or hands the text back.

Every document is read both ways: by ``read_lazily`` (the fast reader first) and by the full,
event-by-event reader; the values, or the refusals, must be identical."""

from __future__ import annotations

import random
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llenergymeasure.config import yaml_block
from llenergymeasure.config.yaml_reader import MAX_DEPTH, _scalar_reader, parse_yaml, read_lazily
from llenergymeasure.exceptions import ConfigError

from .thesis_file import thesis_text


def _full(text: str) -> Any:
    try:
        return parse_yaml(text, source="f.yaml")[0]
    except ConfigError as err:
        return ("refused", str(err))


def _lazy(text: str) -> Any:
    try:
        return read_lazily(text, source="f.yaml")[0]
    except ConfigError as err:
        return ("refused", str(err))


def _fast(text: str) -> Any:
    """The fast reader alone: its value, or None where it hands the text back."""
    try:
        return ("read", yaml_block.read_block(text, _scalar_reader(), max_depth=MAX_DEPTH))
    except yaml_block.Unreadable:
        return None


# scalars that look alike but resolve differently: the fast reader must resolve them the same
TRICKY = [
    "true", "True", "false", "yes", "no", "on", "off", "null", "~", "Null", "1", "-1", "+1",
    "0x1F", "0o17", "017", "1_000", "1.5", "-.5", ".5", "1e3", "1.0e3", "1.0e+3", ".inf",
    "-.inf", ".nan", "2026-12-03", "12:30:00", "builtin:tiny-gpt2", "a b", "a  b", "a#b",
    "a #b", "a: b", "a:b", "a:", "-a", "- a", "*a", "&a", "!a", "%a", "@a", "`a", "[a]", "{a}",
    "a, b", "'a'", '"a"', "it's", "", " ", "x" * 20, "9" * 20, "\u00e9t\u00e9", "a\u00a0b",
]  # fmt: skip

_scalars = st.one_of(
    st.sampled_from(TRICKY),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
)
_keys = st.one_of(
    st.sampled_from(["model", "model.name", "batch_size", "a-b", "_x", "true", "null", "1"]),
    st.text(max_size=8),
)
_documents = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_keys, inner, min_size=1, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=st.dictionaries(_keys, _documents, min_size=1, max_size=5),
    indent=st.sampled_from([2, 4]),
    flow=st.booleans(),
)
def test_any_dumped_document_reads_the_same_both_ways(
    document: dict[Any, Any], indent: int, flow: bool
) -> None:
    text = yaml.safe_dump(
        document, indent=indent, default_flow_style=None if flow else False, allow_unicode=True
    )
    assert _lazy(text) == _full(text)
    fast = _fast(text)
    if fast is not None:
        assert fast[1] == _full(text)


def _config_like(rng: random.Random, depth: int = 0) -> Any:
    """A random document of the kind config files hold: simple keys, short plain values."""
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice(
            [*TRICKY, rng.randint(-(10**6), 10**6), rng.uniform(-1e3, 1e3), True, None, "sdpa"]
        )
    if roll < 0.7:
        return [_config_like(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["model", "model.name", "batch_size", "a-b", "_x", "fp_precision", "warmup"]
    return {rng.choice(keys): _config_like(rng, depth + 1) for _ in range(rng.randint(1, 4))}


def test_config_like_documents_read_fast_and_identically() -> None:
    """Most config-like documents take the fast path; each reads exactly as the full reader."""
    rng = random.Random(11)
    fast_count = 0
    for _ in range(500):
        document = {"campaign_name": "x", "base": _config_like(rng)}
        text = yaml.safe_dump(document, default_flow_style=rng.choice([None, False]))
        assert _lazy(text) == _full(text), text
        fast = _fast(text)
        if fast is not None:
            assert fast[1] == _full(text), text
            fast_count += 1
    assert fast_count > 150  # (210 of 500 with this seed: the others quote or nest in flow)


def _edit(lines: list[str], rng: random.Random) -> list[str]:
    """One hostile or unusual edit of a block-style document."""
    index = rng.randrange(len(lines))
    line = lines[index]
    indent = line[: len(line) - len(line.lstrip(" "))]
    edits = [
        lambda: line + "  # a comment",
        lambda: line + " &anchor",
        lambda: indent + "other: *anchor",
        lambda: line.replace(": ", ": !!binary ", 1),
        lambda: line.replace(": ", ': "quoted ', 1) + '"',
        lambda: line.replace(": ", ": 'single ", 1) + "'",
        lambda: line.replace(": ", ': "esc\\t', 1) + '"',
        lambda: "\t" + line,
        lambda: " " + line,
        lambda: line + ":",
        lambda: line + " continued",
        lambda: indent + "  continuation",
        lambda: line.replace(": ", ": [a, b, 3]", 1),
        lambda: line.replace(": ", ": {a: 1}", 1),
        lambda: line.replace(": ", ": .inf", 1),
        lambda: line.replace(": ", ": 99999999999999999999999", 1),
        lambda: line.replace(": ", ": a\x01b", 1),
        lambda: "---",
        lambda: "...",
        lambda: indent + "- - nested",
        lambda: indent + "-",
        lambda: indent + "? complex",
        lambda: indent + "<<: {a: 1}",
        lambda: line + "\r",
        lambda: indent + "dup: 1\n" + indent + "dup: 2",
        lambda: indent + "key:value",
        lambda: indent + "empty:",
        lambda: "",
    ]
    return [*lines[:index], rng.choice(edits)(), *lines[index + 1 :]]


def test_edited_explicit_lists_read_the_same_both_ways() -> None:
    """Hundreds of edited copies of the head of the thesis file: same value or same refusal."""
    head = thesis_text().split("\n")[:120]
    assert _fast("\n".join(head)) is not None  # the unedited text is the fast reader's
    rng = random.Random(7)
    handed_back = 0
    for _ in range(600):
        lines = head
        for _ in range(rng.randint(1, 3)):
            lines = _edit(lines, rng)
        text = "\n".join(lines)
        assert _lazy(text) == _full(text), text
        handed_back += _fast(text) is None
    assert 0 < handed_back < 600  # both paths were exercised


def test_the_thesis_file_takes_the_fast_path_and_reads_identically() -> None:
    text = thesis_text()
    fast = _fast(text)
    assert fast is not None
    assert fast[1] == _full(text)


@pytest.mark.parametrize(
    "text",
    [
        "a:\n- 1\n- 2\nb: 3\n",  # a sequence at its key's column
        "a:\n  - x: 1\n    y: [1, 2]\n  - z\n",
        "list: []\nnone:\nnested:\n  deeper:\n    value: 1  # comment\n",
        "a: 'x: y'\nb: \"#not a comment\"\n",
        "- 1\n- two\n",  # a top-level list (the loader refuses it after reading)
        "a: 1\r\nb: 2\r\n",
    ],
)
def test_block_constructs_read_fast_and_identically(text: str) -> None:
    fast = _fast(text)
    assert fast is not None
    assert fast[1] == _full(text)


def test_shared_lists_are_not_aliased_between_entries() -> None:
    """A repeated ``[a, b]`` line gives a new list each time, as the full reader does."""
    data = read_lazily("a:\n  x: [1, 2]\nb:\n  x: [1, 2]\n", source="f.yaml")[0]
    data["a"]["x"].append(3)
    assert data["b"]["x"] == [1, 2]


def test_deep_nesting_is_handed_to_the_full_reader_which_refuses_it() -> None:
    text = "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(MAX_DEPTH + 2)) + (
        "  " * (MAX_DEPTH + 2) + "v: 1\n"
    )
    assert _fast(text) is None
    refused = _lazy(text)
    assert refused[0] == "refused" and "levels deep" in refused[1]
