"""The identity of an effective experiment config: ``config_hash``.

Two configs that validate to the same settings get the same hash, whatever their YAML looked
like (an explicit default or an omitted one, ``model: gpt2`` or ``model: {name: gpt2}``): the
hash covers the validated config with every default and preset filled in. The preset's label
is left out: it only says where the sampling values came from, and they are hashed. The
campaign manifest keys results on it.

The hashed bytes are the JSON of each section in field order, then the JSON array of the
top-level scalar values in field order (all plain JSON types: strings, numbers, booleans). Hashing section by section lets grid validation, which shares one validated
section object among many grid points, serialise and hash each distinct combination of
sections once (``SectionMemo``), and then only the scalars per point.
"""

from __future__ import annotations

import hashlib
from operator import itemgetter

from pydantic import BaseModel
from pydantic_core import to_json

from llenergymeasure.config.introspection import submodel
from llenergymeasure.config.models import ExperimentConfig

SECTION_NAMES = tuple(
    name for name, info in ExperimentConfig.model_fields.items() if submodel(info.annotation)
)
# baseline.reuse_across_runs (added later) is left out so that every config keeps its hash
_EXCLUDED = {"decoder": {"preset"}, "baseline": {"reuse_across_runs"}}
ADDED_LATER_SECTIONS = frozenset({"server"})
"""Sections added after campaigns were run: hashed only when set, so that every config
without them keeps the hash it had (a manifest keys its results on it)."""
ADDED_LATER_FIELDS = {"pytorch": frozenset({"device_map"})}
"""Section fields added later: hashed only when not None, for the same reason."""
SCALAR_NAMES = tuple(
    name for name in ExperimentConfig.model_fields if name not in SECTION_NAMES and name != "name"
)
_sections_of = itemgetter(*SECTION_NAMES)
_scalars_of = itemgetter(*SCALAR_NAMES)


def section_json(name: str, section: BaseModel | None) -> bytes:
    """The hashed JSON of one section of a config."""
    if section is None:
        return b"null"
    exclude = _EXCLUDED.get(name)
    unset = {f for f in ADDED_LATER_FIELDS.get(name, ()) if getattr(section, f) is None}
    if unset:
        exclude = (exclude or set()) | unset
    return section.__pydantic_serializer__.to_json(section, exclude=exclude)


def _hashed(names: tuple[str, ...], parts: list[bytes]) -> bytes:
    """The sections' JSON joined, an unset section added later left out."""
    return b"\n".join(
        [
            j
            for n, j in zip(names, parts, strict=True)
            if j != b"null" or n not in ADDED_LATER_SECTIONS
        ]
    )


def _sections_hasher(sections: tuple[BaseModel | None, ...]) -> hashlib._Hash:
    parts = [section_json(n, s) for n, s in zip(SECTION_NAMES, sections, strict=True)]
    return hashlib.sha256(_hashed(SECTION_NAMES, parts))


class SectionMemo:
    """The hashed JSON of section objects its owner keeps alive, by ``id``.

    Ids are only trusted for objects that were remembered (and so are alive); a config holding
    any other section is hashed the plain way.
    """

    def __init__(self) -> None:
        self._json: dict[int, bytes] = {id(None): b"null"}
        self._hashers: dict[tuple[int, ...], hashlib._Hash] = {}

    def remember(self, name: str, section: BaseModel) -> None:
        self._json[id(section)] = section_json(name, section)

    def knows(self, section: BaseModel | None) -> bool:
        """Whether this object was remembered (so its ``id`` is its own)."""
        return id(section) in self._json

    def sections_hasher(self, sections: tuple[BaseModel | None, ...]) -> hashlib._Hash:
        """A sha256 that has consumed these sections (a fresh copy, free to update)."""
        ids = tuple(map(id, sections))
        found = self._hashers.get(ids)
        if found is None:
            try:
                found = hashlib.sha256(_hashed(SECTION_NAMES, [self._json[i] for i in ids]))
            except KeyError:
                return _sections_hasher(sections)
            self._hashers[ids] = found
        return found.copy()


def config_hash(config: ExperimentConfig, memo: SectionMemo | None = None) -> str:
    """sha256 of the effective (validated) config, ``name`` excluded."""
    return config_digest(config, memo).hex()


def config_digest(config: ExperimentConfig, memo: SectionMemo | None = None) -> bytes:
    """:func:`config_hash` as the digest's bytes."""
    sections = _sections_of(config.__dict__)
    hasher = memo.sections_hasher(sections) if memo is not None else _sections_hasher(sections)
    hasher.update(b"\n" + to_json(_scalars_of(config.__dict__)))
    return hasher.digest()
