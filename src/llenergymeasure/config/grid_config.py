"""The campaign grid's schema, ``CampaignGridConfig``, and every check it makes at load.

Grid semantics (what the grid expander relies on, checked here at load):
a list is an axis, a scalar a fixed value, an empty list an error; keys may be dotted; a dict
value is deep-merged at its key; ``backend_overrides[b]`` keys name a field of b's section or a
top-level experiment field (replacing that shared axis for b). ``linked`` axes set several keys
per point (a backend-section key only for that backend); ``exclude`` drops the points that match
every key of an entry; ``groups`` make the grid a union of sub-grids. Values a field can never
take, keys two axes set, and exclude entries that can match nothing fail here; only
*combinations* are left for per-experiment filtering.
"""

# No `from __future__ import annotations`: pydantic would compile every field's annotation
# back from its string when the class is built (a few ms of `llem campaign validate`).
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from llenergymeasure.config._base import StrictModel, factory
from llenergymeasure.config.grid_axes import (
    ABSENT,
    Where,
    backend_axes,
    config_path,
    exclude_conditions,
    levels,
    linked_keys,
    override_path,
)
from llenergymeasure.config.introspection import check_param_value, nearest_names, resolve_param
from llenergymeasure.config.models import BACKEND_SECTIONS, Backend, ExperimentConfig
from llenergymeasure.config.text import PlainText

_RESERVED_AXES = {
    "backend": "list backends under grid.backends",
    "model": "list models under grid.models",
    "model.name": "list models under grid.models",
    "name": "names are generated; set a name prefix in base_config",
}


def key_error(subpath: Where, message: str) -> PydanticCustomError:
    """A load error at a key below the validated field; ``subpath`` lets the loader find its line."""
    return PydanticCustomError("grid_key", "{message}", {"message": message, "subpath": subpath})


def _dotted(where: Where) -> str:
    return "grid." + ".".join(str(p) for p in where)


_KNOWN_GOOD: set[tuple[Any, ...]] = set()
"""(model, key) and (model, key, type, value) already found valid: an explicit list of thousands
of experiments repeats the same few keys and values, each checked once."""
_KNOWN_GOOD_MAX = 100_000


def _remember(entry: tuple[Any, ...]) -> None:
    if len(_KNOWN_GOOD) < _KNOWN_GOOD_MAX:
        _KNOWN_GOOD.add(entry)


def _check_value(model: type[Any], key: str, value: Any) -> None:
    try:
        entry: tuple[Any, ...] | None = (model, key, type(value), value)
        if entry in _KNOWN_GOOD:
            return
    except TypeError:  # an unhashable value (a dict section): checked every time
        entry = None
    check_param_value(model, key, value)
    if entry is not None:
        _remember(entry)


MAX_AXIS_VALUES = 10_000
"""Most values one axis sweeps: far beyond any study, and the limit that keeps a typo (or a
hostile file) from planning one experiment per value of a 100,000-value list."""


def check_axes(axes: dict[str, Any], model: type[Any], where: Where) -> None:
    """Each key exists under ``model`` and each value (each item of an axis) can be valid."""
    for key, value in axes.items():
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            raise key_error(
                (*where, key),
                f"'{key}' is an empty list; fix: give at least one value or remove it",
            )
        if len(values) > MAX_AXIS_VALUES:
            raise key_error(
                (*where, key),
                f"'{key}' sweeps {len(values):,} values, more than {MAX_AXIS_VALUES:,}; "
                "fix: sweep fewer values (a study samples an axis, e.g. powers of two)",
            )
        if (model, key) not in _KNOWN_GOOD:
            try:
                resolve_param(model, key)
            except ValueError as err:
                raise key_error((*where, key), str(err)) from None
            _remember((model, key))
        for index, item in enumerate(values):
            try:
                _check_value(model, key, item)
            except ValueError as err:
                at = (*where, key, index) if isinstance(value, list) else (*where, key)
                raise key_error(at, str(err)) from None


