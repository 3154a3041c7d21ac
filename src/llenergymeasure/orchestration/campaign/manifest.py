"""The campaign manifest, ``DIR/manifest.json``: what was planned, what ran, what is left.

One entry per (experiment, cycle), keyed on the experiment's ``config_hash`` and the cycle. Each
change is one fsync'd line appended to ``manifest.journal`` (see ``journal.py``); the snapshot,
``manifest.json``, is rewritten atomically (temp file + fsync + rename) only now and then, so a
crash at any moment leaves a state that is whole, and an update costs the same at 100 entries as
at 100,000.

The result files are the truth; the manifest is an index of them. A result's path is always
derived from the campaign directory and the entry's ``exp_id`` (one safe path component), never
taken from the file as written; an entry still marked ``running`` whose result exists and loads
was finished by a process that died before it could say so, and counts as completed (never run
twice). A manifest that cannot be read is :class:`ManifestDamaged`: ``--resume`` keeps it aside
and rebuilds the index from the result files.

Pure data and file handling: no torch, nothing measured here.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Annotated, Any, Literal, NamedTuple, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.dataclasses import dataclass

from llenergymeasure.exceptions import ConfigError, LLEMError
from llenergymeasure.files import is_temp_name, write_chunks_atomic
from llenergymeasure.orchestration.campaign import journal

MANIFEST_FILE = "manifest.json"
LOG_FILE = "campaign.log"
LOCK_FILE = ".campaign.lock"
PREVIOUS_PREFIX = ".previous-"
MANIFEST_VERSION = "1"
COMPACT_AFTER = 200
READ_ATTEMPTS = 5
"""Journal lines before a snapshot, at least (more for a larger manifest: as many as entries)."""
DAMAGED_SUFFIX = ".damaged-"

OWNED_FILES = (
    MANIFEST_FILE,
    f"{MANIFEST_FILE}{DAMAGED_SUFFIX}*",
    journal.JOURNAL_FILE,
    f"{journal.JOURNAL_FILE}{DAMAGED_SUFFIX}*",
    LOG_FILE,
    LOCK_FILE,
)
OWNED_TABLES = ("summary.*", "experiments.*", "report.html")
"""What a campaign writes at its top level besides the experiments' result directories."""
OWNED_DIRS = ("report_figures",)
"""Folders it writes there: ``llem report``'s SVG/PNG figures (beside report.html)."""

EXP_ID_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"
"""An experiment directory: one path component, no traversal, within NAME_MAX."""
_CYCLE_SUFFIX = re.compile(r"_c([0-9]+)$")

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


def design_hash(config_hashes: Iterable[str]) -> str:
    """sha256 over the ordered list of the experiments' config hashes, joined by newlines
    (fed one at a time: a million hashes never sit in memory together)."""
    hasher = hashlib.sha256()
    for index, digest in enumerate(config_hashes):
        hasher.update((f"\n{digest}" if index else digest).encode())
    return hasher.hexdigest()


@dataclass(slots=True, kw_only=True, config=ConfigDict(extra="ignore", validate_assignment=True))
class ManifestEntry:
    """One (experiment, cycle).

    A slotted pydantic dataclass, not a BaseModel: a campaign holds one per (experiment, cycle),
    and a 300,000-entry manifest took 460 MiB as models against 114 MiB as slots.
    """

    exp_id: Annotated[str, Field(pattern=EXP_ID_PATTERN)]
    """Directory of its result under the campaign directory (one path component)."""
    name: str
    config_hash: str
    backend: str
    model: str | None = None
    precision: str | None = None
    cycle: Annotated[int, Field(ge=1)]
    status: EntryStatus = "pending"
    result_path: str | None = None
    """For readers: <exp_id>/result.json. Never used to locate the file."""
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    reason: str | None = None
    """Why the entry is skipped."""
    why: str | None = None
    """Why it was added: an adaptive extra cycle and the interval that asked."""
    attempts: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.config_hash, self.cycle)


_ENTRY = TypeAdapter(ManifestEntry)
_ENTRIES = TypeAdapter(list[ManifestEntry])
SNAPSHOT_CHUNK = 2000
"""Entries serialised at a time when a snapshot is written."""


