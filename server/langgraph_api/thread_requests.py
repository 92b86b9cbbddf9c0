"""LangGraph API thread requests: the bodies of the thread routes, as `langgraph-sdk` sends them.

Values a client asks to store must be plain JSON that reads back as it was written.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from server.guard.validation import THREAD_ID_PATTERN
from server.langgraph_api.thread_state import ThreadStatus


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


def before_config(before: str | dict[str, Any] | None) -> RunnableConfig | None:
    """`before` as a configuration, from an id, a checkpoint or a configuration."""
    if not before:
        return None
    if isinstance(before, str):
        return {"configurable": {"checkpoint_id": before}}
    configurable = before.get("configurable")
    return {"configurable": configurable if isinstance(configurable, dict) else before}
