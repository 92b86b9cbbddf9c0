"""LangGraph's runs API: create, stream, wait, join, list, get, cancel, delete.

The same run manager as the streaming protocol executes these runs: one event log, one
lease per thread, the same limits and owners; what differs is the wire. An API run logs
the stream modes it asked for (channel `api`), and these routes frame them as
LangGraph's Server-Sent Events: `metadata` first, `event: <mode>[|<namespace>]`, the
thread's `seq` as the event id (every run is resumable with `Last-Event-ID`), and an
`error` event when the run fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nodes.errors import ErrorCode
from server.agent_protocol.messages import SubscribeParams
from server.engine import ApiRun, StartRequest
from server.engine.events import dumps, is_terminal
from server.guard.auth import Principal
from server.guard.refusals import Refused
from server.langgraph_api.assistants import resolve_assistant
from server.langgraph_api.stream_modes import API_MODES
from server.services import Services
from server.stores.run_records import ACTIVE, RunRecord
from server.web.deps import (
    PrincipalDep,
    ServicesDep,
    ThreadId,
    http_refusal,
    require_own_thread,
)
from server.web.sse import HEADERS, frame, with_heartbeats

router = APIRouter(tags=["runs"])

_Modes = str | list[str]

_REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such thread (or another owner's)."},
    409: {"description": "The thread is busy and the strategy is `reject`."},
    422: {"description": "An unknown assistant, a bad input or context, or bad fields."},
    429: {"description": "Over the caller's run limit; see `Retry-After`."},
}
_MISSING: dict[int | str, dict[str, Any]] = {404: {"description": "No such thread or run."}}


class RunCommand(BaseModel):
    """LangGraph's `Command` as a run's input: resume an interrupt, update state, go to.

    Any other key would reach `Command(...)` inside the run and fail it there.
    """

    model_config = ConfigDict(extra="forbid")

    update: dict[str, Any] | list[tuple[str, Any]] | None = None
    resume: Any = None
    goto: str | list[str] | None = None


class RunCreate(BaseModel):
    """A run, as LangGraph's SDK asks for one.

    Fields the SDK sends that ALMA has no use for are accepted and ignored:
    `durability`, `checkpoint_during`, `feedback_keys`, `langsmith_tracer`.
    """

    model_config = ConfigDict(extra="ignore")

    assistant_id: str
    input: Any = None
    command: RunCommand | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    stream_mode: _Modes = Field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: list[str] | Literal["*"] | None = None
    interrupt_after: list[str] | Literal["*"] | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "enqueue"
    if_not_exists: Literal["reject", "create"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] | None = None
    webhook: str | None = None
    after_seconds: float | None = None

    @field_validator("stream_mode")
    @classmethod
    def _known_modes(cls, value: _Modes) -> _Modes:
        modes = [value] if isinstance(value, str) else value
        unknown = sorted(set(modes) - API_MODES)
        if unknown:
            raise ValueError(
                f"unknown stream mode(s) {', '.join(unknown)}; use {', '.join(sorted(API_MODES))}"
            )
        return value

    @property
    def modes(self) -> tuple[str, ...]:
        """The stream modes, as a tuple."""
        return (self.stream_mode,) if isinstance(self.stream_mode, str) else tuple(self.stream_mode)


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
    *,
    modes: tuple[str, ...] | None = None,
) -> RunRecord:
    """Read the request into the engine's start request, start the run; its record then.

    A copy: the engine goes on updating its own as the run proceeds.
    """
    if resolve_assistant(body.assistant_id) is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"Invalid assistant: {body.assistant_id!r}. Must be either:\n"
            "- A valid assistant UUID, or\n- One of the registered graphs: manager",
        )
    if body.webhook or body.after_seconds:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "webhook and after_seconds are not supported by this server",
        )
    temporary = thread_id is None and body.on_completion != "keep"
    checkpoint = dict(body.checkpoint or {})
    if body.checkpoint_id:
        checkpoint["checkpoint_id"] = body.checkpoint_id
    api = ApiRun(
        modes=modes or body.modes,
        subgraphs=body.stream_subgraphs,
        interrupt_before=body.interrupt_before,
        interrupt_after=body.interrupt_after,
    )
    kwargs = body.model_dump(
        include={"input", "command", "context", "interrupt_before", "interrupt_after", "webhook"}
    )
    kwargs |= {
        "stream_mode": list(api.modes), "feedback_keys": None, "temporary": temporary,
        "subgraphs": body.stream_subgraphs, "resumable": True, "checkpoint_during": True,
        "durability": "async",
    }  # fmt: skip
    request = StartRequest(
        owner=principal.owner, limit_key=principal.limit_key, thread_id=thread_id,
        assistant_id=body.assistant_id, input=body.input,
        command=body.command.model_dump(exclude_unset=True) if body.command else None,
        checkpoint=checkpoint or None, config=body.config, context=body.context,
        metadata=body.metadata, multitask_strategy=body.multitask_strategy,
        create_thread=body.if_not_exists == "create", temporary=temporary, api=api,
        record_kwargs=kwargs,
    )  # fmt: skip
    try:
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


# -- following a run's events -------------------------------------------------------------


async def _run_events(
    services: Services, record: RunRecord, since: int | None
) -> AsyncIterator[dict[str, Any]]:
    """The run's logged events (API events and its root end) after `since`, live too.

    With `since` None a running run is followed from now on, and a finished one yields
    nothing, as LangGraph's server does for a join without `Last-Event-ID`.
    """
    thread_id, run_id = record.thread_id, record.run_id
    if record.status not in ACTIVE:
        if since is None:
            return
        events = services.log.read(thread_id, max(since, record.first_seq - 1), limit=100_000)
        for event in await events:
            yield event
            if is_terminal(event):
                return
        return
    after = since if since is None else max(since, record.first_seq - 1)
    params = SubscribeParams(channels=["api", "lifecycle"], namespaces=[[]], depth=0, since=after)
    subscription = await services.broker.subscribe(thread_id, params)
    try:
        fresh = await services.run_records.get(thread_id, run_id)
        if fresh is None or fresh.status not in ACTIVE:
            # It ended between reading its record and subscribing: the log has it all.
            start = after if after is not None else fresh.first_seq - 1 if fresh else None
            if start is not None:
                for event in await services.log.read(thread_id, start, limit=100_000):
                    yield event
                    if is_terminal(event) and event["params"]["data"].get("run_id") == run_id:
                        return
            return
        async for event in subscription.events():
            yield event
            if is_terminal(event) and event["params"]["data"].get("run_id") == run_id:
                return
    finally:
        services.broker.unsubscribe(subscription)


def _start_of(record: RunRecord) -> int | None:
    """Where a just-started run's stream begins: before its first event, once it has one.

    A run still waiting for its thread has none yet: it is followed from now on, and its
    frames begin at its own `running`.
    """
    return record.first_seq - 1 if record.first_seq else None


def _wanted(name: str, modes: frozenset[str] | None) -> bool:
    if modes is None:
        return True
    mode = name.split("|", 1)[0]
    if mode.startswith("messages/"):
        return "messages" in modes
    return mode in modes or (mode == "messages" and "messages-tuple" in modes)


async def _frames(
    services: Services, record: RunRecord, since: int | None, modes: frozenset[str] | None
) -> AsyncIterator[bytes]:
    run_id = record.run_id
    inside = since is not None and record.first_seq > 0 and since >= record.first_seq
    async for event in _run_events(services, record, since):
        params = event["params"]
        if event["method"] == "lifecycle":
            data = params["data"]
            if data.get("run_id") != run_id:
                continue
            if data.get("event") == "running":
                inside = True
            elif is_terminal(event):
                if data.get("event") == "failed" and data.get("code") != ErrorCode.CANCELLED:
                    error = {
                        "error": data.get("code") or ErrorCode.INTERNAL,
                        "message": data.get("error"),
                    }
                    yield frame("error", orjson.dumps(error), str(event["seq"]))
                return
            continue
        if inside and event["method"] == "api" and _wanted(params["event"], modes):
            yield frame(params["event"], dumps(params["data"]), str(event["seq"]))


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


def _last_event_id(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(int(value.strip()), 0)
    except ValueError:
        return 0  # an id from elsewhere: replay the run from its start


async def _outcome(services: Services, record: RunRecord) -> Any:
    """Wait for the run to end; the final values, or `{"__error__": ...}`."""
    values: Any = None
    since = record.first_seq - 1 if record.first_seq else None
    async for event in _run_events(services, record, since):
        params = event["params"]
        if event["method"] == "api" and params["event"] == "values":
            values = params["data"]
        elif is_terminal(event) and params["data"].get("run_id") == record.run_id:
            data = params["data"]
            if data.get("event") == "failed" and data.get("code") != ErrorCode.CANCELLED:
                return {"__error__": {"error": data.get("code"), "message": data.get("error")}}
    if values is None:
        state = await services.graph.aget_state({"configurable": {"thread_id": record.thread_id}})
        values = dict(state.values)
    return values


def _waiting(services: Services, record: RunRecord, *, cancel_on_disconnect: bool) -> Response:
    async def result() -> AsyncIterator[bytes]:
        yield dumps(await _outcome(services, record))

    # Like LangGraph's server: a newline every few seconds keeps the connection alive
    # while the run goes on; JSON allows the whitespace before the answer.
    beating = with_heartbeats(result(), services.settings.sse_heartbeat_seconds, beat=b"\n")
    return StreamingResponse(
        _stopping_if_left(services, record, beating, cancel=cancel_on_disconnect),
        media_type="application/json",
        headers=_links(record),
    )


# -- routes --------------------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs", responses=_REFUSED)
async def create_run(
    thread_id: ThreadId, body: RunCreate, services: ServicesDep, principal: PrincipalDep
) -> JSONResponse:
    """Start a run in the background; poll it, join it or stream it later."""
    record = await _start(services, principal, thread_id, body)
    return JSONResponse(record.public(), headers=_links(record))


@router.post(
    "/threads/{thread_id}/runs/stream", response_class=StreamingResponse, responses=_REFUSED
)
async def stream_run(
    thread_id: ThreadId, body: RunCreate, services: ServicesDep, principal: PrincipalDep
) -> StreamingResponse:
    """Start a run and stream it as Server-Sent Events in the modes asked for."""
    record = await _start(services, principal, thread_id, body)
    frames = _frames(services, record, _start_of(record), None)
    return _sse(services, record, frames, cancel_on_disconnect=body.on_disconnect == "cancel")


@router.post("/threads/{thread_id}/runs/wait", responses=_REFUSED)
async def wait_run(
    thread_id: ThreadId, body: RunCreate, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Start a run and answer with its final values (or `__error__`) when it ends."""
    record = await _start(services, principal, thread_id, body, modes=("values",))
    return _waiting(services, record, cancel_on_disconnect=body.on_disconnect == "cancel")


