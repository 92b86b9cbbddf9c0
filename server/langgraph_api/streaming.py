"""How LangGraph's server API has a run streamed: the stream modes the run asked for.

The run's first event is its `metadata`; then each chunk of the modes asked for, named
as `langgraph dev` names it (`stream_modes.api_events`). Each event's data is encoded
once, as it is made: the log's copy and every SSE frame use those bytes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from nodes.run_context import RunContext
from server.engine.events import PreEncoded
from server.engine.progress import RunProgress
from server.engine.run import Run
from server.langgraph_api.run_config import RunOrigin, langgraph_config
from server.langgraph_api.stream_modes import api_events, api_json


@dataclass(frozen=True)
class ApiStream:
    """LangGraph's API stream format (`StreamFormat`): its modes and breakpoints."""

    modes: tuple[str, ...] = ("values",)
    subgraphs: bool = False
    interrupt_before: list[str] | Literal["*"] | None = None
    interrupt_after: list[str] | Literal["*"] | None = None
    origin: RunOrigin = RunOrigin()
    """The request that created the run, named in its configuration."""

    queue_when_busy = True
    mirror_context = True

    async def events(
        self,
        graph: CompiledStateGraph[Any, RunContext, Any, Any],
        run: Run,
        config: RunnableConfig,
        context: RunContext,
    ) -> AsyncIterator[dict[str, Any]]:
        """`metadata`, then the graph's chunks in the modes asked for.

        The graph runs with LangGraph's server keys in its configuration (`run_config`).
        """
        yield api_event("metadata", {"run_id": run.run_id, "attempt": 1})
        config = langgraph_config(config, run.request.owner, self.origin)
        command = run.request.command
        graph_input = Command(**command) if command else run.request.input
        async for name, data in api_events(
            graph, graph_input, config, modes=self.modes, subgraphs=self.subgraphs,
            context=context, interrupt_before=self.interrupt_before,
            interrupt_after=self.interrupt_after, durability=run.durability,
        ):  # fmt: skip
            yield api_event(name, data)

    def note(self, progress: RunProgress, event: dict[str, Any]) -> None:
        """Hand the tracker a `messages-tuple` token."""
        note_api_message(progress, event)


def api_event(name: str, data: Any) -> PreEncoded:
    """An API stream event for the thread's log (channel `api`, at the root namespace).

    Its data is encoded here, once: the log's copy and every SSE frame use those bytes.
    """
    data_raw = api_json(data)
    event = {
        "type": "event",
        "method": "api",
        "params": {"namespace": [], "timestamp": int(time.time() * 1000), "event": name,
                   "data": orjson.loads(data_raw)},
    }  # fmt: skip
    return PreEncoded(event, data_raw)


def note_api_message(progress: RunProgress, event: dict[str, Any]) -> None:
    """Hand the tracker a `messages-tuple` token of an API run."""
    params = event["params"]
    if not params["event"].startswith("messages|") and params["event"] != "messages":
        return
    chunk, metadata = params["data"]
    if chunk.get("type") != "AIMessageChunk":
        return
    text = chunk.get("content")
    progress.text(
        metadata.get("langgraph_node"),
        str(metadata.get("langgraph_checkpoint_ns", "")),
        str(chunk.get("id")),
        text if isinstance(text, str) else "",
    )
