"""The streaming protocol's endpoints, on the paths `langgraph-sdk` thread streams use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketState

from server.broker import SlowConsumerError
from server.commands import Connection, close_connection, execute
from server.deps import ServicesDep, WsServicesDep
from server.events import dumps
from server.protocol import Command, CommandAnswer, SubscribeParams, failure

router = APIRouter(prefix="/threads", tags=["stream"])

CLOSE_SLOW_CONSUMER = 4008
"""WebSocket close code: the client fell behind; resume with the `since` in the reason."""
CLOSE_GOING_AWAY = 1001


@router.post("/{thread_id}/commands")
async def run_command(thread_id: str, command: Command, services: ServicesDep) -> CommandAnswer:
    """Execute one protocol command over plain HTTP (`run.start`, `state.get`, …)."""
    return CommandAnswer.model_validate(await execute(services, thread_id, command, None))


@router.post("/{thread_id}/stream/events", response_class=StreamingResponse)
async def stream_events(
    thread_id: str, params: SubscribeParams, services: ServicesDep
) -> StreamingResponse:
    """The thread's events as Server-Sent Events, filtered by the body; `since` resumes."""
    # Subscribed before the response starts, so nothing emitted after the client sees
    # the headers can be missed.
    subscription = await services.broker.subscribe(thread_id, params)
    heartbeat = services.settings.sse_heartbeat_seconds

    async def body() -> AsyncIterator[bytes]:
        events = subscription.events()
        try:
            while True:
                try:
                    event = await asyncio.wait_for(anext(events), timeout=heartbeat)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                except StopAsyncIteration:
                    return
                yield (
                    f"id: {event['seq']}\nevent: {event['method']}\n".encode()
                    + b"data: "
                    + dumps(event)
                    + b"\n\n"
                )
        except SlowConsumerError as exc:
            notice = failure(None, "unknown_error", str(exc)) | {"since": exc.last_seq}
            yield b"event: error\ndata: " + dumps(notice) + b"\n\n"
        finally:
            services.broker.unsubscribe(subscription)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


@router.websocket("/{thread_id}/stream/events")
async def event_socket(websocket: WebSocket, thread_id: str, services: WsServicesDep) -> None:
    """Full duplex: protocol commands in; answers and subscribed events out."""
    await websocket.accept()
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_bytes(dumps(message))

    async def on_slow(exc: SlowConsumerError) -> None:
        with contextlib.suppress(Exception):
            await websocket.close(
                CLOSE_SLOW_CONSUMER, f"too slow; resume with since={exc.last_seq}"
            )

    connection = Connection(send=send, on_slow=on_slow)
    services.connections.add(websocket)
    try:
        while True:
            raw = await websocket.receive()
            if raw["type"] == "websocket.disconnect":
                return
            text = raw.get("text") or (raw.get("bytes") or b"").decode(errors="replace")
            try:
                command = Command.model_validate(orjson.loads(text))
            except (orjson.JSONDecodeError, ValidationError) as exc:
                await send(failure(None, "invalid_argument", f"not a protocol command: {exc}"))
                continue
            await send(await execute(services, thread_id, command, connection))
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        services.connections.discard(websocket)
        await close_connection(services, connection)
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(CLOSE_GOING_AWAY)
