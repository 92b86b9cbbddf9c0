"""Fixtures that start real processes and talk to them over loopback sockets."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.utils.processes import free_port, running
from tests.utils.redis_server import RedisServer, redis_server


@dataclass(frozen=True)
class OpenAIEndpoint:
    """A running `loadtests.openai_endpoint` process and its control API."""

    root_url: str
    """`http://127.0.0.1:N`: health and `/_control/*`."""
    base_url: str
    """`http://127.0.0.1:N/v1`: what an OpenAI client is pointed at."""

    async def _control(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.root_url, timeout=5.0) as client:
            response = await client.request(method, path, json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def set_faults(
        self,
        *,
        script: Sequence[str | None] = (),
        rate: float = 0.0,
        kinds: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Replace the fault settings; the script is consumed one entry per request."""
        body: dict[str, Any] = {"script": list(script), "rate": rate}
        if kinds is not None:
            body["kinds"] = list(kinds)
        return await self._control("POST", "/_control/faults", body)

    async def stats(self) -> dict[str, Any]:
        """The endpoint's counters since start or the last reset."""
        return await self._control("GET", "/_control/stats")

    async def reset(self) -> None:
        """Clear the counters and the fault script."""
        await self._control("POST", "/_control/reset")


@pytest.fixture(scope="session")
def openai_endpoint() -> Iterator[OpenAIEndpoint]:
    """The simulated OpenAI endpoint with the `instant` profile, shared by the session."""
    port = free_port()
    command = [sys.executable, "-m", "loadtests.openai_endpoint"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--profile", "instant"]
    with running(command, ready="simulated OpenAI endpoint listening on", timeout=30):
        root_url = f"http://127.0.0.1:{port}"
        yield OpenAIEndpoint(root_url=root_url, base_url=f"{root_url}/v1")


@pytest.fixture
async def fresh_openai_endpoint(openai_endpoint: OpenAIEndpoint) -> AsyncIterator[OpenAIEndpoint]:
    """The shared endpoint with no faults set and its counters cleared, for this test."""
    await openai_endpoint.set_faults()
    await openai_endpoint.reset()
    yield openai_endpoint


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this session's own, on a free port, with no modules loaded."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server
