"""Command-line flags over an experiment file: one consistent rule for every flag.

A flag replaces the file's value. ``--backend`` also moves the file's section of the old
backend where nothing is lost (a key that means the same in the new section moves, a key at
its default is dropped) and otherwise refuses, naming the file's line and what to change. A
flag that sets a key the chosen backend has not (``--batch-size`` on vLLM) names the key to
use instead. Every refusal is a :class:`ConfigError` (exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llenergymeasure.config.dicts import clone, expand_model_shorthand
from llenergymeasure.exceptions import ConfigError

FLAG_KEYS = {
    "--model": "model.name",
    "--backend": "backend",
    "--precision": "fp_precision",
    "--batch-size": "pytorch.batch_size",
    "--num-prompts": "dataset.num_prompts",
    "--max-output-tokens": "max_output_tokens",
}
"""Each ``llem run`` flag and the dotted key it sets."""


def _same_meaning(section: str, key: str, target: str) -> str | None:
    """``target``'s key that sets what ``section.key`` sets (moved by ``--backend``), if any."""
    from llenergymeasure.config.backends import BACKENDS

    for role, name in BACKENDS[section].roles.items():
        if name == key and role != "batching":  # batching differs in meaning: see _instead
            return BACKENDS[target].roles.get(role)
    return None


def _instead(section: str, key: str, target: str) -> str:
    """What to set instead of ``section.key`` on ``target``: its nearest key, if it has one."""
    from llenergymeasure.config.backends import BACKENDS

    source, spec = BACKENDS[section], BACKENDS.get(target)
    if spec is not None and source.roles.get("batching") == key and "batching" in spec.roles:
        field = spec.section.model_fields[spec.roles["batching"]]
        meaning = (field.description or "").rstrip(".").lower()
        return f"set {spec.batching_key} ({meaning}) in the file"
    return f"see `llem config params -b {target}`"


def _line(file: Path | None, lines: Mapping[tuple[Any, ...], int], path: tuple[str, ...]) -> str:
    line = lines.get(path) if file is not None else None
    return f"{file}:{line}" if line else (str(file) if file else "command line")


def switch_backend(
    data: dict[str, Any],
    target: str,
    *,
    file: Path | None,
    lines: Mapping[tuple[Any, ...], int],
) -> tuple[dict[str, Any], list[str]]:
    """``data`` with every other backend's section moved into ``target``'s, and what was done.

    Raises ConfigError (with the file's line) for a key set away from its default that
    ``target`` has no equal for."""
    from llenergymeasure.config.models import BACKEND_SECTIONS

    if target not in BACKEND_SECTIONS:
        return data, []  # validation names the valid backends
    result, notes = clone(data), list[str]()
    fields = BACKEND_SECTIONS[target].model_fields
    for section in BACKEND_SECTIONS:
        values = result.get(section) if section != target else None
        if not isinstance(values, dict):
            continue
        source_fields = BACKEND_SECTIONS[section].model_fields
        moved: dict[str, Any] = {}
        for key, value in values.items():
            field = source_fields.get(key)
            if field is not None and value == field.get_default(call_default_factory=True):
                continue  # at its default: nothing is lost by dropping it
            new_key = _same_meaning(section, key, target)
            if new_key is None or new_key not in fields:
                raise ConfigError(
                    f"{section}.{key} is set to {value!r}, but --backend {target} has no "
                    f"'{section}:' section and no key that means the same",
                    where=_line(file, lines, (section, key)),
                    fix=f"remove {section}.{key} or {_instead(section, key, target)}; "
                    f"or drop --backend to run {section}",
                )
            moved[new_key] = value
            notes.append(f"--backend {target}: {section}.{key} moved to {target}.{new_key}")
        del result[section]
        if moved:
            existing = result.get(target)
            result[target] = {**moved, **(existing if isinstance(existing, dict) else {})}
        if not moved:
            notes.append(f"--backend {target}: the '{section}:' section (all defaults) is dropped")
    return result, notes


def apply_flags(
    data: dict[str, Any],
    flags: dict[str, Any],
    *,
    file: Path | None,
    lines: Mapping[tuple[Any, ...], int],
) -> tuple[dict[str, Any], list[str]]:
    """The file's data with the given flags (``{"--backend": "vllm", ...}``, unset ones None)
    applied, and notes on what ``--backend`` moved."""
    from llenergymeasure.config.dicts import set_path
    from llenergymeasure.config.models import BACKEND_SECTIONS

    given = {flag: value for flag, value in flags.items() if value is not None}
    result, notes = expand_model_shorthand(clone(data)), list[str]()
    backend = given.get("--backend")
    if backend is not None and backend != result.get("backend", "pytorch"):
        result, notes = switch_backend(result, backend, file=file, lines=lines)
    chosen = backend or result.get("backend", "pytorch")
    for flag, value in given.items():
        key = FLAG_KEYS[flag]
        section, _, name = key.partition(".")
        if section in BACKEND_SECTIONS and section != chosen:
            raise ConfigError(
                f"{flag} sets {key}, which backend {chosen} does not have",
                where="command line",
                fix=f"{_instead(section, name, chosen)}, or use --backend {section}",
            )
        set_path(result, key.split("."), value)
    return result, notes
