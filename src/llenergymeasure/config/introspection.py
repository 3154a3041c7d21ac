"""Single source of truth derived from the config models.

Everything here is computed from the pydantic models (field existence, ``Literal`` options,
``Field`` metadata, backend-section class variables), never kept as a second hand-written list.
Results are cached: the models do not change at run time.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable
from functools import cache
from operator import attrgetter
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from llenergymeasure.config.models import BACKEND_SECTIONS, ExperimentConfig
from llenergymeasure.config.predecessor import key_hint, value_hint

__all__ = [
    "BackendCapabilities",
    "ParamInfo",
    "SkipCondition",
    "check_param_value",
    "get_backend_capabilities",
    "get_backend_params",
    "get_param_skip_conditions",
    "get_shared_params",
    "gpu_only_values",
    "hardware_warnings",
    "list_backends",
    "model_load_key",
    "nearest_names",
    "resolve_param",
]


# The records below are NamedTuples (immutable, compared by value): on Python 3.11 a frozen
# dataclass costs ~1.5 ms to create when the module is imported, a NamedTuple a tenth of that.


class ParamInfo(NamedTuple):
    """One configurable leaf parameter."""

    path: str
    type: str
    default: Any
    options: tuple[Any, ...] | None
    description: str | None
    short: str | None
    requires: tuple[dict[str, Any], ...] = ()
    runtime: bool = False


class SkipCondition(NamedTuple):
    """A value that needs hardware (or a checkpoint) beyond what the backend itself needs."""

    backend: str | None  # None: applies to every backend
    path: str
    when: Any
    needs: str
    gpu_only: bool = False
    """The value cannot run without a GPU at all (e.g. on vLLM's CPU build): refused there."""

    def matches(self, value: Any) -> bool:
        return self.predicate()(value)

    def predicate(self) -> Callable[[Any], bool]:
        """The condition as a function of the field's value."""
        when = self.when
        if isinstance(when, dict):
            if "gt" in when:
                limit = when["gt"]
                return lambda v: isinstance(v, (int, float)) and v > limit
            if "in" in when:
                options = tuple(when["in"])
                return lambda v: v in options
            raise ValueError(f"unknown condition {when!r} on {self.path}")
        return lambda v: v == when and type(v) is type(when)


class BackendCapabilities(NamedTuple):
    """What a backend is and needs, read from its config section."""

    name: str
    requires_gpu: bool
    python_package: str
    install_hint: str
    supported_precisions: tuple[str, ...]
    params: tuple[str, ...] = ()
    quantization: tuple[str, ...] = ()


def list_backends() -> tuple[str, ...]:
    """Backend names in declaration order."""
    return tuple(BACKEND_SECTIONS)


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def submodel(annotation: Any) -> type[BaseModel] | None:
    """The model class a field holds, if it holds a config section."""
    inner = _unwrap_optional(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    return None


def _literal_options(annotation: Any) -> tuple[Any, ...] | None:
    inner = _unwrap_optional(annotation)
    if get_origin(inner) is Literal:
        return get_args(inner)
    return None


def _type_name(annotation: Any) -> str:
    """A type as a user writes it: ``str | None``, never ``Annotated | None`` (an optional
    constrained type keeps its ``Annotated`` wrapper inside the union)."""
    inner = _unwrap_optional(annotation)
    optional = inner is not annotation
    while get_origin(inner) is Annotated:
        inner = get_args(inner)[0]
    name = "choice" if get_origin(inner) is Literal else getattr(inner, "__name__", str(inner))
    return f"{name} | None" if optional else name


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _walk(model: type[BaseModel], prefix: str, skip: frozenset[str]) -> dict[str, ParamInfo]:
    params: dict[str, ParamInfo] = {}
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        path = f"{prefix}{name}"
        child = submodel(info.annotation)
        if child is not None:
            params.update(_walk(child, f"{path}.", frozenset()))
            continue
        extra = _extra(info)
        params[path] = ParamInfo(
            path=path,
            type=_type_name(info.annotation),
            default=None if info.is_required() else info.get_default(call_default_factory=True),
            options=_literal_options(info.annotation),
            description=info.description,
            short=extra.get("x-short"),
            requires=tuple(extra.get("x-requires", ())),
            runtime=bool(extra.get("x-runtime", False)),
        )
    return params


@cache
def get_shared_params() -> dict[str, ParamInfo]:
    """Every experiment parameter that is not inside a backend section, by dotted path."""
    return _walk(ExperimentConfig, "", frozenset(BACKEND_SECTIONS))


@cache
def get_backend_params(backend: str) -> dict[str, ParamInfo]:
    """The parameters of one backend's section, keyed relative to the section."""
    if backend not in BACKEND_SECTIONS:
        raise KeyError(_unknown("backend", backend, list(BACKEND_SECTIONS)))
    return _walk(BACKEND_SECTIONS[backend], "", frozenset())


def model_load_key(config: ExperimentConfig) -> tuple[Any, ...]:
    """What decides the loaded model: two configs with equal keys can share one loaded model."""
    section = config.backend_section
    load_params = tuple(
        p for p, info in get_backend_params(config.backend).items() if not info.runtime
    )
    return (
        config.backend,
        config.model.name,
        config.model.revision,
        config.model.trust_remote_code,
        config.fp_precision,
        tuple(_hashable(getattr(section, p)) for p in load_params),
        # served: one server per url (None: the one llem starts); traffic and SLO are per run
        None if config.server is None else ("server", config.server.url),
    )


def _hashable(value: Any) -> Any:
    """A dict (``engine_kwargs``) as sorted items, so the load key can key a dict or a set."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


@cache
def get_backend_capabilities() -> dict[str, BackendCapabilities]:
    """Per backend: what it needs, which precisions it supports, what it can tune."""
    caps = {}
    for name, section in BACKEND_SECTIONS.items():
        params = get_backend_params(name)
        quant = params.get("quantization")
        caps[name] = BackendCapabilities(
            name=name,
            requires_gpu=section.requires_gpu,
            python_package=section.python_package,
            install_hint=section.install_hint,
            supported_precisions=section.supported_precisions,
            params=tuple(params),
            quantization=tuple(o for o in (quant.options or ()) if o is not None) if quant else (),
        )
    return caps


@cache
def get_param_skip_conditions() -> tuple[SkipCondition, ...]:
    """Hardware requirements declared next to the fields they concern."""
    conditions = [
        SkipCondition(None, p.path, rule["when"], rule["needs"], bool(rule.get("gpu_only")))
        for p in get_shared_params().values()
        for rule in p.requires
    ]
    for backend in BACKEND_SECTIONS:
        conditions += [
            SkipCondition(
                backend,
                f"{backend}.{p.path}",
                rule["when"],
                rule["needs"],
                bool(rule.get("gpu_only")),
            )
            for p in get_backend_params(backend).values()
            for rule in p.requires
        ]
    return tuple(conditions)


@cache
def _conditions_by_backend() -> dict[
    str, tuple[tuple[Callable[[Any], Any], Callable[[Any], bool], SkipCondition], ...]
]:
    return {
        b: tuple(
            (attrgetter(c.path), c.predicate(), c)
            for c in get_param_skip_conditions()
            if c.backend in (None, b)
        )
        for b in BACKEND_SECTIONS
    }


def hardware_warnings(config: ExperimentConfig) -> list[str]:
    """Requirements beyond the backend's own that this validated config has."""
    found = []
    for read, matches, condition in _conditions_by_backend()[config.backend]:
        value = read(config)
        if matches(value):
            found.append(f"{condition.path}={value} needs {condition.needs}")
    return found


def gpu_only_values(config: ExperimentConfig) -> list[str]:
    """The values of this config that cannot run without a GPU (declared ``gpu_only`` next to
    their fields): a backend running on CPU refuses the config with these."""
    found = []
    for read, matches, condition in _conditions_by_backend()[config.backend]:
        value = read(config)
        if condition.gpu_only and matches(value):
            found.append(f"{condition.path}={value} needs {condition.needs}")
    return found


def nearest_names(name: str, candidates: list[str] | tuple[str, ...]) -> list[str]:
    """Close matches for a mistyped name, best first."""
    return difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)


def _unknown(kind: str, name: str, candidates: list[str], typed: str | None = None) -> str:
    near = nearest_names(typed or name, candidates)
    if near:
        return f"unknown {kind} '{name}'; did you mean {' or '.join(repr(n) for n in near)}?"
    return f"unknown {kind} '{name}'; valid: {', '.join(candidates)}"


def resolve_param(model: type[BaseModel], path: str) -> FieldInfo:
    """The field at a dotted path under ``model``; ValueError naming the nearest keys if none."""
    current: type[BaseModel] | None = model
    info: FieldInfo | None = None
    parts = path.split(".")
    for depth, part in enumerate(parts):
        if current is None:
            raise ValueError(f"'{'.'.join(parts[:depth])}' has no sub-keys; cannot set '{path}'")
        fields = current.model_fields
        if part not in fields:
            hint = key_hint("experiment", path) if model is ExperimentConfig else None
            if hint is not None:
                raise ValueError(f"unknown key '{path}'; {hint}")
            raise ValueError(_unknown("key", ".".join(parts[: depth + 1]), list(fields), part))
        info = fields[part]
        current = submodel(info.annotation)
    assert info is not None
    return info


@cache
def _adapter(model: type[BaseModel], path: str) -> TypeAdapter[Any]:
    info = resolve_param(model, path)
    annotation: Any = info.annotation
    if info.metadata:  # constraints such as ge=1 live in metadata
        annotation = Annotated.__class_getitem__((annotation, *info.metadata))  # type: ignore[attr-defined]
    return TypeAdapter(annotation)


def check_param_value(model: type[BaseModel], path: str, value: Any) -> None:
    """Raise ValueError if ``value`` can never be valid at ``path`` (bad option, wrong type).

    A dict value for a section is checked leaf by leaf, so a partial section (deep-merged later)
    is accepted. Combinations are not checked here: they are filtered per experiment.
    """
    info = resolve_param(model, path)
    child = submodel(info.annotation)
    if child is not None and isinstance(value, dict):
        for key, sub in value.items():
            check_param_value(model, f"{path}.{key}", sub)
        return
    if child is not None and path == "model" and isinstance(value, str):
        return  # `model: gpt2` shorthand
    try:
        _adapter(model, path).validate_python(value)
    except ValidationError as err:
        options = _literal_options(info.annotation)
        if options is not None:
            valid = ", ".join(str(o) for o in options)
            hint = value_hint(value)
            raise ValueError(
                f"{path}: {value!r} is not a valid choice; "
                + (f"{hint}; valid: {valid}" if hint else f"valid: {valid}")
            ) from None
        problem = err.errors()[0]["msg"]
        raise ValueError(f"{path}: {value!r} is not valid ({problem})") from None
