"""The one assistant ALMA serves: the manager graph, as LangGraph's server API names it.

LangGraph's server registers one default assistant per graph, with an id derived from
the graph's name; ALMA serves one graph, so it has exactly that one assistant, fixed
and never stored. Its id and name live here so that every route taking an
`assistant_id` (assistants, runs, the WebSocket protocol) accepts the same values.
"""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.channels.base import BaseChannel
from langgraph.pregel import Pregel
from pydantic import BaseModel, TypeAdapter, create_model
from pydantic.errors import PydanticUserError

NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
"""The namespace LangGraph's server derives default assistant ids from."""
GRAPH_ID = "manager"
"""The graph's name, as `langgraph.json` registers it."""
MANAGER_ASSISTANT_ID = str(uuid.uuid5(NAMESPACE_GRAPH, GRAPH_ID))
"""`2c8f97b7-0383-58c2-81fb-ece90dc70d92`: the same id `langgraph dev` gives the manager."""
RUN_METADATA = {"graph_id": GRAPH_ID, "assistant_id": MANAGER_ASSISTANT_ID}
"""What a thread's metadata gains from its runs, as on LangGraph's server."""
CREATED_AT = "2025-01-01T00:00:00+00:00"
"""The assistant's creation (and update) time: a constant rather than the process's
start, so that every instance of a scaled-out service describes it the same way."""
METADATA: dict[str, Any] = {"created_by": "system"}


def resolve_assistant(assistant_id: str) -> str | None:
    """The assistant's id, given its id (any uuid spelling) or its graph's name.

    Returns:
        `MANAGER_ASSISTANT_ID`, or `None` when the value names no assistant of this server.
    """
    if assistant_id == GRAPH_ID:
        return MANAGER_ASSISTANT_ID
    try:
        given = uuid.UUID(assistant_id)
    except ValueError:
        return None
    return MANAGER_ASSISTANT_ID if str(given) == MANAGER_ASSISTANT_ID else None


def is_uuid(value: str) -> bool:
    """Whether `value` is a uuid in any spelling `uuid.UUID` accepts."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def metadata_contains(metadata: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether `metadata` holds every key and value of `wanted`, nested objects included.

    The containment LangGraph's server filters metadata by (Postgres' `@>` on objects).
    """
    for key, value in wanted.items():
        if key not in metadata:
            return False
        held = metadata[key]
        if isinstance(value, dict) and isinstance(held, dict):
            if not metadata_contains(held, value):
                return False
        elif held != value:
            return False
    return True


class AssistantVersion(BaseModel):
    """One version of an assistant, as LangGraph's server describes one."""

    assistant_id: str
    version: int
    graph_id: str
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    created_at: str
    name: str
    description: str | None


class AssistantPublic(AssistantVersion):
    """An assistant: its latest version, and when it last changed."""

    updated_at: str


def the_assistant() -> AssistantPublic:
    """The manager graph's assistant."""
    return AssistantPublic(
        assistant_id=MANAGER_ASSISTANT_ID,
        graph_id=GRAPH_ID,
        config={},
        context={},
        metadata=dict(METADATA),
        name=GRAPH_ID,
        created_at=CREATED_AT,
        updated_at=CREATED_AT,
        version=1,
        description=None,
    )


def the_version() -> AssistantVersion:
    """The assistant's one and only version."""
    return AssistantVersion.model_validate(the_assistant().model_dump(exclude={"updated_at"}))


def draw_graph(graph: Pregel[Any, Any, Any, Any], *, xray: bool | int) -> dict[str, Any]:
    """The graph's drawing (nodes and edges), subgraphs expanded `xray` levels deep.

    CPU work for a large graph: call it off the event loop.
    """
    drawing = graph.get_graph(xray=xray).to_json()
    for node in drawing.get("nodes", []):
        # A node's `data.id` is a Python import path: nothing a client needs.
        if isinstance(data := node.get("data"), dict):
            data.pop("id", None)
    return drawing


def graph_schemas(graph: Pregel[Any, Any, Any, Any]) -> dict[str, Any]:
    """The JSON schemas of what the graph takes in, gives back, keeps, and is configured by.

    CPU work (pydantic builds every schema): call it off the event loop.
    """
    context = graph.get_context_jsonschema()
    return {
        "input_schema": graph.get_input_jsonschema(),
        "output_schema": graph.get_output_jsonschema(),
        "state_schema": _state_schema(graph),
        # The manager reads its run parameters from the context; `config.configurable`
        # carries the same keys, so the one schema describes both.
        "config_schema": context,
        "context_schema": context,
    }


def subgraph_schemas(
    graph: Pregel[Any, Any, Any, Any], *, namespace: str | None, recurse: bool
) -> dict[str, dict[str, Any]]:
    """Each subgraph's schemas by namespace; only `namespace`'s when given, `{}` if unknown.

    CPU work: call it off the event loop.
    """
    return {
        name: graph_schemas(subgraph)
        for name, subgraph in graph.get_subgraphs(namespace=namespace, recurse=recurse)
        if isinstance(subgraph, Pregel)
    }


def _state_schema(graph: Pregel[Any, Any, Any, Any]) -> dict[str, Any]:
    # What each streamed channel accepts as an update, which is what a client may
    # write to the state; a type pydantic cannot describe is shown as any value.
    fields: dict[str, Any] = {}
    for name in graph.stream_channels_list:
        channel = graph.channels[name]
        kind: Any = channel.UpdateType if isinstance(channel, BaseChannel) else Any
        try:
            TypeAdapter(kind).json_schema()
        except PydanticUserError:
            kind = Any
        fields[name] = (kind, None)
    model: type[BaseModel] = create_model(graph.get_name("State"), **fields)
    return model.model_json_schema()
