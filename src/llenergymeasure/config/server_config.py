"""The ``server:`` section: measure a model served over an OpenAI-compatible HTTP API.

With the section present, llem starts ``vllm serve`` on 127.0.0.1 with the experiment's
``vllm:`` settings (or, with ``url``, drives a server already running on this machine), sends
the experiment's ``traffic`` to it as streaming requests, and measures the devices it runs on.
Pure data: nothing here starts a process or opens a socket.
"""

# No `from __future__ import annotations`: pydantic compiles field annotations from strings.
from pydantic import Field, field_validator

from llenergymeasure.config._base import StrictModel, factory, meta
from llenergymeasure.config.text import PlainText

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServingSLO(StrictModel):
    """The service level a request must meet to count towards goodput (unset: not checked)."""

    ttft_ms: float | None = Field(
        None,
        gt=0,
        description="Most milliseconds from a request's arrival to its first token.",
        json_schema_extra=meta(short="slottft"),
    )
    tpot_ms: float | None = Field(
        None,
        gt=0,
        description="Most milliseconds per output token after the first.",
        json_schema_extra=meta(short="slotpot"),
    )


class ServerConfig(StrictModel):
    """Serve the model over HTTP and measure it under the experiment's ``traffic``."""

    url: PlainText | None = Field(
        None,
        description="A server already running on this machine (http://127.0.0.1:PORT); llem "
        "then starts none. None: llem starts vllm serve on 127.0.0.1 and stops it afterwards.",
        json_schema_extra=meta(short="url"),
    )
    max_concurrency: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Most requests in flight at once; a request that arrives when this many "
        "are in flight waits for one to finish (None: no limit). With traffic.mode none, "
        "every request arrives at once: a fixed-concurrency load.",
        json_schema_extra=meta(short="conc"),
    )
    slo: ServingSLO = Field(default_factory=factory(ServingSLO))
    ready_timeout_s: float = Field(
        600.0,
        gt=0,
        le=86400,
        description="Most seconds to wait for the server to answer /health after its start.",
    )
    request_timeout_s: float = Field(
        600.0,
        gt=0,
        le=86400,
        description="Most seconds a request waits for the server's next bytes (the connection, "
        "the first token, each chunk); past it the request fails with a timeout.",
    )

    @field_validator("url")
    @classmethod
    def _local_url(cls, value: str | None) -> str | None:
        """Only a server on this machine: its energy is measured on this machine's devices."""
        if value is None:
            return None
        from urllib.parse import urlsplit  # only for a config that names a server

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"'{value}' is not an http(s) URL with a host; fix: write it like "
                "http://127.0.0.1:8000"
            )
        try:
            _ = parts.port  # urlsplit checks the port only when it is read
        except ValueError:
            raise ValueError(
                f"'{value}' has no valid port (1-65535); fix: write it like http://127.0.0.1:8000"
            ) from None
        if not is_loopback_host(parts.hostname):
            raise ValueError(
                f"'{parts.hostname}' is not a loopback address: llem measures the devices of "
                "this machine, so the server must run here; fix: use http://127.0.0.1:PORT "
                "(run llem on the server's machine), or drop server.url to let llem start one"
            )
        if parts.path.rstrip("/") not in ("", "/v1") or parts.query or parts.fragment:
            raise ValueError(
                f"'{value}' has a path or query; fix: give the server's root, e.g. "
                "http://127.0.0.1:8000"
            )
        return value.rstrip("/").removesuffix("/v1")
