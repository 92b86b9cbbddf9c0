"""An `alma serve` process on a free port, for tests that talk to it over real sockets."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

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
    with running(command, ready="Uvicorn running on", env=environment) as process:
        yield Service(port=port, process=process)
