"""LangGraph's runs API over HTTP: create, stream, wait, join, list, get, cancel, delete.

The same engine as the streaming protocol executes these runs: one start path, one
event log, one lease per thread, the same limits and owners; what differs is the wire.
The request is read by `langgraph_api.runs`, the events rendered by
`langgraph_api.run_events`; these routes add what is HTTP's own — status codes, the
run's links, heartbeats, and cancelling a run whose client left when it asked so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Depends,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    status,
)
from fastapi.responses import JSONResponse, StreamingResponse

from server.engine.events import dumps
from server.guard.auth import Principal
from server.guard.refusals import Refused
from server.langgraph_api.run_config import RunOrigin
from server.langgraph_api.run_events import (
    join_modes,
    outcome,
    seq_of_event_id,
    sse_frames,
    stream_start,
)
from server.langgraph_api.runs import RunCreate, start_request
from server.services import Services
from server.stores.run_records import ACTIVE, RunRecord
from server.web.deps import (
    PrincipalDep,
    ServicesDep,
    ThreadId,
    http_refusal,
    require_own_thread,
)
from server.web.sse import HEADERS, with_heartbeats
from server.webhooks.requests import check_run_webhook

router = APIRouter(tags=["runs"])

_REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such thread (or another owner's)."},
    409: {"description": "The thread is busy and the strategy is `reject`."},
    422: {"description": "An unknown assistant, a bad input or context, or bad fields."},
    429: {"description": "Over the caller's run limit; see `Retry-After`."},
}
_MISSING: dict[int | str, dict[str, Any]] = {404: {"description": "No such thread or run."}}


async def _origin(request: Request) -> RunOrigin:
    # A coroutine, so that FastAPI reads it on the event loop, not in a worker thread.
    return RunOrigin.of(request)


OriginDep = Annotated[RunOrigin, Depends(_origin)]


def _links(record: RunRecord, *, stream: bool = False) -> dict[str, str]:
    # The SDK reads the run's id from Content-Location and reconnects to Location. A
    # stateless run's thread is gone when it ends: its links name no thread, so the SDK
    # does not come back to ask (as with LangGraph's server).
    temporary = bool(record.kwargs.get("temporary"))
    base = (
        f"/runs/{record.run_id}"
        if temporary
        else f"/threads/{record.thread_id}/runs/{record.run_id}"
    )
    return {"Location": f"{base}/stream" if stream else f"{base}/join", "Content-Location": base}


async def _start(
    services: Services,
    principal: Principal,
    thread_id: str | None,
    body: RunCreate,
    origin: RunOrigin,
    *,
    modes: tuple[str, ...] | None = None,
) -> RunRecord:
    """Start the run `body` asks for; its record as it starts.

    A copy: the engine goes on updating its own as the run proceeds.
    """
    await check_run_webhook(services.webhooks, body.webhook)
    try:
        request = start_request(body, principal, thread_id, modes=modes, origin=origin)
        run = await services.starter.start(request)
    except Refused as exc:
        raise http_refusal(exc) from exc
    return dataclasses.replace(run.record)


async def _owned_run(
    services: Services, thread_id: str, run_id: str, principal: Principal
) -> RunRecord:
    await require_own_thread(services, thread_id, principal.owner)
    record = await services.runs.record(thread_id, run_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    return record


def _sse(
    services: Services,
    record: RunRecord,
    frames: AsyncIterator[bytes],
    *,
    cancel_on_disconnect: bool,
) -> StreamingResponse:
    beating = with_heartbeats(frames, services.settings.sse_heartbeat_seconds)
    return StreamingResponse(
        _stopping_if_left(services, record, beating, cancel=cancel_on_disconnect),
        media_type="text/event-stream",
        headers={**HEADERS, **_links(record, stream=True)},
    )


async def _stopping_if_left(
    services: Services, record: RunRecord, chunks: AsyncIterator[bytes], *, cancel: bool
) -> AsyncIterator[bytes]:
    """`chunks`; if the client goes before they end and asked so, the run stops too."""
    ended = False
    try:
        async for chunk in chunks:
            yield chunk
        ended = True
    finally:
        if not ended and cancel:
            asyncio.get_running_loop().create_task(
                _cancel_quietly(services, record.thread_id, record.run_id)
            )


async def _cancel_quietly(services: Services, thread_id: str, run_id: str) -> None:
    with contextlib.suppress(Refused):
        await services.runs.cancel(thread_id, run_id)


def _waiting(services: Services, record: RunRecord, *, cancel_on_disconnect: bool) -> Response:
    async def result() -> AsyncIterator[bytes]:
        yield dumps(await outcome(services, record))

    # Like LangGraph's server: a newline every few seconds keeps the connection alive
    # while the run goes on; JSON allows the whitespace before the answer.
    beating = with_heartbeats(result(), services.settings.sse_heartbeat_seconds, beat=b"\n")
    return StreamingResponse(
        _stopping_if_left(services, record, beating, cancel=cancel_on_disconnect),
        media_type="application/json",
        headers=_links(record),
    )


def _created(record: RunRecord) -> JSONResponse:
    # The run as it was created, `pending`, as LangGraph's server answers: it is
    # picked up (`running`) once its thread is free, which a later GET shows.
    created = dataclasses.replace(record, status="pending")
    return JSONResponse(created.public(), headers=_links(record))


# -- routes --------------------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs", responses=_REFUSED)
async def create_run(
    thread_id: ThreadId,
    body: RunCreate,
    services: ServicesDep,
    principal: PrincipalDep,
    origin: OriginDep,
) -> JSONResponse:
    """Start a run in the background; poll it, join it or stream it later."""
    record = await _start(services, principal, thread_id, body, origin)
    return _created(record)


@router.post(
    "/threads/{thread_id}/runs/stream", response_class=StreamingResponse, responses=_REFUSED
)
async def stream_run(
    thread_id: ThreadId,
    body: RunCreate,
    services: ServicesDep,
    principal: PrincipalDep,
    origin: OriginDep,
) -> StreamingResponse:
    """Start a run and stream it as Server-Sent Events in the modes asked for."""
    record = await _start(services, principal, thread_id, body, origin)
    frames = sse_frames(services, record, stream_start(record), None)
    return _sse(services, record, frames, cancel_on_disconnect=body.on_disconnect == "cancel")


@router.post("/threads/{thread_id}/runs/wait", responses=_REFUSED)
async def wait_run(
    thread_id: ThreadId,
    body: RunCreate,
    services: ServicesDep,
    principal: PrincipalDep,
    origin: OriginDep,
) -> Response:
    """Start a run and answer with its final values (or `__error__`) when it ends."""
    record = await _start(services, principal, thread_id, body, origin, modes=("values",))
    return _waiting(services, record, cancel_on_disconnect=body.on_disconnect == "cancel")


@router.post("/runs/stream", response_class=StreamingResponse, responses=_REFUSED)
async def stream_stateless_run(
    body: RunCreate, services: ServicesDep, principal: PrincipalDep, origin: OriginDep
) -> StreamingResponse:
    """A run on a new thread, streamed; the thread goes when the run ends.

    `on_completion: keep` keeps it.
    """
    record = await _start(services, principal, None, body, origin)
    frames = sse_frames(services, record, 0, None)
    return _sse(services, record, frames, cancel_on_disconnect=body.on_disconnect == "cancel")


@router.post("/runs/wait", responses=_REFUSED)
async def wait_stateless_run(
    body: RunCreate, services: ServicesDep, principal: PrincipalDep, origin: OriginDep
) -> Response:
    """A run on a new, temporary thread; its final values when it ends."""
    record = await _start(services, principal, None, body, origin, modes=("values",))
    return _waiting(services, record, cancel_on_disconnect=body.on_disconnect == "cancel")


@router.post("/runs", responses=_REFUSED)
async def create_stateless_run(
    body: RunCreate, services: ServicesDep, principal: PrincipalDep, origin: OriginDep
) -> JSONResponse:
    """A background run on a new, temporary thread."""
    record = await _start(services, principal, None, body, origin)
    return _created(record)


@router.get("/threads/{thread_id}/runs", responses=_MISSING)
async def list_runs(
    thread_id: ThreadId,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
    run_status: Annotated[str | None, Query(alias="status")] = None,
) -> list[dict[str, Any]]:
    """The thread's runs, newest first."""
    await require_own_thread(services, thread_id, principal.owner)
    records = await services.runs.records_of(thread_id)
    if run_status:
        records = [record for record in records if record.status == run_status]
    return [record.public() for record in records[offset : offset + limit]]


