"""Threads over HTTP, as LangGraph's server answers them (their state: `thread_state.py`).

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
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from langgraph.types import StateUpdate

from server.guard.refusals import Refused
from server.langgraph_api.assistants import metadata_contains
from server.langgraph_api.thread_requests import (
    BAD_UPDATE,
    ThreadCreate,
    ThreadFilter,
    ThreadPatch,
    ThreadSearch,
    ThreadSummary,
)
from server.langgraph_api.thread_state import (
    ThreadPublic,
    read_thread,
    thread_config,
)
from server.services import Services, forget_thread
from server.stores.thread_records import ThreadRecord, ThreadTakenError
from server.web.deps import (
    NO_THREAD,
    PrincipalDep,
    ServicesDep,
    ThreadId,
    checked_state_values,
    hold_write,
    owned_thread,
)

router = APIRouter(prefix="/threads", tags=["threads"])


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
    await hold_write(services, principal, metadata=metadata, new_thread=True)
    try:
        created = await services.threads.ensure(thread_id, principal.owner, metadata)
    except ThreadTakenError as exc:
        raise exists from exc
    if not created and body.if_exists == "raise":
        raise exists
    if created and body.supersteps:
        steps = [
            [StateUpdate(checked_state_values(u.values, services), u.as_node) for u in s.updates]
            for s in body.supersteps
        ]
        try:
            await services.graph.abulk_update_state(thread_config(thread_id), steps)
        except BAD_UPDATE as exc:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"Thread {thread_id} was created, but its supersteps were not written: {exc}",
            ) from exc
    return await read_thread(services, await owned_thread(services, thread_id, principal.owner))


@router.get("")
async def list_threads(
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[ThreadSummary]:
    """The caller's threads, newest run first, titled by their first message."""
    entries = await services.threads.listing(principal.owner, limit)
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


@router.get("/{thread_id}", responses=NO_THREAD)
async def read_one_thread(
    thread_id: ThreadId, services: ServicesDep, principal: PrincipalDep
) -> ThreadPublic:
    """The thread, with its latest state values and its status."""
    return await read_thread(services, await owned_thread(services, thread_id, principal.owner))


@router.patch("/{thread_id}", responses=NO_THREAD, response_model=ThreadPublic)
async def update_thread(
    thread_id: ThreadId,
    body: ThreadPatch,
    services: ServicesDep,
    principal: PrincipalDep,
    prefer: Annotated[str | None, Header()] = None,
) -> ThreadPublic | Response:
    """Merge metadata into the thread's; with `Prefer: return=minimal`, answer 204."""
    await owned_thread(services, thread_id, principal.owner)
    await hold_write(services, principal, metadata=body.metadata)
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


@router.delete("/{thread_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NO_THREAD)
async def delete_thread(
    thread_id: ThreadId, services: ServicesDep, principal: PrincipalDep
) -> None:
    """Delete the thread: its checkpoints, runs, event log and record; a run on it stops."""
    await owned_thread(services, thread_id, principal.owner)
    await erase_thread(services, thread_id)


async def erase_thread(services: Services, thread_id: str) -> None:
    """Stop the thread's runs, then delete all of it (`POST /threads/prune` too).

    Its crons go with it, as on LangGraph's server: they would only tick into a thread
    that is gone.
    """
    owner = await services.owners.owner_of(thread_id)
    await _stop_runs(services, thread_id)
    if owner is not None:
        for cron in await services.crons.of_owner(owner):
            if cron.record.thread_id == thread_id:
                await services.crons.delete(cron.record)
    await forget_thread(services, thread_id)
    await services.log.delete(thread_id)


@router.post("/{thread_id}/copy", responses=NO_THREAD)
async def copy_thread(
    thread_id: ThreadId, services: ServicesDep, principal: PrincipalDep
) -> ThreadPublic:
    """A new thread of the caller's with the thread's metadata and every checkpoint."""
    record = await owned_thread(services, thread_id, principal.owner)
    await hold_write(services, principal, new_thread=True)
    copy_id = str(uuid.uuid4())
    await services.threads.ensure(copy_id, principal.owner, record.metadata)
    await services.memory.checkpointer.acopy_thread(thread_id, copy_id)
    return await read_thread(services, await owned_thread(services, copy_id, principal.owner))
