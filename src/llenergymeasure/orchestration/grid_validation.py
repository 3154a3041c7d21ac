"""Dry-run validation of grid points, one at a time, into bounded counts and a compact store.

``validate_points`` instantiates ``ExperimentConfig`` for each point (no GPU needed), filters
invalid combinations with their reasons, drops points that validate to the same effective
config, and flags hardware requirements that introspection derives from the models. Given the
lazy grid itself (``GridPoints``), it validates each point from its axis choices (an explicit
experiment from its base and overrides), reusing the sections validated for the same choices,
and counts excluded points per rule. What it keeps is a ``KeptPoints`` (a point's dict is
rebuilt only when asked for) and a ``GridTally``; every issue also goes to ``on_issue``, so a
caller that wants them all (the list API, ``--json``) decides where they are held.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from pydantic import BaseModel, ValidationError

from llenergymeasure.config.dicts import clone
from llenergymeasure.config.identity import SectionMemo, config_digest
from llenergymeasure.config.introspection import (
    get_backend_capabilities,
    get_param_skip_conditions,
    hardware_warnings,
    submodel,
)
from llenergymeasure.config.models import BACKEND_SECTIONS, ExperimentConfig
from llenergymeasure.orchestration.grid_expansion import PlanAxis
from llenergymeasure.orchestration.grid_explicit import Entry, OverridePoints, set_override
from llenergymeasure.orchestration.grid_kept import KeptPoints, Part
from llenergymeasure.orchestration.grid_points import (
    CONTAINERS,
    UNSAFE,
    Choice,
    GridPoints,
    PlanExpander,
    apply_choices,
)
from llenergymeasure.orchestration.grid_tally import GridTally, GridValidationIssue, IssueKind

IssueSink = Callable[[IssueKind, GridValidationIssue], None]


@dataclass
class ValidatedGrid:
    """The outcome of validating a campaign's points: counts and examples (``tally``) and the
    kept experiments (``kept``), whatever the grid's size in the memory of a small one."""

    tally: GridTally
    kept: KeptPoints
    valid: int = field(init=False)
    """How many experiments were kept."""

    def __post_init__(self) -> None:
        self.valid = len(self.kept)


def validate_points(
    config_dicts: Iterable[dict[str, Any]],
    on_issue: IssueSink | None = None,
    *,
    expected: int = 0,
) -> ValidatedGrid:
    """Validate every point; see the module docstring. Input dicts are never mutated.
    ``expected``: about how many points there are (sizes the kept points' tables once)."""
    validation = _Validation(on_issue, expected)
    with _collector_paused():
        if isinstance(config_dicts, GridPoints):
            for part, items in config_dicts.take_parts():
                if part is None:
                    validation.add_dicts(items)
                elif isinstance(part, OverridePoints):
                    validation.add_overrides(part, items)
                else:
                    validation.add_points(part, items)
        else:
            validation.add_dicts(config_dicts)
    return validation.result()


def _describe(config: dict[str, Any]) -> str:
    model = config.get("model")
    model_name = model.get("name") if isinstance(model, dict) else model
    parts = [config.get("backend", "pytorch"), str(model_name), config.get("fp_precision", "")]
    return "/".join(str(p) for p in parts if p)


