"""Strings that become names and paths (experiment and campaign names, model ids, files).

They are shown in terminals, joined into directory names and opened as paths, so they hold no
control characters: a NUL cannot be in a path at all, an ESC rewrites the terminal, a newline
forges lines in logs and tables.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _plain(value: str) -> str:
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"holds the control character {found.group()!r}; fix: remove it (names and paths "
            "cannot hold NUL, newlines, tabs or other control characters)"
        )
    return value


PlainText = Annotated[str, AfterValidator(_plain)]
"""A ``str`` field without control characters."""
