"""Where llenergymeasure keeps what it builds or measures once and reuses (models, baselines)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$LLEM_CACHE_DIR``, else ``$XDG_CACHE_HOME/llenergymeasure``, else ``~/.cache/llenergymeasure``."""
    explicit = os.environ.get("LLEM_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llenergymeasure"
