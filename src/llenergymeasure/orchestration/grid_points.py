"""Grid points as experiment config dicts, built lazily from each plan's axis choices.

A ``PlanExpander`` builds the dict of any point of one of ``grid_expansion``'s plans, with its
readable name; ``GridPoints`` streams them in order (excluded points skipped), with any
explicit experiments after them, and hands its parts to the validator, which can take the
choices themselves.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator
from operator import attrgetter
from typing import Any

from llenergymeasure.config.dicts import clone, set_path
from llenergymeasure.orchestration.grid_expansion import BackendPlan, PlanAxis, short_for
from llenergymeasure.orchestration.grid_explicit import OverridePoints

_PRECISION_SHORT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")
"""What a name may not hold (runs of it become one "-")."""


def _name_part(path: tuple[str, ...], short: str, value: Any) -> str:
    """One readable piece of an experiment name, e.g. ``bs4``, ``bf16``, ``nocompile``."""
    if isinstance(value, dict):
        return "_".join(
            _name_part((*path, key), short_for((*path, key)), sub) for key, sub in value.items()
        )
    if isinstance(value, bool):
        return short if value else f"no{short}"
    if value is None:
        return f"{short}none"
    if path == ("model", "name"):
        value = str(value).replace("builtin:", "").rsplit("/", 1)[-1]
    text = _PRECISION_SHORT.get(value, value) if isinstance(value, str) else value
    return UNSAFE.sub("-", f"{short}{text}").strip("-")


class Choice:
    """One value of one axis, with what depends only on it worked out once, not per point.

    ``kind`` says how the value is set: 0 a top-level scalar, 1 a scalar in a section, 2 the
    general deep merge, 3 a linked point (``value`` holds its choices, one per key). ``suffix``
    is what it adds to the experiment name: "_" and its name part, or "" when it adds none.
    Hashed by identity, so tuples of choices key the validator's caches whatever the value's type.
    """

    __slots__ = ("index", "kind", "offset", "path", "suffix", "value")

    def __init__(self, path: tuple[str, ...], value: Any, part: str, index: int = 0) -> None:
        self.path = path
        self.value = value
        self.kind = 2 if type(value) in CONTAINERS else min(len(path) - 1, 2)
        self.suffix = f"_{part}" if part else ""
        self.index = index
        """Its position among its axis's values."""
        self.offset = 0
        """What it adds to a point's number (``PlanExpander.position``)."""

    @classmethod
    def of(cls, axis: PlanAxis, value: Any, index: int) -> Choice:
        spec = axis.spec
        if spec.path is not None:
            part = "" if axis.short is None else _name_part(spec.path, axis.short, value)
            return cls(spec.path, value, part, index)
        parts = [_name_part(p, short_for(p), v) for p, v in value if p in axis.named]
        choice = cls(
            (), tuple(cls(p, v, "") for p, v in value), "_".join(filter(None, parts)), index
        )
        choice.kind = 3
        return choice


CONTAINERS = (dict, list)
_suffix_of = attrgetter("suffix")
_offset_of = attrgetter("offset")


def apply_choices(config: dict[str, Any], choices: Iterable[Choice]) -> None:
    """Set each choice's value in ``config``, in order."""
    for choice in choices:
        kind, path, value = choice.kind, choice.path, choice.value
        if kind == 0:
            config[path[0]] = value
        elif kind == 1:
            section = config.get(path[0])
            if type(section) is not dict:
                section = config[path[0]] = {}
            section[path[1]] = value
        elif kind == 2:
            set_path(config, path, value)
        else:
            apply_choices(config, value)


