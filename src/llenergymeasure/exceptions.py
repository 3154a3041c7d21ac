"""The project's exception hierarchy: one place where every user-facing failure is named.

Every error carries *what* went wrong, *where* (file, line, key path) when known, and *how to
fix it*. The CLI renders these as one message and exits with ``exit_code``; it never shows a
traceback for them. Vendor errors (pynvml, torch, transformers) are translated into these at the
boundary where they happen.
"""

from __future__ import annotations


class LLEMError(Exception):
    """Base class: a failure we can explain to the user."""

    exit_code: int = 1

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        parts = [f"{self.where}: {self.what}" if self.where else self.what]
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return "\n".join(parts)


class ConfigError(LLEMError):
    """The user's configuration cannot be used at all (syntax, unknown key, wrong type)."""

    exit_code = 2


class UnavailableError(LLEMError):
    """Something needed is not present on this machine (a GPU, a library, a sensor)."""


class ModelLoadError(LLEMError):
    """A model could not be found or loaded."""


class DatasetError(LLEMError):
    """Prompts could not be read."""


class ExperimentError(LLEMError):
    """An experiment failed while running."""


class ResultWriteError(LLEMError):
    """A measured result could not be written where it was asked to go.

    ``saved_to`` names where it was saved instead; when nowhere could take it, ``result_json``
    holds it so the caller can still hand it to the user.
    """

    def __init__(
        self,
        what: str,
        *,
        fix: str | None = None,
        saved_to: object = None,
        result_json: str | None = None,
    ) -> None:
        super().__init__(what, fix=fix)
        self.saved_to = saved_to
        self.result_json = result_json
