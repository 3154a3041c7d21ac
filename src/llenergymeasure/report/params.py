"""Which configuration parameters a set of configs varies, and how two configs differ.

A config's parameters are its resolved ``config`` flattened to dotted keys
(``pytorch.batch_size``); a parameter *varies* when two configs disagree on it (a key one config
lacks counts as None). This works alike for a campaign's grid and for a folder of ``llem run``
results, which have no grid to read the axes from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llenergymeasure.config.backends import BACKENDS

IGNORED = frozenset({"name"})
"""Keys that always differ and say nothing about the config (its name is shown anyway)."""

FACETS = ("backend", "model.name")
"""Varied parameters that split figures into panels rather than being an axis of their own."""


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"pytorch": {"batch_size": 4}}`` -> ``{"pytorch.batch_size": 4}``; lists as JSON text."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(value, default=str)
        else:
            flat[name] = value
    return flat


def varied_parameters(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Dotted keys whose values differ between the (flattened) configs, in first-seen order."""
    keys: dict[str, None] = {}
    for config in configs:
        keys.update(dict.fromkeys(config))
    varied = []
    for key in keys:
        if key in IGNORED:
            continue
        values = {json.dumps(c.get(key), sort_keys=True, default=str) for c in configs}
        if len(values) > 1:
            varied.append(key)
    return varied


def axes(varied: Sequence[str]) -> list[str]:
    """The varied parameters that get an effect figure of their own (not the facets)."""
    return [key for key in varied if key not in FACETS]


def show(value: Any) -> str:
    """A parameter value as people read it (None: 'unset', the key does not apply)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def describe(params: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``'batch_size=4, fp_precision=float16'``: the given parameters of one config."""
    return ", ".join(f"{short(k)}={show(params.get(k))}" for k in keys) or "(only config)"


def difference(a: Mapping[str, Any], b: Mapping[str, Any], keys: Sequence[str]) -> str:
    """What changes from config ``a`` to config ``b``: ``'batch_size 4 -> 8'`` (or 'same')."""
    changed = [
        f"{short(k)} {show(a.get(k))} -> {show(b.get(k))}" for k in keys if a.get(k) != b.get(k)
    ]
    return ", ".join(changed) or "same parameters"


def short(key: str) -> str:
    """``pytorch.batch_size`` -> ``batch_size``; keys that need their section keep it."""
    section, _, leaf = key.rpartition(".")
    return leaf if section in BACKENDS else key


def sort_values(values: Sequence[Any]) -> list[Any]:
    """Distinct values in reading order: numbers (or numeric text, as shown) numerically, then
    the rest as text."""
    return sorted(dict.fromkeys(values), key=_reading_order)


def _reading_order(value: Any) -> tuple[int, float, str]:
    if not isinstance(value, bool):
        try:
            return (0, float(value), "")
        except (TypeError, ValueError):
            pass
    return (1, 0.0, show(value))


__all__ = [
    "FACETS",
    "IGNORED",
    "axes",
    "describe",
    "difference",
    "flatten",
    "short",
    "show",
    "sort_values",
    "varied_parameters",
]
