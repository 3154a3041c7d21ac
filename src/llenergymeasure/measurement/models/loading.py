"""Loading any model source through ``from_pretrained``, with Hub/IO errors translated once.

Every source (a built-in model's cache directory, a local directory, a Hub id) goes through the
same calls; the only special case is how ``resolve_model_source`` finds the directory of a
built-in. Errors from transformers / huggingface_hub become ``ModelLoadError`` here and nowhere
else. transformers is imported inside the functions only.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from llenergymeasure.config.models import ModelConfig
from llenergymeasure.exceptions import ModelLoadError, UnavailableError
from llenergymeasure.log import logger
from llenergymeasure.measurement.models.custom_code import refuse_custom_code

INSTALL_PYTORCH = "pip install 'llenergymeasure[pytorch]'"


def import_transformers() -> Any:
    """``import transformers``, or ``UnavailableError`` naming the extra to install."""
    try:
        import transformers
    except ImportError as exc:
        raise UnavailableError(
            f"the pytorch backend needs torch and transformers, which are not installed ({exc})",
            fix=INSTALL_PYTORCH,
        ) from exc
    # llem owns the terminal: no weight-loading progress bars or advice meant for other setups
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_tokenizer(model: ModelConfig, source: str, notes: list[str] | None = None) -> Any:
    """``AutoTokenizer.from_pretrained(source)``, set up for batched decoder-only generation;
    a local directory with code is refused first unless trusted (see :mod:`custom_code`).

    Padding goes on the left (decoder-only models continue from the right edge); a tokenizer
    without a pad token pads with its EOS token (or UNK when it has no EOS either). What was
    changed is appended to ``notes`` when given.
    """
    refuse_custom_code(model, source)  # the first load of every backend: nothing runs before it
    transformers = import_transformers()
    with translate_load_errors(model, source, part="tokenizer"):
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            source,
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            **hub_access(source),
        )
    changed = prepare_tokenizer(tokenizer)
    if notes is not None:
        notes.extend(changed)
    return tokenizer


def prepare_tokenizer(tokenizer: Any) -> list[str]:
    """Left padding and a pad token; returns notes on what was changed."""
    notes: list[str] = []
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
            notes.append("tokenizer has no pad token: padding with the EOS token")
        elif tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
            notes.append("tokenizer has no pad or EOS token: padding with the UNK token")
        else:
            notes.append("tokenizer has no pad, EOS or UNK token: batches of one prompt only")
    return notes


@contextlib.contextmanager
def translate_load_errors(
    model: ModelConfig, source: str, *, part: str = "model"
) -> Iterator[None]:
    """Turn the OSError/ValueError of ``from_pretrained`` into one ``ModelLoadError``."""
    try:
        yield
    except (OSError, ValueError) as exc:
        raise _translate(exc, model, source, part) from exc


def _translate(exc: BaseException, model: ModelConfig, source: str, part: str) -> ModelLoadError:
    name = model.name
    shown = name if source == name else f"{name} ({source})"
    detail = _first_line(exc)
    chain = _exception_chain(exc)
    kinds = {cls.__name__ for e in chain for cls in type(e).__mro__}
    local = Path(source).expanduser().is_dir()

    if "trust_remote_code" in detail or any("trust_remote_code" in _first_line(e) for e in chain):
        return ModelLoadError(
            f"model '{shown}' needs to run code from its repository to load its {part}",
            fix="set model.trust_remote_code: true if you trust that repository",
        )
    if "attention implementation" in detail.lower() or "attn_implementation" in detail:
        return ModelLoadError(
            f"model '{shown}' cannot use the requested attention implementation: {detail}",
            fix="set pytorch.attn_implementation to sdpa or eager",
        )
    if local:
        return ModelLoadError(
            f"'{source}' is not a loadable model directory ({part}): {detail}",
            where=name,
            fix="point model.name at a directory saved with save_pretrained (config.json, "
            "tokenizer files and weights)",
        )
    if "GatedRepoError" in kinds:
        return ModelLoadError(
            f"model '{name}' is gated on the Hugging Face Hub and this machine has no access",
            fix="accept the model's licence on its Hub page, then `hf auth login` "
            "(or set HF_TOKEN)",
        )
    if "RevisionNotFoundError" in kinds:
        return ModelLoadError(
            f"revision '{model.revision}' of model '{name}' does not exist on the Hugging Face Hub",
            fix="set model.revision to an existing branch, tag or commit, or remove it",
        )
    if "RepositoryNotFoundError" in kinds:
        return ModelLoadError(
            f"model '{name}' is not a local directory and does not exist on the Hugging Face Hub "
            "(or it is private)",
            fix="check the spelling of model.name (Hub ids look like 'org/name'), log in with "
            "`hf auth login` for a private model, or use a local directory or builtin:tiny-gpt2",
        )
    if "EntryNotFoundError" in kinds and "LocalEntryNotFoundError" not in kinds:
        return ModelLoadError(
            f"model '{name}' on the Hugging Face Hub lacks the files of its {part}: {detail}",
            fix="check that the repository holds a transformers model (config.json, weights, "
            "tokenizer files)",
        )
    offline = _hub_offline()
    why = "offline mode is on (HF_HUB_OFFLINE)" if offline else "no network"
    if not offline and not _hub_resolves():
        why = "no network: the Hub's host name does not resolve"
    return ModelLoadError(
        f"model '{name}' is not a local directory and could not be fetched from the Hugging "
        f"Face Hub ({why} and not in the local cache)",
        fix="download it once on a machine with network access (e.g. `hf download "
        f"{name}`) and copy the Hugging Face cache here (HF_HOME), point model.name at a local "
        "directory, or use builtin:tiny-gpt2; without a network, set HF_HUB_OFFLINE=1 to "
        "skip the retries",
    )


def hub_access(source: str) -> dict[str, Any]:
    """Extra ``from_pretrained`` kwargs: the local cache only when the Hub cannot be reached.

    Without this, a machine with no network spends a minute in huggingface_hub's retries
    before the same "not in the local cache" error.
    """
    if Path(source).is_dir() or _hub_offline() or _hub_resolves():
        return {}
    return {"local_files_only": True}


@cache
def _hub_resolves() -> bool:
    """Whether the Hub's host name resolves (a failed DNS lookup answers at once)."""
    from urllib.parse import urlparse

    try:
        from huggingface_hub import constants
    except ImportError:
        return True  # let from_pretrained say what is wrong
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        logger.info("the Hugging Face Hub ({}) cannot be resolved: local cache only", host)
        return False
    return True


def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _exception_chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
