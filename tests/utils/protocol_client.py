"""A bare protocol client over a real WebSocket: commands, answers, and events apart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class ProtocolSocket:
    """One WebSocket to `/threads/{id}/stream/events`."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.websocket:
                message = orjson.loads(raw)
                if message.get("type") == "event":
                    await self.events.put(message)
                elif message.get("id") in self._answers:
                    self._answers.pop(message["id"]).set_result(message)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.websocket.close_code
            self.close_reason = self.websocket.close_reason or ""
            await self.events.put(None)

    async def command(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        answer = asyncio.get_running_loop().create_future()
        self._answers[self._next_id] = answer
        message = {"id": self._next_id, "method": method, "params": params}
        await self.websocket.send(orjson.dumps(message).decode())
        return await asyncio.wait_for(answer, timeout=30)

    async def subscribe(self, *channels: str, since: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"channels": list(channels or ("lifecycle", "messages"))}
        if since is not None:
            params["since"] = since
        return await self.command("subscription.subscribe", **params)

    async def start(self, text: str, **params: Any) -> str:
        answer = await self.command(
            "run.start",
            assistant_id="manager",
            input={"messages": [{"role": "user", "content": text}]},
            **params,
        )
        assert answer["type"] == "success", answer
        run_id: str = answer["result"]["run_id"]
        return run_id

    async def next_event(self, timeout: float = 30) -> dict[str, Any] | None:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def until_terminal(self, timeout: float = 60) -> list[dict[str, Any]]:
        """Events up to and including the run's root terminal lifecycle event."""
        collected: list[dict[str, Any]] = []
        while True:
            event = await self.next_event(timeout)
            if event is None:
                return collected
            collected.append(event)
            if is_terminal(event):
                return collected


def is_terminal(event: dict[str, Any]) -> bool:
    params = event["params"]
    return (
        event["method"] == "lifecycle"
        and not params.get("namespace")
        and params["data"]["event"] in ("completed", "failed", "interrupted")
    )


@asynccontextmanager
async def protocol_socket(
    base_url: str, thread_id: str, **options: Any
) -> AsyncIterator[ProtocolSocket]:
    url = base_url.replace("http://", "ws://") + f"/threads/{thread_id}/stream/events"
    async with connect(url, **options) as websocket:
        client = ProtocolSocket(websocket)
        try:
            yield client
        finally:
            client._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client._reader
