"""``DIR/campaign.log``: the campaign's log lines, one line per record whatever a user string
holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_CONTROL = {c: f"\\x{c:02x}" for c in range(32)} | {
    0x7F: "\\x7f",
    0x85: "\\x85",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}


def one_line(text: str) -> str:
    """``text`` with control characters and line breaks escaped: a user string written into
    a log can never start a line of its own."""
    return text.translate(_CONTROL)


class CampaignLog:
    """``DIR/campaign.log``: one line per record, user strings escaped (see :func:`one_line`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.open("a", encoding="utf-8").close()  # there from the start, like a file sink

    def __call__(self, message: Any) -> None:
        record = message.record
        line = f"{record['time']:%Y-%m-%d %H:%M:%S} {record['level'].name: <7} "
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + one_line(record["message"]) + "\n")


__all__ = ["CampaignLog", "one_line"]
