"""The identity of an effective experiment config: ``config_hash``.

Two configs that validate to the same settings get the same hash, whatever their YAML looked
like (an explicit default or an omitted one, ``model: gpt2`` or ``model: {name: gpt2}``): the
hash covers the validated config with every default and preset filled in. The preset's label
is left out: it only says where the sampling values came from, and they are hashed. The
campaign manifest keys results on it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from llenergymeasure.config.models import ExperimentConfig

_serialize = ExperimentConfig.__pydantic_serializer__.to_json
_NOT_HASHED: dict[str, Any] = {"name": True, "decoder": {"preset": True}}


def config_hash(config: ExperimentConfig) -> str:
    """sha256 of the effective (validated) config, ``name`` excluded."""
    return hashlib.sha256(_serialize(config, exclude=_NOT_HASHED)).hexdigest()