def _check_shared(shared: dict[str, Any], where: Where) -> None:
    for key in shared:
        head = key.split(".")[0]
        if key in _RESERVED_AXES:
            raise key_error(
                (*where, key), f"'{key}' cannot be a shared axis; fix: {_RESERVED_AXES[key]}"
            )
        if head in BACKEND_SECTIONS:
            raise key_error(
                (*where, key),
                f"'{key}' belongs to the {head} backend; fix: move it to "
                f"grid.backend_overrides.{head}.{key.split('.', 1)[-1]} or into a linked point",
            )
    check_axes(shared, ExperimentConfig, where)


def _check_overrides(
    overrides: dict[str, dict[str, Any]], backends: list[str], where: Where
) -> None:
    for backend, axes in overrides.items():
        if backend not in backends:
            raise key_error(
                (*where, backend),
                f"backend_overrides has '{backend}' but grid.backends is "
                f"{backends}; fix: add {backend} to grid.backends or remove its overrides",
            )
        section = BACKEND_SECTIONS[backend]
        for key, value in axes.items():
            at: Where = (*where, backend)
            if key.split(".")[0] in section.model_fields:
                check_axes({key: value}, section, at)
                continue
            if key in _RESERVED_AXES:
                raise key_error(
                    (*at, key), f"'{key}' cannot be overridden; fix: {_RESERVED_AXES[key]}"
                )
            try:
                resolve_param(ExperimentConfig, key)
            except ValueError:
                near = nearest_names(key, [*section.model_fields, *ExperimentConfig.model_fields])
                hint = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
                raise key_error(
                    (*at, key),
                    f"unknown key '{key}': neither a {backend} parameter nor an experiment "
                    f"field; {hint}fix: check the spelling (`llem config params --backend "
                    f"{backend}` lists them)",
                ) from None
            check_axes({key: value}, ExperimentConfig, at)


def _check_linked(
    linked: list[list[dict[str, Any]]], backends: list[str], models: bool, where: Where
) -> None:
    for i, axis in enumerate(linked):
        for j, point in enumerate(axis):
            for key, value in point.items():
                at: Where = (*where, i, j, key)
                head = key.split(".")[0]
                if key in ("backend", "name") or (models and key in ("model", "model.name")):
                    fix = _RESERVED_AXES[key]
                    raise key_error(at, f"'{key}' cannot be set in a linked point; fix: {fix}")
                if head in BACKEND_SECTIONS and head not in backends:
                    raise key_error(
                        at,
                        f"'{key}' sets a {head} parameter but grid.backends is {backends}; "
                        f"fix: add {head} to grid.backends or remove the key",
                    )
                if isinstance(value, list):
                    raise key_error(
                        at,
                        f"'{key}' is a list; a linked point sets one value per key; fix: give "
                        "each value its own point",
                    )
                try:
                    resolve_param(ExperimentConfig, key)
                    check_param_value(ExperimentConfig, key, value)
                except ValueError as err:
                    raise key_error(at, f"{err}; fix: check `llem config params`") from None


def _check_exclude_keys(
    exclude: list[dict[str, Any]], backends: list[str], models: list[str] | None, where: Where
) -> None:
    for i, entry in enumerate(exclude):
        if not entry:
            raise key_error(
                (*where, i), "an empty exclude entry would drop every point; fix: remove it"
            )
        for key, wanted in entry.items():
            at: Where = (*where, i, key)
            wants = wanted if isinstance(wanted, list) else [wanted]
            if isinstance(wanted, list) and not wanted:
                raise key_error(at, f"'{key}' is an empty list; fix: give the values to drop")
            if key == "backend":
                unknown = [w for w in wants if w not in backends]
                if unknown:
                    raise key_error(
                        at,
                        f"exclude names backend {unknown[0]!r}, which grid.backends "
                        f"({backends}) does not list, so it can match nothing; fix: use one of "
                        "grid.backends",
                    )
                continue
            if key in ("model", "model.name") and models is not None:
                unknown = [w for w in wants if w not in models]
                if unknown:
                    raise key_error(
                        at,
                        f"exclude names model {unknown[0]!r}, which grid.models does not list, "
                        "so it can match nothing; fix: copy the name from grid.models",
                    )
                continue
            try:
                resolve_param(ExperimentConfig, key)
                for item in wants:
                    check_param_value(ExperimentConfig, key, item)
            except ValueError as err:
                raise key_error(at, f"{err}; fix: exclude keys are full dotted keys") from None


