"""Threads over HTTP, as LangGraph's server answers them: threads, their state and history.

Paths, bodies and shapes follow `langgraph dev`, so LangGraph Studio and `langgraph-sdk`
work unchanged. Every thread belongs to the caller that made it: another owner's thread
is answered as a missing one. `GET /threads` is ALMA's own: the caller's conversations
with their titles, for the web page.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, HTTPException, Path, Query, Response, status
from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateUpdate
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from server.guard.auth import Principal
from server.guard.refusals import Refused
from server.guard.validation import THREAD_ID_PATTERN, check_state_messages
from server.langgraph_api.assistants import GRAPH_ID, metadata_contains
from server.langgraph_api.thread_state import (
    ThreadPublic,
    ThreadStatePublic,
    ThreadStatus,
    UpdatePublic,
    read_thread,
    thread_config,
    thread_state,
)
from server.services import Services, forget_thread
from server.stores.thread_records import ThreadRecord, ThreadTakenError, stand_in
from server.web.deps import (
    PrincipalDep,
    ServicesDep,
    ThreadId,
    enforce,
    http_refusal,
    require_own_thread,
)

router = APIRouter(prefix="/threads", tags=["threads"])


def _plain_json(value: Any) -> Any:
    """`value` as JSON keeps it; refused when JSON cannot (an integer past 64 bits).

    Stored values must read back as they were written, and be sent back as JSON.
    """
    try:
        return orjson.loads(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"not storable as JSON: {exc}") from exc


BAD_UPDATE = (InvalidUpdateError, ValueError, TypeError, NotImplementedError)
"""What LangGraph raises for a state update that does not fit the graph: an unknown node,
values its reducers refuse (a message LangChain cannot read raises NotImplementedError)."""
Json = Annotated[Any, AfterValidator(_plain_json)]
"""Any JSON value a client asks to store."""
JsonObject = Annotated[dict[str, Any], AfterValidator(_plain_json)]

ThreadField = Literal[
    "thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "config",
    "status", "values", "interrupts",
]  # fmt: skip
SortField = Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"]


class SuperstepUpdate(BaseModel):
    """One node's write in a superstep."""

    model_config = ConfigDict(extra="forbid")

    values: Json = None
    as_node: str
    command: None = None
    """Commands are not taken here (`langgraph-sdk` sends `null`)."""


class Superstep(BaseModel):
    """Writes applied together, as if the nodes had run in one step."""

    model_config = ConfigDict(extra="forbid")

    updates: list[SuperstepUpdate]


class ThreadCreate(BaseModel):
    """A new thread; the id may be chosen by the client."""

    model_config = ConfigDict(extra="forbid")

    thread_id: str | None = Field(default=None, pattern=THREAD_ID_PATTERN, max_length=128)
    """Any id of 1-128 letters, digits and `._:@-` (a uuid4 when not given)."""
    metadata: JsonObject | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    """For an id already taken: 409, or the existing thread as it is."""
    graph_id: str | None = None
    """Stored as `metadata.graph_id`."""
    ttl: dict[str, Any] | int | None = None
    """Accepted; every thread is kept for the service's `ALMA_THREAD_TTL`."""
    supersteps: list[Superstep] | None = None
    """State updates written into the new thread, one checkpoint per superstep."""


class ThreadPatch(BaseModel):
    """A change to a thread."""

    model_config = ConfigDict(extra="forbid")

    metadata: JsonObject | None = None
    """Merged into the thread's metadata, key by key (a key set to null stays, as null)."""
    ttl: dict[str, Any] | int | None = None
    """Accepted; every thread is kept for the service's `ALMA_THREAD_TTL`."""


class ThreadFilter(BaseModel):
    """Which of the caller's threads: all the given conditions hold."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] | None = None
    """Metadata the thread's contains (nested objects match by containment)."""
    values: dict[str, Any] | None = None
    """State values the thread's latest state contains."""
    status: ThreadStatus | None = None