def _entry_json(entry: ManifestEntry) -> dict[str, Any]:
    """The entry as the JSON the journal and snapshot hold."""
    return cast(dict[str, Any], _ENTRY.dump_python(entry, mode="json"))


class ManifestEvent(BaseModel):
    """Something worth remembering about the campaign's history (start, resume, design change)."""

    model_config = ConfigDict(extra="ignore")

    at: str
    event: str
    detail: str | None = None


_NOT_IN_HEAD = {"entries", "events", "filtered", "execution"}
"""Left out of each journal line's head: set when the snapshot is written, never changed."""


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
    campaign_file: str | None = Field(
        None, description="The campaign YAML's absolute path (older manifests: as typed)."
    )
    filtered: list[tuple[str, str]] | None = Field(
        None,
        description="(config, reason) of grid points filtered before anything ran, so report "
        "and export never re-plan the grid; None in manifests written before it was recorded.",
    )
    execution: dict[str, Any] | None = Field(
        None,
        description="The campaign's execution settings (cycles, adaptive targets) as run, for "
        "the adaptive columns; None in older manifests.",
    )
    ci_method: str | None = Field(None, description="statistics.ci_method as run.")
    entries: list[ManifestEntry] = Field(default_factory=list)
    events: list[ManifestEvent] = Field(default_factory=list)
    journal_seq: int = Field(0, description="The last manifest.journal line folded in.")

    _journal_lines: int | None = PrivateAttr(None)
    """Lines this process appended since its snapshot (None: it has written none yet)."""
    _events_saved: int = PrivateAttr(0)

    @field_validator("execution")
    @classmethod
    def _execution_reads_back(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Settings that no longer validate make the manifest damaged here, once, with their
        key, rather than a traceback in whichever command reads them."""
        if value is not None:
            try:
                _execution_model().model_validate(value)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(part) for part in first["loc"]) or "top level"
                raise ValueError(f"{where}: {first['msg']}") from None
        return value

    def execution_config(self) -> Any:
        """The recorded execution settings as an ExecutionConfig (None in older manifests)."""
        return None if self.execution is None else _execution_model().model_validate(self.execution)

    def counts(self) -> dict[str, int]:
        """Entries per status, every status present (zeros included)."""
        seen: Counter[str] = Counter(entry.status for entry in self.entries)
        return {status: seen.get(status, 0) for status in ENTRY_STATUSES}

    def failures(self) -> list[ManifestEntry]:
        return [e for e in self.entries if e.status in ("failed", "interrupted")]

    def log(self, event: str, detail: str | None = None) -> None:
        self.events.append(ManifestEvent(at=now_iso(), event=event, detail=detail))

    def save(self, directory: Path, changed: Sequence[ManifestEntry] = ()) -> Path:
        """Stamp ``updated_at`` and make the state durable: one journal line naming the
        ``changed`` entries (new ones included), or, without them, on this process's first save
        and once the journal is as long as the manifest, a fresh snapshot."""
        self.updated_at = now_iso()
        lines = self._journal_lines
        if changed and lines is not None and lines < max(COMPACT_AFTER, len(self.entries)):
            self.journal_seq += 1
            journal.append(
                directory,
                {
                    "seq": self.journal_seq,
                    "head": self.model_dump(mode="json", exclude=_NOT_IN_HEAD),
                    "entries": [_entry_json(e) for e in changed],
                    "events": [
                        e.model_dump(mode="json") for e in self.events[self._events_saved :]
                    ],
                },
            )
            self._journal_lines, self._events_saved = lines + 1, len(self.events)
            return journal.journal_path(directory)
        path = directory / MANIFEST_FILE
        write_chunks_atomic(path, self._snapshot_chunks())
        journal.reset(directory)  # a crash before this: its lines are <= journal_seq, skipped
        self._journal_lines, self._events_saved = 0, len(self.events)
        return path

    def _snapshot_chunks(self) -> Iterator[bytes]:
        """The snapshot as compact JSON, serialised in pydantic's core (the indented
        pure-Python encoder took 68 s of a 100,000-entry snapshot) and streamed
        ``SNAPSHOT_CHUNK`` entries at a time, so a large manifest is never a second time in
        memory as one string."""
        head = self.model_dump_json(exclude={"entries"})
        yield f'{head[:-1]},"entries":['.encode()
        for start in range(0, len(self.entries), SNAPSHOT_CHUNK):
            chunk = _ENTRIES.dump_json(self.entries[start : start + SNAPSHOT_CHUNK])
            yield (b"," if start else b"") + chunk[1:-1]
        yield b"]}"


def _execution_model() -> Any:
    """ExecutionConfig, imported when a manifest with settings is read (not to plan)."""
    from llenergymeasure.config.campaign_config import ExecutionConfig

    return ExecutionConfig


def manifest_path(directory: Path) -> Path:
    return directory / MANIFEST_FILE


class ManifestDamaged(ConfigError):
    """``manifest.json`` exists but cannot be read; the result files may all be intact."""


def load_manifest(directory: Path) -> Manifest | None:
    """The manifest in ``directory``, None when there is none.

    Unreadable or inconsistent: :class:`ManifestDamaged`. Written by another schema version: a
    plain ConfigError (rebuilding it could lose what a newer llem recorded).
    """
    path = manifest_path(directory)
    if not path.is_file():
        return None
    for attempt in range(READ_ATTEMPTS):  # a snapshot written between our two reads: again
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:
            raise _damaged(path, f"{type(err).__name__}: {err}") from None
        if not isinstance(data, dict):
            break
        try:
            data = journal.fold(data, journal.parse(journal.read_bytes(directory)))
            break
        except journal.JournalDamaged as err:
            if attempt == READ_ATTEMPTS - 1:
                raise _damaged(journal.journal_path(directory), str(err)) from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(data, dict) and version != MANIFEST_VERSION:
        raise ConfigError(
            f"the campaign manifest has schema version {version!r}; this llem reads version "
            f"{MANIFEST_VERSION!r}",
            where=str(path),
            fix="use the llem version that wrote it, or give another directory with -o",
        )
    try:
        manifest = Manifest.model_validate(data)
    except (ValidationError, RecursionError) as err:
        if isinstance(err, ValidationError):
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "top level"
            detail = f"{where}: {first['msg']}"
        else:
            detail = "nested too deeply"
        raise _damaged(path, detail) from None
    seen: set[str] = set()
    for entry in manifest.entries:
        if entry.exp_id in seen:
            raise _damaged(path, f"exp_id {entry.exp_id!r} appears twice")
        seen.add(entry.exp_id)
    return manifest


def _damaged(path: Path, detail: str) -> ManifestDamaged:
    return ManifestDamaged(
        f"cannot read the campaign manifest: {detail}",
        where=str(path),
        fix="`llem campaign run FILE -o DIR --resume` rebuilds it from the result files (the "
        "damaged file is kept aside); `llem results export DIR` still reads the results",
    )


def manifest_fingerprint(directory: Path) -> str | None:
    """sha256 of ``manifest.json`` and its journal as they are on disk now (None: no manifest)."""
    try:
        snapshot = manifest_path(directory).read_bytes()
        return hashlib.sha256(snapshot + b"\0" + journal.read_bytes(directory)).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"unreadable: {err.errno}"


def keep_damaged_aside(directory: Path) -> Path | None:
    """Rename a damaged ``manifest.json`` to ``manifest.json.damaged-<time>`` (and its journal
    likewise); never deleted."""
    path = manifest_path(directory)
    if not path.exists():
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{MANIFEST_FILE}{DAMAGED_SUFFIX}{stamp}")
    os.replace(path, target)
    lines = journal.journal_path(directory)
    if lines.is_file() and lines.stat().st_size:
        os.replace(lines, lines.with_name(f"{lines.name}{DAMAGED_SUFFIX}{stamp}"))
    return target


def result_file(directory: Path, entry: ManifestEntry) -> Path:
    """``directory/<exp_id>/result.json``: derived, never read from the manifest."""
    if not re.match(EXP_ID_PATTERN, entry.exp_id):  # validated on load; belt and braces
        raise ConfigError(f"unsafe experiment id {entry.exp_id!r}", where=str(directory))
    return directory / entry.exp_id / "result.json"


def checked_result(directory: Path, entry: ManifestEntry) -> tuple[Any, str | None]:
    """(the entry's result, None), or (None, what is wrong with its file: missing, unreadable
    or another config's): a result file is checked, never trusted."""
    from llenergymeasure.results.schema import load_result

    path = result_file(directory, entry)
    shown = f"{entry.exp_id}/{path.name}"
    if not path.is_file():
        return None, f"{shown} is missing"
    try:
        result = load_result(path)
    except LLEMError as err:
        return None, f"{shown} cannot be read ({err.what})"
    if result.config_hash != entry.config_hash:
        return None, f"{shown} holds another config's result"
    return result, None


def result_is_valid(directory: Path, entry: ManifestEntry) -> bool:
    """True when the entry's result.json exists, loads, and is this entry's config."""
    return checked_result(directory, entry)[1] is None


def unrecorded_results(directory: Path, manifest: Manifest) -> list[ManifestEntry]:
    """Entries the manifest does not call completed (nor skipped) whose valid result is on
    disk: lines the journal lost (a file cut short). The result files are the truth for what
    was measured; ``--resume`` adopts them, never measuring them again."""
    return [
        entry
        for entry in manifest.entries
        if entry.status not in ("completed", "skipped") and result_is_valid(directory, entry)
    ]


def cycle_of(exp_id: str) -> int | None:
    """The cycle an experiment directory's name says (``<name>_c<cycle>``)."""
    match = _CYCLE_SUFFIX.search(exp_id)
    return int(match.group(1)) if match else None


class ResultOnDisk(NamedTuple):
    """A valid result found in a campaign directory (see :func:`results_on_disk`)."""

    exp_id: str
    name: str
    backend: str


def results_on_disk(directory: Path) -> dict[tuple[str, int], ResultOnDisk]:
    """(config hash, cycle) -> the valid result directly under ``directory`` for it.

    A result counts when it loads, its ``experiment_id`` is its directory's name and that name
    ends in ``_c<cycle>``: what the runner writes, so an index can be rebuilt from it.
    """
    from llenergymeasure.results.schema import RESULT_FILE, load_result

    found: dict[tuple[str, int], ResultOnDisk] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob(f"*/{RESULT_FILE}")):
        exp_id = path.parent.name
        cycle = cycle_of(exp_id)
        if cycle is None or not re.match(EXP_ID_PATTERN, exp_id):
            continue
        try:
            result = load_result(path)
        except LLEMError:
            continue
        if result.experiment_id == exp_id:
            backend = str(result.config.get("backend", ""))
            found.setdefault(
                (result.config_hash, cycle), ResultOnDisk(exp_id, result.name, backend)
            )
    return found


