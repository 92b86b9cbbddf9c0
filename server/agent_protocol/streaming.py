"""How the agent streaming protocol has a run streamed: LangGraph's v3 events, as they come.

Every event the graph emits — lifecycle, messages (token deltas), values, updates,
custom, tasks — becomes one protocol event (`engine.events.from_graph`), logged in
order for every subscriber. An interrupt the graph stops at (`interrupt()` in a node)
becomes one `input.requested` event, at the namespace it was first seen in, as on
LangGraph's server; the run then ends `interrupted`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.stream.transformers import CustomTransformer, UpdatesTransformer
from langgraph.types import Command, Interrupt

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
        """The graph's v3 events as protocol events; a resume runs the request's `Command`."""
        command = run.request.command
        stream = await graph.astream_events(
            Command(**command) if command else run.request.input,
            config,
            version="v3",
            context=context,
            transformers=[CustomTransformer, UpdatesTransformer],
            durability=run.durability,
        )
        graph_names: dict[str, str] = {}
        asked: set[str] = set()
        async for event in stream:
            wire = from_graph(event, graph_names)
            if wire["method"] == "messages" and not isinstance(wire["params"]["data"], dict):
                # A message a node wrote whole (the rejected plan's answer) has no
                # protocol events of its own: LangGraph's server leaves it to the state.
                continue
            interrupts = wire["params"].get("interrupts")
            yield wire
            # Every level's `values` repeats a pending interrupt: it is asked for once.
            for pending in interrupts or ():
                if isinstance(pending, Interrupt) and pending.id not in asked:
                    asked.add(pending.id)
                    yield input_requested(pending, wire["params"])

    def note(self, progress: RunProgress, event: dict[str, Any]) -> None:
        """Hand the tracker a protocol event's tokens and routing decision."""
        note_protocol_event(progress, event)


def input_requested(pending: Interrupt, seen_in: dict[str, Any]) -> dict[str, Any]:
    """The protocol's `input.requested` event for an interrupt the run stopped at.

    It is placed (namespace, time) where the event that showed it, `seen_in`'s params, was.
    """
    return {
        "type": "event",
        "method": "input.requested",
        "params": {
            "namespace": list(seen_in["namespace"]),
            "timestamp": seen_in.get("timestamp") or int(time.time() * 1000),
            "data": {"interrupt_id": pending.id, "payload": pending.value},
        },
    }


def note_protocol_event(progress: RunProgress, event: dict[str, Any]) -> None:
    """Hand the tracker a protocol run's tokens and routing decision."""
    params = event["params"]
    data = params.get("data")
    if not isinstance(data, dict):
        return
    if event["method"] == "input.requested":
        progress.interrupts.append(str(data.get("interrupt_id")))
    elif event["method"] == "messages":
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