class ThreadSearch(ThreadFilter):
    """A page of the caller's threads that match."""

    ids: list[str] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    sort_by: SortField | None = None
    """`updated_at`, newest first, when not given."""
    sort_order: Literal["asc", "desc"] | None = None
    select: list[ThreadField] | None = None
    """The fields to return; all of them when not given."""


class CheckpointConfig(BaseModel):
    """A checkpoint of a thread, or a (sub)graph's namespace in it."""

    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None

    def configurable(self) -> dict[str, Any]:
        """The fields given, as a configuration's `configurable` takes them."""
        return self.model_dump(exclude_none=True, exclude={"thread_id"})


class StateAtCheckpoint(BaseModel):
    """Which checkpoint's state to read."""

    checkpoint: CheckpointConfig
    subgraphs: bool = False


class StateUpdateBody(BaseModel):
    """A write to a thread's state, as if a node had returned `values`."""

    values: Annotated[dict[str, Any] | list[Any] | None, AfterValidator(_plain_json)] = None
    as_node: str | None = None
    """The node the write comes from; it decides the next step."""
    checkpoint_id: str | None = None
    """Fork from this checkpoint instead of the latest."""
    checkpoint: CheckpointConfig | None = None


class HistorySearch(BaseModel):
    """A page of a thread's checkpoints, newest first."""

    limit: int = Field(default=10, ge=1, le=1000)
    before: str | dict[str, Any] | None = None
    """Only checkpoints older than this one: its id, a checkpoint, or a configuration."""
    metadata: dict[str, Any] | None = None
    """Metadata the checkpoints' contains."""
    checkpoint: CheckpointConfig | None = None
    """A subgraph's namespace, for its own checkpoints."""
    select: list[str] | None = None
    """Accepted and ignored, as `langgraph dev` does."""


class ThreadSummary(BaseModel):
    """One of the caller's threads, for a list of conversations."""

    thread_id: str
    title: str
    """The start of the first message of the thread's first run."""
    updated_at: float
    """Unix seconds of the thread's latest run."""


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such thread, or it belongs to another owner."}
}
CheckpointId = Annotated[str, Path(min_length=1, max_length=128)]
Subgraphs = Annotated[bool, Query(description="Include each pending subgraph's state.")]


async def _write(
    services: Services,
    principal: Principal,
    *,
    metadata: Any = None,
    new_thread: bool = False,
) -> None:
    """Hold a write that is not a run to what a run's input is held to.

    It counts against the caller's write budget (shared by every process), its metadata
    is bounded like a message, and a new thread must fit the owner's quota.
    """
    settings = services.settings
    if metadata:
        size = len(orjson.dumps(metadata))
        if size > settings.max_message_chars:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"metadata is {size} characters of JSON; the limit is "
                f"{settings.max_message_chars} (ALMA_MAX_MESSAGE_CHARS)",
            )
    enforce(await services.limits.write(principal.limit_key), principal.owner)
    if new_thread:
        held = await services.owners.count(principal.owner)
        if held >= settings.max_threads_per_owner:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{principal.owner} holds {held} threads, the most allowed "
                "(ALMA_MAX_THREADS_PER_OWNER); delete some first",
            )


def _checked_values(values: Any, services: Services) -> Any:
    """State values to write, their messages validated and normalised as run input's are."""
    if not isinstance(values, dict) or "messages" not in values:
        return values
    settings = services.settings
    try:
        checked = check_state_messages(
            values["messages"],
            max_messages=settings.max_messages,
            max_chars=settings.max_message_chars,
        )
    except Refused as exc:
        raise http_refusal(exc) from exc
    return {**values, "messages": checked}


async def _owned(services: Services, thread_id: str, owner: str) -> ThreadRecord:
    await require_own_thread(services, thread_id, owner)
    return await services.threads.get(thread_id) or stand_in(thread_id)


def _before(before: str | dict[str, Any] | None) -> RunnableConfig | None:
    """`before` as a configuration, from an id, a checkpoint or a configuration."""
    if not before:
        return None
    if isinstance(before, str):
        return {"configurable": {"checkpoint_id": before}}
    configurable = before.get("configurable")
    return {"configurable": configurable if isinstance(configurable, dict) else before}


