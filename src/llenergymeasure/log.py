"""The library's logger: loguru, imported on first use and quiet until an application asks.

Every module logs through ``from llenergymeasure.log import logger``. The name is a stand-in
that imports loguru the first time anything touches it, silencing the library by default (the
CLI enables it), so importing a module that may log costs nothing until it does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_loguru: Any = None
_setup: Callable[[Any], None] | None = None


class _Logger:
    def __getattr__(self, name: str) -> Any:
        global _loguru
        if _loguru is None:
            from loguru import logger as loguru_logger

            loguru_logger.disable("llenergymeasure")
            _loguru = loguru_logger
            if _setup is not None:
                _setup(loguru_logger)
        return getattr(_loguru, name)


def on_first_use(setup: Callable[[Any], None]) -> None:
    """Run ``setup(loguru_logger)`` (the application's sinks) once the logger is first used,
    or now if it already was: a command that never logs never imports loguru."""
    global _setup
    _setup = setup
    if _loguru is not None:
        setup(_loguru)


logger: Any = _Logger()

__all__ = ["logger"]
