"""A streaming client of an OpenAI-compatible ``/v1/completions`` endpoint, and the load it
drives: each request sent at its arrival time, at most ``max_concurrency`` in flight.

Standard library only (``http.client`` in threads): one thread per request in flight, which is
what a few hundred concurrent requests need and no more. Per request it records when it was
sent, when each streamed chunk arrived (the tokens it carried: ``token_ids`` when the server
returns them, else one per chunk with text) and the server's ``usage`` token counts. A request
that fails is recorded with its error, never dropped.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from llenergymeasure.measurement.inference.base import RequestRecord

MAX_THREADS = 1024
"""Requests in flight at most when ``max_concurrency`` is unset (one thread each)."""


@dataclass(frozen=True)
class ServedRecord(RequestRecord):
    """A request served over HTTP: the timings of ``RequestRecord`` and what can go wrong."""

    error: str | None = None
    """Why the request failed (HTTP status, connection, timeout); None: it completed."""
    requested_output_tokens: int | None = None
    """``max_tokens`` it asked for (the dataset's output length, capped by max_output_tokens)."""
    token_counts: str = "usage"
    """Where ``input_tokens``/``output_tokens`` came from: the server's ``usage``, or ``chunks``
    (counted from the stream when the server sent no usage)."""


@dataclass(frozen=True)
class Request:
    """One completion request: the prompt's token ids and the sampling fields to send."""

    prompt_token_ids: list[int]
    body: dict[str, Any]
    """Everything else of the request body (max_tokens, temperature, ...)."""


def stream_completion(url: str, model: str, request: Request, timeout_s: float) -> ServedRecord:
    """Send one streaming completion and time it (``perf_counter`` stamps)."""
    body = {
        **request.body,
        "model": model,
        "prompt": request.prompt_token_ids,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_token_ids": True,
    }
    wanted = request.body.get("max_tokens")
    parts = urlsplit(url)
    connection_cls = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    times: list[float] = []
    usage: dict[str, Any] | None = None
    start_s = time.perf_counter()
    connection = connection_cls(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        connection.request(
            "POST",
            "/v1/completions",
            body=json.dumps(body),
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        reply = connection.getresponse()
        if reply.status != 200:
            detail = reply.read(500).decode("utf-8", errors="replace").strip()
            return _failed(request, start_s, wanted, f"HTTP {reply.status}: {detail}")
        for raw in reply:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            now = time.perf_counter()
            chunk = json.loads(data)
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                ids = choice.get("token_ids")
                count = len(ids) if isinstance(ids, list) else int(bool(choice.get("text")))
                times.extend([now] * count)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return _failed(request, start_s, wanted, f"{type(exc).__name__}: {exc}", times)
    finally:
        connection.close()
    end_s = time.perf_counter()
    counts = "usage" if usage is not None else "chunks"
    usage = usage or {}
    return ServedRecord(
        input_tokens=int(usage.get("prompt_tokens", len(request.prompt_token_ids))),
        output_tokens=int(usage.get("completion_tokens", len(times))),
        start_s=start_s,
        end_s=end_s,
        first_token_s=times[0] if times else None,
        token_times_s=tuple(times),
        requested_output_tokens=wanted,
        token_counts=counts,
    )


def _failed(
    request: Request,
    start_s: float,
    wanted: int | None,
    error: str,
    times: Sequence[float] = (),
) -> ServedRecord:
    return ServedRecord(
        input_tokens=len(request.prompt_token_ids),
        output_tokens=len(times),
        start_s=start_s,
        end_s=time.perf_counter(),
        first_token_s=times[0] if times else None,
        token_times_s=tuple(times),
        error=error,
        requested_output_tokens=wanted,
        token_counts="chunks",
    )


def drive(
    send: Callable[[Request], ServedRecord],
    requests: Sequence[Request],
    arrivals_s: Sequence[float] | None,
    max_concurrency: int | None,
    *,
    stop: threading.Event | None = None,
    on_failure: Callable[[ServedRecord], None] | None = None,
) -> list[ServedRecord]:
    """Send each request no earlier than its arrival (``perf_counter`` time; None: all now),
    with at most ``max_concurrency`` in flight; records in request order.

    A request whose arrival comes after ``stop`` is set is not sent (recorded as not sent);
    ``on_failure`` sees each failed record as it happens (and may set ``stop``).
    """
    count = len(requests)
    if count == 0:
        return []
    order = sorted(range(count), key=lambda i: arrivals_s[i]) if arrivals_s else list(range(count))
    workers = min(count, max_concurrency or MAX_THREADS)
    records: list[ServedRecord | None] = [None] * count
    slots = threading.Semaphore(workers)
    stopped = stop or threading.Event()

    def run(index: int) -> None:
        try:
            record = _not_sent(requests[index]) if stopped.is_set() else send(requests[index])
            records[index] = record
            if record.error is not None and on_failure is not None:
                on_failure(record)
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llem-client") as pool:
        for index in order:  # arrival order: a request waits for its time, then for a slot
            if arrivals_s is not None:
                wait = arrivals_s[index] - time.perf_counter()
                if wait > 0 and not stopped.is_set():
                    stopped.wait(wait)
            slots.acquire()
            pool.submit(run, index)
    return [r if r is not None else _not_sent(requests[i]) for i, r in enumerate(records)]


def _not_sent(request: Request) -> ServedRecord:
    now = time.perf_counter()
    return ServedRecord(
        input_tokens=len(request.prompt_token_ids),
        output_tokens=0,
        start_s=now,
        end_s=now,
        error="not sent: the run was stopped",
        requested_output_tokens=request.body.get("max_tokens"),
        token_counts="chunks",
    )