@router.post("", responses={409: {"description": "The id is already a thread."}})
async def create_thread(
    body: ThreadCreate, services: ServicesDep, principal: PrincipalDep
) -> ThreadPublic:
    """Create a thread owned by the caller (it fills with its first run)."""
    thread_id = body.thread_id or str(uuid.uuid4())
    metadata = dict(body.metadata or {})
    if body.graph_id is not None:
        metadata["graph_id"] = body.graph_id
    exists = HTTPException(status.HTTP_409_CONFLICT, f"Thread with ID {thread_id} already exists")
    await _write(services, principal, metadata=metadata, new_thread=True)
    try:
        created = await services.threads.ensure(thread_id, principal.owner, metadata)
    except ThreadTakenError as exc:
        raise exists from exc
    if not created and body.if_exists == "raise":
        raise exists
    if created and body.supersteps:
        steps = [
            [StateUpdate(_checked_values(u.values, services), u.as_node) for u in s.updates]
            for s in body.supersteps
        ]
        try:
            await services.graph.abulk_update_state(thread_config(thread_id), steps)
        except BAD_UPDATE as exc:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"Thread {thread_id} was created, but its supersteps were not written: {exc}",
            ) from exc
    return await read_thread(services, await _owned(services, thread_id, principal.owner))


@router.get("")
async def list_threads(
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[ThreadSummary]:
    """The caller's threads, newest run first, titled by their first message."""
    entries = await services.owners.threads_of(principal.owner, limit)
    return [ThreadSummary(**dataclasses.asdict(entry)) for entry in entries]


async def _matching(
    services: Services, owner: str, wanted: ThreadFilter, ids: Sequence[str] | None = None
) -> tuple[list[ThreadRecord], list[ThreadPublic] | None]:
    """The caller's threads that pass the filter.

    Returns:
        Their records; and the threads themselves when the filter had to read them (for
        their status or values), else `None`.
    """
    records = await services.threads.of_owner(owner)
    if ids is not None:
        chosen = set(ids)
        records = [record for record in records if record.thread_id in chosen]
    records = [r for r in records if metadata_contains(r.metadata, wanted.metadata or {})]
    if wanted.status is None and wanted.values is None:
        return records, None
    threads = [await read_thread(services, record) for record in records]
    threads = [
        thread
        for thread in threads
        if (wanted.status is None or thread["status"] == wanted.status)
        and (wanted.values is None or metadata_contains(thread["values"] or {}, wanted.values))
    ]
    return records, threads


@router.post("/search")
async def search_threads(
    search: ThreadSearch, response: Response, services: ServicesDep, principal: PrincipalDep
) -> list[dict[str, Any]]:
    """The caller's threads that match, a page at a time.

    Each is a thread object, or only its `select`ed fields. `X-Pagination-Total` counts
    them all; `X-Pagination-Next` is the next page's offset, when there is one.
    """
    records, threads = await _matching(services, principal.owner, search, search.ids)
    sort_by = search.sort_by or "updated_at"
    newest_first = search.sort_by is None or search.sort_order != "asc"
    if threads is None and sort_by == "status":
        threads = [await read_thread(services, record) for record in records]
    if threads is None:
        records.sort(key=lambda record: str(getattr(record, sort_by)), reverse=newest_first)
        page_records = records[search.offset : search.offset + search.limit]
        page = [await read_thread(services, record) for record in page_records]
        total = len(records)
    else:
        threads.sort(key=lambda thread: str(thread[sort_by]), reverse=newest_first)
        page = threads[search.offset : search.offset + search.limit]
        total = len(threads)
    response.headers["X-Pagination-Total"] = str(total)
    if search.offset + search.limit < total:
        response.headers["X-Pagination-Next"] = str(search.offset + search.limit)
    fields = set(search.select) if search.select else None
    return [
        {key: value for key, value in thread.items() if fields is None or key in fields}
        for thread in page
    ]


@router.post("/count")
async def count_threads(
    wanted: ThreadFilter, services: ServicesDep, principal: PrincipalDep
) -> int:
    """How many of the caller's threads match the filter."""
    records, threads = await _matching(services, principal.owner, wanted)
    return len(records if threads is None else threads)


@router.get("/{thread_id}", responses=_NOT_FOUND)
async def read_one_thread(
    thread_id: ThreadId, services: ServicesDep, principal: PrincipalDep
) -> ThreadPublic:
    """The thread, with its latest state values and its status."""
    return await read_thread(services, await _owned(services, thread_id, principal.owner))


@router.patch("/{thread_id}", responses=_NOT_FOUND, response_model=ThreadPublic)
async def update_thread(
    thread_id: ThreadId,
    body: ThreadPatch,
    services: ServicesDep,
    principal: PrincipalDep,
    prefer: Annotated[str | None, Header()] = None,
) -> ThreadPublic | Response:
    """Merge metadata into the thread's; with `Prefer: return=minimal`, answer 204."""
    await _owned(services, thread_id, principal.owner)
    await _write(services, principal, metadata=body.metadata)
    record = await services.threads.touch(thread_id, body.metadata, state=False)
    if prefer is not None and "return=minimal" in prefer:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return await read_thread(services, record)


STOP_SECONDS = 10.0
"""How long a delete waits for the thread's run to stop (it keeps what it streamed)."""


async def _stop_runs(services: Services, thread_id: str) -> None:
    """Cancel the thread's run, wherever it executes, and wait (a while) until it stops.

    A run writes as it ends (its last events, a partial answer): deleting after that
    leaves nothing of the thread behind.
    """
    deadline = asyncio.get_running_loop().time() + STOP_SECONDS
    cancelled: set[str] = set()
    # Runs queued for the thread first, so none takes it once the running one stops.
    for record in await services.run_records.list(thread_id):
        if record.status == "pending":
            cancelled.add(record.run_id)
            with contextlib.suppress(Refused):
                await services.runs.cancel(thread_id, record.run_id)
    while (holder := await services.leases.holder(thread_id)) is not None:
        if holder.run_id not in cancelled:
            cancelled.add(holder.run_id)
            with contextlib.suppress(Refused):  # it ended meanwhile
                await services.runs.cancel(thread_id, holder.run_id)
        if asyncio.get_running_loop().time() > deadline:
            return
        # The run may execute on another process: its lease is the only shared signal.
        await asyncio.sleep(0.05)


@router.delete("/{thread_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete_thread(
    thread_id: ThreadId, services: ServicesDep, principal: PrincipalDep
) -> None:
    """Delete the thread: its checkpoints, runs, event log and record; a run on it stops."""
    await _owned(services, thread_id, principal.owner)
    await _stop_runs(services, thread_id)
    await forget_thread(services, thread_id)
    await services.log.delete(thread_id)


@router.post("/{thread_id}/copy", responses=_NOT_FOUND)
async def copy_thread(
    thread_id: ThreadId, services: ServicesDep, principal: PrincipalDep
) -> ThreadPublic:
    """A new thread of the caller's with the thread's metadata and every checkpoint."""
    record = await _owned(services, thread_id, principal.owner)
    await _write(services, principal, new_thread=True)
    copy_id = str(uuid.uuid4())
    await services.threads.ensure(copy_id, principal.owner, record.metadata)
    await services.memory.checkpointer.acopy_thread(thread_id, copy_id)
    return await read_thread(services, await _owned(services, copy_id, principal.owner))


async def _state(
    services: Services, thread_id: str, owner: str, *, subgraphs: bool, **checkpoint: Any
) -> ThreadStatePublic:
    """The owner's thread's state at `checkpoint` (its latest when none is named)."""
    await _owned(services, thread_id, owner)
    config = thread_config(thread_id, **checkpoint)
    return thread_state(await services.graph.aget_state(config, subgraphs=subgraphs))


@router.get("/{thread_id}/state", responses=_NOT_FOUND)
async def read_thread_state(
    thread_id: ThreadId,
    services: ServicesDep,
    principal: PrincipalDep,
    subgraphs: Subgraphs = False,
) -> ThreadStatePublic:
    """The thread's latest state (empty before its first checkpoint)."""
    return await _state(services, thread_id, principal.owner, subgraphs=subgraphs)


@router.get("/{thread_id}/state/{checkpoint_id}", responses=_NOT_FOUND)
async def read_thread_state_at(
    thread_id: ThreadId,
    checkpoint_id: CheckpointId,
    services: ServicesDep,
    principal: PrincipalDep,
    subgraphs: Subgraphs = False,
) -> ThreadStatePublic:
    """The thread's state at one checkpoint."""
    at = {"checkpoint_id": checkpoint_id}
    return await _state(services, thread_id, principal.owner, subgraphs=subgraphs, **at)


@router.post("/{thread_id}/state/checkpoint", responses=_NOT_FOUND)
async def read_thread_state_at_checkpoint(
    thread_id: ThreadId, body: StateAtCheckpoint, services: ServicesDep, principal: PrincipalDep
) -> ThreadStatePublic:
    """The thread's state at a checkpoint given in full (a subgraph's, with its namespace)."""
    at = body.checkpoint.configurable()
    return await _state(services, thread_id, principal.owner, subgraphs=body.subgraphs, **at)


@router.post(
    "/{thread_id}/state",
    responses={
        **_NOT_FOUND,
        400: {"description": "The update does not fit the graph (an unknown node)."},
        409: {"description": "A run is under way on the thread."},
    },
)
async def update_thread_state(
    thread_id: ThreadId, body: StateUpdateBody, services: ServicesDep, principal: PrincipalDep
) -> UpdatePublic:
    """Write to the thread's state as if `as_node` had returned `values`.

    The values go through the state's reducers; from `checkpoint_id`, the write forks
    the thread.
    """
    await _owned(services, thread_id, principal.owner)
    values = _checked_values(body.values, services)
    await _write(services, principal)
    if await services.leases.holder(thread_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"Thread {thread_id} has in-flight runs")
    start = body.checkpoint.configurable() if body.checkpoint else {}
    if body.checkpoint_id:
        start["checkpoint_id"] = body.checkpoint_id
    config = thread_config(thread_id, **start)
    config["metadata"] = {"graph_id": GRAPH_ID}  # in the checkpoint's, as in `langgraph dev`
    try:
        written = await services.graph.aupdate_state(config, values, as_node=body.as_node)
    except BAD_UPDATE as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    await services.threads.touch(thread_id)
    checkpoint = dict(written["configurable"])
    return {
        "checkpoint": checkpoint,
        "configurable": checkpoint,
        "checkpoint_id": str(checkpoint["checkpoint_id"]),
    }


async def _history(
    services: Services,
    thread_id: str,
    *,
    limit: int,
    before: str | dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
    checkpoint: CheckpointConfig | None = None,
) -> list[ThreadStatePublic]:
    config = thread_config(thread_id, **(checkpoint.configurable() if checkpoint else {}))
    return [
        thread_state(snapshot)
        async for snapshot in services.graph.aget_state_history(
            config, filter=metadata, before=_before(before), limit=limit
        )
    ]


@router.post("/{thread_id}/history", responses=_NOT_FOUND)
async def search_thread_history(
    thread_id: ThreadId, search: HistorySearch, services: ServicesDep, principal: PrincipalDep
) -> list[ThreadStatePublic]:
    """The thread's states, newest first, filtered by checkpoint metadata."""
    await _owned(services, thread_id, principal.owner)
    return await _history(
        services,
        thread_id,
        limit=search.limit,
        before=search.before,
        metadata=search.metadata,
        checkpoint=search.checkpoint,
    )


@router.get("/{thread_id}/history", responses=_NOT_FOUND)
async def read_thread_history(
    thread_id: ThreadId,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(max_length=128)] = None,
) -> list[ThreadStatePublic]:
    """The thread's states, newest first (older than the checkpoint `before` names)."""
    await _owned(services, thread_id, principal.owner)
    return await _history(services, thread_id, limit=limit, before=before)
