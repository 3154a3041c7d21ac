"""The identity of an effective experiment config: ``config_hash``.

Two configs that validate to the same settings get the same hash, whatever their YAML looked
like (an explicit default or an omitted one, ``model: gpt2`` or ``model: {name: gpt2}``): the
hash covers the validated config with every default and preset filled in. The preset's label
is left out: it only says where the sampling values came from, and they are hashed. The
campaign manifest keys results on it.

The hashed bytes are the JSON of the top-level scalar fields, then the JSON of each section in
field order. Hashing section by section lets grid validation, which shares one validated
section object among many grid points, serialise each distinct section once.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel

from llenergymeasure.config.introspection import submodel
from llenergymeasure.config.models import ExperimentConfig

SectionJSON = dict[int, bytes]
"""``id(section) -> its JSON``, for section objects the caller keeps alive."""

_SECTIONS: tuple[tuple[str, set[str] | None], ...] = tuple(
    (name, {"preset"} if name == "decoder" else None)
    for name, info in ExperimentConfig.model_fields.items()
    if submodel(info.annotation) is not None
)
_SCALARS = {name for name in ExperimentConfig.model_fields if name not in dict(_SECTIONS)} - {
    "name"
}
_serialize_scalars = ExperimentConfig.__pydantic_serializer__.to_json


def section_json(section: BaseModel, exclude: set[str] | None) -> bytes:
    return section.__pydantic_serializer__.to_json(section, exclude=exclude)


def config_hash(config: ExperimentConfig, known: SectionJSON | None = None) -> str:
    """sha256 of the effective (validated) config, ``name`` excluded.

    ``known`` may hold the JSON of section objects the caller keeps alive (see grid validation).
    """
    values: dict[str, Any] = config.__dict__
    known = known if known is not None else {}
    parts = [_serialize_scalars(config, include=_SCALARS)]
    parts += [
        b"null"
        if (section := values[name]) is None
        else known.get(id(section)) or section_json(section, exclude)
        for name, exclude in _SECTIONS
    ]
    return hashlib.sha256(b"\n".join(parts)).hexdigest()


def section_exclusions() -> dict[str, set[str] | None]:
    """Per section field, the keys its hash leaves out."""
    return dict(_SECTIONS)
