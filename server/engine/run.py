"""A run as the engine holds it, and what is said of runs whatever the wire format."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from nodes.errors import ErrorCode
from server.api_stream import api_wire
from server.assistants import GRAPH_ID, MANAGER_ASSISTANT_ID
from server.engine.progress import RunProgress
from server.protocol import RunStartParams
from server.run_records import RunStatus

NO_ACTIVE_RUN = "the thread has no active run with that id"
"""The answer to a cancel of a run that is not running (or not the caller's)."""


@dataclass(eq=False)
class Run:
    """A run executing on this process."""

    run_id: str
    thread_id: str
    task: asyncio.Task[None] | None = None
    cancelled: bool = False
    progress: RunProgress = field(default_factory=RunProgress)
    """Timing, route and answer text seen in the run's stream."""
    winding_down: bool = False
    """The graph has stopped: the run is recording how it ended."""
    stopper: asyncio.Task[None] | None = None
    limit_key: str | None = None
    """Whose token budget the run's model calls are charged to."""
    owner: str | None = None
    api: ApiRun | None = None
    """How a run started through LangGraph's API streams (None: the protocol's events)."""
    rollback: bool = False
    """Cancelled with `rollback`: its checkpoints and record go when it stops."""


@dataclass(frozen=True)
class ApiRun:
    """The LangGraph API's options of a run: what it streams and where it starts."""

    modes: tuple[str, ...] = ("values",)
    subgraphs: bool = False
    command: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    """Fork from this checkpoint (`checkpoint_id`, `checkpoint_ns`) instead of the latest."""
    interrupt_before: list[str] | Literal["*"] | None = None
    interrupt_after: list[str] | Literal["*"] | None = None
    temporary: bool = False
    """A stateless run: its thread is deleted when it ends."""


def api_event(name: str, data: Any) -> dict[str, Any]:
    """An API stream event for the thread's log (channel `api`, at the root namespace)."""
    return {
        "type": "event",
        "method": "api",
        "params": {"namespace": [], "timestamp": int(time.time() * 1000), "event": name,
                   "data": api_wire(data)},
    }  # fmt: skip


_STATUS = {"completed": "success", "interrupted": "interrupted"}


SHUTDOWN_MESSAGE = (
    "the server shut down before the answer finished; what was written is kept — send "
    "the message again and another server will answer"
)
"""How a run cut off by the end of its process's grace period ended."""
LOST_MESSAGE = (
    "the server process running this answer stopped before it finished; "
    "the conversation keeps its last saved state — send the message again"
)
"""How a run lost with its process (or its storage) ended, in words a user can act on."""


def status_of(terminal: dict[str, Any]) -> RunStatus:
    """A run's record status, from its terminal event."""
    data = terminal["params"]["data"]
    if data["event"] in _STATUS:
        return _STATUS[data["event"]]  # type: ignore[return-value]
    return "interrupted" if data.get("code") == ErrorCode.CANCELLED else "error"


def mirrored(run: Run, params: RunStartParams) -> dict[str, Any]:
    """The run's configurable: its ids and, for API runs, its context, as LangGraph has it.

    LangGraph's server mirrors a run's context into `configurable`, where checkpoints
    and debug events show it; ALMA's protocol runs keep just the thread.
    """
    if run.api is None:
        return {"thread_id": run.thread_id}
    return {**params.context, "run_id": run.run_id, "thread_id": run.thread_id,
            "graph_id": GRAPH_ID, "assistant_id": MANAGER_ASSISTANT_ID}  # fmt: skip


def recorded(kwargs: dict[str, Any], run: Run, params: RunStartParams) -> dict[str, Any]:
    """What a run was started with, as LangGraph's Run object lists it."""
    if not kwargs:
        return {}
    config = dict(params.config)
    config["configurable"] = {**(config.get("configurable") or {}), **mirrored(run, params)}
    config["metadata"] = {"created_by": "system", **params.metadata, "graph_id": GRAPH_ID,
                          "assistant_id": MANAGER_ASSISTANT_ID}  # fmt: skip
    return {**kwargs, "config": config}


def fork_point(api: ApiRun | None) -> dict[str, Any]:
    """The checkpoint an API run starts from, if it names one."""
    if api is None or not api.checkpoint or not api.checkpoint.get("checkpoint_id"):
        return {}
    return {"checkpoint_id": api.checkpoint["checkpoint_id"],
            "checkpoint_ns": api.checkpoint.get("checkpoint_ns") or ""}  # fmt: skip


def busy_message(thread_id: str, run_id: str) -> str:
    """Why a run may not start now, and what to do instead."""
    return (
        f"thread {thread_id} is busy with run {run_id}; wait for it, cancel it, or start "
        "with multitask_strategy 'enqueue', 'interrupt' or 'rollback'"
    )
