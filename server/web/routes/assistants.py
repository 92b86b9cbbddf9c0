"""Assistants over HTTP, as LangGraph's server answers them: the manager graph, drawn and described.

Paths and shapes follow `langgraph dev`, so LangGraph Studio and `langgraph-sdk` work
unchanged. The graph's name `manager` is accepted wherever an assistant id is.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field

from server.langgraph_api.assistants import (
    GRAPH_ID,
    MANAGER_ASSISTANT_ID,
    AssistantPublic,
    AssistantVersion,
    draw_graph,
    graph_schemas,
    is_uuid,
    metadata_contains,
    resolve_assistant,
    subgraph_schemas,
    the_assistant,
    the_version,
)
from server.web.deps import ServicesDep, get_principal

router = APIRouter(prefix="/assistants", tags=["assistants"], dependencies=[Depends(get_principal)])

AssistantField = Literal[
    "assistant_id", "graph_id", "name", "description", "config", "context", "created_at",
    "updated_at", "metadata", "version",
]  # fmt: skip


class AssistantFilter(BaseModel):
    """Which assistants: all of the given conditions hold."""

    metadata: dict[str, Any] | None = None
    """Metadata the assistant's contains (nested objects match by containment)."""
    graph_id: str | None = Field(default=None, max_length=256)
    """A graph this server serves (404 for any other, as LangGraph's server answers)."""
    name: str | None = None
    """A case-insensitive part of the assistant's name."""

    def matches(self, assistant: AssistantPublic) -> bool:
        """Whether `assistant` passes the filter."""
        return (
            (self.graph_id is None or assistant.graph_id == self.graph_id)
            and (self.name is None or self.name.lower() in assistant.name.lower())
            and metadata_contains(assistant.metadata, self.metadata or {})
        )


class AssistantSearch(AssistantFilter):
    """A page of the assistants that match."""

    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    """Accepted for compatibility; with one assistant, every order is the same."""
    sort_order: Literal["asc", "desc"] | None = None
    select: list[AssistantField] | None = None
    """The fields to return; all of them when not given."""


class VersionSearch(BaseModel):
    """A page of an assistant's versions."""

    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


async def known_assistant(
    assistant_id: Annotated[str, Path(max_length=128, examples=[MANAGER_ASSISTANT_ID, GRAPH_ID])],
) -> str:
    """The assistant a path names, by id or by graph name.

    Raises:
        HTTPException: 404 for a uuid of no assistant here, 422 for anything else.
    """
    resolved = resolve_assistant(assistant_id)
    if resolved is not None:
        return resolved
    if is_uuid(assistant_id):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"Assistant not found: this server has one, {GRAPH_ID!r} ({MANAGER_ASSISTANT_ID})",
        )
    raise HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, "Invalid assistant ID: must be a UUID (or 'manager')"
    )


KnownAssistant = Annotated[str, Depends(known_assistant)]


def require_graph(graph_id: str | None) -> None:
    """Refuse a filter on a graph this server does not serve, as LangGraph's server does.

    Raises:
        HTTPException: 404 for a graph other than the manager.
    """
    if graph_id is not None and graph_id != GRAPH_ID:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"Graph not found: this server serves {GRAPH_ID!r} only"
        )


_UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such assistant."},
    422: {"description": "Not an assistant id."},
}


def parse_xray(value: str) -> bool | int:
    """`xray` as LangGraph's server reads it: `true`/`false`, or a depth of 1 or more.

    Raises:
        HTTPException: 422 for any other value.
    """
    if value in ("", "false", "False"):
        return False
    if value in ("true", "True"):
        return True
    if value.isascii() and value.isdigit() and int(value) >= 1:
        return int(value)
    raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "Invalid xray value")


@router.post("/search", responses={404: {"description": "No such graph."}})
async def search_assistants(
    response: Response, search: Annotated[AssistantSearch | None, Body()] = None
) -> list[dict[str, Any]]:
    """Assistants matching the filter, a page at a time (`X-Pagination-Total` in the headers).

    Each is an assistant object, or only its `select`ed fields.
    """
    search = search or AssistantSearch()
    require_graph(search.graph_id)
    matching = [a for a in (the_assistant(),) if search.matches(a)]
    page = matching[search.offset : search.offset + search.limit]
    response.headers["X-Pagination-Total"] = str(len(matching))
    if search.offset + search.limit < len(matching):
        response.headers["X-Pagination-Next"] = str(search.offset + search.limit)
    fields: set[str] | None = set(search.select) if search.select else None
    return [assistant.model_dump(include=fields) for assistant in page]


@router.post("/count", responses={404: {"description": "No such graph."}})
async def count_assistants(
    search: Annotated[AssistantFilter | None, Body()] = None,
) -> int:
    """How many assistants match the filter."""
    search = search or AssistantFilter()
    require_graph(search.graph_id)
    return sum(1 for a in (the_assistant(),) if search.matches(a))


@router.get("/{assistant_id}", responses=_UNKNOWN)
async def read_assistant(assistant_id: KnownAssistant) -> AssistantPublic:
    """The assistant."""
    return the_assistant()


@router.get("/{assistant_id}/graph", responses=_UNKNOWN)
async def read_assistant_graph(
    assistant_id: KnownAssistant,
    services: ServicesDep,
    xray: Annotated[
        str, Query(description="`true`, `false`, or how many levels of subgraphs to expand.")
    ] = "false",
) -> dict[str, Any]:
    """The graph's drawing: nodes and edges, subgraphs expanded with `xray`."""
    depth = parse_xray(xray)
    return await asyncio.to_thread(draw_graph, services.graph, xray=depth)


@router.get("/{assistant_id}/schemas", responses=_UNKNOWN)
async def read_assistant_schemas(
    assistant_id: KnownAssistant, services: ServicesDep
) -> dict[str, Any]:
    """JSON schemas of the graph's input, output, state, config and context."""
    schemas = await asyncio.to_thread(graph_schemas, services.graph)
    return {"graph_id": GRAPH_ID, **schemas}


@router.get("/{assistant_id}/subgraphs", responses=_UNKNOWN)
async def list_assistant_subgraphs(
    assistant_id: KnownAssistant, services: ServicesDep, recurse: bool = False
) -> dict[str, dict[str, Any]]:
    """Each subgraph's schemas by namespace; nested ones too with `recurse`."""
    return await asyncio.to_thread(
        subgraph_schemas, services.graph, namespace=None, recurse=recurse
    )


@router.get("/{assistant_id}/subgraphs/{namespace}", responses=_UNKNOWN)
async def read_assistant_subgraph(
    assistant_id: KnownAssistant,
    services: ServicesDep,
    namespace: Annotated[str, Path(max_length=256)],
    recurse: bool = False,
) -> dict[str, dict[str, Any]]:
    """The schemas of the subgraph at `namespace` (`{}` when there is none)."""
    return await asyncio.to_thread(
        subgraph_schemas, services.graph, namespace=namespace, recurse=recurse
    )


@router.post("/{assistant_id}/versions", responses=_UNKNOWN)
async def list_assistant_versions(
    assistant_id: KnownAssistant, search: Annotated[VersionSearch | None, Body()] = None
) -> list[AssistantVersion]:
    """The assistant's versions, newest first: there is one."""
    search = search or VersionSearch()
    versions = [v for v in (the_version(),) if metadata_contains(v.metadata, search.metadata or {})]
    return versions[search.offset : search.offset + search.limit]
