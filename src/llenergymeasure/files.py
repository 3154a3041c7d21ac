"""Files we must not lose or corrupt (results, manifests, caches), and where they may go.

* Atomic replace: write a temp file in the same directory, fsync it, ``os.replace`` it over the
  target; a reader sees the old file or the new one, never half of one.
* Exclusive create: the same, but the temp file is hard-linked to the target, which fails when
  the target exists, so a measured result never replaces another.
* Output checks before anything is measured: a writable directory with room.

Files honour the process umask (``mkstemp`` alone would make them 0600).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from llenergymeasure.exceptions import ConfigError
from llenergymeasure.redaction import redact_json_text

MIN_FREE_BYTES = 16 * 1024 * 1024
"""Room an output directory must have before an experiment starts (results are small)."""

_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
"""What ``mkstemp(prefix=".<name>.", suffix=".tmp")`` leaves when its writer is killed."""


NAME_MAX_CHARS = 150
"""Longest directory name part taken from a user's name (NAME_MAX is 255 bytes), leaving room
for what is added to it (cycle, time stamp, hash)."""


_SAFE = re.compile(r"[A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A name usable as a directory: ASCII letters, digits and ``-._`` kept, the rest ``-``
    (so no ``/``, ``..``, NUL or control character survives); a long name is cut and keeps a
    digest of the whole, so distinct names stay distinct."""
    if len(name) <= NAME_MAX_CHARS and _SAFE.fullmatch(name) and name.strip(".") == name:
        return name  # the common case, checked in one C-level match
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-._" else "-" for c in name)
    safe = safe.strip(".") or "experiment"
    if len(safe) > NAME_MAX_CHARS:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        safe = f"{safe[: NAME_MAX_CHARS - 11]}-{digest}"
    return safe


def default_cache_dir() -> Path:
    """``$LLEM_CACHE_DIR``, else ``$XDG_CACHE_HOME/llenergymeasure``, else ``~/.cache/llenergymeasure``."""
    explicit = os.environ.get("LLEM_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llenergymeasure"


@cache
def _umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: read by setting, then restore at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _temp_beside(path: Path, chunks: Iterable[bytes]) -> Iterator[str]:
    """A fsync'd temp file holding ``chunks`` next to ``path``; removed unless consumed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step, creating parent directories."""
    write_chunks_atomic(path, (data,))


def write_chunks_atomic(path: Path, chunks: Iterable[bytes]) -> None:
    """Replace ``path`` in one step with what ``chunks`` yields, written as it comes (a large
    file is never held whole in memory)."""
    with _temp_beside(path, chunks) as tmp:
        os.replace(tmp, path)


def write_bytes_new(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data`` in one step; ``FileExistsError`` if it exists."""
    with _temp_beside(path, (data,)) as tmp:
        try:
            os.link(tmp, path)
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # a filesystem without hard links: exclusive, if not atomic for readers
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with UTF-8 ``text`` in one step."""
    write_bytes_atomic(path, text.encode("utf-8"))


def json_bytes(data: Any) -> bytes:
    """Indented strict JSON (NaN and infinity are refused), newline-terminated, with any
    secret from the environment redacted (see :mod:`llenergymeasure.redaction`)."""
    text = json.dumps(data, indent=2, allow_nan=False, default=str)
    return (redact_json_text(text) + "\n").encode("utf-8")


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None: JSON (RFC 8259) has no way to write them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON (strict: NaN and infinity are refused)."""
    write_bytes_atomic(path, json_bytes(data))


def is_temp_name(name: str) -> bool:
    """True for the name of a temp file this module writes (``.<target>.<random>.tmp``)."""
    return bool(_TEMP_NAME.match(name))


def remove_stray_temp_files(directory: Path, *, depth: int = 1) -> list[Path]:
    """Delete temp files left by writers that were killed mid-write, in ``directory`` and its
    subdirectories down to ``depth``. Only call it while no writer can be live (under the
    campaign lock)."""
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    with contextlib.suppress(OSError):
        for item in directory.iterdir():
            if item.is_file() and is_temp_name(item.name):
                with contextlib.suppress(OSError):
                    item.unlink()
                    removed.append(item)
            elif depth > 0 and item.is_dir() and not item.is_symlink():
                removed.extend(remove_stray_temp_files(item, depth=depth - 1))
    return removed


def check_output_dir(path: Path, *, what: str = "output directory", create: bool = True) -> None:
    """A ConfigError (exit 2) unless ``path`` is, or can become, a writable directory with at
    least ``MIN_FREE_BYTES`` free. ``create`` makes it (and its parents) to prove it."""
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"the {what} {path} is a file, not a directory",
            fix="give -o a directory (new or existing), not a file",
        )
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(
            f"the {what} {path} cannot be made: {probe} is a file",
            fix="choose a directory whose parents are directories",
        )
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path, prefix=".llem-write-check.", suffix=".tmp")
            os.close(fd)
            os.unlink(tmp)
        elif not os.access(probe, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(probe))
        free = shutil.disk_usage(path if path.exists() else probe).free
    except OSError as err:
        raise ConfigError(
            f"the {what} {path} is not writable: {err.strerror or err}",
            fix="choose a directory you can write to with -o, or fix its permissions",
        ) from None
    if free < MIN_FREE_BYTES:
        raise ConfigError(
            f"the {what} {path} has only {free / 1e6:.1f} MB free",
            fix="free some space, or choose a directory on another disk with -o",
        )
