"""Which ``vllm.EngineArgs`` names the installed vLLM has, read without importing vLLM.

``vllm.engine.arg_utils`` imports torch and most of vLLM (seconds), so validating a config would
no longer be instant. Its ``EngineArgs`` dataclass is read from source instead: the annotated
names in its class body are exactly its fields (~30 ms, once per process). The vLLM adapter
checks the same names again against the imported class when it builds an engine.

This looks at the installed package, so it is called by the loader, never inside a model: a
config validates identically everywhere; the loader adds this check where vLLM is installed.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

from llenergymeasure.exceptions import ConfigError


@cache
def installed_engine_arg_names() -> frozenset[str] | None:
    """``EngineArgs`` field names of the installed vLLM; None when vLLM is not installed (or
    its source cannot be read, e.g. a zipped install)."""
    try:
        spec = importlib.util.find_spec("vllm")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "engine" / "arg_utils.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "EngineArgs":
            return frozenset(
                item.target.id
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            )
    return None


def check_engine_kwargs(
    names: Iterable[str], known: Iterable[str] | None, *, where: str = "vllm.engine_kwargs"
) -> None:
    """``ConfigError`` naming the first name that ``known`` (EngineArgs fields) lacks, with the
    nearest real ones. ``known=None`` (vLLM not installed) checks nothing."""
    if known is None:
        return
    valid = sorted(known)
    for name in names:
        if name in known:
            continue
        near = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise ConfigError(
            f"engine_kwargs.{name} is not an EngineArgs field of the installed vLLM{hint}",
            where=f"{where}.{name}",
            fix="use a field of vllm.EngineArgs (`python -c 'import vllm.engine.arg_utils as a; "
            "help(a.EngineArgs)'` lists them), or a vllm.* setting of llem",
        )


KeyPath = tuple[str | int, ...]


def engine_kwargs_in(data: Any, loc: KeyPath = ()) -> list[KeyPath]:
    """The key path of every name under an ``engine_kwargs`` mapping anywhere in config data
    (an experiment, or a campaign's base config, shared axes and overrides)."""
    found: list[KeyPath] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key != "engine_kwargs":
                found += engine_kwargs_in(value, (*loc, key))
            elif isinstance(value, dict):
                found += [(*loc, key, name) for name in value]
            elif isinstance(value, list):  # a grid axis of engine_kwargs mappings
                for index, item in enumerate(value):
                    if isinstance(item, dict):
                        found += [(*loc, key, index, name) for name in item]
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += engine_kwargs_in(value, (*loc, index))
    return found


def check_installed_engine_kwargs(
    data: dict[str, Any], file: str | Path, line_of: Callable[[KeyPath], int | None]
) -> None:
    """Where vLLM is installed, every ``engine_kwargs`` name in a loaded file must be one of
    its EngineArgs; the error names the file, line and key path."""
    found = engine_kwargs_in(data)
    if not found:
        return
    known = installed_engine_arg_names()
    for loc in found:
        line = line_of(loc)
        dotted = ".".join(str(p) for p in loc[:-1])
        where = f"{file}:{line}: {dotted}" if line else f"{file}: {dotted}"
        check_engine_kwargs([str(loc[-1])], known, where=where)
