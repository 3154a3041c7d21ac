"""What a campaign grid varies, per backend: its levels, their axes, and what an exclude matches.

Pure derivations from a campaign grid (``CampaignGridConfig``) shared by the load-time checks (a linked key that
clashes with a shared one, an exclude entry that can match nothing) and the expander, so the
two can never disagree about which axis sets a key or which points an entry drops.

A *level* is what one expansion pass covers: the grid itself, or, with ``groups``, each group
applied on top of it (a group's axes replace the grid's axes that set the same keys). A level
gives each backend its axes in the documented order: models, shared axes, linked axes, backend
axes, as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from llenergymeasure.config.models import BACKEND_SECTIONS

Where = tuple[str | int, ...]
"""A key path in the campaign file, relative to ``grid`` (the loader turns it into a line)."""
ConfigPath = tuple[str, ...]
"""Where a value lands in an experiment config dict."""

ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "<absent>"})()
"""The value of a key a linked point does not set."""


class _AxesShape(Protocol):
    """The axes a grid and each of its groups hold."""

    @property
    def shared(self) -> Mapping[str, Any]: ...
    @property
    def linked(self) -> Sequence[Sequence[dict[str, Any]]]: ...
    @property
    def backend_overrides(self) -> Mapping[Any, Mapping[str, Any]]: ...
    @property
    def exclude(self) -> Sequence[dict[str, Any]]: ...


class GroupShape(_AxesShape, Protocol):
    """What :func:`levels` reads of a grid group (``grid_config.GridGroup``)."""

    @property
    def name(self) -> str: ...


class GridShape(_AxesShape, Protocol):
    """What :func:`levels` reads of a grid (``grid_config.CampaignGridConfig``, which imports
    this module: a protocol keeps the dependency one way)."""

    @property
    def backends(self) -> Sequence[str]: ...
    @property
    def groups(self) -> Sequence[GroupShape] | None: ...


# GridLevel and AxisSpec are NamedTuples (immutable, compared by value): on Python 3.11 a
# frozen dataclass costs ~1.5 ms to create when the module is imported, a NamedTuple a tenth.


class GridLevel(NamedTuple):
    """One expansion pass: the grid, or one group on top of it."""

    group: str | None
    shared: dict[str, tuple[Where, Any]]
    linked: tuple[tuple[Where, tuple[dict[str, Any], ...]], ...]
    overrides: dict[str, dict[str, tuple[Where, Any]]]
    exclude: tuple[tuple[Where, dict[str, Any]], ...]


class AxisSpec(NamedTuple):
    """One axis of one backend in one level.

    A plain axis sets ``path`` to each of ``values``; a linked axis (``path`` None) sets several
    paths per value: each value is a point, a tuple of (path, value) pairs.
    """

    key: str
    where: Where
    path: ConfigPath | None
    values: tuple[Any, ...]
    scope: str = ""
    """Naming scope: "" for a key named alike across backends, else the backend's name."""

    def value_at(self, index: int, path: ConfigPath) -> Any:
        """What choice ``index`` puts at ``path`` (digging into dict values), or ABSENT."""
        pairs = self.values[index] if self.path is None else ((self.path, self.values[index]),)
        for own, value in pairs:
            if own == path:
                return value
            if own == path[: len(own)] and isinstance(value, dict):
                for part in path[len(own) :]:
                    if not isinstance(value, dict) or part not in value:
                        return ABSENT
                    value = value[part]
                return value
        return ABSENT

    def sets(self, path: ConfigPath) -> bool:
        return any(self.value_at(i, path) is not ABSENT for i in range(len(self.values)))


def config_path(key: str) -> ConfigPath:
    """The dict path of a dotted key as written in shared, linked or exclude (``model`` with a
    name is ``model.name``)."""
    if key == "model":
        return ("model", "name")
    return tuple(key.split("."))


def override_path(backend: str, key: str) -> ConfigPath:
    """A ``backend_overrides[backend]`` key: a field of the section, else a top-level field."""
    head = key.split(".")[0]
    if head in BACKEND_SECTIONS[backend].model_fields:
        return (backend, *key.split("."))
    return tuple(key.split("."))


def linked_keys(axis: tuple[dict[str, Any], ...]) -> list[str]:
    """Every key a linked axis sets, in first-written order."""
    return list(dict.fromkeys(key for point in axis for key in point))


