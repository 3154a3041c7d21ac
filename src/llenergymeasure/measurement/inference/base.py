"""What every inference backend provides, and the small pure helpers they share.

A backend loads one model for one ``ExperimentConfig`` and runs batches of prompts, returning
one ``RequestRecord`` per prompt with honest token counts and ``time.perf_counter()`` stamps.
The harness owns batching order, warmup and the measured window; a backend only does what it is
asked, as fast as it can, and says how it measured (``ModelInfo.notes``). An engine that
schedules its own batches (``SelfSchedulingBackend``) is handed whole passes instead.

Nothing here imports torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.devices.base import DeviceRef

PeakMemoryMethod = Literal["cuda_max_allocated", "process_peak_rss", "unavailable"]


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded, where, and how long it took."""

    source: str
    """What ``from_pretrained`` loaded: a local directory (built-ins too) or a Hub id."""
    device: str
    """e.g. ``cpu``, ``cuda:0``."""
    dtype: str
    """Weights dtype, e.g. ``bfloat16``."""
    num_parameters: int
    load_time_s: float
    """Wall time of the weight loading and the move to the device."""
    notes: tuple[str, ...] = ()
    """How things were done where it matters for reading the numbers (peak memory method, ...)."""
    devices: tuple[DeviceRef, ...] = ()
    """Every device the model actually runs on (for engines with tensor/pipeline parallelism,
    every worker's); energy sources measure exactly these. Empty: the backend did not say."""
    non_embedding_parameters: int | None = None
    """Parameters outside the input (token and position) embeddings; they cost FLOPs."""
    output_projection_parameters: int | None = None
    """The LM head's weights (a matmul per generated token even when tied to the embedding)."""


@dataclass(frozen=True)
class RequestRecord:
    """One prompt's generation."""

    input_tokens: int
    """Prompt tokens the model saw (special tokens included, padding excluded)."""
    output_tokens: int
    """Generated tokens up to and including the first EOS; padding never counts."""
    start_s: float
    """``time.perf_counter()`` when the request's generate call started."""
    end_s: float
    """``time.perf_counter()`` when it returned (device synchronised)."""
    first_token_s: float | None = None
    """Streaming only: when the first generated token was available."""
    token_times_s: tuple[float, ...] = ()
    """Streaming only: when each generated token was available (``len == output_tokens``)."""

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def ttft_s(self) -> float | None:
        """Time to first token (streaming only)."""
        return None if self.first_token_s is None else self.first_token_s - self.start_s

    @property
    def inter_token_s(self) -> tuple[float, ...]:
        """Gaps between consecutive generated tokens (streaming only)."""
        times = self.token_times_s
        return tuple(b - a for a, b in itertools.pairwise(times))


@runtime_checkable
class InferenceBackend(Protocol):
    """An inference engine behind one small interface. See ``registry.create_backend``."""

    name: str

    def load(self, config: ExperimentConfig) -> ModelInfo:
        """Load the model (the heavy part, timed by the backend)."""
        ...

    def prepare(self, config: ExperimentConfig) -> None:
        """Apply another config's per-call settings (decoding, lengths, batch size) to the loaded
        model; only called when the two configs share ``model_load_key``."""
        ...

    def tokenizer(self) -> Any:
        """The model's tokenizer, for prompt loading; available after ``load``."""
        ...

    def generate(self, prompts: list[str]) -> list[RequestRecord]:
        """Run one batch as given; in streaming mode each prompt runs alone, timed per token."""
        ...

    def peak_memory_bytes(self) -> int | None:
        """Peak memory since the last ``reset_peak_memory`` (see ``peak_memory_method``)."""
        ...

    def reset_peak_memory(self) -> None: ...

    def synchronize(self) -> None:
        """Wait for queued device work, so a timing window closes honestly."""
        ...

    def unload(self) -> None: ...


@runtime_checkable
class SelfSchedulingBackend(InferenceBackend, Protocol):
    """An engine with its own scheduler (continuous batching, e.g. vLLM): the harness hands it a
    whole pass of prompts and, under traffic, when each one arrives; the engine decides what
    runs together. Batch-oriented backends implement only ``generate``."""

    def generate_pass(
        self, prompts: list[str], arrivals_s: list[float] | None = None
    ) -> list[RequestRecord]:
        """Serve every prompt; ``arrivals_s`` holds the ``time.perf_counter()`` time at which each
        request arrives (it is submitted no earlier; ``start_s`` is its submission), None: all
        at once. Records come back in prompt order."""
        ...


def count_output_tokens(
    generated: Iterable[Sequence[int]], eos_token_ids: Iterable[int]
) -> list[int]:
    """Tokens generated per row: up to and including the first EOS, else the whole row.

    ``generated`` holds only the new tokens of each row (the prompt cut off). Rows that stopped
    early are padded after their EOS, so counting to the first EOS never counts padding.
    """
    eos = set(eos_token_ids)
    counts: list[int] = []
    for row in generated:
        count = len(row)
        for index, token in enumerate(row):
            if token in eos:
                count = index + 1
                break
        counts.append(count)
    return counts


def plan_batches(
    lengths: Sequence[int], batch_size: int, strategy: Literal["static", "sorted"] = "static"
) -> list[list[int]]:
    """Prompt indices grouped into batches.

    ``static`` keeps dataset order; ``sorted`` groups prompts of similar length (longest first)
    so batches carry less padding. Every index appears exactly once.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    order = list(range(len(lengths)))
    if strategy == "sorted":
        order.sort(key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