def _reason(error: ValidationError) -> tuple[str, str]:
    """(reason, rule) from a validation error; the rule groups equal causes."""
    reasons, rule = [], None
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in item["loc"])
        reasons.append(f"{where}: {item['msg']}" if where else item["msg"])
        if rule is None:
            rule = (item.get("ctx") or {}).get("rule")
    reason = "; ".join(reasons)
    return reason, rule or reason


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around the validation loop.

    The loop allocates hundreds of thousands of short-lived, acyclic objects while the result
    lists grow; with the collector on, every young-generation pass re-walks the retained results
    (measured: about 2x the cost of validation itself on a 20,000-point grid). Nothing in the
    loop creates reference cycles, so pausing frees nothing late.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _SectionCache:
    """Validated config sections, keyed by their input.

    A grid repeats the same few sections (the base's dataset, a decoder point, a pytorch
    point) across thousands of grid points; validating each distinct section once and handing
    ``ExperimentConfig`` the validated instance makes validation several times cheaper. The
    result is the same: section validation depends only on the section's own input, and every
    cross-field rule still runs per config on ``ExperimentConfig``. Absent sections get the
    instance their default would produce; any section that fails sends the config through
    plain validation, so errors read exactly as they would without the cache. The cache keeps
    its instances alive, which is what lets ``memo`` serialise each of them once for hashing.
    """

    def __init__(self) -> None:
        self._validated: dict[Any, BaseModel] = {}
        self.memo = SectionMemo()
        self._warnings: dict[int, list[str]] = {}
        self._adopted: list[BaseModel] = []
        defaulted = {
            name: self.section(name, {})
            for name, has_default in _SECTION_DEFAULTS.items()
            if has_default
        }
        self._absent = {  # per backend: what validation would fill in for sections left out
            backend: {**defaulted, backend: self.section(backend, {})}
            for backend in BACKEND_SECTIONS
        }

    def section(self, name: str, data: dict[str, Any]) -> BaseModel:
        """The validated section for this input; raises ``ValidationError`` if it fails."""
        try:  # types in the key: 1, 1.0 and True are equal as dict keys, not as inputs
            key: Any = (name, tuple(data.items()), tuple(map(type, data.values())))
            instance = self._validated.get(key)
        except TypeError:  # an unhashable value (a list): key by its text
            key = (name, repr(data))
            instance = self._validated.get(key)
        if instance is None:
            instance = self._validated[key] = _SECTION_CLASSES[name].model_validate(data)
            self.memo.remember(name, instance)
        return instance

    def adopt_filled_in(self, model: ExperimentConfig, data: dict[str, Any]) -> None:
        """Remember a section the config's validation filled in from a cached one (warmup's
        default ``max_prompts``), so it is serialised once too; kept alive here, as ``memo``
        trusts only live ids. Validation hands out one copy per distinct filled-in value."""
        section, source = model.__dict__["warmup"], data.get("warmup")
        memo = self.memo
        if (
            section is not source
            and source is not None
            and memo.knows(source)
            and not memo.knows(section)
        ):
            self._adopted.append(section)
            memo.remember("warmup", section)

    def hardware_warnings(self, model: ExperimentConfig) -> list[str]:
        """``hardware_warnings``, remembered per backend section where only it decides them."""
        section = model.__dict__[model.backend]
        found = self._warnings.get(id(section))  # ids stored are of remembered, live sections
        if found is None:
            found = hardware_warnings(model)
            if model.backend in _DECIDED_BY_SECTION and self.memo.knows(section):
                self._warnings[id(section)] = found
        return found

    def prepare(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        """``raw`` with its sections replaced by validated instances; None if one fails."""
        absent = self._absent.get(raw.get("backend", "pytorch"))
        if absent is None:
            return None
        prepared = {**absent, **raw}
        try:
            for name in _SECTION_CLASSES.keys() & raw.keys():
                data = raw[name]
                if type(data) is dict:
                    prepared[name] = self.section(name, data)
        except ValidationError:
            return None
        return prepared


_SECTION_CLASSES = {
    name: section_cls
    for name, info in ExperimentConfig.model_fields.items()
    if (section_cls := submodel(info.annotation)) is not None
}
_DECIDED_BY_SECTION = {
    backend
    for backend in BACKEND_SECTIONS
    if all(
        c.path.startswith(f"{backend}.")
        for c in get_param_skip_conditions()
        if c.backend in (None, backend)
    )
}
"""Backends whose hardware warnings depend on their own section alone."""
_SECTION_DEFAULTS = {
    name: ExperimentConfig.model_fields[name].default_factory is not None
    for name in _SECTION_CLASSES
}


class _PointPreparer:
    """``_SectionCache.prepare`` for the grid points of one plan, from their axis choices.

    Each top-level key that axes touch (a section, or a scalar field) gets its value from the
    choices of just those axes, worked out (and for a section, validated) once per distinct
    tuple of choices and then looked up: a point costs a few dictionary lookups instead of
    re-reading every section of its dict. It builds exactly what ``prepare`` builds from the
    point's dict, because it applies the same choices to the same base.
    """

    def __init__(
        self, expander: PlanExpander, sections: _SectionCache, base: dict[str, Any]
    ) -> None:
        self._expander = expander
        self._sections = sections
        self._base = base
        touched: dict[str, list[int]] = {}
        for index, axis in enumerate(expander.axes):
            for head in _heads(axis):
                touched.setdefault(head, []).append(index)
        self._targets: list[tuple[str, itemgetter[Any], dict[Any, Any]]] = [
            (key, itemgetter(*indices), {}) for key, indices in touched.items()
        ]

    @classmethod
    def of(cls, expander: PlanExpander, sections: _SectionCache) -> _PointPreparer | None:
        """None where points must go the plain way: the base fails, or an axis sets ``backend``."""
        base = sections.prepare(expander.base)
        if base is None or any("backend" in _heads(axis) for axis in expander.axes):
            return None
        return cls(expander, sections, base)

    def prepare(self, combo: tuple[Choice, ...]) -> dict[str, Any] | None:
        prepared = self._base.copy()
        for key, choices_of, values in self._targets:
            choices = choices_of(combo)
            value = values.get(choices, _UNKNOWN)
            if value is _UNKNOWN:
                value = values[choices] = self._value(key, choices)
            if value is _FAILED:
                return None
            if value is not _UNSET:
                prepared[key] = value
        return prepared

    def _value(self, key: str, choices: Any) -> Any:
        """What these choices put at ``key``: a validated section, or the plain value."""
        base = self._expander.base
        partial = {key: clone(base[key])} if key in base else {}
        apply_choices(partial, choices if type(choices) is tuple else (choices,))
        value = partial.get(key, _UNSET)  # a linked point may leave this key alone
        if key in _SECTION_CLASSES and type(value) is dict:
            try:
                return self._sections.section(key, value)
            except ValidationError:
                return _FAILED
        return value


class _OverridePreparer:
    """``_SectionCache.prepare`` for explicit experiments, from their base and overrides.

    The base's validated sections are taken once per base; a section an experiment overrides
    is worked out (base section + its overrides, validated) once per distinct set of override
    values and then looked up. None sends an experiment the plain way: its base fails, an
    override sets ``backend``, or a value is not hashable.
    """

    def __init__(self, sections: _SectionCache) -> None:
        self._sections = sections
        self._bases: dict[int, tuple[dict[str, Any], dict[str, Any] | None]] = {}
        self._values: dict[Any, Any] = {}

    def prepare(self, base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any] | None:
        known = self._bases.get(id(base))
        if known is None or known[0] is not base:
            known = self._bases[id(base)] = (base, self._sections.prepare(base))
        prepared_base = known[1]
        if prepared_base is None or "backend" in overrides:
            return None
        prepared = prepared_base.copy()
        heads: dict[str, list[tuple[str, Any]]] = {}
        for key, value in overrides.items():
            head, dot, _ = key.partition(".")
            if not dot and type(value) not in CONTAINERS:
                prepared[key] = value  # a top-level scalar, as prepare would copy it
            else:
                heads.setdefault(head, []).append((key, value))
        for head, items in heads.items():
            try:
                memo: Any = (id(base), head, tuple(items), tuple(type(v) for _, v in items))
                value = self._values.get(memo, _UNKNOWN)
            except TypeError:  # a dict or list value
                return None
            if value is _UNKNOWN:
                value = self._values[memo] = self._value(base, head, items)
            if value is _FAILED:
                return None
            prepared[head] = value
        return prepared

    def _value(self, base: dict[str, Any], head: str, items: list[tuple[str, Any]]) -> Any:
        partial = {head: clone(base[head])} if head in base else {}
        for key, value in items:
            set_override(partial, key, value)
        value = partial[head]
        if head in _SECTION_CLASSES and type(value) is dict:
            try:
                return self._sections.section(head, value)
            except ValidationError:
                return _FAILED
        return value


def _heads(axis: PlanAxis) -> set[str]:
    """The top-level keys an axis sets."""
    spec = axis.spec
    if spec.path is not None:
        return {spec.path[0]}
    return {path[0] for point in spec.values for path, _ in point}


_UNKNOWN = object()
_UNSET = object()
_FAILED = object()


class _Validation:
    """The outcome of validating grid points, built up one point at a time."""

    def __init__(self, on_issue: IssueSink | None, expected: int) -> None:
        self.kept = KeptPoints(expected)
        self.tally = GridTally()
        self._on_issue = on_issue
        self.sections = _SectionCache()
        self.backends: dict[str, None] = {}
        self.rule_labels: dict[str, None] = {}
        self.groups: dict[str, list[int]] = {}  # group -> [generated, kept]

    def issue(self, kind: IssueKind, issue: GridValidationIssue) -> None:
        self.tally.add(kind, issue)
        if self._on_issue is not None:
            self._on_issue(kind, issue)

    def add_dicts(self, config_dicts: Iterable[dict[str, Any]]) -> None:
        prepare = self.sections.prepare
        for raw in config_dicts:
            desc = raw.get("name") or _describe(raw)
            prepared = prepare(raw)
            admitted = self.admit(
                raw if prepared is None else prepared, desc, raw.get("backend", "pytorch")
            )
            if admitted is not None:
                self.keep(None, raw, desc, *admitted, named="name" in raw)

    def add_overrides(self, part: OverridePoints, entries: Iterator[Entry]) -> None:
        """Explicit experiments from their base and overrides (see ``_OverridePreparer``)."""
        preparer = _OverridePreparer(self.sections)
        for entry in entries:
            base, overrides, name = entry
            prepared = preparer.prepare(base, overrides)
            if prepared is None:  # the plain way, for the plain message
                raw = part.build(entry)
                prepared = self.sections.prepare(raw) or raw
            else:
                prepared["name"] = name
            backend = prepared.get("backend", "pytorch")
            admitted = self.admit(prepared, name, backend if type(backend) is str else "?")
            if admitted is not None:
                self.keep(part, entry, name, *admitted)

    def add_points(self, expander: PlanExpander, combos: Iterator[tuple[Choice, ...]]) -> None:
        """Grid points from their choices; a point's dict is only built if it is kept."""
        total, kept = self.tally.total, len(self.kept)
        self.rule_labels.update(dict.fromkeys(expander.rule_labels))
        if expander.rules:
            combos = self._not_excluded(expander, combos)
        self._add_points(expander, combos)
        if expander.group is not None:
            counts = self.groups.setdefault(expander.group, [0, 0])
            counts[0] += self.tally.total - total
            counts[1] += len(self.kept) - kept

    def _not_excluded(
        self, expander: PlanExpander, combos: Iterator[tuple[Choice, ...]]
    ) -> Iterator[tuple[Choice, ...]]:
        """The points no exclude rule drops; the dropped ones counted per (first) rule."""
        excluded_by, exclude, backend = expander.excluded_by, self.tally.exclude, expander.backend
        for combo in combos:
            label = excluded_by(combo)
            if label is None:
                yield combo
            else:
                exclude(label, backend)

    def _add_points(self, expander: PlanExpander, combos: Iterator[tuple[Choice, ...]]) -> None:
        preparer = _PointPreparer.of(expander, self.sections)
        name_of, build, group = expander.name, expander.build, expander.group
        if preparer is None:  # every point the plain way, from its dict
            for combo in combos:
                raw = build(combo)
                prepared = self.sections.prepare(raw)
                admitted = self.admit(
                    raw if prepared is None else prepared,
                    raw["name"],
                    raw.get("backend", "pytorch"),
                )
                if admitted is not None:
                    self.keep(expander, combo, raw["name"], *admitted, group=group)
            return
        prepare, backend = preparer.prepare, expander.backend
        for combo in combos:
            desc = name_of(combo)
            prepared = prepare(combo)
            if prepared is None:  # a section fails: validate the dict, for the plain message
                prepared = build(combo, desc)
            admitted = self.admit(prepared, desc, backend)
            if admitted is not None:
                self.keep(expander, combo, desc, *admitted, group=group)

    def admit(
        self, data: dict[str, Any], desc: str, backend: str
    ) -> tuple[ExperimentConfig, bytes] | None:
        """The validated config and its digest, or None (recorded as filtered or duplicate)."""
        self.tally.total += 1
        try:
            model = _validate_config(data)
        except ValidationError as err:
            reason, rule = _reason(err)
            self.issue(
                "filtered",
                GridValidationIssue(
                    config_desc=desc, reason=reason, severity="error", backend=backend, rule=rule
                ),
            )
            return None
        self.sections.adopt_filled_in(model, data)
        digest = config_digest(model, self.sections.memo)
        earlier = self.kept.find(digest)
        if earlier is not None:
            self.issue(
                "duplicates",
                GridValidationIssue(
                    config_desc=desc,
                    reason=f"same effective config as {self.kept.name(earlier)}",
                    severity="warning",
                    backend=backend,
                    rule="duplicate",
                ),
            )
            return None
        return model, digest

    def keep(
        self,
        part: Part,
        point: Any,
        desc: str,
        model: ExperimentConfig,
        digest: bytes,
        *,
        named: bool = True,
        group: str | None = None,
    ) -> None:
        """Keep a valid point under a name no kept point's directory name clashes with."""
        name_key = self.kept.name_key
        key = name_key(desc)
        renamed = key is None or not named
        if key is None:
            if group is not None:  # the group's name tells it from an earlier group's point
                desc = f"{desc}_{UNSAFE.sub('-', group).strip('-')}"
            unique, n = desc, 1
            while (key := name_key(unique)) is None:
                n += 1
                unique = f"{desc}-{n}"
            desc = unique
        self.backends[model.backend] = None
        baseline = model.baseline
        info = (
            model.backend,
            model.model.name,
            model.fp_precision,
            baseline.duration_sec if baseline.enabled else None,
            baseline.cache_ttl_sec > 0,
            model.energy.source,
        )
        self.kept.add(part, point, digest, desc, key, info, renamed=renamed)
        self.tally.kept(model.backend)
        needs = self.sections.hardware_warnings(model)
        if needs:
            self.issue(
                "warned",
                GridValidationIssue(
                    config_desc=desc,
                    reason="; ".join(needs),
                    severity="warning",
                    backend=model.backend,
                ),
            )

    def result(self) -> ValidatedGrid:
        caps = get_backend_capabilities()
        self.tally.backend_requirements = {
            b: f"{b} needs an NVIDIA GPU and the {caps[b].python_package} package: {caps[b].install_hint}"
            for b in self.backends
            if caps[b].requires_gpu
        }
        excluded = self.tally.excluded
        self.tally.excluded = {
            label: excluded[label] for label in self.rule_labels if label in excluded
        }
        self.tally.notes = self.notes()
        return ValidatedGrid(self.tally, self.kept)

    def notes(self) -> list[str]:
        """Exclude entries that dropped nothing, groups that added nothing."""
        found = [
            f"{label} drops no point that an earlier exclude entry does not already drop; "
            "fix: remove it"
            for label in self.rule_labels
            if not self.tally.excluded.get(label)
        ]
        found += [
            f"group '{group}' adds no experiment: its {generated} point(s) are all excluded, "
            "invalid or the same configs as earlier points; fix: remove the group or change "
            "its axes"
            for group, (generated, kept) in self.groups.items()
            if not kept
        ]
        return found


_validate_config = ExperimentConfig.__pydantic_validator__.validate_python

__all__ = ["IssueSink", "ValidatedGrid", "validate_points"]
