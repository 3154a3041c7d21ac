"""Experiments given as a shared base plus dotted overrides each: a campaign's explicit list.

Thousands of explicit experiments repeat one base (``base_config``, or an experiment file on
top of it) and differ in a few overrides. Kept in that form, validation can take the base's
validated sections once and work out each overridden section once per distinct override value
(as the grid validator does per axis choice), building an experiment's dict only if it is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from llenergymeasure.config.dicts import clone, set_path

Entry = tuple[dict[str, Any], dict[str, Any], str]
"""(base, dotted overrides, name): one experiment."""

_CONTAINERS = (dict, list)


class OverridePoints:
    """A lazy stream of explicit experiments; iterating yields one fresh config dict each."""

    rules = ()  # no exclude entries: every entry is an experiment

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries = entries
        self._flat: dict[int, tuple[dict[str, Any], set[str]]] = {}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(self.build, self.entries)

    def build(self, entry: Entry) -> dict[str, Any]:
        """The experiment's config dict, sharing no mutable state with the base."""
        base, overrides, name = entry
        config = self.fresh_copy(base)
        for key, value in overrides.items():
            set_override(config, key, value)
        config["name"] = name
        return config

    def fresh_copy(self, base: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``base``; its flat sections copied in one C-level call each."""
        known = self._flat.get(id(base))
        if known is None or known[0] is not base:
            flat = {
                k
                for k, v in base.items()
                if type(v) is dict and not any(type(s) in _CONTAINERS for s in v.values())
            }
            known = self._flat[id(base)] = (base, flat)
        flat = known[1]
        return {
            k: {**v} if k in flat else clone(v) if type(v) in _CONTAINERS else v
            for k, v in base.items()
        }


def set_override(config: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted override in place: a scalar at one or two levels directly, else deep-merged."""
    head, _, rest = key.partition(".")
    if type(value) in _CONTAINERS or "." in rest:
        set_path(config, key.split("."), value)
    elif not rest:
        config[head] = value
    else:
        section = config.get(head)
        if type(section) is not dict:
            section = config[head] = {}
        section[rest] = value
