"""Campaign grid expansion and dry-run validation.

``expand_campaign_grid`` / ``iter_campaign_grid`` turn a grid (shared axes for every backend,
linked axes, per-backend axes, exclude entries, groups) into experiment config dicts, in a
deterministic order: backends, models, shared axes, linked axes, backend axes, as written, the
last axis varying fastest, group by group (``grid_plan`` works out each backend's axes, names
and exclusions; ``grid_points`` builds the dicts). ``validate_campaign_grid`` instantiates
``ExperimentConfig`` for each point (no GPU needed), filters invalid combinations with their
reasons, drops points that validate to the same effective config, and flags hardware
requirements that introspection derives from the models. Given the lazy grid itself
(``GridPoints``), it validates each point from its axis choices (an explicit experiment from
its base and overrides), reusing the sections validated for the same choices, counts excluded
points per rule, and builds the dicts only of the points it keeps.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from llenergymeasure.config.campaign_config import CampaignGridConfig
from llenergymeasure.config.dicts import clone
from llenergymeasure.config.identity import SectionMemo, config_hash
from llenergymeasure.config.introspection import (
    get_backend_capabilities,
    get_param_skip_conditions,
    hardware_warnings,
    submodel,
)
from llenergymeasure.config.models import BACKEND_SECTIONS, ExperimentConfig
from llenergymeasure.log import logger
from llenergymeasure.orchestration.grid_plan import PlanAxis, plan_grid
from llenergymeasure.orchestration.grid_points import (
    CONTAINERS,
    UNSAFE,
    Choice,
    GridPoints,
    PlanExpander,
    apply_choices,
)
from llenergymeasure.orchestration.override_points import Entry, OverridePoints, set_override

__all__ = [
    "GridExpansionResult",
    "GridPoints",
    "GridValidationIssue",
    "config_hash",
    "count_campaign_grid",
    "expand_campaign_grid",
    "iter_campaign_grid",
    "validate_campaign_grid",
]


class GridValidationIssue(BaseModel):
    """One grid point that was filtered, deduplicated or flagged."""

    config_desc: str = Field(description="Readable name of the config, e.g. pytorch_gpt2_bf16_bs4.")
    reason: str = Field(description="Why it was filtered or flagged, with the fix.")
    severity: Literal["error", "warning"] = Field(
        description="error: filtered out; warning: kept, may fail at run time."
    )
    backend: str | None = None
    rule: str | None = Field(None, description="Short label used to group reasons.")


class GridExpansionResult(BaseModel):
    """What validation kept, filtered, deduplicated and flagged."""

    valid_configs: list[dict[str, Any]]
    config_hashes: list[str] = Field(
        default_factory=list, description="sha256 of each valid config's effective settings."
    )
    filtered_configs: list[GridValidationIssue]
    duplicates: list[GridValidationIssue] = Field(default_factory=list)
    warnings: list[GridValidationIssue]
    backend_requirements: dict[str, str] = Field(
        default_factory=dict, description="Said once per backend: what the backend itself needs."
    )
    total_generated: int = Field(description="Every point generated, excluded ones included.")
    excluded: dict[str, int] = Field(
        default_factory=dict,
        description="Points dropped by grid.exclude before validation, per rule (the first "
        "that matched).",
    )
    excluded_per_backend: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(
        default_factory=list, description="Exclude entries or groups that had no effect."
    )

    @property
    def excluded_count(self) -> int:
        return sum(self.excluded.values())

    @property
    def per_backend(self) -> dict[str, dict[str, int]]:
        """valid / filtered / duplicates / warned counts per backend, in first-seen order."""
        counts: dict[str, dict[str, int]] = {}

        def bump(backend: str | None, kind: str, n: int = 1) -> None:
            row = counts.setdefault(
                backend or "?",
                {"valid": 0, "excluded": 0, "filtered": 0, "duplicates": 0, "warned": 0},
            )
            row[kind] += n

        for cfg in self.valid_configs:
            bump(cfg.get("backend", "pytorch"), "valid")
        for issue in self.filtered_configs:
            bump(issue.backend, "filtered")
        for issue in self.duplicates:
            bump(issue.backend, "duplicates")
        for issue in self.warnings:
            bump(issue.backend, "warned")
        for backend, n in self.excluded_per_backend.items():
            bump(backend, "excluded", n)
        return counts

    def grouped_reasons(self) -> list[tuple[str, int]]:
        """Filter reasons grouped by rule, most frequent first."""
        return Counter(i.rule or i.reason for i in self.filtered_configs).most_common()

    @property
    def summary(self) -> str:
        text = f"Generated {self.total_generated} experiments: {len(self.valid_configs)} valid"
        if self.excluded:
            rules = ", ".join(f"{rule} x {n}" for rule, n in Counter(self.excluded).most_common())
            text += f", {self.excluded_count} excluded ({rules})"
        filtered = len(self.filtered_configs)
        if filtered:
            groups = ", ".join(f"{rule} x {n}" for rule, n in self.grouped_reasons())
            text += f", {filtered} filtered as invalid ({groups})"
        else:
            text += ", 0 filtered as invalid"
        text += f", {len(self.duplicates)} duplicates."
        if self.warnings:
            text += f" {len(self.warnings)} have hardware warnings."
        return text


# --- expansion -----------------------------------------------------------------------------


def count_campaign_grid(grid: CampaignGridConfig) -> int:
    """The exact number of points the grid expands to (excluded points left out), counted
    without expanding (works for any size)."""
    return sum(plan.count_kept() for plan in plan_grid(grid, None))


def iter_campaign_grid(
    grid: CampaignGridConfig, base_config: dict[str, Any] | None = None
) -> GridPoints:
    """Lazily yield one config dict per grid point, each with a readable ``name``.

    ``base_config`` is deep-merged under every point and never mutated; no two yielded dicts
    share mutable state.
    """
    prefix = (base_config or {}).get("name")
    return GridPoints(
        PlanExpander(plan, prefix, grid.models is not None) for plan in plan_grid(grid, base_config)
    )


def expand_campaign_grid(
    grid: CampaignGridConfig,
    base_config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Expand campaign grid into individual experiment config dicts.

    Cartesian product of backends x models x shared params x linked axes x backend-specific
    params (group by group, excluded points left out); the list form of
    :func:`iter_campaign_grid`.
    """
    configs = list(iter_campaign_grid(grid, base_config))
    logger.debug("expanded grid into {} configs", len(configs))
    return configs


