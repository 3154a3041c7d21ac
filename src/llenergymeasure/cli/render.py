"""Shared Rich rendering for the CLI: one console per stream, errors as one message."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

from llenergymeasure.exceptions import LLEMError
from llenergymeasure.redaction import redact_json_text, redact_text


class _Console:
    """A Rich console made on first use: ``llem --help`` never imports Rich's rendering."""

    def __init__(self, **options: Any) -> None:
        self._options: dict[str, Any] = options
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)

    def __enter__(self) -> Any:  # Rich's Live does ``with console:`` (dunders skip __getattr__)
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc: Any) -> Any:
        return self.__getattr__("__exit__")(*exc)


# emoji=False: a ``:name:`` in a config name or an error message stays as written (``escape``
# makes markup literal, not emoji codes), and Rich's emoji table is never imported.
out: Any = _Console(highlight=False, soft_wrap=True, emoji=False)
err: Any = _Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def finite(data: Any) -> Any:
    """:func:`llenergymeasure.files.finite`, imported when JSON is first written: ``llem
    --help`` does not load the file helpers (hashlib, tempfile)."""
    from llenergymeasure.files import finite as files_finite

    return files_finite(data)


def escape(text: str) -> str:
    """``text`` with Rich markup made literal (Rich imported only when something prints)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def new_table(*args: Any, **kwargs: Any) -> Any:
    """A Rich table (imported only when one is drawn)."""
    from rich.table import Table

    return Table(*args, **kwargs)


def fail(error: LLEMError) -> NoReturn:
    """Print a user-facing error (what, where, fix) and exit with its code; no traceback."""
    where = f"{error.where}: " if error.where else ""
    err.print(f"[bold red]error:[/] {escape(redact_text(where + error.what))}")
    if error.fix:
        err.print(f"[yellow]fix:[/] {escape(redact_text(error.fix))}")
    raise typer.Exit(error.exit_code)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else mixed in: strict JSON (RFC 8259), so
    a NaN or infinity is written as null; secrets from the environment are redacted."""
    text = json.dumps(finite(data), indent=2, allow_nan=False, default=str)
    sys.stdout.write(redact_json_text(text) + "\n")
