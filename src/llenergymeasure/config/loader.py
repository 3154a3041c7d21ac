"""YAML file -> config model, with errors that name the file, line, key path and fix.

Structural mistakes (YAML syntax, unknown key, wrong type, a value a field can never take) raise
:class:`ConfigError` (exit 2). A well-formed experiment whose values do not go together raises
:class:`InvalidCombinationError`, exit 2 as well (the config cannot be used as written); a
campaign filters such points instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from llenergymeasure.config.campaign_config import (
    CampaignConfig,
    CampaignGridConfig,
    check_fixed_values,
)
from llenergymeasure.config.dicts import clone, expand_model_shorthand, set_path
from llenergymeasure.config.engine_args import check_installed_engine_kwargs
from llenergymeasure.config.introspection import nearest_names, submodel
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.predecessor import Context, key_hint, value_hint
from llenergymeasure.config.yaml_reader import LineMap, read_lazily, read_text
from llenergymeasure.exceptions import ConfigError

Path_ = tuple[str | int, ...]


class InvalidCombinationError(ConfigError):
    """Every value is fine on its own, but together they cannot run."""


def read_yaml(path: str | Path) -> tuple[dict[str, Any], LineMap]:
    """Parse a YAML mapping (within the limits of :mod:`yaml_reader`), returning it and the
    line of each key path (worked out when first looked up: only messages need them)."""
    data, lines = read_lazily(read_text(path), source=str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of keys at the top level, got {type(data).__name__}",
            where=str(path),
            fix="see examples/ for the file layout",
        )
    return data, lines


def _model_at(root: type[BaseModel], loc: Path_) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        model = submodel(model.model_fields[part].annotation)
    return model


_CONTEXTS: dict[type[BaseModel] | None, Context] = {
    CampaignConfig: "campaign",
    CampaignGridConfig: "grid",
    ExperimentConfig: "experiment",
}
"""Which predecessor hints apply to the unknown keys of a model."""


def _line_for(loc: Path_, lines: Mapping[Path_, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def describe_errors(
    err: ValidationError,
    *,
    file: str | Path | None,
    lines: Mapping[Path_, int] | None = None,
    root: type[BaseModel] = ExperimentConfig,
    prefix: Path_ = (),
) -> list[str]:
    """One line per problem: ``file:line: key.path: message``, with 'did you mean' for typos."""
    out = []
    for item in err.errors(include_url=False):
        loc: Path_ = (*prefix, *item["loc"], *(item.get("ctx") or {}).get("subpath", ()))
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            parent = _model_at(root, loc[len(prefix) : -1])
            key = str(loc[-1])
            near = nearest_names(key, list(parent.model_fields)) if parent else []
            msg = f"unknown key '{key}'" + (
                f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
            )
            hint = key_hint(_CONTEXTS.get(parent, "experiment"), key) if parent else None
            msg = f"unknown key '{key}'; {hint}" if hint else msg
        elif item["type"] == "literal_error":
            hint = value_hint(item["input"])
            msg = (
                f"{_shown(item['input'])} is not a valid choice; "
                + (f"{hint}; " if hint else "")
                + f"expected {item['ctx']['expected']}"
            )
        elif (
            item["type"] not in ("invalid_combination", "grid_key", "value_error")
            and "input" in item
        ):
            msg = f"{msg} (got {_shown(item['input'])})"
        path = ".".join(str(p) for p in loc)
        line = _line_for(loc, lines or {})
        where = f"{file}:{line}" if file and line else (str(file) if file else "")
        parts = [p for p in (where, path) if p]
        out.append(f"{': '.join(parts)}: {msg}" if parts else msg)
    return out


SHOWN_CHARS = 80
"""Longest rendering of a user's value in a message (a hostile file can hold megabytes)."""
SHOWN_PROBLEMS = 20
"""Most problems listed in one message; the rest are counted."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 3]}..."


def _bullets(problems: list[str]) -> str:
    listed = problems[:SHOWN_PROBLEMS]
    more = len(problems) - len(listed)
    tail = f"\n  ... and {more} more problem(s)" if more else ""
    return "\n  - " + "\n  - ".join(listed) + tail


def _is_combination(err: ValidationError) -> bool:
    return all(e["type"] == "invalid_combination" for e in err.errors())


def validate_experiment(
    data: dict[str, Any],
    *,
    file: str | Path | None = None,
    lines: Mapping[Path_, int] | None = None,
) -> ExperimentConfig:
    """Build an ExperimentConfig, turning validation errors into one readable message; where
    vLLM is installed, ``engine_kwargs`` names are checked against its EngineArgs too."""
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as err:
        problems = describe_errors(err, file=file, lines=lines)
        cls = InvalidCombinationError if _is_combination(err) else ConfigError
        raise cls(
            "invalid experiment config:" + _bullets(problems),
            fix=_generic_fix(
                problems, "`llem config params` lists every key with its valid values"
            ),
        ) from None
    check_installed_engine_kwargs(data, file or "config", lambda loc: _line_for(loc, lines or {}))
    return config


def _generic_fix(problems: list[str], fix: str) -> str | None:
    """The general pointer, unless every problem already says how to fix it."""
    specific = all("fix:" in p or "did you mean" in p or "valid:" in p for p in problems)
    return None if specific else fix


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with dotted-key overrides applied (dict values deep-merged)."""
    result = clone(expand_model_shorthand(data))
    for key, value in overrides.items():
        set_path(result, key.split("."), value)
    return result


def load_experiment_config(
    path: str | Path, overrides: dict[str, Any] | None = None
) -> ExperimentConfig:
    """Load an experiment YAML, apply dotted overrides, validate."""
    data, lines = read_yaml(path)
    if overrides:
        data = apply_overrides(data, overrides)
    return validate_experiment(data, file=path, lines=lines)


def check_experiment_file(
    data: dict[str, Any], path: str | Path, lines: Mapping[Path_, int]
) -> None:
    """Fail at load on an unknown key or impossible value in an experiment file of a campaign."""
    try:
        check_fixed_values(data)
    except PydanticCustomError as err:
        loc: Path_ = tuple((err.context or {}).get("subpath", ()))
        line = _line_for(loc, lines)
        raise ConfigError(err.message(), where=f"{path}:{line}" if line else str(path)) from None


def load_campaign_config(path: str | Path) -> CampaignConfig:
    """Load a campaign YAML; a ``base_config`` path is read relative to the campaign file."""
    data, lines = read_yaml(path)
    base = data.get("base_config")
    if isinstance(base, str):
        base_path = (Path(path).parent / base).resolve()
        base_data, _ = read_yaml(base_path)
        data = {**data, "base_config": base_data}
    try:
        campaign = CampaignConfig.model_validate(data)
    except ValidationError as err:
        problems = describe_errors(err, file=path, lines=lines, root=CampaignConfig)
        raise ConfigError(
            "invalid campaign config:" + _bullets(problems),
            fix=_generic_fix(problems, "`llem config params` lists experiment keys"),
        ) from None
    if lines.mentions("engine_kwargs"):  # the text holds none: nothing to walk
        check_installed_engine_kwargs(data, path, lambda loc: _line_for(loc, lines))
    return campaign