class GridGroup(StrictModel):
    """One sub-grid of a union: the grid's axes, with these applied on top."""

    name: PlainText = Field(..., min_length=1, description="Names the group in messages.")
    shared: dict[str, Any] = Field(
        default_factory=factory(dict),
        description="Axes added to (or replacing) the grid's shared axes.",
    )
    linked: list[list[dict[str, Any]]] = Field(
        default_factory=factory(list),
        description="Linked axes added; an axis setting a key replaces the grid's axes on it.",
    )
    backend_overrides: dict[Backend, dict[str, Any]] = Field(
        default_factory=factory(dict), description="Per-backend axes, merged over the grid's."
    )
    exclude: list[dict[str, Any]] = Field(
        default_factory=factory(list), description="More exclude entries, for this group only."
    )

    @field_validator("shared")
    @classmethod
    def _shared(cls, shared: dict[str, Any]) -> dict[str, Any]:
        _check_shared(shared, ())
        return shared


class CampaignGridConfig(StrictModel):
    """The grid: backends x models x shared axes x linked axes x per-backend axes, minus
    excluded points, or a union of such sub-grids (``groups``)."""

    backends: list[Backend] = Field(
        ["pytorch"], min_length=1, description="Backends to sweep, in order."
    )
    models: list[PlainText] | None = Field(
        None, min_length=1, description="Model names to sweep (sets model.name)."
    )
    shared: dict[str, Any] = Field(
        default_factory=factory(dict),
        description="Axes applied to every backend: key -> list (axis) or scalar.",
    )
    linked: list[list[dict[str, Any]]] = Field(
        default_factory=factory(list),
        description="Linked axes: each a list of points; a point sets several dotted keys "
        "together, in any section (a backend-section key only for that backend).",
    )
    backend_overrides: dict[Backend, dict[str, Any]] = Field(
        default_factory=factory(dict),
        description="Per-backend axes: a key of the backend's section, or a top-level field to replace.",
    )
    exclude: list[dict[str, Any]] = Field(
        default_factory=factory(list),
        description="Drop a point matching every key of one entry (a list value: any of), "
        "before validation; keys are full dotted keys, or backend / model.",
    )
    groups: list[GridGroup] | None = Field(
        None,
        min_length=1,
        description="A union of sub-grids, each applied on top of this grid, in order.",
    )

    @field_validator("backends")
    @classmethod
    def _unique_backends(cls, backends: list[str]) -> list[str]:
        seen = [b for i, b in enumerate(backends) if b in backends[:i]]
        if seen:
            raise ValueError(f"backend '{seen[0]}' is listed twice; fix: list each backend once")
        return backends

    @field_validator("shared")
    @classmethod
    def _shared(cls, shared: dict[str, Any]) -> dict[str, Any]:
        _check_shared(shared, ())
        return shared

    @model_validator(mode="after")
    def _check(self) -> "CampaignGridConfig":
        sources: list[tuple[Where, Any]] = [((), self)]
        names: dict[str, int] = {}
        for g, group in enumerate(self.groups or ()):
            if group.name in names:
                raise key_error(
                    ("groups", g, "name"),
                    f"group name '{group.name}' is used twice; fix: give each group its own name",
                )
            names[group.name] = g
            sources.append((("groups", g), group))
        backends: list[str] = list(self.backends)
        for at, part in sources:
            _check_overrides(part.backend_overrides, backends, (*at, "backend_overrides"))
            _check_linked(part.linked, backends, self.models is not None, (*at, "linked"))
            _check_exclude_keys(part.exclude, backends, self.models, (*at, "exclude"))
        self._check_levels()
        return self

    def _check_levels(self) -> None:
        """Keys set twice within a level, exclude entries that match nothing, repeated groups."""
        seen: dict[str, str] = {}
        reachable: set[Where] = set()
        for level in levels(self):
            _check_clashes(level.shared, level.linked, level.overrides)
            signature = repr(
                (
                    {k: v for k, (_, v) in level.shared.items()},
                    [axis for _, axis in level.linked],
                    {b: {k: v for k, (_, v) in o.items()} for b, o in level.overrides.items()},
                    [e for _, e in level.exclude],
                )
            )
            if level.group is not None and signature in seen:
                index = next(i for i, g in enumerate(self.groups or ()) if g.name == level.group)
                raise key_error(
                    ("groups", index),
                    f"group '{level.group}' gives exactly the points of group "
                    f"'{seen[signature]}'; fix: remove one of them",
                )
            if level.group is not None:
                seen[signature] = level.group
            for backend in self.backends:
                axes = backend_axes(level, backend, self.models, set())
                for where, entry in level.exclude:
                    conditions = exclude_conditions(entry, axes, backend)
                    if conditions is not None and all(conditions.values()):
                        reachable.add(where)
        for level in levels(self):
            for where, entry in level.exclude:
                if where not in reachable:
                    raise key_error(where, _never_matches(entry, self, level))


