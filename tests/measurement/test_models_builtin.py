"""The built-in offline model: deterministic, atomic, loadable like any local model directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from contextlib import nullcontext
from pathlib import Path

import pytest

from llenergymeasure.config.models import ModelConfig
from llenergymeasure.exceptions import ModelLoadError
from llenergymeasure.measurement.models import (
    BUILTIN_MODELS,
    directory_sha256,
    ensure_builtin,
    load_tokenizer,
    resolve_model_source,
)
from llenergymeasure.measurement.models import builtin as builtin_module
from llenergymeasure.measurement.models.builtin import MARKER_FILE

NAME = "builtin:tiny-gpt2"


def _build_in(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(root))
    return ensure_builtin(NAME)


def test_registry_lists_tiny_gpt2() -> None:
    assert NAME in BUILTIN_MODELS
    assert BUILTIN_MODELS[NAME].dirname.startswith("tiny-gpt2-v")


def test_build_is_bit_for_bit_reproducible(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path
) -> None:
    first = _build_in(monkeypatch, tmp_path / "a")
    second = _build_in(monkeypatch, tmp_path / "b")
    assert first != second
    assert directory_sha256(first) == directory_sha256(second) == directory_sha256(tiny_model_dir)
    marker = json.loads((first / MARKER_FILE).read_text())
    assert set(marker["files_sha256"]) >= {"config.json", "model.safetensors", "tokenizer.json"}


def test_two_processes_building_at_once_agree(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Concurrent first use from two processes: one complete model, the same bytes as here."""
    code = (
        "from llenergymeasure.measurement.models import ensure_builtin, directory_sha256\n"
        "path = ensure_builtin('builtin:tiny-gpt2')\n"
        "print(path, directory_sha256(path))\n"
    )
    env = {**os.environ, "LLEM_CACHE_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    lines = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        lines.append(out.strip().splitlines()[-1].split())
    expected = [str(tmp_path / "models" / tiny_model_dir.name), directory_sha256(tiny_model_dir)]
    assert lines == [expected, expected]
    assert [p.name for p in (tmp_path / "models").iterdir() if ".tmp-" in p.name] == []


def test_cached_model_is_reused_not_rebuilt(tiny_model_dir: Path) -> None:
    before = (tiny_model_dir / "model.safetensors").stat().st_mtime_ns
    assert resolve_model_source(NAME) == str(tiny_model_dir)
    assert (tiny_model_dir / "model.safetensors").stat().st_mtime_ns == before


@pytest.mark.parametrize("locked", [True, False], ids=["with-lock", "rename-race-only"])
def test_concurrent_first_use_is_safe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path, locked: bool
) -> None:
    if not locked:  # as on a platform without fcntl: only the atomic rename protects the cache
        monkeypatch.setattr(builtin_module, "_build_lock", lambda path: nullcontext())
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path))
    barrier = threading.Barrier(3)
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(ensure_builtin(NAME))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    built = results[0]
    assert directory_sha256(built) == directory_sha256(tiny_model_dir)
    leftovers = [p.name for p in built.parent.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_incomplete_leftover_is_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path))
    broken = tmp_path / "models" / BUILTIN_MODELS[NAME].dirname
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{truncated")
    built = ensure_builtin(NAME)
    assert (built / MARKER_FILE).is_file()
    assert json.loads((built / "config.json").read_text())["model_type"] == "gpt2"


def test_loads_through_from_pretrained(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert model.config.model_type == "gpt2"
    assert (model.config.n_layer, model.config.n_head, model.config.n_embd) == (2, 4, 128)
    assert model.config.vocab_size == len(tokenizer)
    assert 2000 <= len(tokenizer) <= 4096
    assert tokenizer.eos_token is not None and tokenizer.pad_token is not None
    assert tokenizer.padding_side == "left"


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "def mean(values):\n    return sum(values) / len(values)\n",
        "Unseen words: zygomorphic quixotry, café naïve, 日本語, emoji 🔋⚡.",
    ],
)
def test_tokenizer_round_trips_text(tiny_model_dir: Path, text: str) -> None:
    tokenizer = load_tokenizer(ModelConfig(name=NAME), str(tiny_model_dir))
    ids = tokenizer(text)["input_ids"]
    assert len(ids) < len(text.encode())  # real merges, not one token per byte
    assert tokenizer.decode(ids) == text


def test_batched_tokenization_pads_on_the_left(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(ModelConfig(name=NAME), str(tiny_model_dir))
    batch = tokenizer(["short", "a much longer prompt than the other"], padding=True)
    assert batch["attention_mask"][0][0] == 0 and batch["attention_mask"][0][-1] == 1
    assert batch["input_ids"][0][0] == tokenizer.pad_token_id


def test_resolve_local_dir_and_hub_id_unchanged(tiny_model_dir: Path) -> None:
    assert resolve_model_source(str(tiny_model_dir)) == str(tiny_model_dir)
    assert resolve_model_source("openai-community/gpt2") == "openai-community/gpt2"
    assert resolve_model_source("gpt2") == "gpt2"


def test_unknown_builtin_lists_the_builtins() -> None:
    with pytest.raises(ModelLoadError) as info:
        resolve_model_source("builtin:foo")
    assert "builtin:foo" in str(info.value)
    assert NAME in str(info.value)


@pytest.mark.parametrize("name", ["./no/such/model", "/definitely/not/here", "~/nope-llem-model"])
def test_missing_local_path(name: str) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_source(name)


def test_file_instead_of_directory(tmp_path: Path) -> None:
    file = tmp_path / "weights.bin"
    file.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        resolve_model_source(str(file))


def test_uncached_hub_id_without_network() -> None:
    model = ModelConfig(name="llem-test-org/not-a-cached-model")
    with pytest.raises(ModelLoadError) as info:
        load_tokenizer(model, resolve_model_source(model.name))
    message = str(info.value)
    assert "'llem-test-org/not-a-cached-model' is not a local directory" in message
    assert "could not be fetched from the Hugging Face Hub" in message
    assert "fix:" in message


def test_directory_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="not a loadable model directory"):
        load_tokenizer(ModelConfig(name=str(tmp_path)), resolve_model_source(str(tmp_path)))


def test_an_unresolvable_hub_means_the_local_cache_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No DNS for the Hub: from_pretrained is told to use the cache, instead of retrying for a minute."""
    import socket

    from llenergymeasure.measurement.models import loading

    def no_dns(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    loading._hub_resolves.cache_clear()
    try:
        assert loading.hub_access("org/some-model") == {"local_files_only": True}
        assert loading.hub_access(str(tmp_path)) == {}  # a local directory needs no Hub
    finally:
        loading._hub_resolves.cache_clear()
