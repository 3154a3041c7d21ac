"""A campaign grid as expansion plans: per level and backend, its axes, names and exclusions.

``plan_grid`` turns ``CampaignGridConfig`` into one ``BackendPlan`` per (level, backend) in
expansion order: group by group, backend by backend. A plan knows its axes in order (models,
shared, linked, backend axes; the last varies fastest), which keys appear in experiment names,
and the exclude rules that can drop its points, so the expander never re-derives them and
``count_kept`` counts the points left after exclusion exactly, without enumerating them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.config.dicts import expand_model_shorthand
from llenergymeasure.config.grid_axes import (
    AxisSpec,
    ConfigPath,
    GridLevel,
    Where,
    backend_axes,
    exclude_conditions,
    levels,
    linked_keys,
)
from llenergymeasure.config.introspection import get_backend_params, get_shared_params
from llenergymeasure.config.models import BACKEND_SECTIONS


@dataclass(frozen=True)
class PlanAxis:
    """An axis with how its values are named: a plain axis by ``short`` (None: not named), a
    linked axis by the ``named`` paths of each point."""

    spec: AxisSpec
    short: str | None = None
    named: frozenset[ConfigPath] = frozenset()


ExcludeRule = tuple[str, dict[int, frozenset[int]]]
"""(label, accepted choice indices per axis index): a point matching every axis is dropped."""


@dataclass(frozen=True)
class BackendPlan:
    backend: str
    group: str | None
    base: dict[str, Any]
    axes: tuple[PlanAxis, ...]
    rules: tuple[ExcludeRule, ...] = ()
    rule_labels: tuple[str, ...] = ()
    """Every exclude entry of the level, matching here or not (to report ones that never do)."""

    @property
    def count(self) -> int:
        """Points generated, excluded ones included."""
        return math.prod(len(a.spec.values) for a in self.axes)

    def count_kept(self) -> int:
        """Points left after exclusion, counted exactly without enumerating the grid."""
        sizes = [len(a.spec.values) for a in self.axes]
        return math.prod(sizes) - _count_covered(sizes, [conds for _, conds in self.rules])


def _count_covered(sizes: list[int], rules: list[dict[int, frozenset[int]]]) -> int:
    """How many points of the product of ``sizes`` match at least one rule.

    Walks only the axes some rule constrains, one at a time, grouping that axis's choices by
    the set of rules still matching; a rule with no constraint left covers the rest outright.
    Memoised on (axis, rules alive), so the work grows with the rules, not the grid.
    """
    rules = [r for r in rules if all(r.values())]
    if not rules:
        return 0
    touched = sorted({axis for rule in rules for axis in rule})
    free = math.prod(size for axis, size in enumerate(sizes) if axis not in touched)
    last = [max(touched.index(axis) for axis in rule) if rule else -1 for rule in rules]
    rest = [math.prod(sizes[a] for a in touched[pos:]) for pos in range(len(touched) + 1)]

    @cache
    def covered(pos: int, alive: frozenset[int]) -> int:
        if not alive:
            return 0
        if any(last[r] < pos for r in alive):
            return rest[pos]
        axis = touched[pos]
        signatures = Counter(
            frozenset(r for r in alive if axis not in rules[r] or choice in rules[r][axis])
            for choice in range(sizes[axis])
        )
        return sum(n * covered(pos + 1, sig) for sig, n in signatures.items())

    return free * covered(0, frozenset(range(len(rules))))


def short_for(path: ConfigPath) -> str:
    """Name abbreviation of a parameter, from its field metadata (fallback: initials); a model
    name goes in bare, as from grid.models."""
    if path == ("model", "name"):
        return ""
    dotted = ".".join(path)
    if path[0] in BACKEND_SECTIONS and len(path) > 1:
        info = get_backend_params(path[0]).get(".".join(path[1:]))
    else:
        info = get_shared_params().get(dotted)
    if info is not None and info.short is not None:
        return info.short
    return "".join(word[0] for word in path[-1].split("_"))


def rule_label(where: Where, entry: dict[str, Any]) -> str:
    """``grid.exclude[0] (backend=vllm, fp_precision=float32)``: how a rule is reported."""
    at = "grid"
    for part in where:
        at += f"[{part}]" if isinstance(part, int) else f".{part}"
    values = ", ".join(
        f"{k}={'|'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in entry.items()
    )
    return f"{at} ({values})"


def _top_level_named(all_levels: list[GridLevel]) -> set[str]:
    """Top-level keys that a shared or linked axis sets somewhere: named alike across backends."""
    keys = {key for level in all_levels for key in level.shared}
    for level in all_levels:
        for _, axis in level.linked:
            keys.update(k for k in linked_keys(axis) if k.split(".")[0] not in BACKEND_SECTIONS)
    return keys


def _named_paths(
    grid: CampaignGridConfig, all_levels: list[GridLevel], shared_named: set[str]
) -> set[tuple[str, ConfigPath]]:
    """(scope, path) pairs whose value differs somewhere in the grid: those go into names."""
    seen: dict[tuple[str, ConfigPath], set[str]] = {}

    def add(scope: str, path: ConfigPath, value: Any) -> None:
        seen.setdefault((scope, path), set()).add(repr(value))

    for level in all_levels:
        for key, (_, value) in level.shared.items():
            for item in value if isinstance(value, list) else [value]:
                add("", tuple(key.split(".")), item)
        for backend in grid.backends:
            for spec in backend_axes(level, backend, grid.models, shared_named):
                if spec.path is not None:
                    for item in spec.values:
                        add(spec.scope, spec.path, item)
                    continue
                paths = {path for point in spec.values for path, _ in point}
                for path in paths:
                    for index in range(len(spec.values)):
                        add("", path, spec.value_at(index, path))
    return {key for key, values in seen.items() if len(values) > 1}


def plan_grid(grid: CampaignGridConfig, base_config: dict[str, Any] | None) -> list[BackendPlan]:
    """One plan per (level, backend), in expansion order."""
    base = expand_model_shorthand(base_config or {})
    all_levels = levels(grid)
    shared_named = _top_level_named(all_levels)
    named = _named_paths(grid, all_levels, shared_named)
    plans = []
    for level in all_levels:
        for backend in grid.backends:
            specs = backend_axes(level, backend, grid.models, shared_named)
            axes = []
            for spec in specs:
                if spec.key == "model.name" and spec.where == ("models",):
                    axes.append(PlanAxis(spec, short=""))
                elif spec.path is None:
                    paths = {p for point in spec.values for p, _ in point}
                    axes.append(
                        PlanAxis(spec, named=frozenset(p for p in paths if ("", p) in named))
                    )
                else:
                    shown = (spec.scope, spec.path) in named
                    axes.append(PlanAxis(spec, short=short_for(spec.path) if shown else None))
            rules: list[ExcludeRule] = []
            for where, entry in level.exclude:
                conditions = exclude_conditions(entry, specs, backend)
                if conditions is not None and all(conditions.values()):
                    rules.append((rule_label(where, entry), conditions))
            backend_base = {  # name: generated per point, from the base's name as a prefix
                k: v
                for k, v in base.items()
                if k != "name" and (k not in BACKEND_SECTIONS or k == backend)
            }
            backend_base["backend"] = backend
            plans.append(
                BackendPlan(
                    backend,
                    level.group,
                    backend_base,
                    tuple(axes),
                    tuple(rules),
                    tuple(rule_label(w, e) for w, e in level.exclude),
                )
            )
    return plans


__all__ = ["BackendPlan", "PlanAxis", "plan_grid", "rule_label", "short_for"]
