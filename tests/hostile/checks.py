"""One hostile document through the loader and the CLI, and what must hold for it.

Whatever the document, the answer is one message and the documented exit code (0 valid, 1 a
fine file with nothing valid in it, 2 an unusable file), within a bounded time, never an
escaped exception; ``--json`` is strict JSON; what was accepted can be written after the
measurement (JSON without NaN, experiment directory names short and safe).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.config.loader import load_campaign_config, load_experiment_config
from llenergymeasure.exceptions import LLEMError
from llenergymeasure.files import json_bytes, safe_name

CPU_BOUND_S = 5.0
"""CPU seconds per document and per path (loader, CLI): the limits aim at under 2 s; CPU time,
not wall time, so a loaded, shared runner does not fail the bound."""
NAME_MAX_BYTES = 255


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"--json output holds {constant}: not RFC 8259 JSON")

    return json.loads(text, parse_constant=refuse)


def load(path: Path, kind: str) -> int:
    """The loader's verdict: 0 loaded (and writable), else the error's exit code."""
    started = time.process_time()
    try:
        if kind == "campaign":
            load_campaign_config(path)
        else:
            config = load_experiment_config(path)
            json_bytes(config.model_dump(mode="json"))  # what a result will hold
        code = 0
    except LLEMError as error:
        assert error.what, "an error without a message"
        code = error.exit_code
    elapsed = time.process_time() - started
    assert elapsed < CPU_BOUND_S, f"the loader took {elapsed:.1f} CPU s"
    return code


def validate(path: Path, kind: str) -> int:
    """``llem <kind> validate --json`` in-process; returns its exit code after the checks."""
    command = ["campaign" if kind == "campaign" else "config", "validate", str(path), "--json"]
    started = time.process_time()
    result = CliRunner().invoke(app, command)
    elapsed = time.process_time() - started
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__} escaped the CLI: {result.exception!r}"
    )
    assert "Traceback" not in result.output
    assert elapsed < CPU_BOUND_S, f"the CLI took {elapsed:.1f} CPU s"
    code = result.exit_code
    assert code in (0, 1, 2), f"undocumented exit code {code}"
    if code == 2 or (code == 1 and kind == "experiment"):
        assert "error:" in result.stderr, "a refusal without a message"
    else:
        data = _strict(result.stdout)
        if kind == "campaign":
            for experiment in data["experiments"]:
                _assert_writable_name(experiment["name"])
        else:
            assert data["valid"] is True
    return code


def _assert_writable_name(name: str) -> None:
    exp_id = f"{safe_name(name)}-{'f' * 8}-99_c999"  # the longest id a manifest gives it
    assert len(exp_id.encode()) <= NAME_MAX_BYTES, f"{len(exp_id.encode())}-byte directory name"
    assert exp_id.isascii() and "/" not in exp_id and not exp_id.startswith(".")


def check(path: Path, kind: str) -> int:
    """Loader and CLI agree on the exit code; returns it."""
    by_loader, by_cli = load(path, kind), validate(path, kind)
    if kind == "experiment" or by_loader != 0:
        assert by_loader == by_cli, f"loader says {by_loader}, CLI says {by_cli}"
    return by_cli
