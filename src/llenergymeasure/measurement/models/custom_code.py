"""A local model directory that would run its own code is refused unless the user trusts it.

``from_pretrained`` runs Python shipped beside a model when its ``config.json`` (or
``tokenizer_config.json``) has an ``auto_map``; a directory holding ``modeling_*.py`` and the
like is the same risk one edit away. Checked before anything is loaded, for every backend,
whatever transformers' own default would be; ``model.trust_remote_code: true`` allows it.
"""

from __future__ import annotations

import json
from pathlib import Path

from llenergymeasure.config.models import ModelConfig
from llenergymeasure.exceptions import ModelLoadError

CONFIG_FILES = ("config.json", "tokenizer_config.json", "processor_config.json")
"""Files whose ``auto_map`` names code to import."""
MAX_CONFIG_BYTES = 16 * 2**20


def custom_code_in(directory: Path) -> list[str]:
    """What in ``directory`` is code a load would run: ``*.py`` files, ``auto_map`` entries."""
    found = sorted(p.name for p in directory.glob("*.py") if p.is_file())
    for name in CONFIG_FILES:
        path = directory / name
        try:
            if not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
                continue
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            continue  # unreadable: from_pretrained says what is wrong with it
        if isinstance(data, dict) and data.get("auto_map"):
            found.append(f"auto_map in {name}")
    return found


def refuse_custom_code(model: ModelConfig, source: str) -> None:
    """ModelLoadError when ``source`` is a local directory with code and trust is not given."""
    if model.trust_remote_code:
        return
    directory = Path(source).expanduser()
    if not directory.is_dir():
        return  # a Hub id: transformers refuses its custom code without trust_remote_code
    found = custom_code_in(directory)
    if found:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise ModelLoadError(
            f"model directory '{model.name}' holds code that loading it could run ({shown})",
            where="model.name",
            fix="set model.trust_remote_code: true only if you have read and trust that code, "
            "or point model.name at a directory without it",
        )
