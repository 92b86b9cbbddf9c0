"""In-process test clients that call the app as a local client would: at a loopback name.

Starlette's test client says `Host: testserver` by default (its WebSockets always do),
which a keyless ALMA refuses: it answers only loopback names unless told otherwise.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urljoin

from starlette.testclient import TestClient, WebSocketTestSession

LOCAL = "http://127.0.0.1"


class LocalClient(TestClient):
    """A test client whose requests and WebSockets name `127.0.0.1` as their host."""

    def __init__(self, app: Any, **options: Any) -> None:
        """Call `app` at `LOCAL` unless told another base URL."""
        options.setdefault("base_url", LOCAL)
        super().__init__(app, **options)

    def websocket_connect(
        self, url: str, subprotocols: Any = None, **kwargs: Any
    ) -> WebSocketTestSession:
        """Open a WebSocket at `url`, relative to `ws://127.0.0.1`."""
        return super().websocket_connect(urljoin("ws://127.0.0.1", url), subprotocols, **kwargs)


def until_runs_end(client: TestClient) -> None:
    """Wait for the in-process app's runs to finish, their ends all written.

    A stream or a join ends at the run's end event; the run's record (and its lease) are
    written after it.
    """
    services = client.app.state.services  # type: ignore[attr-defined]

    async def ended() -> None:
        tasks = [run.task for run in services.runs.runs.values() if run.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=30)

    client.portal.call(ended)  # type: ignore[union-attr]
