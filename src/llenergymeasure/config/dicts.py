"""Plain-dict helpers for building config dicts by layers (base, axes, overrides).

Shared by the loader (dotted overrides) and the grid expander, which calls them tens of
thousands of times: they copy only plain dicts and lists, far cheaper than ``copy.deepcopy``.
"""

from __future__ import annotations

from typing import Any


def clone(value: Any) -> Any:
    """Copy nested dicts and lists so the result shares no mutable state with ``value``."""
    kind = type(value)
    if kind is dict:
        return {k: clone(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    if kind is list:
        return [clone(v) if type(v) in _CONTAINERS else v for v in value]
    return value


_CONTAINERS = (dict, list)


def set_path(config: dict[str, Any], path: tuple[str, ...] | list[str], value: Any) -> None:
    """Set ``value`` at ``path`` in place; a dict value is deep-merged into a dict already there."""
    target = config
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    last = path[-1]
    if isinstance(value, dict) and isinstance(target.get(last), dict):
        for key, sub in value.items():
            set_path(target[last], (key,), sub)
    else:
        target[last] = clone(value)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A new dict with ``update`` merged into ``base`` recursively; neither input changes."""
    merged = clone(base)
    for key, value in update.items():
        set_path(merged, (key,), value)
    return merged


def expand_model_shorthand(data: dict[str, Any]) -> dict[str, Any]:
    """``model: gpt2`` -> ``model: {name: gpt2}`` (a shallow copy when it changes anything)."""
    if isinstance(data.get("model"), str):
        return {**data, "model": {"name": data["model"]}}
    return data
