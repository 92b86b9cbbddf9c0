"""Threads over HTTP: create, read state and history, delete."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field

from server.deps import ServicesDep
from server.events import to_wire

router = APIRouter(prefix="/threads", tags=["threads"])


class ThreadCreate(BaseModel):
    """A new thread; the id may be chosen by the client."""

    thread_id: str | None = Field(default=None, min_length=1, max_length=200)


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


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_thread(body: ThreadCreate) -> ThreadPublic:
    """Mint a thread id (threads come into being with their first run)."""
    return ThreadPublic(thread_id=body.thread_id or str(uuid.uuid4()))


@router.get("/{thread_id}/state")
async def read_thread_state(thread_id: str, services: ServicesDep) -> ThreadState:
    """The thread's latest state; 404 when it has none."""
    snapshot = await services.graph.aget_state(_config(thread_id))
    if not snapshot.values:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"thread {thread_id} not found")
    return ThreadState(
        thread_id=thread_id,
        values=to_wire(dict(snapshot.values)),
        checkpoint_id=snapshot.config["configurable"].get("checkpoint_id"),
        next=list(snapshot.next),
    )


@router.get("/{thread_id}/history")
async def read_thread_history(
    thread_id: str, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> list[CheckpointPublic]:
    """The thread's checkpoints, newest first."""
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


@router.delete("/{thread_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_thread(thread_id: str, services: ServicesDep) -> None:
    """Delete the thread's checkpoints and event log."""
    await services.memory.checkpointer.adelete_thread(thread_id)
    await services.log.delete(thread_id)
