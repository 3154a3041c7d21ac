"""Built-in models: made on this machine on first use, cached, then loaded like any local model.

``resolve_model_source`` is the one place a ``model.name`` becomes something ``from_pretrained``
accepts: a built-in name becomes its (built) cache directory, a local directory stays as it is,
and anything else is passed on as a Hugging Face Hub id.

Building is atomic and safe under concurrency: the model is written into a temporary directory
beside its final place and renamed into place as a whole, so a reader sees either nothing or a
complete model. A lock file serialises builders (where ``fcntl`` exists); without it, the rename
race is still safe: the loser discards its copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.exceptions import ModelLoadError
from llenergymeasure.files import default_cache_dir

BUILTIN_PREFIX = "builtin:"
MARKER_FILE = "llem-builtin.json"
"""Written last into a built model directory; its presence means the build completed."""


@dataclass(frozen=True)
class BuiltinModel:
    """A model this project can make without a network."""

    name: str
    """Full name as written in a config, e.g. ``builtin:tiny-gpt2``."""
    dirname: str
    """Directory under ``default_cache_dir()/models``; carries the build version."""
    description: str
    builder: Callable[[Path], None]
    """Writes the model into an existing empty directory."""


def _build_tiny_gpt2(target: Path) -> None:
    from llenergymeasure.measurement.models.tiny_gpt2 import build

    build(target)


def _tiny_gpt2_dirname() -> str:
    from llenergymeasure.measurement.models.tiny_gpt2 import BUILD_VERSION

    return f"tiny-gpt2-v{BUILD_VERSION}"


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "builtin:tiny-gpt2": BuiltinModel(
        name="builtin:tiny-gpt2",
        dirname=_tiny_gpt2_dirname(),
        description=(
            "GPT-2 architecture, 2 layers, 4 heads, 128 wide, ~0.83M parameters, random seeded "
            "weights, byte-level BPE tokenizer (~2.3k tokens); built offline in well under a "
            "second (plus importing torch)"
        ),
        builder=_build_tiny_gpt2,
    ),
}
"""Built-in name -> how to build it."""


def models_cache_dir() -> Path:
    """Where built-in models are kept: ``default_cache_dir()/models``."""
    return default_cache_dir() / "models"


def builtin_model_dir(name: str) -> Path:
    """The cache directory of a built-in model (built or not)."""
    return models_cache_dir() / _lookup(name).dirname


def is_builtin(name: str) -> bool:
    return name.startswith(BUILTIN_PREFIX)


def _lookup(name: str) -> BuiltinModel:
    try:
        return BUILTIN_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_MODELS))
        raise ModelLoadError(
            f"unknown built-in model '{name}'; the built-in models are: {known}",
            fix=f"use one of {known}, a local model directory, or a Hugging Face Hub id",
        ) from None


def ensure_builtin(name: str) -> Path:
    """Build the built-in model ``name`` unless it is already cached; return its directory."""
    spec = _lookup(name)
    final = models_cache_dir() / spec.dirname
    if (final / MARKER_FILE).is_file():
        return final
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot create the model cache directory {parent}: {exc.strerror or exc}",
            where=name,
            fix="set LLEM_CACHE_DIR to a writable directory",
        ) from exc
    with _build_lock(parent / f".{spec.dirname}.lock"):
        if (final / MARKER_FILE).is_file():  # built by someone else while we waited
            return final
        if final.exists():  # an incomplete leftover (cannot come from our rename): replace it
            shutil.rmtree(final, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.dirname}.tmp-", dir=parent))
        try:
            started = time.perf_counter()
            spec.builder(tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
            files = {p.name: _sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            marker = {
                "name": spec.name,
                "dirname": spec.dirname,
                "build_seconds": round(time.perf_counter() - started, 3),
                "files_sha256": files,
            }
            (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            try:
                os.replace(tmp, final)
            except OSError:
                # Lost a rename race (no lock on this platform): keep the winner's copy.
                if not (final / MARKER_FILE).is_file():
                    raise
        except Exception as exc:
            if isinstance(exc, ModelLoadError):
                raise
            raise ModelLoadError(
                f"could not build the built-in model: {type(exc).__name__}: {exc}",
                where=name,
                fix=f"check that {parent} is writable and that torch, transformers and tokenizers "
                "are installed (pip install 'llenergymeasure[pytorch]')",
            ) from exc
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def resolve_model_source(name: str) -> str:
    """What ``from_pretrained`` should load for ``model.name``.

    ``builtin:*`` -> built (if needed) and its local directory returned; an existing local
    directory -> unchanged; something that is clearly a path but does not exist -> ``ModelLoadError``;
    anything else -> returned unchanged as a Hugging Face Hub id.
    """
    if is_builtin(name):
        return str(ensure_builtin(name))
    path = Path(name).expanduser()
    if path.is_dir():
        return name
    if path.exists():
        raise ModelLoadError(
            f"model '{name}' is a file, not a model directory",
            fix="point model.name at the directory that holds config.json and the weights",
        )
    if _looks_like_path(name):
        raise ModelLoadError(
            f"model directory '{name}' does not exist (resolved to {path.absolute()})",
            fix="check the path (relative paths are resolved from the current directory), "
            "or use a Hugging Face Hub id such as 'gpt2' or a built-in such as builtin:tiny-gpt2",
        )
    return name


def _looks_like_path(name: str) -> bool:
    """True for names that cannot be Hub ids (``org/name`` or ``name``)."""
    return (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
    )


def directory_sha256(path: Path) -> str:
    """One hash over every file in a model directory (names and bytes), marker excluded."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file() and p.name != MARKER_FILE):
        digest.update(file.name.encode())
        digest.update(b"\0")
        digest.update(_sha256_file(file).encode())
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process (and inter-thread) lock; a no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone keeps the cache consistent
        yield
        return
    with path.open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