def _check_clashes(
    shared: dict[str, tuple[Where, Any]],
    linked: tuple[tuple[Where, tuple[dict[str, Any], ...]], ...],
    overrides: dict[str, dict[str, tuple[Where, Any]]],
) -> None:
    """A key set by two axes of one level: the point would need two values for it."""
    owner: dict[str, str] = {key: _dotted(where) for key, (where, _) in shared.items()}
    for backend, axes in overrides.items():
        for key, (where, _) in axes.items():
            owner.setdefault(".".join(override_path(backend, key)), _dotted(where))
    for where, axis in linked:
        for key in linked_keys(axis):
            full = ".".join(config_path(key))
            if full in owner:
                j = next(j for j, point in enumerate(axis) if key in point)
                raise key_error(
                    (*where, j, key),
                    f"'{key}' is set both by the linked axis {_dotted(where)} and by "
                    f"{owner[full]}; a point cannot take two values for it; fix: set it in "
                    "one place only (move the values into the linked points, or drop one)",
                )
        for key in linked_keys(axis):
            owner[".".join(config_path(key))] = _dotted(where)


def _never_matches(entry: dict[str, Any], grid: CampaignGridConfig, level: Any) -> str:
    """Why an exclude entry can match no point of the grid, for its message."""
    shown = ", ".join(f"{k}: {v!r}" for k, v in entry.items())
    for key in entry:
        if key == "backend":
            continue
        path = config_path(key)
        set_somewhere = any(
            axis.sets(path)
            for lvl in levels(grid)
            for backend in grid.backends
            for axis in backend_axes(lvl, backend, grid.models, set())
        )
        if not set_somewhere:
            return (
                f"exclude entry {{{shown}}} can match nothing: no axis of the grid sets "
                f"'{key}', so every point has the same {key} and the entry would drop all of "
                "them or none; fix: exclude on a key the grid varies (shared, linked, "
                "backend_overrides), or change base_config instead"
            )
    possible: list[str] = []
    wanted = entry.get("backend", grid.backends)
    for backend in [
        b for b in grid.backends if b in (wanted if isinstance(wanted, list) else [wanted])
    ]:
        axes = backend_axes(level, backend, grid.models, set())
        for key in entry:
            if key == "backend":
                continue
            path = config_path(key)
            values = {
                repr(v)
                for axis in axes
                for i in range(len(axis.values))
                if (v := axis.value_at(i, path)) is not ABSENT
            }
            if values:
                possible.append(f"{key} on {backend}: {', '.join(sorted(values))}")
    which = f"; the grid gives {'; '.join(possible)}" if possible else ""
    return (
        f"exclude entry {{{shown}}} can match no point: no point has all of these values "
        f"together{which}; fix: check the values against the axes, or remove the entry"
    )


__all__ = ["CampaignGridConfig", "GridGroup", "check_axes", "key_error"]
