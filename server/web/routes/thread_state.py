"""A thread's state and history over HTTP, as LangGraph's server answers them.

Read at the latest checkpoint or any other (a subgraph's too), written as if a node had
returned the values, and paged newest first.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from server.langgraph_api.assistants import GRAPH_ID
from server.langgraph_api.thread_requests import (
    BAD_UPDATE,
    CheckpointConfig,
    HistorySearch,
    StateAtCheckpoint,
    StateUpdateBody,
    before_config,
)
from server.langgraph_api.thread_state import (
    ThreadStatePublic,
    UpdatePublic,
    thread_config,
    thread_state,
)
from server.services import Services
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

CheckpointId = Annotated[str, Path(min_length=1, max_length=128)]
Subgraphs = Annotated[bool, Query(description="Include each pending subgraph's state.")]


async def _state(
    services: Services, thread_id: str, owner: str, *, subgraphs: bool, **checkpoint: Any
) -> ThreadStatePublic:
    """The owner's thread's state at `checkpoint` (its latest when none is named)."""
    await owned_thread(services, thread_id, owner)
    config = thread_config(thread_id, **checkpoint)
    return thread_state(await services.graph.aget_state(config, subgraphs=subgraphs))


@router.get("/{thread_id}/state", responses=NO_THREAD)
async def read_thread_state(
    thread_id: ThreadId,
    services: ServicesDep,
    principal: PrincipalDep,
    subgraphs: Subgraphs = False,
) -> ThreadStatePublic:
    """The thread's latest state (empty before its first checkpoint)."""
    return await _state(services, thread_id, principal.owner, subgraphs=subgraphs)


@router.get("/{thread_id}/state/{checkpoint_id}", responses=NO_THREAD)
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


@router.post("/{thread_id}/state/checkpoint", responses=NO_THREAD)
async def read_thread_state_at_checkpoint(
    thread_id: ThreadId, body: StateAtCheckpoint, services: ServicesDep, principal: PrincipalDep
) -> ThreadStatePublic:
    """The thread's state at a checkpoint given in full (a subgraph's, with its namespace)."""
    at = body.checkpoint.configurable()
    return await _state(services, thread_id, principal.owner, subgraphs=body.subgraphs, **at)


@router.post(
    "/{thread_id}/state",
    responses={
        **NO_THREAD,
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
    await owned_thread(services, thread_id, principal.owner)
    values = checked_state_values(body.values, services)
    await hold_write(services, principal)
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
            config, filter=metadata, before=before_config(before), limit=limit
        )
    ]


@router.post("/{thread_id}/history", responses=NO_THREAD)
async def search_thread_history(
    thread_id: ThreadId, search: HistorySearch, services: ServicesDep, principal: PrincipalDep
) -> list[ThreadStatePublic]:
    """The thread's states, newest first, filtered by checkpoint metadata."""
    await owned_thread(services, thread_id, principal.owner)
    return await _history(
        services,
        thread_id,
        limit=search.limit,
        before=search.before,
        metadata=search.metadata,
        checkpoint=search.checkpoint,
    )


@router.get("/{thread_id}/history", responses=NO_THREAD)
async def read_thread_history(
    thread_id: ThreadId,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(max_length=128)] = None,
) -> list[ThreadStatePublic]:
    """The thread's states, newest first (older than the checkpoint `before` names)."""
    await owned_thread(services, thread_id, principal.owner)
    return await _history(services, thread_id, limit=limit, before=before)
