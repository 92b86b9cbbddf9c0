"""An `alma serve` process on a free port, for tests that talk to it over real sockets."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.utils.processes import ServerProcess, free_port, running


@dataclass
class Service:
    """A running ALMA server."""

    port: int
    process: ServerProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def alma_service(
    redis_url: str, *, prefix: str, env: Mapping[str, str] | None = None
) -> Iterator[Service]:
    """Start `alma serve` on the simulated model, against `redis_url`."""
    port = free_port()
    environment = {
        "ALMA_REDIS_URL": redis_url,
        "ALMA_REDIS_PREFIX": prefix,
        "ALMA_REDIS_REQUIRED": "true",
        "ALMA_SIMULATED_TTFT": "0",
        "ALMA_SIMULATED_TOKENS_PER_SECOND": "0",
        "ALMA_SHUTDOWN_GRACE_SECONDS": "5",
        # Limits get in the way only of the tests about them, which set their own.
        "ALMA_LIMIT_CONNECTIONS": "1000",
        "ALMA_LIMIT_RUNS": "100000",
        "ALMA_LIMIT_TOKENS": "1000000000",
        **(env or {}),
    }
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    # One process listens once it says so; with workers, the parent says so before any
    # worker listens, so the first worker's start-up is the sign instead.
    workers = int(environment.get("ALMA_WORKERS", "1"))
    ready = "Uvicorn running on" if workers == 1 else "Application startup complete"
    with running(command, ready=ready, env=environment) as process:
        service = Service(port=port, process=process)
        if workers > 1:
            _wait_listening(service)
        yield service


def _wait_listening(service: Service, timeout: float = 30) -> None:
    # A worker says it started a moment before it listens, and nothing says when it
    # does: ask until one answers.
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{service.url}/health", timeout=5).raise_for_status()
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
