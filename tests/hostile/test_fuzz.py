"""Fuzz: mutated campaign and experiment documents through the loaders and the CLI.

Each example takes a valid document (the examples, a few small ones), applies 1-4 mutations
(wrong types, unknown keys, deleted keys, huge numbers, NaN/inf, unicode, NUL and other control
characters, deep nesting, YAML aliases, alias bombs, tags, several documents, raw bytes) and
checks what :mod:`checks` says must hold. A failing document is written to
``$LLEM_FUZZ_SAVE_DIR`` (default: pytest's temp dir) so it can join ``tests/data/hostile/``.

CI runs ``LLEM_FUZZ_EXAMPLES`` examples per kind (default 100); the 10,000-document local fuzz
is ``LLEM_FUZZ_EXAMPLES=5000 LLEM_FUZZ_KEEP_GOING=1 pytest tests/hostile/test_fuzz.py
--hypothesis-show-statistics`` (about 30 min on one core), which counts every failure.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from .checks import check

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("LLEM_FUZZ_EXAMPLES", "100"))
KEEP_GOING = os.environ.get("LLEM_FUZZ_KEEP_GOING") == "1"
"""Count failures as events and carry on (a long local run), instead of stopping at one."""

SEEDS: dict[str, list[dict[str, Any]]] = {
    "experiment": [
        yaml.safe_load((REPO / "examples" / "experiment.yaml").read_text()),
        {"model": "builtin:tiny-gpt2", "fp_precision": "float32"},
        {
            "model": {"name": "builtin:tiny-gpt2"},
            "backend": "vllm",
            "vllm": {"max_num_seqs": 8, "engine_kwargs": {"seed": 1}},
            "decoder": {"preset": "standard", "temperature": 0.7},
            "traffic": {"mode": "poisson", "target_qps": 2.0},
        },
    ],
    "campaign": [
        yaml.safe_load((REPO / "examples" / "campaign.yaml").read_text()),
        yaml.safe_load((REPO / "examples" / "campaign-cpu.yaml").read_text()),
        {
            "campaign_name": "small",
            "base_config": {"model": "builtin:tiny-gpt2", "fp_precision": "float32"},
            "experiments": [
                {"overrides": {"name": "a", "max_output_tokens": 4}},
                {"overrides": {"dataset.num_prompts": 2}},
            ],
            "execution": {"cycles": 2},
            "notify": {"webhook_url": "https://example.org/hook"},
        },
    ],
}

BOMB = "\n".join(
    ["b0: &b0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]" for i in range(1, 9)]
)
"""Top-level anchors whose last one expands to 10^9 values; ``*b8`` refers to it."""

RAW_SNIPPETS = st.sampled_from(
    [
        "*b8",
        "[*b8, *b8]",
        "!!binary aGVsbG8=",
        "!!set {a: null}",
        "!!timestamp 2001-12-14",
        "!!python/name:os.system x",
        "!!python/object/apply:os.system [echo hi]",
        "!custom x",
        "!!bool maybe",
        "!!int twelve",
        "!!float 1e999",
        "!!str",
        "!!map [1]",
        ".nan",
        "-.inf",
        '"\\0"',
        '"a\\x1b[2Jb"',
        '"\\u202e\\u0000"',
        "&r [*r]",
        "*undefined",
        "9" * 5000,
        "-" + "1" * 19,
        "0x" + "f" * 40,
        "1:2:3:4:5:6:7:8:9:10:11:12",
        "[" * 3000 + "]" * 3000,
        "{a: " * 40 + "1" + "}" * 40,
        "[" + ", ".join(["1"] * 120_000) + "]",
        "? [a]\n: b",
        "'unterminated",
        "{a: 1, a: 2}",
    ]
)
"""YAML text put in place of a value (it cannot be expressed as Python data)."""

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=600),
    st.sampled_from(["", "..", "../../x", "a/b", "builtin:tiny-gpt2", "x\0y", "\t\n", "é" * 300]),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in ``doc`` (mapping keys and list indices)."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def documents(draw: st.DrawFn, kind: str) -> bytes:
    """A mutated seed document of ``kind``, as the bytes of a file."""
    doc = yaml.safe_load(yaml.safe_dump(draw(st.sampled_from(SEEDS[kind]))))  # a fresh copy
    raw: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths[1:] or paths))
        action = draw(st.sampled_from(["value", "raw", "unknown", "delete", "copy"]))
        if not path:
            doc = {"x": draw(VALUES)}
            continue
        parent, last = _parent(doc, path), path[-1]
        if action == "value":
            parent[last] = draw(VALUES)
        elif action == "raw":
            token = f"@@raw{len(raw)}@@"
            raw[token] = draw(RAW_SNIPPETS)
            parent[last] = token
        elif action == "unknown" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["cycels", "modle", "grid", "x.y", "", "1"]))] = draw(
                VALUES
            )
        elif action == "delete":
            del parent[last]
        elif action == "copy":
            parent[last] = yaml.safe_load(yaml.safe_dump(doc))  # the whole document, nested
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), sort_keys=False)
    for token, snippet in raw.items():
        if "\n" in snippet:  # a multi-line snippet only fits where the value starts a line
            snippet = "\n" + textwrap.indent(snippet, "  ")
        text = text.replace(f"'{token}'", snippet).replace(token, snippet)
    if "*b8" in text:
        text = BOMB + "\n" + text
    data = text.encode("utf-8", "surrogatepass")
    ending = draw(st.sampled_from(["", "multi", "bytes", "bom"]))
    if ending == "multi":
        data += b"---\n" + data
    elif ending == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif ending == "bom":
        data = b"\xef\xbb\xbf" + data
    return data


def _check(kind: str, data: bytes, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_bytes(data)
    try:
        event(f"exit {check(path, kind)}")
    except AssertionError as failure:
        save = Path(os.environ.get("LLEM_FUZZ_SAVE_DIR", tmp_path / "found"))
        save.mkdir(parents=True, exist_ok=True)
        kept = save / f"{kind}-{abs(hash(data)):x}.yaml"
        kept.write_bytes(data)
        print(f"failing document kept at {kept}")
        if not KEEP_GOING:
            raise
        event(f"FAILED: {str(failure).splitlines()[0][:80]}")


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(data=documents("experiment"))
def test_mutated_experiment_documents_end_in_one_message_and_their_exit_code(
    data: bytes, tmp_path: Path
) -> None:
    _check("experiment", data, tmp_path)


@FUZZ
@given(data=documents("campaign"))
def test_mutated_campaign_documents_end_in_one_message_and_their_exit_code(
    data: bytes, tmp_path: Path
) -> None:
    _check("campaign", data, tmp_path)
