"""A transformers streamer that only records when each generated token became available.

Imported lazily (it subclasses a transformers class) by the pytorch backend in streaming mode.
"""

from __future__ import annotations

import time
from typing import Any

from transformers.generation.streamers import BaseStreamer


class TimingStreamer(BaseStreamer):
    """Stamps ``time.perf_counter()`` at each ``put`` after the first (the prompt).

    For one prompt at a time: each later ``put`` carries one new token. transformers moves the
    token to the CPU before ``put``, which waits for the device, so the stamps are honest on
    CUDA too.
    """

    def __init__(self) -> None:
        self.token_times_s: list[float] = []
        self._prompt_seen = False
        self.ended = False

    def put(self, value: Any) -> None:
        now = time.perf_counter()
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        # One token per step for one prompt; speculative decoding may put several at once.
        numel = getattr(value, "numel", None)
        tokens = int(numel()) if callable(numel) else 1
        self.token_times_s.extend([now] * max(tokens, 1))

    def end(self) -> None:
        self.ended = True