# --- validation ----------------------------------------------------------------------------


_issue = GridValidationIssue


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


def validate_campaign_grid(config_dicts: Iterable[dict[str, Any]]) -> GridExpansionResult:
    """Validate expanded grid configs via Pydantic dry-run instantiation.

    Tier 1: ``ExperimentConfig`` validation filters invalid combinations, with reasons.
    Tier 2: introspection's skip conditions flag configs needing special hardware (kept).
    Points that validate to an already-seen config are reported as duplicates and kept once.
    Input dicts are never mutated.
    """
    validation = _Validation()
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

    def __init__(self) -> None:
        self.valid: list[dict[str, Any]] = []
        self.hashes: list[str] = []
        self.filtered: list[GridValidationIssue] = []
        self.duplicates: list[GridValidationIssue] = []
        self.warnings: list[GridValidationIssue] = []
        self.seen: dict[str, str] = {}
        self.names: set[str] = set()
        self.backends: dict[str, None] = {}
        self.total = 0
        self.sections = _SectionCache()
        self.excluded: Counter[str] = Counter()
        self.excluded_per_backend: Counter[str] = Counter()
        self.rule_labels: dict[str, None] = {}
        self.groups: dict[str, list[int]] = {}  # group -> [generated, kept]

    def add_dicts(self, config_dicts: Iterable[dict[str, Any]]) -> None:
        prepare = self.sections.prepare
        for raw in config_dicts:
            desc = raw.get("name") or _describe(raw)
            prepared = prepare(raw)
            admitted = self.admit(
                raw if prepared is None else prepared, desc, raw.get("backend", "pytorch")
            )
            if admitted is not None:
                self.keep(raw, desc, *admitted)

    def add_overrides(self, part: OverridePoints, entries: Iterator[Entry]) -> None:
        """Explicit experiments from their base and overrides (see ``_OverridePreparer``)."""
        preparer = _OverridePreparer(self.sections)
        build = part.build
        for entry in entries:
            base, overrides, name = entry
            prepared = preparer.prepare(base, overrides)
            raw: dict[str, Any] | None = None
            if prepared is None:  # the plain way, for the plain message
                raw = build(entry)
                prepared = self.sections.prepare(raw) or raw
            else:
                prepared["name"] = name
            backend = prepared.get("backend", "pytorch")
            admitted = self.admit(prepared, name, backend if type(backend) is str else "?")
            if admitted is not None:
                self.keep(raw or build(entry), name, *admitted)

    def add_points(self, expander: PlanExpander, combos: Iterator[tuple[Choice, ...]]) -> None:
        """Grid points from their choices; a point's dict is only built if it is kept."""
        total, kept = self.total, len(self.valid)
        self.rule_labels.update(dict.fromkeys(expander.rule_labels))
        if expander.rules:
            combos = self._not_excluded(expander, combos)
        self._add_points(expander, combos)
        if expander.group is not None:
            counts = self.groups.setdefault(expander.group, [0, 0])
            counts[0] += self.total - total
            counts[1] += len(self.valid) - kept

    def _not_excluded(
        self, expander: PlanExpander, combos: Iterator[tuple[Choice, ...]]
    ) -> Iterator[tuple[Choice, ...]]:
        """The points no exclude rule drops; the dropped ones counted per (first) rule."""
        excluded_by = expander.excluded_by
        for combo in combos:
            label = excluded_by(combo)
            if label is None:
                yield combo
            else:
                self.total += 1
                self.excluded[label] += 1
                self.excluded_per_backend[expander.backend] += 1

    def _add_points(self, expander: PlanExpander, combos: Iterator[tuple[Choice, ...]]) -> None:
        preparer = _PointPreparer.of(expander, self.sections)
        if preparer is None:
            self.add_dicts(map(expander.build, combos))
            return
        prepare, name_of, build, backend, group = (
            preparer.prepare,
            expander.name,
            expander.build,
            expander.backend,
            expander.group,
        )
        for combo in combos:
            desc = name_of(combo)
            prepared = prepare(combo)
            raw: dict[str, Any] | None = None
            if prepared is None:  # a section fails: validate the dict, for the plain message
                prepared = raw = build(combo, desc)
            admitted = self.admit(prepared, desc, backend)
            if admitted is not None:
                self.keep(raw or build(combo, desc), desc, *admitted, group=group)

    def admit(
        self, data: dict[str, Any], desc: str, backend: str
    ) -> tuple[ExperimentConfig, str] | None:
        """The validated config and its hash, or None (recorded as filtered or duplicate)."""
        self.total += 1
        try:
            model = _validate_config(data)
        except ValidationError as err:
            reason, rule = _reason(err)
            self.filtered.append(
                _issue(
                    config_desc=desc, reason=reason, severity="error", backend=backend, rule=rule
                )
            )
            return None
        digest = config_hash(model, self.sections.memo)
        if digest in self.seen:
            self.duplicates.append(
                _issue(
                    config_desc=desc,
                    reason=f"same effective config as {self.seen[digest]}",
                    severity="warning",
                    backend=backend,
                    rule="duplicate",
                )
            )
            return None
        return model, digest

    def keep(
        self,
        raw: dict[str, Any],
        desc: str,
        model: ExperimentConfig,
        digest: str,
        group: str | None = None,
    ) -> None:
        names = self.names
        if desc in names or "name" not in raw:
            if group is not None:  # the group's name tells it from an earlier group's point
                desc = f"{desc}_{UNSAFE.sub('-', group).strip('-')}"
            unique, n = desc, 1
            while unique in names:
                n += 1
                unique = f"{desc}-{n}"
            desc = unique
            raw = {**raw, "name": desc}
        names.add(desc)
        self.seen[digest] = desc
        self.backends[model.backend] = None
        needs = self.sections.hardware_warnings(model)
        if needs:
            self.warnings.append(
                _issue(
                    config_desc=desc,
                    reason="; ".join(needs),
                    severity="warning",
                    backend=model.backend,
                )
            )
        self.valid.append(raw)
        self.hashes.append(digest)

    def result(self) -> GridExpansionResult:
        caps = get_backend_capabilities()
        requirements = {
            b: f"{b} needs an NVIDIA GPU and the {caps[b].python_package} package: {caps[b].install_hint}"
            for b in self.backends
            if caps[b].requires_gpu
        }
        return GridExpansionResult.model_construct(
            valid_configs=self.valid,
            config_hashes=self.hashes,
            filtered_configs=self.filtered,
            duplicates=self.duplicates,
            warnings=self.warnings,
            backend_requirements=requirements,
            total_generated=self.total,
            excluded={
                label: self.excluded[label] for label in self.rule_labels if label in self.excluded
            },
            excluded_per_backend=dict(self.excluded_per_backend),
            notes=self.notes(),
        )

    def notes(self) -> list[str]:
        """Exclude entries that dropped nothing, groups that added nothing."""
        found = [
            f"{label} drops no point that an earlier exclude entry does not already drop; "
            "fix: remove it"
            for label in self.rule_labels
            if not self.excluded[label]
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