class PlanExpander:
    """Builds the config dict of any grid point of one backend's plan from its choices."""

    def __init__(self, plan: BackendPlan, name_prefix: str | None, models_vary: bool) -> None:
        self.backend = plan.backend
        self.group = plan.group
        self.base = plan.base
        self.axes = plan.axes
        self.rule_labels = plan.rule_labels
        self.choices = [
            tuple(Choice.of(axis, value, i) for i, value in enumerate(axis.spec.values))
            for axis in plan.axes
        ]
        self._strides = [
            math.prod(len(c) for c in self.choices[a + 1 :]) for a in range(len(self.choices))
        ]
        for values, stride in zip(self.choices, self._strides, strict=True):
            for choice in values:
                choice.offset = choice.index * stride
        self.rules = [
            (label, [(i, frozenset(self.choices[i][c] for c in ok)) for i, ok in conds.items()])
            for label, conds in plan.rules
        ]
        fixed_name = [plan.backend]
        model = None if models_vary else plan.base.get("model", {}).get("name")
        if model:
            fixed_name.append(_name_part(("model", "name"), "", model))
        if name_prefix:
            fixed_name.insert(0, UNSAFE.sub("-", str(name_prefix)))
        self._name_start = "_".join(fixed_name)
        # flat dicts in the base (sections of plain values) are copied with one C-level call
        self._flat = [
            (key, value)
            for key, value in plan.base.items()
            if type(value) is dict and not any(type(v) in CONTAINERS for v in value.values())
        ]
        self._deep = [
            key
            for key, value in plan.base.items()
            if type(value) in CONTAINERS and (key, value) not in self._flat
        ]

    def combos(self) -> Iterator[tuple[Choice, ...]]:
        """Every grid point of the plan, excluded ones too, in order: the last axis varies
        fastest."""
        return itertools.product(*self.choices)

    def position(self, combo: tuple[Choice, ...]) -> int:
        """The point's number in :meth:`combos` order."""
        return sum(map(_offset_of, combo))

    def combo_at(self, position: int) -> tuple[Choice, ...]:
        """The point numbered ``position`` (the inverse of :meth:`position`)."""
        return tuple(
            values[position // stride % len(values)]
            for values, stride in zip(self.choices, self._strides, strict=True)
        )

    def excluded_by(self, combo: tuple[Choice, ...]) -> str | None:
        """The label of the first exclude rule the point matches, or None."""
        for label, conditions in self.rules:
            if all(combo[i] in accepted for i, accepted in conditions):
                return label
        return None

    def name(self, combo: tuple[Choice, ...]) -> str:
        return self._name_start + "".join(map(_suffix_of, combo))

    def build(self, combo: tuple[Choice, ...], name: str | None = None) -> dict[str, Any]:
        """A fresh config dict (sharing no mutable state) with its readable ``name``."""
        base = self.base
        config = {**base}
        for key, value in self._flat:
            config[key] = {**value}
        for key in self._deep:
            config[key] = clone(base[key])
        apply_choices(config, combo)
        config["name"] = name or self.name(combo)
        return config


class GridPoints(Iterator[dict[str, Any]]):
    """A lazy stream of experiment config dicts: grid points, then any plain dicts appended.

    Iterating yields one fresh dict per point. ``validate_campaign_grid`` also recognises it and
    validates the points not yet yielded from their axis choices, so a section shaped by the
    same choices is looked up instead of being re-read from every dict; the outcome is the
    same as validating the dicts.
    """

    def __init__(self, parts: Iterable[PlanExpander | Iterable[dict[str, Any]]] = ()) -> None:
        self._parts = list(parts)
        self._current: tuple[_Part | None, Iterator[Any]] | None = None

    def followed_by(self, config_dicts: Iterable[dict[str, Any]]) -> GridPoints:
        """These points, then ``config_dicts`` (read lazily, after the grid)."""
        self._parts.append(config_dicts)
        return self

    def __next__(self) -> dict[str, Any]:
        while self._current is not None or self._parts:
            if self._current is None:
                self._current = _opened(self._parts.pop(0))
            expander, items = self._current
            for item in items:
                if expander is None:
                    return item
                if not expander.rules or expander.excluded_by(item) is None:
                    return expander.build(item)
            self._current = None
        raise StopIteration

    def take_parts(self) -> Iterator[tuple[_Part | None, Iterator[Any]]]:
        """Hand over the parts left, each with its position; the taker exhausts each one."""
        while self._current is not None or self._parts:
            part = self._current or _opened(self._parts.pop(0))
            self._current = None
            yield part


_Part = PlanExpander | OverridePoints
"""A part whose items are built into dicts: grid choices, or explicit (base, overrides) entries."""


def _opened(
    part: PlanExpander | Iterable[dict[str, Any]],
) -> tuple[_Part | None, Iterator[Any]]:
    """(expander, its combos) for a grid part, (the part, its entries) for explicit
    experiments; (None, its dicts) for plain dicts."""
    if isinstance(part, PlanExpander):
        return part, part.combos()
    if isinstance(part, OverridePoints):
        return part, iter(part.entries)
    return None, iter(part)


__all__ = [
    "CONTAINERS",
    "UNSAFE",
    "Choice",
    "GridPoints",
    "PlanExpander",
    "apply_choices",
]