def _owned(item: Path, known_ids: set[str]) -> bool:
    name = item.name
    if item.is_dir() and not item.is_symlink():
        return name in known_ids or name in OWNED_DIRS or (item / "result.json").is_file()
    patterns = OWNED_FILES + OWNED_TABLES
    return is_temp_name(name) or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def directory_contents(
    directory: Path, manifest: Manifest | None = None
) -> tuple[list[Path], list[Path]]:
    """(what a campaign owns, everything else) in ``directory``; ``.previous-*`` is neither."""
    if not directory.is_dir():
        return [], []
    known = {e.exp_id for e in manifest.entries} if manifest is not None else set()
    owned: list[Path] = []
    foreign: list[Path] = []
    for item in sorted(directory.iterdir()):
        if item.name.startswith(PREVIOUS_PREFIX):
            continue
        (owned if _owned(item, known) else foreign).append(item)
    return owned, foreign


def move_aside(directory: Path, items: Sequence[Path], *, stamp: str | None = None) -> Path | None:
    """Move ``items`` (what the campaign owns) into a new ``directory/.previous-<UTC time>/``;
    nothing is deleted, nothing else is touched. None when there was nothing to move."""
    items = [p for p in items if p.name != LOCK_FILE and p.exists()]
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
    "ManifestDamaged",
    "ManifestEntry",
    "ManifestEvent",
    "ResultOnDisk",
    "campaign_lock",
    "checked_result",
    "cycle_of",
    "design_hash",
    "directory_contents",
    "keep_damaged_aside",
    "load_manifest",
    "lock_holder",
    "manifest_fingerprint",
    "manifest_path",
    "move_aside",
    "now_iso",
    "result_file",
    "result_is_valid",
    "results_on_disk",
]
