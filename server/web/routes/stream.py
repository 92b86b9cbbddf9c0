"""The streaming protocol's endpoints, on the paths `langgraph-sdk` thread streams use.

Beside them, LangGraph's thread join stream (`GET /threads/{id}/stream`), which follows
a thread's runs the same way: through the broker, from the thread's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import (
    APIRouter,
    Header,
    HTTPException,
    Query,
    Response,
    WebSocket,
    WebSocketDisconnect,
    status,
)
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.websockets import WebSocketState

from server.agent_protocol.commands import Connection, close_connection, execute, owned_events
from server.agent_protocol.messages import Command, CommandAnswer, SubscribeParams, failure
from server.engine.broker import SlowConsumerError, Subscription
from server.engine.events import dumps
from server.guard.auth import (
    SUBPROTOCOL,
    AuthError,
    Principal,
    key_from_headers,
    key_from_subprotocols,
)
from server.guard.limits import Verdict
from server.guard.storage_outage import close_for_outage
from server.guard.validation import describe_invalid
from server.langgraph_api.run_events import seq_of_event_id
from server.langgraph_api.thread_stream import (
    UnknownStreamMode,
    thread_frames,
    thread_start,
    thread_stream_modes,
)
from server.observability.logs import bind
from server.observability.metrics import MESSAGES_SENT, SLOW_CONSUMERS, SSE_OPEN, WEBSOCKETS_OPEN
from server.services import Services
from server.web.deps import (
    NO_THREAD,
    PrincipalDep,
    ServicesDep,
    ThreadId,
    WsServicesDep,
    client_address,
    origin_allowed,
    require_own_thread,
)
from server.web.sse import HEADERS, frame, with_heartbeats

router = APIRouter(prefix="/threads", tags=["stream"])

CLOSE_SLOW_CONSUMER = 4008
"""WebSocket close code: the client fell behind; resume with the `since` in the reason."""
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
"""WebSocket close code: no or a wrong key, a foreign origin, or a connection limit."""


@router.post(
    "/{thread_id}/commands",
    response_model=CommandAnswer,
    responses={429: {"model": CommandAnswer, "description": "A rate limit refused the run."}},
)
async def run_command(
    thread_id: ThreadId,
    command: Command,
    services: ServicesDep,
    principal: PrincipalDep,
    response: Response,
) -> Any:
    """Execute one protocol command over plain HTTP (`run.start`, `state.get`, …).

    `run.start` answers carry `RateLimit-*` headers; over the limit, the answer is a 429
    with `Retry-After`.
    """
    verdicts: list[Verdict] = []
    answer = CommandAnswer.model_validate(
        await execute(services, thread_id, command, None, principal, verdicts)
    )
    headers = verdicts[-1].headers() if verdicts else {}
    if verdicts and not verdicts[-1].allowed:
        return JSONResponse(answer.model_dump(), status_code=429, headers=headers)
    response.headers.update(headers)
    return answer


@router.post(
    "/{thread_id}/stream/events",
    response_class=StreamingResponse,
    responses={
        429: {"description": "Too many connections open at once."},
    },
)
async def stream_events(
    thread_id: ThreadId, params: SubscribeParams, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The thread's events as Server-Sent Events, filtered by the body; `since` resumes.

    On a thread that is not the caller's (yet), the stream shows events only once the
    caller's own run holds it, as on a thread that does not exist: it never tells
    whether another owner has taken the id.
    """
    mine = await services.owners.owner_of(thread_id) == principal.owner
    subscriptions: list[Subscription] = []

    async def open_frames() -> AsyncIterator[bytes]:
        # Subscribed before the response starts, so nothing emitted after the client sees
        # the headers can be missed.
        subscription = await services.broker.subscribe(thread_id, params)
        subscriptions.append(subscription)
        return frames(subscription)

    sent = MESSAGES_SENT.labels("sse")

    async def frames(subscription: Subscription) -> AsyncIterator[bytes]:
        try:
            async for event in owned_events(services, subscription, principal.owner, owned=mine):
                sent.inc()
                yield frame(event["method"], event.raw, str(event["seq"]))
        except SlowConsumerError as exc:
            SLOW_CONSUMERS.inc()
            notice = failure(None, "unknown_error", str(exc)) | {"since": exc.last_seq}
            yield frame("error", dumps(notice))

    def unsubscribe() -> None:
        for subscription in subscriptions:
            services.broker.unsubscribe(subscription)

    return await _event_stream(services, principal, open_frames, unsubscribe)


async def _event_stream(
    services: Services,
    principal: Principal,
    open_frames: Callable[[], Awaitable[AsyncIterator[bytes]]],
    on_close: Callable[[], None] | None = None,
) -> Response:
    """An SSE response that holds one of the caller's connection slots while it lasts.

    `open_frames` runs before the response starts (where a stream must begin is settled
    then); a refused slot is a 429 and opens nothing.
    """
    slot = f"sse-{uuid.uuid4().hex}"
    verdict = await services.limits.open_connection(principal.limit_key, slot)
    if not verdict.allowed:
        return JSONResponse(
            {"detail": verdict.explain(principal.owner), "error": "permission_denied"},
            status_code=429,
            headers=verdict.headers(),
        )
    try:
        frames = await open_frames()
    except BaseException:
        await services.limits.close_connection(principal.limit_key, slot)
        raise

    async def body() -> AsyncIterator[bytes]:
        SSE_OPEN.inc()
        try:
            async for chunk in with_heartbeats(frames, services.settings.sse_heartbeat_seconds):
                yield chunk
        finally:
            SSE_OPEN.dec()
            if on_close is not None:
                on_close()
            await services.limits.close_connection(principal.limit_key, slot)

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={**HEADERS, **verdict.headers()}
    )


