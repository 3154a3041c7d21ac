"""Entry point of the subprocess executor's child process.

``python -m llenergymeasure.orchestration.executors.worker CONFIG_JSON OUTPUT_DIR EXPERIMENT_ID``
runs one experiment cold (a fresh process loads its own model) and writes
``OUTPUT_DIR/EXPERIMENT_ID/result.json``, exactly as the in-process executor does.

It talks to its parent on stdout, one line per message: ``@@llem progress <text>`` while it
runs and, on failure, ``@@llem error <json>`` with the error's type, message and traceback.
Exit status: 0 measured, 1 the experiment failed, 2 bad arguments.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

PREFIX = "@@llem "


def _send(kind: str, payload: str) -> None:
    sys.stdout.write(f"{PREFIX}{kind} {payload}\n")
    sys.stdout.flush()


def _die_with_parent() -> None:
    """Exit when the campaign process dies (even by kill -9): never an orphan run that writes
    a result after the campaign moved on."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(137)

    threading.Thread(target=watch, daemon=True, name="llem-parent-watch").start()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        sys.stderr.write("usage: python -m ...executors.worker CONFIG_JSON OUTPUT_DIR EXP_ID\n")
        return 2
    config_json, output_dir, exp_id = args
    _die_with_parent()

    from llenergymeasure.log import logger
    from llenergymeasure.redaction import install_log_redaction

    logger.remove()
    logger.add(sys.stderr, level="INFO", format="{level}: {message}")
    logger.enable("llenergymeasure")
    install_log_redaction()
    try:
        from llenergymeasure.config.models import ExperimentConfig
        from llenergymeasure.exceptions import LLEMError
        from llenergymeasure.measurement.harness import run_experiment

        config = ExperimentConfig.model_validate(json.loads(config_json))
        run_experiment(
            config,
            Path(output_dir),
            experiment_id=exp_id,
            progress=lambda message: _send("progress", message.replace("\n", " ")),
        )
    except Exception as error:
        text = traceback.format_exc()
        sys.stderr.write(text)
        message = (
            error.render() if isinstance(error, LLEMError) else f"{type(error).__name__}: {error}"
        )
        _send(
            "error",
            json.dumps({"type": type(error).__name__, "message": message, "traceback": text}),
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