@router.get("/threads/{thread_id}/runs/{run_id}", responses=_MISSING)
async def get_run(
    thread_id: ThreadId, run_id: str, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    """One run: its status above all."""
    return (await _owned_run(services, thread_id, run_id, principal)).public()


@router.delete(
    "/threads/{thread_id}/runs/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_MISSING | {409: {"description": "The run is still active."}},
)
async def delete_run(
    thread_id: ThreadId, run_id: str, services: ServicesDep, principal: PrincipalDep
) -> None:
    """Forget a run that has ended."""
    record = await _owned_run(services, thread_id, run_id, principal)
    if record.status in ACTIVE:
        raise HTTPException(status.HTTP_409_CONFLICT, "the run is still active; cancel it first")
    await services.run_records.delete(thread_id, run_id)


@router.get("/threads/{thread_id}/runs/{run_id}/join", responses=_MISSING)
async def join_run(
    thread_id: ThreadId, run_id: str, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The run's final values, once it has ended."""
    record = await _owned_run(services, thread_id, run_id, principal)
    return _waiting(services, record, cancel_on_disconnect=False)


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    response_class=StreamingResponse,
    responses=_MISSING,
)
async def join_run_stream(
    thread_id: ThreadId,
    run_id: str,
    services: ServicesDep,
    principal: PrincipalDep,
    stream_mode: Annotated[list[str] | None, Query()] = None,
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Follow a run's stream; `Last-Event-ID` replays what came after that event."""
    record = await _owned_run(services, thread_id, run_id, principal)
    modes = join_modes(stream_mode)
    frames = sse_frames(services, record, seq_of_event_id(last_event_id), modes)
    return _sse(services, record, frames, cancel_on_disconnect=cancel_on_disconnect)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", responses=_MISSING)
async def cancel_run(
    thread_id: ThreadId,
    run_id: str,
    services: ServicesDep,
    principal: PrincipalDep,
    wait: bool = False,
    action: Literal["interrupt", "rollback"] = "interrupt",
) -> Response:
    """Stop a run: `interrupt` keeps what it wrote, `rollback` deletes it."""
    await require_own_thread(services, thread_id, principal.owner)
    record = await services.runs.record(thread_id, run_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No runs found to cancel.")
    try:
        await services.runs.cancel(thread_id, run_id, action=action)
    except Refused as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "No matching runs to cancel. Please verify the thread ID and run IDs are "
            "correct, and the runs haven't been deleted or completed.",
        ) from exc
    if not wait:
        return Response(status_code=status.HTTP_202_ACCEPTED)
    await outcome(services, record)
    return JSONResponse({}, headers=_links(record))
