"""How the agent streaming protocol has a run streamed: LangGraph's v3 events, as they come.

Every event the graph emits — lifecycle, messages (token deltas), values, updates,
custom, tasks — becomes one protocol event (`engine.events.from_graph`), logged in
order for every subscriber.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.stream.transformers import CustomTransformer, UpdatesTransformer

from graphs.interface import decided_route
from nodes.run_context import RunContext
from server.engine.events import from_graph
from server.engine.progress import RunProgress
from server.engine.run import Run


@dataclass(frozen=True)
class ProtocolStream:
    """The agent protocol's stream format (`StreamFormat`)."""

    queue_when_busy = False
    mirror_context = False

    async def events(
        self,
        graph: CompiledStateGraph[Any, RunContext, Any, Any],
        run: Run,
        config: RunnableConfig,
        context: RunContext,
    ) -> AsyncIterator[dict[str, Any]]:
        """The graph's v3 events as protocol events."""
        stream = await graph.astream_events(
            run.request.input,
            config,
            version="v3",
            context=context,
            transformers=[CustomTransformer, UpdatesTransformer],
            durability=run.durability,
        )
        graph_names: dict[str, str] = {}
        async for event in stream:
            yield from_graph(event, graph_names)

    def note(self, progress: RunProgress, event: dict[str, Any]) -> None:
        """Hand the tracker a protocol event's tokens and routing decision."""
        note_protocol_event(progress, event)


def note_protocol_event(progress: RunProgress, event: dict[str, Any]) -> None:
    """Hand the tracker a protocol run's tokens and routing decision."""
    params = event["params"]
    data = params.get("data")
    if not isinstance(data, dict):
        return
    if event["method"] == "messages":
        node, namespace = params.get("node"), params.get("namespace") or ()
        if data.get("event") == "message-start":
            progress.text(node, namespace, str(data.get("id")), "")
        elif data.get("event") == "content-block-delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text-delta":
                progress.text(node, namespace, None, str(delta.get("text") or ""))
    elif event["method"] == "values" and not params.get("namespace"):
        progress.values = data
    elif event["method"] == "updates":
        route = decided_route(data.get("node"), data.get("values"))
        if route is not None:
            progress.route = route
