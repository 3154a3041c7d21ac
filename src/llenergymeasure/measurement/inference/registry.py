"""Backend name -> its measurement class (``BackendSpec.engine``), imported only when chosen.

``import llenergymeasure.measurement.inference`` stays cheap: no backend module (and so no torch,
transformers or vllm) is imported until ``create_backend`` is called, and even then the backend
classes import their engines inside ``load``.
"""

from __future__ import annotations

import difflib
import importlib
from typing import cast

from llenergymeasure.config.backends import BACKENDS
from llenergymeasure.exceptions import ConfigError
from llenergymeasure.measurement.inference.base import InferenceBackend


def create_backend(name: str) -> InferenceBackend:
    """A fresh, unloaded backend; unknown names -> ``ConfigError`` with a suggestion."""
    return _instantiate(name, served=False)


def create_served_backend(name: str) -> InferenceBackend:
    """A fresh, unloaded backend in its served mode (``BackendSpec.server_engine``: a
    ``server:`` section); the config check refuses a backend without one before this."""
    return _instantiate(name, served=True)


def _instantiate(name: str, *, served: bool) -> InferenceBackend:
    try:
        spec = BACKENDS[name]
        target = spec.server_engine if served and spec.server_engine else spec.engine
    except KeyError:
        close = difflib.get_close_matches(name, list(BACKENDS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"unknown backend '{name}'; {hint}the backends are: {', '.join(BACKENDS)}",
            where="backend",
            fix=f"set backend to one of: {', '.join(BACKENDS)}",
        ) from None
    module_name, _, class_name = target.partition(":")
    backend_cls = getattr(importlib.import_module(module_name), class_name)
    return cast(InferenceBackend, backend_cls())
