"""The config beside each result: the columns of ``summary.*`` and ``experiments.*`` that say
which settings a row was measured at, so a table can be plotted without parsing names.

Every table carries backend, model, precision and ``config_hash`` (aggregation's own columns),
plus, under their dotted names: the batching key of each backend in the table
(``pytorch.batch_size``, ``vllm.max_num_seqs``, ``tensorrt.max_batch_size``) and every key whose
value differs across the table's configs (what the campaign swept, derived from the configs
themselves). Values keep their types (ints, floats, bools, strings); a list or mapping is its
JSON text; a row without a config (a failed run) leaves them empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llenergymeasure.config.backends import BACKENDS

BATCHING_KEYS: dict[str, str] = {name: spec.batching_key for name, spec in BACKENDS.items()}
"""Per backend, the setting that fixes how many requests run at once."""
ALREADY_COLUMNS = {"backend", "model.name", "fp_precision", "name"}
"""Config keys the tables hold under their own names (``name`` differs for every config)."""


def flat_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved config as dotted key -> value: one level of sections (``decoder.preset``),
    lists and mappings inside a section as their JSON text, absent sections left out."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            for field, inner in value.items():
                flat[f"{key}.{field}"] = _plain(inner)
        elif value is not None or key not in BATCHING_KEYS:
            flat[key] = _plain(value)
    return flat


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def config_columns(configs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The config columns of a table of these (flattened) configs, in config order: the
    batching key of every backend present, then every key whose value differs between them."""
    seen: dict[str, list[Any]] = {}
    backends: dict[str, None] = {}
    for config in configs:
        backends[str(config.get("backend"))] = None
        for key, value in config.items():
            values = seen.setdefault(key, [])
            if value not in values:
                values.append(value)
    batching = [BATCHING_KEYS[b] for b in backends if b in BATCHING_KEYS]
    swept = [
        key
        for key, values in seen.items()
        if key not in ALREADY_COLUMNS and key not in batching and len(values) > 1
    ]
    return batching + swept


def config_cells(config: Mapping[str, Any] | None, columns: Sequence[str]) -> dict[str, Any]:
    """This (flattened) config's values for the columns; None where it has none."""
    if config is None:
        return dict.fromkeys(columns)
    return {column: config.get(column) for column in columns}


def with_config_columns(columns: Sequence[str], config: Sequence[str]) -> list[str]:
    """A table's columns with the config columns placed right after ``precision``."""
    at = list(columns).index("precision") + 1
    return [*columns[:at], *config, *columns[at:]]


__all__ = [
    "BATCHING_KEYS",
    "config_cells",
    "config_columns",
    "flat_config",
    "with_config_columns",
]