@router.post("/runs/stream", response_class=StreamingResponse, responses=_REFUSED)
async def stream_stateless_run(
    body: RunCreate, services: ServicesDep, principal: PrincipalDep
) -> StreamingResponse:
    """A run on a new thread, streamed; the thread goes when the run ends.

    `on_completion: keep` keeps it.
    """
    record = await _start(services, principal, None, body)
    frames = _frames(services, record, 0, None)
    return _sse(services, record, frames, cancel_on_disconnect=body.on_disconnect == "cancel")


@router.post("/runs/wait", responses=_REFUSED)
async def wait_stateless_run(
    body: RunCreate, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """A run on a new, temporary thread; its final values when it ends."""
    record = await _start(services, principal, None, body, modes=("values",))
    return _waiting(services, record, cancel_on_disconnect=body.on_disconnect == "cancel")


@router.post("/runs", responses=_REFUSED)
async def create_stateless_run(
    body: RunCreate, services: ServicesDep, principal: PrincipalDep
) -> JSONResponse:
    """A background run on a new, temporary thread."""
    record = await _start(services, principal, None, body)
    return JSONResponse(record.public(), headers=_links(record))


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
    modes = _join_modes(stream_mode)
    frames = _frames(services, record, _last_event_id(last_event_id), modes)
    return _sse(services, record, frames, cancel_on_disconnect=cancel_on_disconnect)


def _join_modes(values: list[str] | None) -> frozenset[str] | None:
    # The SDK repeats the parameter for a list; a JSON array in one value works too.
    modes: set[str] = set()
    for value in values or ():
        if value.startswith("["):
            with contextlib.suppress(orjson.JSONDecodeError):
                modes.update(str(mode) for mode in orjson.loads(value))
                continue
        if value:
            modes.add(value)
    return frozenset(modes) or None


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
    await _outcome(services, record)
    return JSONResponse({}, headers=_links(record))
