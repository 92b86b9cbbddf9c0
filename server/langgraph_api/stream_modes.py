"""LangGraph server API stream modes, from one pass of the graph.

A run started through LangGraph's API (`/threads/{id}/runs/stream` and friends) names
the stream modes it wants. The graph is streamed once with the modes LangGraph needs
for them, and each chunk becomes `(event name, data)` as `langgraph dev` names it:
`values`, `updates|analytical:<task id>` (with `stream_subgraphs`), `messages` for
`messages-tuple`, `messages/metadata` + `messages/partial` / `messages/complete` for the
older `messages` mode, and every LangChain callback event for `events`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast, get_args

import orjson
from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Overwrite, StreamMode

from server.engine.events import json_default

API_MODES = frozenset({
    "values", "updates", "messages", "messages-tuple", "custom", "events", "debug",
    "tasks", "checkpoints",
})  # fmt: skip
"""The stream modes a run may ask for."""
_GRAPH_MODES = frozenset(get_args(StreamMode))
UNNAMESPACED = frozenset({"events", "messages/metadata", "messages/partial", "messages/complete"})
"""Events `langgraph dev` never suffixes with a subgraph namespace."""


def _api_default(value: Any) -> Any:
    # LangGraph's server writes an `Overwrite` (ALMA's route node resets `usage` with
    # one) as a marked object, so a client can tell it from a plain update.
    if isinstance(value, Overwrite):
        return {"value": value.value, "type": "__overwrite__"}
    return json_default(value)


def api_json(value: Any) -> bytes:
    """`value` as JSON, written as LangGraph's server writes it."""
    return orjson.dumps(value, default=_api_default, option=orjson.OPT_NON_STR_KEYS)


def api_wire(value: Any) -> Any:
    """`value` as plain JSON data, written as LangGraph's server writes it."""
    return orjson.loads(api_json(value))


def graph_modes(modes: Iterable[str]) -> list[StreamMode]:
    """The graph's own stream modes behind the API's."""
    wanted = {"messages" if mode == "messages-tuple" else mode for mode in modes}
    return sorted(cast(StreamMode, mode) for mode in wanted if mode in _GRAPH_MODES)


def event_name(mode: str, namespace: Sequence[str]) -> str:
    """`mode`, suffixed `|<ns>|…` for a subgraph's chunk."""
    return f"{mode}|{'|'.join(namespace)}" if namespace and mode not in UNNAMESPACED else mode


def checkpoint_of(config: Any) -> dict[str, Any] | None:
    """The checkpoint a run configuration names, as LangGraph's API shows one."""
    configurable = (config or {}).get("configurable") or {}
    if not configurable.get("thread_id") or not configurable.get("checkpoint_id"):
        return None
    found = {
        "checkpoint_id": str(configurable["checkpoint_id"]),
        "thread_id": str(configurable["thread_id"]),
    }
    if "checkpoint_ns" in configurable:
        found["checkpoint_ns"] = configurable["checkpoint_ns"] or ""
    if "checkpoint_map" in configurable:
        found["checkpoint_map"] = api_wire(configurable["checkpoint_map"])
    return found


def _debug(chunk: Any) -> Any:
    # Studio finds its way along a run's checkpoints by `checkpoint` and
    # `parent_checkpoint`, which LangGraph's debug stream leaves inside `config`.
    if not isinstance(chunk, dict) or chunk.get("type") != "checkpoint":
        return chunk
    payload = dict(chunk["payload"])
    payload["checkpoint"] = checkpoint_of(payload.get("config"))
    payload["parent_checkpoint"] = checkpoint_of(payload.get("parent_config"))
    tasks = []
    for task in payload.get("tasks") or ():
        state = task.get("state") if isinstance(task, dict) else None
        if isinstance(state, dict) and state.get("configurable"):
            task = {k: v for k, v in task.items() if k != "state"}
            task["checkpoint"] = state["configurable"]
        tasks.append(task)
    payload["tasks"] = tasks
    return {**chunk, "payload": payload}


@dataclass
class ModeTranslator:
    """Turns graph chunks into API events for one run's modes."""

    modes: frozenset[str]
    subgraphs: bool
    _messages: dict[str, BaseMessage] = field(default_factory=dict)

    def translate(self, namespace: Sequence[str], mode: str, chunk: Any) -> list[tuple[str, Any]]:
        """The API events for one chunk of the graph's stream."""
        if namespace and not self.subgraphs:
            return []
        if mode == "messages":
            return self._message(namespace, chunk)
        if mode not in self.modes:
            return []
        if mode == "debug":
            chunk = _debug(chunk)
        return [(event_name(mode, namespace), chunk)]

    def _message(self, namespace: Sequence[str], chunk: Any) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if "messages-tuple" in self.modes:
            out.append((event_name("messages", namespace), list(chunk)))
        if "messages" in self.modes:
            message, metadata = chunk
            if not isinstance(message, BaseMessage) or message.id is None:
                return out
            # The older mode sends each message whole, as it grows.
            known = self._messages.get(message.id)
            if known is None:
                self._messages[message.id] = message
                out.append(("messages/metadata", {message.id: {"metadata": metadata}}))
            else:
                self._messages[message.id] = _join(known, message)
            current = self._messages[message.id]
            if isinstance(message, BaseMessageChunk):
                out.append(("messages/partial", [message_chunk_to_message(current)]))
            else:
                out.append(("messages/complete", [current]))
        return out


async def api_events(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    graph_input: Any,
    config: RunnableConfig,
    *,
    modes: Sequence[str],
    subgraphs: bool,
    **kwargs: Any,
) -> AsyncIterator[tuple[str, Any]]:
    """Stream the graph once; yield `(event name, data)` for the modes asked for.

    `kwargs` go to the graph's stream (context, interrupt_before, interrupt_after).
    """
    translator = ModeTranslator(frozenset(modes), subgraphs)
    # Without subgraphs the graph itself decides what reaches the root (a subgraph's
    # answer arrives whole, as its node's output), so the flag goes to the graph.
    stream_modes = graph_modes(modes) or ["values"]
    if "events" not in modes:
        async for part in graph.astream(
            graph_input, config, stream_mode=stream_modes, subgraphs=subgraphs, **kwargs
        ):
            namespace, mode, chunk = _split(part, subgraphs)
            for translated in translator.translate(namespace, mode, chunk):
                yield translated
        return
    # LangChain's callback events carry the graph's own chunks as the root run's
    # `on_chain_stream`; everything else is an `events` event.
    root = str(config.get("run_id"))
    async for raw in graph.astream_events(
        graph_input, config, version="v2", stream_mode=stream_modes, subgraphs=subgraphs,
        **kwargs,
    ):  # fmt: skip
        event: dict[str, Any] = dict(raw)
        if "langsmith:hidden" in (event.get("tags") or ()):
            continue
        if event["event"] == "on_chain_stream" and str(event["run_id"]) == root:
            namespace, mode, chunk = _split(event["data"]["chunk"], subgraphs)
            for translated in translator.translate(namespace, mode, chunk):
                yield translated
        else:
            yield "events", event


def _join(known: BaseMessage, more: BaseMessage) -> BaseMessage:
    if isinstance(known, BaseMessageChunk) and isinstance(more, BaseMessageChunk):
        return known + more
    return more


def _split(part: Any, subgraphs: bool) -> tuple[Sequence[str], str, Any]:
    if subgraphs:
        namespace, mode, chunk = part
        return tuple(namespace), str(mode), chunk
    mode, chunk = part
    return (), str(mode), chunk
