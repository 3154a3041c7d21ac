"""The CLI starts instantly because nothing heavy is imported before it is needed: a fresh
interpreter per case, and the modules it loaded checked against what must stay out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = {"torch", "transformers", "numpy", "pynvml", "vllm", "ray", "pyarrow", "vl_convert"}
"""Never imported before a command needs them."""
HELP_RENDERING = {"markdown_it", "pygments"}
"""What Rich's help formatter would pull in."""

PROBE = """
import json, sys
sys.argv = {argv!r}
{code}
print("@@" + json.dumps(sorted(sys.modules)))
"""
RUN_CLI = """
from llenergymeasure.cli.app import main
import contextlib, io
try:
    with contextlib.redirect_stdout(io.StringIO()):
        main()
except SystemExit:
    pass
"""


def _loaded(code: str, argv: list[str]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, code=code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("@@"))
    return {name.split(".")[0] for name in json.loads(line[2:])} | set(json.loads(line[2:]))


def test_importing_the_package_loads_nothing_but_itself() -> None:
    loaded = _loaded("import llenergymeasure", ["python"])
    assert not loaded & (HEAVY | {"loguru", "pydantic", "yaml", "rich", "typer"})
    assert "importlib.metadata" not in loaded  # the version is a string, not a lookup


@pytest.mark.parametrize(
    ("argv", "allowed_extra"),
    [
        (["llem", "--help"], set()),
        (["llem", "campaign", "--help"], {"pydantic"}),  # typer's own adapters import it
        (["llem", "campaign", "validate", "examples/campaign.yaml"], {"pydantic", "yaml", "rich"}),
        (["llem", "config", "params"], {"pydantic", "yaml", "rich"}),
    ],
)
def test_the_cli_imports_only_what_the_command_needs(
    argv: list[str], allowed_extra: set[str]
) -> None:
    loaded = _loaded(RUN_CLI, argv)
    assert not loaded & HEAVY, argv
    assert not loaded & HELP_RENDERING, argv
    assert "loguru" not in loaded, argv  # nothing logged: the logger never loaded
    light = {"pydantic", "yaml", "rich"} - allowed_extra
    assert not loaded & light, (argv, loaded & light)