def levels(grid: GridShape) -> list[GridLevel]:
    """The grid as one level, or one level per group (group axes replacing the grid's)."""
    top = GridLevel(
        group=None,
        shared={k: (("shared", k), v) for k, v in grid.shared.items()},
        linked=tuple((("linked", i), tuple(axis)) for i, axis in enumerate(grid.linked)),
        overrides={
            b: {k: (("backend_overrides", b, k), v) for k, v in axes.items()}
            for b, axes in grid.backend_overrides.items()
        },
        exclude=tuple((("exclude", i), entry) for i, entry in enumerate(grid.exclude)),
    )
    if not grid.groups:
        return [top]
    result = []
    for g, group in enumerate(grid.groups):
        at: Where = ("groups", g)
        new_linked = [((*at, "linked", i), tuple(axis)) for i, axis in enumerate(group.linked)]
        touched = set(group.shared) | {k for _, axis in new_linked for k in linked_keys(axis)}
        shared = {k: v for k, v in top.shared.items() if k not in touched}
        shared.update({k: ((*at, "shared", k), v) for k, v in group.shared.items()})
        kept_linked = [(w, axis) for w, axis in top.linked if not touched & set(linked_keys(axis))]
        overrides: dict[str, dict[str, tuple[Where, Any]]] = {}
        for backend in grid.backends:
            replaced = {
                k: v
                for k, v in top.overrides.get(backend, {}).items()
                if ".".join(override_path(backend, k)) not in touched
            }
            for k, v in group.backend_overrides.get(backend, {}).items():
                replaced[k] = ((*at, "backend_overrides", backend, k), v)
            if replaced:
                overrides[backend] = replaced
        result.append(
            GridLevel(
                group=group.name,
                shared=shared,
                linked=tuple(kept_linked + new_linked),
                overrides=overrides,
                exclude=top.exclude
                + tuple(((*at, "exclude", i), e) for i, e in enumerate(group.exclude)),
            )
        )
    return result


def _values(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


def backend_axes(
    level: GridLevel, backend: str, models: list[str] | None, named_shared: set[str]
) -> list[AxisSpec]:
    """The axes of ``backend`` in ``level``, in expansion order.

    ``named_shared``: top-level keys named alike across backends (shared or linked somewhere);
    a top-level key only a backend override sets is named per backend.
    """
    overrides = level.overrides.get(backend, {})
    axes: list[AxisSpec] = []
    if models is not None:
        axes.append(AxisSpec("model.name", ("models",), ("model", "name"), tuple(models)))
    for key, (where, value) in level.shared.items():
        if key in overrides:
            where, value = overrides[key]
        axes.append(AxisSpec(key, where, config_path(key), _values(value)))
    for where, axis in level.linked:
        points = tuple(
            tuple(
                (config_path(k) if isinstance(v, str) else tuple(k.split(".")), v)
                for k, v in point.items()
                if k.split(".")[0] not in BACKEND_SECTIONS or k.split(".")[0] == backend
            )
            for point in axis
        )
        axes.append(AxisSpec(",".join(linked_keys(axis)), where, None, points))
    for key, (where, value) in overrides.items():
        if key in level.shared:
            continue  # replaced the shared axis above, in its position
        path = override_path(backend, key)
        scope = "" if path[0] != backend and key in named_shared else backend
        axes.append(AxisSpec(key, where, path, _values(value), scope))
    return axes


def same_value(a: Any, b: Any) -> bool:
    """Equal as config values: ``True`` is not ``1``."""
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def exclude_conditions(
    entry: dict[str, Any], axes: list[AxisSpec], backend: str
) -> dict[int, frozenset[int]] | None:
    """Which choices of which axes an exclude entry accepts, for one backend's axes.

    None: the entry cannot match this backend's points (another backend, or a key no axis of
    this backend sets). An empty set: no choice of that axis has the value.
    """
    conditions: dict[int, frozenset[int]] = {}
    for key, wanted in entry.items():
        wants = _values(wanted)
        if key == "backend":
            if not any(same_value(backend, w) for w in wants):
                return None
            continue
        path = config_path(key)
        if path[0] in BACKEND_SECTIONS and path[0] != backend:
            return None
        index = next((i for i in reversed(range(len(axes))) if axes[i].sets(path)), None)
        if index is None:
            return None
        axis = axes[index]
        accepted = frozenset(
            i
            for i in range(len(axis.values))
            if any(same_value(axis.value_at(i, path), w) for w in wants)
        )
        conditions[index] = conditions.get(index, accepted) & accepted
    return conditions
