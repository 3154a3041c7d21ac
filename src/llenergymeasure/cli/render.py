"""Shared Rich rendering for the CLI: one console per stream, errors as one message."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

import typer

from llenergymeasure.exceptions import LLEMError
from llenergymeasure.redaction import redact_json_text, redact_text, secret_values


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


JSON_MODE = "llem.json"
"""Key in Click's shared ``ctx.meta``: the command line asked for ``--json``."""


def fail(error: LLEMError, *, as_json: bool = False) -> NoReturn:
    """Print a user-facing error (what, where, fix) and exit with its code; no traceback.
    Under ``--json`` the same error is also the one JSON object on stdout."""
    where = f"{error.where}: " if error.where else ""
    err.print(f"[bold red]error:[/] {escape(redact_text(where + error.what))}")
    if error.fix:
        err.print(f"[yellow]fix:[/] {escape(redact_text(error.fix))}")
    if as_json:
        result = getattr(error, "result_json", None)  # a measured result saved nowhere
        fail_json(
            type(error).__name__,
            error.what,
            error.exit_code,
            where=error.where,
            fix=error.fix,
            **({"result": json.loads(result)} if result else {}),
        )
    raise typer.Exit(error.exit_code)


def fail_json(kind: str, what: str, exit_code: int, **details: Any) -> NoReturn:
    """A refusal under ``--json``: one object on stdout, ``ok`` false, then exit ``exit_code``
    (the code the command gives without ``--json``)."""
    print_json(
        {
            "ok": False,
            "exit_code": exit_code,
            "error": {"type": kind, "what": what, "where": None, "fix": None, **details},
        }
    )
    raise typer.Exit(exit_code)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else mixed in: strict JSON (RFC 8259), so
    a NaN or infinity is written as null; secrets from the environment are redacted."""
    text = json.dumps(finite(data), indent=2, allow_nan=False, default=str)
    sys.stdout.write(redact_json_text(text) + "\n")


def print_json_stream(head: dict[str, Any], lists: dict[str, Iterable[Any]]) -> None:
    """:func:`print_json` for output too large to hold: ``head``'s keys, then each list,
    written one item per line as it is read (still one strict JSON object)."""
    write = sys.stdout.write
    text = redact_json_text(json.dumps(finite(head), indent=2, allow_nan=False, default=str))
    body = text[: text.rfind("}")].rstrip()
    write(body)
    separator = "\n" if body == "{" else ",\n"
    secrets = secret_values()  # read once: the environment does not change mid-output
    for key, items in lists.items():
        write(f"{separator}  {json.dumps(key)}: [")
        separator, count = ",\n", 0
        for item in items:
            line = json.dumps(finite(item), allow_nan=False, default=str)
            write(
                ("," if count else "")
                + "\n    "
                + (redact_json_text(line, indent=None, secrets=secrets) if secrets else line)
            )
            count += 1
        write("\n  ]" if count else "]")
    write("\n}\n")


def print_lines(lines: Iterable[str], chunk: int = 1000) -> None:
    """Many plain lines on stdout (a million experiment names): written straight to the
    stream in chunks where it is not a terminal (Rich would add nothing there), through Rich
    without markup where it is; either way one line never costs a Rich render of its own."""
    terminal = out.is_terminal
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= chunk:
            _write_lines(batch, terminal)
            batch = []
    if batch:
        _write_lines(batch, terminal)


def _write_lines(batch: list[str], terminal: bool) -> None:
    if terminal:
        out.print("\n".join(batch), markup=False)
    else:
        sys.stdout.write("\n".join(batch) + "\n")
