"""Threads over HTTP: list, create, read state and history, delete."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field

from server.auth import Principal
from server.deps import PrincipalDep, ServicesDep, ThreadId
from server.events import to_wire
from server.services import Services
from server.validation import THREAD_ID_PATTERN

router = APIRouter(prefix="/threads", tags=["threads"])


class ThreadCreate(BaseModel):
    """A new thread; the id may be chosen by the client."""

    model_config = ConfigDict(extra="forbid")

    thread_id: str | None = Field(default=None, pattern=THREAD_ID_PATTERN, max_length=128)


class ThreadPublic(BaseModel):
    """A thread's id."""

    thread_id: str


class ThreadState(BaseModel):
    """A thread's latest state."""

    thread_id: str
    values: dict[str, Any]
    checkpoint_id: str | None
    next: list[str]


class CheckpointPublic(BaseModel):
    """One checkpoint of a thread's history."""

    checkpoint_id: str
    created_at: str | None
    step: int
    metadata: dict[str, Any]


class ThreadSummary(BaseModel):
    """One of the caller's threads, for a list of conversations."""

    thread_id: str
    title: str
    """The start of the first message of the thread's first run."""
    updated_at: float
    """Unix seconds of the thread's latest run."""


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such thread, or it belongs to another owner."}
}


async def _owned(services: Services, thread_id: str, principal: Principal) -> None:
    # Another owner's thread is indistinguishable from a missing one.
    owner = await services.owners.owner_of(thread_id)
    if owner is not None and owner != principal.owner:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"thread {thread_id} not found")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The id is another owner's thread."}},
)
async def create_thread(
    body: ThreadCreate, services: ServicesDep, principal: PrincipalDep
) -> ThreadPublic:
    """Create a thread owned by the caller (it fills with its first run)."""
    thread_id = body.thread_id or str(uuid.uuid4())
    if await services.owners.claim(thread_id, principal.owner) != principal.owner:
        raise HTTPException(status.HTTP_409_CONFLICT, f"thread id {thread_id} is taken")
    return ThreadPublic(thread_id=thread_id)


@router.get("")
async def list_threads(
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[ThreadSummary]:
    """The caller's threads, newest run first."""
    entries = await services.owners.threads_of(principal.owner, limit)
    return [ThreadSummary(**dataclasses.asdict(entry)) for entry in entries]


@router.get("/{thread_id}/state", responses=_NOT_FOUND)
async def read_thread_state(
    thread_id: ThreadId, services: ServicesDep, principal: PrincipalDep
) -> ThreadState:
    """The thread's latest state; 404 when it has none."""
    await _owned(services, thread_id, principal)
    snapshot = await services.graph.aget_state(_config(thread_id))
    if not snapshot.values:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"thread {thread_id} not found")
    return ThreadState(
        thread_id=thread_id,
        values=to_wire(dict(snapshot.values)),
        checkpoint_id=snapshot.config["configurable"].get("checkpoint_id"),
        next=list(snapshot.next),
    )


@router.get("/{thread_id}/history", responses=_NOT_FOUND)
async def read_thread_history(
    thread_id: ThreadId,
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> list[CheckpointPublic]:
    """The thread's checkpoints, newest first."""
    await _owned(services, thread_id, principal)
    history = []
    async for snapshot in services.graph.aget_state_history(_config(thread_id), limit=limit):
        metadata = snapshot.metadata or {}
        history.append(
            CheckpointPublic(
                checkpoint_id=snapshot.config["configurable"]["checkpoint_id"],
                created_at=snapshot.created_at,
                step=int(metadata.get("step", -1)),
                metadata=to_wire(metadata),
            )
        )
    return history


@router.delete("/{thread_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete_thread(
    thread_id: ThreadId, services: ServicesDep, principal: PrincipalDep
) -> None:
    """Delete the thread's checkpoints and event log."""
    await _owned(services, thread_id, principal)
    await services.memory.checkpointer.adelete_thread(thread_id)
    await services.log.delete(thread_id)
    await services.owners.forget(thread_id)
