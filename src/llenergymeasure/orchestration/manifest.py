"""The campaign manifest, ``DIR/manifest.json``: what was planned, what ran, what is left.

One entry per (experiment, cycle), keyed on the experiment's ``config_hash`` and the cycle. The
file is rewritten atomically (temp file + fsync + rename) after every change, so a crash at any
moment leaves either the previous or the next state on disk, never half of one. Each completed
entry points at its ``result.json``; a result file is the ground truth: an entry still marked
``running`` whose result exists and loads was finished by a process that died before it could
say so, and counts as completed (never run twice).

Pure data and file handling: no torch, nothing measured here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llenergymeasure.exceptions import ConfigError, LLEMError
from llenergymeasure.files import write_json_atomic

MANIFEST_FILE = "manifest.json"
LOG_FILE = "campaign.log"
LOCK_FILE = ".campaign.lock"
PREVIOUS_PREFIX = ".previous-"
MANIFEST_VERSION = "1"

EntryStatus = Literal["pending", "running", "completed", "failed", "interrupted", "skipped"]
ENTRY_STATUSES: tuple[str, ...] = (
    "pending",
    "running",
    "completed",
    "failed",
    "interrupted",
    "skipped",
)
CampaignStatus = Literal[
    "pending", "running", "completed", "completed_with_failures", "stopped", "interrupted"
]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def design_hash(config_hashes: Sequence[str]) -> str:
    """sha256 over the ordered list of the experiments' config hashes."""
    return hashlib.sha256("\n".join(config_hashes).encode()).hexdigest()


class ManifestEntry(BaseModel):
    """One (experiment, cycle)."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    exp_id: str = Field(description="Directory of its result under the campaign directory.")
    name: str
    config_hash: str
    backend: str
    model: str | None = None
    precision: str | None = None
    cycle: int = Field(ge=1)
    status: EntryStatus = "pending"
    result_path: str | None = Field(None, description="result.json, relative to the campaign dir.")
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    reason: str | None = Field(None, description="Why the entry is skipped.")
    attempts: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.config_hash, self.cycle)


class ManifestEvent(BaseModel):
    """Something worth remembering about the campaign's history (start, resume, design change)."""

    model_config = ConfigDict(extra="ignore")

    at: str
    event: str
    detail: str | None = None


class Manifest(BaseModel):
    """The whole campaign's state."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    schema_version: str = MANIFEST_VERSION
    campaign_name: str
    design_hash: str
    created_at: str
    updated_at: str
    status: CampaignStatus = "pending"
    cycles: int
    structure: str
    seed: int
    executor: str
    campaign_file: str | None = None
    entries: list[ManifestEntry] = Field(default_factory=list)
    events: list[ManifestEvent] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Entries per status, every status present (zeros included)."""
        seen: Counter[str] = Counter(entry.status for entry in self.entries)
        return {status: seen.get(status, 0) for status in ENTRY_STATUSES}

    def failures(self) -> list[ManifestEntry]:
        return [e for e in self.entries if e.status in ("failed", "interrupted")]

    def log(self, event: str, detail: str | None = None) -> None:
        self.events.append(ManifestEvent(at=now_iso(), event=event, detail=detail))

    def save(self, directory: Path) -> Path:
        """Stamp ``updated_at`` and rewrite ``directory/manifest.json`` atomically."""
        self.updated_at = now_iso()
        path = directory / MANIFEST_FILE
        write_json_atomic(path, self.model_dump(mode="json"))
        return path


def manifest_path(directory: Path) -> Path:
    return directory / MANIFEST_FILE


def load_manifest(directory: Path) -> Manifest | None:
    """The manifest in ``directory``, None when there is none; unreadable is a ConfigError."""
    path = manifest_path(directory)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest.model_validate(data)
    except (OSError, ValueError, ValidationError) as err:
        detail = err.errors()[0]["msg"] if isinstance(err, ValidationError) else str(err)
        raise ConfigError(
            f"cannot read the campaign manifest: {detail}",
            where=str(path),
            fix="restore it from a backup, or use --fresh to move this run aside and start over",
        ) from None


def result_file(directory: Path, entry: ManifestEntry) -> Path:
    return directory / (entry.result_path or f"{entry.exp_id}/result.json")


def result_is_valid(directory: Path, entry: ManifestEntry) -> bool:
    """True when the entry's result.json exists, loads, and is this entry's config."""
    from llenergymeasure.results.schema import load_result

    path = result_file(directory, entry)
    if not path.is_file():
        return False
    try:
        result = load_result(path)
    except LLEMError:
        return False
    return result.config_hash == entry.config_hash


def move_aside(directory: Path, *, stamp: str | None = None) -> Path | None:
    """Move everything in ``directory`` (earlier ``.previous-*`` folders excepted) into a new
    ``directory/.previous-<UTC time>/``; nothing is deleted. None when there was nothing."""
    if not directory.is_dir():
        return None
    items = [
        p
        for p in directory.iterdir()
        if not p.name.startswith(PREVIOUS_PREFIX) and p.name != LOCK_FILE
    ]
    if not items:
        return None
    stamp = stamp or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = directory / f"{PREVIOUS_PREFIX}{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = directory / f"{PREVIOUS_PREFIX}{stamp}-{n}"
    target.mkdir()
    for item in items:
        os.replace(item, target / item.name)
    return target


@contextlib.contextmanager
def campaign_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory/.campaign.lock`` so two runs never drive one campaign at once.

    An OS lock (flock): released by the kernel when the holder dies, even by ``kill -9``.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, nothing else changes
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    handle: IO[str] = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"another llem campaign is running in {directory} (pid {holder})",
                fix="wait for it to finish, or stop it first; `llem campaign status` shows progress",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def lock_holder(directory: Path) -> int | None:
    """The pid holding ``directory``'s campaign lock, None when no live process holds it."""
    try:
        import fcntl
    except ImportError:
        return None
    path = directory / LOCK_FILE
    if not path.is_file():
        return None
    with path.open("r", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


__all__ = [
    "ENTRY_STATUSES",
    "LOG_FILE",
    "MANIFEST_FILE",
    "Manifest",
    "ManifestEntry",
    "ManifestEvent",
    "campaign_lock",
    "design_hash",
    "load_manifest",
    "lock_holder",
    "manifest_path",
    "move_aside",
    "now_iso",
    "result_file",
    "result_is_valid",
]
