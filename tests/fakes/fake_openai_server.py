"""A small OpenAI-compatible server for tests: /health, /v1/models and streaming
/v1/completions (SSE chunks of one token each, ``token_ids`` and a final ``usage``, as vLLM
sends them), on 127.0.0.1, standard library only.

In a test thread (``FakeOpenAIServer``) or as a process standing in for ``vllm serve``
(``python fake_openai_server.py --port N [--die-after K]``): ``die_after`` requests in, the
server ends the process mid-stream, as a crashed server would. ``fail_every`` answers every
n-th request with HTTP 500. The fake counts requests and the most it had in flight at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "fake-model"


class _State:
    def __init__(self, token_delay_s: float, die_after: int | None, fail_every: int | None):
        self.token_delay_s = token_delay_s
        self.die_after = die_after
        self.fail_every = fail_every
        self.lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict[str, Any]] = []


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"fake-openai: {format % args}\n")

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(200, {})
            elif self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": MODEL_ID}]})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests += 1
                number = state.requests
                state.bodies.append(body)
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                self._complete(body, number)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _complete(self, body: dict[str, Any], number: int) -> None:
            if state.fail_every and number % state.fail_every == 0:
                self._json(500, {"error": "fake failure"})
                return
            prompt = body["prompt"]
            tokens = int(body.get("max_tokens", 16))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for index in range(tokens):
                if state.die_after is not None and number > state.die_after and index == 1:
                    sys.stderr.write("fake-openai: CUDA error: out of memory (simulated crash)\n")
                    sys.stderr.flush()
                    os._exit(3)
                time.sleep(state.token_delay_s)
                chunk = {"choices": [{"index": 0, "text": f" t{index}", "token_ids": [index]}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            usage = {"prompt_tokens": len(prompt), "completion_tokens": tokens}
            self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


class FakeOpenAIServer:
    """The fake in a thread of the test process: ``with FakeOpenAIServer() as fake: fake.url``."""

    def __init__(
        self,
        *,
        token_delay_s: float = 0.002,
        fail_every: int | None = None,
    ) -> None:
        self.state = _State(token_delay_s, None, fail_every)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--die-after", type=int, default=None)
    parser.add_argument("--token-delay-s", type=float, default=0.002)
    parser.add_argument("--startup-s", type=float, default=0.0)
    options, _rest = parser.parse_known_args()  # vllm serve's flags are ignored
    time.sleep(options.startup_s)
    state = _State(options.token_delay_s, options.die_after, None)
    httpd = ThreadingHTTPServer(("127.0.0.1", options.port), _handler(state))
    httpd.daemon_threads = True
    sys.stderr.write(f"fake-openai: serving on 127.0.0.1:{options.port}\n")
    sys.stderr.flush()
    httpd.serve_forever()


if __name__ == "__main__":
    main()
