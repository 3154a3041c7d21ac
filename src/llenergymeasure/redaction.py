"""Secrets from the environment (``HF_TOKEN``, ``*_API_KEY``, ``AWS_*``, passwords) never leave
the process: every JSON file we write, every ``--json`` output, every log record and every
error message passes through here, and any secret's value found in it becomes ``<redacted>``.

A secret is the value of an environment variable whose *name* says it is one (see
:data:`SECRET_NAME`), at least :data:`MIN_SECRET_CHARS` long (shorter values are not secrets
worth the name, and would match ordinary text). Values are read when needed, not cached, so a
variable set later is covered too.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

REDACTED = "<redacted>"
SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW(OR)?D|API_?KEY|_KEY$|^AWS_|CREDENTIAL|AUTH|PRIVATE", re.IGNORECASE
)
"""Names of environment variables whose values are secrets."""
MIN_SECRET_CHARS = 8


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """The secret values in the environment, longest first (so no secret is half-replaced)."""
    env = os.environ if environ is None else environ
    found = {
        value
        for name, value in env.items()
        if len(value) >= MIN_SECRET_CHARS and SECRET_NAME.search(name)
    }
    return sorted(found, key=len, reverse=True)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every secret value replaced."""
    for secret in secret_values() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_data(value: Any, secrets: list[str]) -> Any:
    """A copy of JSON-like ``value`` with secrets replaced in every string, keys included."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {redact_text(str(k), secrets): redact_data(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v, secrets) for v in value]
    return value


def redact_json_text(text: str, *, indent: int | None = 2, secrets: list[str] | None = None) -> str:
    """JSON ``text`` re-written without secrets (unchanged, and cheap, when it holds none).

    A secret is looked for as it appears in JSON (escaped), then replaced structurally, so the
    result is always valid JSON: a secret that happens to look like a number cannot be cut
    out of one.
    """
    known = secret_values() if secrets is None else secrets
    secrets = [s for s in known if s in text or json.dumps(s)[1:-1] in text]
    if not secrets:
        return text
    return json.dumps(redact_data(json.loads(text), secrets), indent=indent, allow_nan=False)


def redact_log_record(record: dict[str, Any]) -> None:
    """A loguru patcher: a record's message loses its secrets before any sink sees it."""
    secrets = secret_values()
    if secrets:
        record["message"] = redact_text(record["message"], secrets)


def install_log_redaction() -> None:
    """Every loguru sink, in this process, receives records without secrets."""
    from llenergymeasure.log import logger

    logger.configure(patcher=redact_log_record)
