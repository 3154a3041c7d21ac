"""Shared building blocks of the config models: strict base class, field metadata, errors.

Field metadata is the single source of truth that introspection reads: ``x-short`` is the
abbreviation used in generated experiment names, ``x-requires`` declares hardware or checkpoint
needs next to the field they concern; ``x-runtime`` marks backend parameters that do not
require reloading the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


class StrictModel(BaseModel):
    """A config section: unknown keys are errors; once validated it never changes (frozen), so
    one validated section can safely be shared, and what was validated is what runs. Floats
    are finite (a field that means to accept NaN or infinity says ``allow_inf_nan=True``):
    ``result.json`` is strict JSON and could not hold them after the measurement."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


T = TypeVar("T")


def factory(make: Callable[[], T]) -> Callable[[], T]:
    """``make`` as a plain function, for ``Field(default_factory=factory(DecoderConfig))``.

    Building a model, pydantic asks each default factory whether it takes the validated data,
    through ``inspect.signature``: for a model class that builds the class's whole signature,
    for a builtin such as ``list`` it parses its text signature (~0.2 ms each, ~27 factories
    in the config models); for a plain function it is almost free. What is made is the same.
    """

    def new() -> T:
        return make()

    return new


def meta(
    *,
    short: str | None = None,
    requires: list[dict[str, Any]] | None = None,
    runtime: bool = False,
) -> dict[str, Any]:
    """Build ``json_schema_extra`` for a field.

    ``requires`` is a list of ``{"when": CONDITION, "needs": "what the user must have"}`` where
    CONDITION is a plain value (equality), ``{"gt": n}`` or ``{"in": [..]}``. ``runtime`` marks a
    backend parameter that applies per generate call, so a loaded model can be reused across it.
    """
    extra: dict[str, Any] = {}
    if short is not None:
        extra["x-short"] = short
    if requires:
        extra["x-requires"] = requires
    if runtime:
        extra["x-runtime"] = True
    return extra


def combination_error(rule: str, detail: str, at: tuple[str, ...] = ()) -> PydanticCustomError:
    """An invalid *combination* of otherwise valid values.

    ``rule`` is the short label used to group filtered grid points ("tensorrt + float32");
    ``detail`` names the field paths and the fix; ``at`` is the key path (below the validated
    model) the message points at, so the loader can name its file line.
    """
    context = {"rule": rule, "detail": detail, "subpath": list(at)}
    return PydanticCustomError("invalid_combination", "{detail}", context)