@router.get(
    "/{thread_id}/stream",
    response_class=StreamingResponse,
    responses=NO_THREAD
    | {
        422: {"description": "A stream mode other than run_modes, lifecycle, state_update."},
        429: {"description": "Too many connections open at once."},
    },
)
async def join_thread_stream(
    thread_id: ThreadId,
    services: ServicesDep,
    principal: PrincipalDep,
    stream_modes: Annotated[str | None, Query(description="Modes, comma-separated.")] = None,
    stream_mode: Annotated[list[str] | None, Query(description="The SDKs' name.")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """The thread's runs as LangGraph's server streams them, one after another, held open.

    From now on; with `Last-Event-ID`, from right after that event. Each run's events
    come in the modes it asked for, and `metadata` `{"status": "run_done"}` as it ends.
    """
    await require_own_thread(services, thread_id, principal.owner)
    try:
        modes = thread_stream_modes(
            [*([stream_modes] if stream_modes else []), *(stream_mode or [])]
        )
    except UnknownStreamMode as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc

    async def open_frames() -> AsyncIterator[bytes]:
        # Where it starts is settled before the response does: whatever a run emits once
        # the client has the headers comes after it.
        since = await thread_start(services, thread_id, seq_of_event_id(last_event_id or None))
        return thread_frames(services, thread_id, since, modes)

    return await _event_stream(services, principal, open_frames)


@router.websocket("/{thread_id}/stream/events")
async def event_socket(websocket: WebSocket, thread_id: ThreadId, services: WsServicesDep) -> None:
    """Full duplex: protocol commands in; answers and subscribed events out.

    The API key comes as a header or as the subprotocol `alma-key.<key>`; a missing or
    wrong key, a foreign origin or too many open connections close it with 1008.
    """
    offered = websocket.scope.get("subprotocols") or []
    key = key_from_headers(websocket.headers) or key_from_subprotocols(offered)
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    settings = services.settings
    if not origin_allowed(
        websocket.headers.get("origin"), websocket.headers.get("host"), settings.cors_origins
    ):
        await websocket.close(CLOSE_POLICY, "origin not allowed")
        return
    try:
        principal = services.keys.identify(key, client_address(websocket))
    except AuthError as exc:
        await websocket.close(CLOSE_POLICY, str(exc))
        return
    slot = f"ws-{uuid.uuid4().hex}"
    try:
        verdict = await services.limits.open_connection(principal.limit_key, slot)
    except RedisError as exc:
        await close_for_outage(websocket, exc)
        return
    if not verdict.allowed:
        await websocket.close(CLOSE_POLICY, verdict.explain(principal.owner))
        return
    try:
        await _serve_socket(websocket, thread_id, services, principal)
    finally:
        with contextlib.suppress(RedisError):
            await services.limits.close_connection(principal.limit_key, slot)


async def _serve_socket(
    websocket: WebSocket, thread_id: str, services: Services, principal: Principal
) -> None:
    lock = asyncio.Lock()
    sent = MESSAGES_SENT.labels("websocket")
    bind(thread_id=thread_id, owner=principal.owner)

    async def send(message: bytes) -> None:
        async with lock:
            # Text frames: browsers and the JavaScript SDK parse `event.data` as a
            # string, and a binary frame reaches them as a Blob or a Buffer.
            await websocket.send_text(message.decode())
        sent.inc()

    async def on_slow(exc: SlowConsumerError) -> None:
        SLOW_CONSUMERS.inc()
        with contextlib.suppress(Exception):
            await websocket.close(
                CLOSE_SLOW_CONSUMER, f"too slow; resume with since={exc.last_seq}"
            )

    connection = Connection(send=send, on_slow=on_slow)
    websocket.state.connection = connection  # a drain lets its subscriptions finish
    services.connections.add(websocket)
    WEBSOCKETS_OPEN.inc()
    try:
        while True:
            raw = await websocket.receive()
            if raw["type"] == "websocket.disconnect":
                return
            text = raw.get("text") or (raw.get("bytes") or b"").decode(errors="replace")
            try:
                command = Command.model_validate(orjson.loads(text))
            except orjson.JSONDecodeError:
                reason = "not a protocol command: not JSON"
                await send(dumps(failure(None, "invalid_argument", reason)))
                continue
            except ValidationError as exc:
                reason = f"not a protocol command: {describe_invalid(exc)}"
                await send(dumps(failure(None, "invalid_argument", reason)))
                continue
            answer = await execute(services, thread_id, command, connection, principal)
            await send(dumps(answer))
    except (WebSocketDisconnect, RuntimeError):
        return
    except RedisError as exc:
        await close_for_outage(websocket, exc)
    finally:
        WEBSOCKETS_OPEN.dec()
        services.connections.discard(websocket)
        await close_connection(services, connection)
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(CLOSE_GOING_AWAY)
