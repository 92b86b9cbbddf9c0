"""LangGraph's Thread and ThreadState, as its server API shows them, built from ALMA's parts.

A thread's state comes from the checkpointer (LangGraph's `StateSnapshot`), its times
and metadata from its record, its status from whether a run holds it, how its last run
ended (the thread's event log) and whether its state waits on a next step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, cast

from langchain_core.runnables import RunnableConfig
from langgraph.types import Interrupt, PregelTask, StateSnapshot
from typing_extensions import TypedDict

from server.engine.events import run_end
from server.langgraph_api.stream_modes import api_wire
from server.langgraph_api.stream_modes import checkpoint_of as api_checkpoint_of
from server.services import Services
from server.stores.thread_records import ThreadRecord

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]


class CheckpointPublic(TypedDict):
    """Where a state is kept: the thread, the (sub)graph's namespace, the checkpoint."""

    checkpoint_id: str
    thread_id: str
    checkpoint_ns: NotRequired[str]
    checkpoint_map: NotRequired[dict[str, Any]]
    """Each enclosing graph's checkpoint, for a subgraph's state."""


class InterruptPublic(TypedDict):
    """A pause a node asked for, with what it shows the client."""

    id: str
    value: Any


class TaskPublic(TypedDict):
    """A step the state waits on (or that produced it), with its outcome."""

    id: str
    name: str
    path: list[Any]
    error: str | None
    interrupts: list[InterruptPublic]
    checkpoint: dict[str, Any] | None
    """The subgraph's checkpoint configuration, when its state was not asked for."""
    state: ThreadStatePublic | None
    """The subgraph's state, with `subgraphs`."""
    result: Any


class ThreadStatePublic(TypedDict):
    """A thread's state at one checkpoint."""

    values: Any
    next: list[str]
    tasks: list[TaskPublic]
    metadata: dict[str, Any] | None
    created_at: str | None
    checkpoint: CheckpointPublic | None
    parent_checkpoint: CheckpointPublic | None
    interrupts: list[InterruptPublic]
    checkpoint_id: str | None
    parent_checkpoint_id: str | None


class ThreadError(TypedDict):
    """How the thread's last run failed."""

    error: str
    message: str


class ThreadPublic(TypedDict):
    """A thread, as LangGraph's server API shows one."""

    thread_id: str
    created_at: str
    updated_at: str
    state_updated_at: str
    metadata: dict[str, Any]
    status: ThreadStatus
    config: dict[str, Any]
    values: dict[str, Any] | None
    """The latest state; `None` before the first checkpoint."""
    interrupts: dict[str, list[InterruptPublic]]
    """The pending interrupts of the latest state, by task id."""
    error: ThreadError | None


class UpdatePublic(TypedDict):
    """Where a state update was written."""

    checkpoint: dict[str, Any]
    configurable: dict[str, Any]
    checkpoint_id: str


def thread_config(thread_id: str, **configurable: Any) -> RunnableConfig:
    """The configuration that names a thread's root graph (and a checkpoint) to the graph."""
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", **configurable}}


def checkpoint_of(config: RunnableConfig | None) -> CheckpointPublic | None:
    """The checkpoint a configuration names, or `None` when it names none."""
    return cast("CheckpointPublic | None", api_checkpoint_of(config))


def _interrupt(interrupt: Interrupt) -> InterruptPublic:
    return {"id": interrupt.id, "value": api_wire(interrupt.value)}


def _task(task: PregelTask) -> TaskPublic:
    substate = task.state
    return {
        "id": task.id,
        "name": task.name,
        "path": api_wire(list(task.path)),
        "error": None if task.error is None else repr(task.error),
        "interrupts": [_interrupt(i) for i in task.interrupts],
        "checkpoint": (
            api_wire(substate["configurable"])
            if substate is not None and not isinstance(substate, StateSnapshot)
            else None
        ),
        "state": thread_state(substate) if isinstance(substate, StateSnapshot) else None,
        "result": api_wire(task.result),
    }


def thread_state(snapshot: StateSnapshot) -> ThreadStatePublic:
    """A `StateSnapshot` as LangGraph's server shows a ThreadState."""
    metadata = api_wire(dict(snapshot.metadata)) if snapshot.metadata is not None else None
    if metadata is not None and metadata.get("checkpoint_ns") == "":
        del metadata["checkpoint_ns"]  # as langgraph dev drops the root's
    checkpoint = checkpoint_of(snapshot.config)
    parent = checkpoint_of(snapshot.parent_config)
    return {
        "values": api_wire(snapshot.values),
        "next": list(snapshot.next),
        "tasks": [_task(task) for task in snapshot.tasks],
        "metadata": metadata,
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": [_interrupt(i) for i in snapshot.interrupts],
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def _failure(last_event: Mapping[str, Any] | None, snapshot: StateSnapshot) -> ThreadError | None:
    """How the thread's last run failed, if it did and no state was written since."""
    end = run_end(last_event) if last_event is not None else None
    if last_event is None or end is None or not end.errored:
        return None  # a cancelled run is not an error, in ALMA as in LangGraph
    # The event's time is whole milliseconds, cut down: a checkpoint written in the
    # same millisecond, before it, must not look later.
    ended = datetime.fromtimestamp((last_event["params"]["timestamp"] + 1) / 1000, UTC)
    if snapshot.created_at and datetime.fromisoformat(snapshot.created_at) > ended:
        return None  # a state update (an edit, a fork) after the failure moved on
    return {"error": end.code or "error", "message": end.error or ""}


async def read_thread(services: Services, record: ThreadRecord) -> ThreadPublic:
    """The thread `record` describes, with its latest state and its status now."""
    thread_id = record.thread_id
    holder, last_event, latest = await asyncio.gather(
        services.leases.holder(thread_id),
        services.log.last(thread_id),
        services.graph.aget_state(thread_config(thread_id)),
    )
    failure = _failure(last_event, latest)
    has_state = latest.created_at is not None
    status: ThreadStatus = (
        "busy" if holder is not None
        else "error" if failure is not None
        else "interrupted" if latest.next
        else "idle"
    )  # fmt: skip
    return {
        "thread_id": thread_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "state_updated_at": record.state_updated_at,
        "metadata": record.metadata,
        "status": status,
        "config": {"configurable": {}} if has_state else {},
        "values": api_wire(latest.values) if has_state else None,
        "interrupts": {
            task.id: [_interrupt(i) for i in task.interrupts]
            for task in latest.tasks
            if task.interrupts
        },
        "error": failure,
    }
