"""Ways to run the CLI in-process: the Typer app through CliRunner, and the console entry point."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from llenergymeasure.cli.app import app, main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def invoke(*args: str) -> Result:
    """Run the Typer app; user errors must end as an exit code, never an escaped exception."""
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean(result: Result) -> None:
    """No exception escaped the app (a SystemExit carrying the exit code is fine)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__} escaped the app: {result.exception}"
    )
    assert "Traceback" not in result.output


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> Run:
    """Run the `llem` console-script entry point in-process."""
    monkeypatch.setattr(sys, "argv", ["llem", *[str(a) for a in args]])
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    code = info.value.code
    return Run(
        code if isinstance(code, int) else (0 if code is None else 1), captured.out, captured.err
    )


def example_line(name: str, text: str) -> int:
    """The 1-based line of the first line of ``examples/name`` holding ``text`` (tests that point
    at an example's line follow the example as it changes)."""
    lines = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)
