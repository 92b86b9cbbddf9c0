"""A run as the engine holds it, and what is said of runs whatever the wire format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Durability

from nodes.errors import ErrorCode
from nodes.run_context import RunContext
from server.engine.events import RunEnd
from server.engine.progress import RunProgress
from server.langgraph_api.assistants import GRAPH_ID, MANAGER_ASSISTANT_ID
from server.stores.run_records import RunRecord, RunStatus

NO_ACTIVE_RUN = "the thread has no active run with that id"
"""The answer to a cancel of a run that is not running (or not the caller's)."""


Strategy = Literal["reject", "enqueue", "interrupt", "rollback"]
"""What a run does when its thread is busy with another."""


class StreamFormat(Protocol):
    """How a wire format has a run's graph streamed: the events its run logs.

    The engine runs every run the same way and logs what its format yields; each wire
    format (`agent_protocol.streaming`, `langgraph_api.streaming`) brings its own.
    """

    @property
    def queue_when_busy(self) -> bool:
        """On a busy thread, answer at once and let the run wait in the background.

        LangGraph's API does (the run is `pending` meanwhile); the agent protocol waits
        for the thread before answering.
        """

    @property
    def mirror_context(self) -> bool:
        """Mirror the run's context and ids into `configurable`, as LangGraph's server does."""

    def events(
        self,
        graph: CompiledStateGraph[Any, RunContext, Any, Any],
        run: Run,
        config: RunnableConfig,
        context: RunContext,
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream the graph for `run`; its events, in the order they are to be logged."""

    def note(self, progress: RunProgress, event: dict[str, Any]) -> None:
        """Hand the run's tracker the tokens (and route) `event` shows."""


@dataclass(frozen=True)
class StartRequest:
    """A run to start, as every wire format asks for one once it has read its request.

    The adapters (agent protocol, LangGraph API, terminal) each turn their own request
    into this; from here on a run is started, checked and owned one way.
    """

    owner: str
    """Who starts it: the thread becomes theirs."""
    limit_key: str
    """Whose run and token limits it counts against."""
    assistant_id: str
    input: Any
    """`{"messages": [...]}`, validated when the run starts; None resumes the thread."""
    stream: StreamFormat
    """How the run is streamed and logged: its wire format's own events."""
    thread_id: str | None = None
    """None: a new thread."""
    command: dict[str, Any] | None = None
    """LangGraph's `Command` (resume, update, goto) instead of an input."""
    checkpoint: dict[str, Any] | None = None
    """Fork from this checkpoint (`checkpoint_id`, `checkpoint_ns`) instead of the latest."""
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    multitask_strategy: Strategy = "reject"
    create_thread: bool = True
    """A thread nobody owns may be started on (and becomes the caller's)."""
    temporary: bool = False
    """A stateless run: its thread is deleted when it ends."""
    record_kwargs: dict[str, Any] = field(default_factory=dict)
    """What LangGraph's Run object lists as the run's `kwargs` (API runs)."""
    durability: Durability | None = None
    """When its steps are saved; None: the service's setting (`ALMA_DURABILITY`)."""
    title: str = ""
    """The conversation's title, from its input (set where the run starts)."""


@dataclass(eq=False)
class Run:
    """A run executing on this process."""

    run_id: str
    thread_id: str
    request: StartRequest
    """What it was started with."""
    record: RunRecord
    durability: Durability
    """When its steps are saved: the request's choice, else the service's."""
    """Its record as last written: `pending`, then `running` with its first `seq`."""
    task: asyncio.Task[None] | None = None
    cancelled: bool = False
    progress: RunProgress = field(default_factory=RunProgress)
    """Timing, route and answer text seen in the run's stream."""
    winding_down: bool = False
    """The graph has stopped: the run is recording how it ended."""
    stopper: asyncio.Task[None] | None = None
    rollback: bool = False
    """Cancelled with `rollback`: its checkpoints and record go when it stops."""
    lease_lost: bool = False
    """Its thread's lease lapsed: it stops, and writes nothing more to the thread."""


async def cancel_until_stopped(run: Run, task: asyncio.Task[None]) -> None:
    """Cancel `run`'s `task` until the run has stopped streaming.

    On Python 3.11, `asyncio.wait_for` (used inside redis-py) can swallow a cancellation
    that lands as its inner call completes: ask again until the run winds down (its
    wind-down itself must not be cancelled).
    """
    while not task.done() and not run.winding_down:
        task.cancel()
        await asyncio.wait({task}, timeout=0.25)


SHUTDOWN_MESSAGE = (
    "the server shut down before the answer finished; what was written is kept — send "
    "the message again and another server will answer"
)
"""How a run cut off by the end of its process's grace period ended."""
LEASE_LOST_MESSAGE = (
    "the server running this answer lost its hold on the conversation (its storage did "
    "not answer in time) and stopped; send the message again"
)
"""How a run that lost its thread's lease ended."""
LOST_MESSAGE = (
    "the server process running this answer stopped before it finished; "
    "the conversation keeps its last saved state — send the message again"
)
"""How a run lost with its process (or its storage) ended, in words a user can act on."""


def status_of(end: RunEnd) -> RunStatus:
    """A run's record status, from how it ended."""
    if end.ending == "completed" or (end.ending == "interrupted" and end.code is None):
        # A run stopped at an `interrupt()` ended well, waiting for an answer: LangGraph's
        # server records it as a success (the thread, not the run, is interrupted).
        return "success"
    if end.ending == "interrupted" or end.code == ErrorCode.CANCELLED:
        return "interrupted"
    return "error"


def mirrored(request: StartRequest, run_id: str, thread_id: str) -> dict[str, Any]:
    """The run's configurable: its ids and, for API runs, its context, as LangGraph has it.

    LangGraph's server mirrors a run's context into `configurable`, where checkpoints
    and debug events show it; ALMA's protocol runs keep just the thread.
    """
    if not request.stream.mirror_context:
        return {"thread_id": thread_id}
    return {**request.context, "run_id": run_id, "thread_id": thread_id,
            "graph_id": GRAPH_ID, "assistant_id": MANAGER_ASSISTANT_ID}  # fmt: skip


def recorded(
    request: StartRequest, run_id: str, thread_id: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    """What a run was started with, as LangGraph's Run object lists it."""
    if not request.record_kwargs:
        return {}
    config = dict(request.config)
    mirror = mirrored(request, run_id, thread_id)
    config["configurable"] = {**(config.get("configurable") or {}), **mirror}
    config["metadata"] = metadata
    durability = request.durability or "async"
    saving = {"durability": durability, "checkpoint_during": durability != "exit"}
    return {**request.record_kwargs, **saving, "config": config}


def fork_point(request: StartRequest) -> dict[str, Any]:
    """The checkpoint a run starts from, if it names one."""
    checkpoint = request.checkpoint
    if not checkpoint or not checkpoint.get("checkpoint_id"):
        return {}
    return {"checkpoint_id": checkpoint["checkpoint_id"],
            "checkpoint_ns": checkpoint.get("checkpoint_ns") or ""}  # fmt: skip


def busy_message(thread_id: str, run_id: str) -> str:
    """Why a run may not start now, and what to do instead."""
    return (
        f"thread {thread_id} is busy with run {run_id}; wait for it, cancel it, or start "
        "with multitask_strategy 'enqueue', 'interrupt' or 'rollback'"
    )
