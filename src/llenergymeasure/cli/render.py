"""Shared Rich rendering for the CLI: one console per stream, errors as one message."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from llenergymeasure.exceptions import LLEMError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(error: LLEMError) -> NoReturn:
    """Print a user-facing error (what, where, fix) and exit with its code; no traceback."""
    where = f"{error.where}: " if error.where else ""
    err.print(f"[bold red]error:[/] {escape(where + error.what)}")
    if error.fix:
        err.print(f"[yellow]fix:[/] {escape(error.fix)}")
    raise typer.Exit(error.exit_code)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else mixed in."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
