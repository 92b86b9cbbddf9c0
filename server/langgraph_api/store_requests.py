"""LangGraph API store requests and answers: the `/store` routes' bodies and results.

A namespace is a list of labels: each a non-empty string without periods (a `GET` names
the namespace by its labels joined with periods). Bounds the reference leaves open (a
negative limit, a TTL of a thousand years) are refused rather than passed on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from server.langgraph_api.thread_requests import JsonObject

MAX_TTL_MINUTES = 60 * 24 * 366 * 10
"""The longest an item may be asked to live: ten years."""
MAX_PAGE = 1000
"""The most items or namespaces one request returns."""


def check_label(label: str) -> str:
    """`label`, when a store namespace may hold it.

    Raises:
        ValueError: for an empty label or one with a period.
    """
    if not label or "." in label:
        raise ValueError(f"namespace label {label!r} must be a non-empty string without periods")
    return label


Label = Annotated[str, AfterValidator(check_label)]
Namespace = list[Label]


class StorePut(BaseModel):
    """An item to store, replacing the one at its namespace and key."""

    model_config = ConfigDict(extra="forbid")

    namespace: Namespace
    key: str
    value: JsonObject
    index: Literal[False] | list[str] | None = None
    """Which fields to index for semantic search; `false` for none."""
    ttl: float | None = Field(default=None, gt=0, le=MAX_TTL_MINUTES)
    """Minutes until the item expires; `null` for never."""


class StoreDelete(BaseModel):
    """The item to delete (deleting a missing item is not an error)."""

    model_config = ConfigDict(extra="forbid")

    namespace: Namespace = []
    key: str


class StoreSearch(BaseModel):
    """Items under a namespace prefix, newest first, filtered and paged."""

    model_config = ConfigDict(extra="forbid")

    namespace_prefix: Namespace | None = None
    """`null` or `[]`: every namespace."""
    filter: dict[str, Any] | None = None
    """Values each item must have: `{"field": value}`, or with `$eq`, `$ne`, `$gt`,
    `$gte`, `$lt`, `$lte`."""
    limit: int = Field(default=10, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0)
    query: str | None = None
    """A natural-language query, for a store with a semantic index."""
    refresh_ttl: bool | None = None
    """Restart the TTL of the items found; `null`: as the store is configured."""


class StoreListNamespaces(BaseModel):
    """Namespaces that match, cut to a depth, sorted and paged."""

    model_config = ConfigDict(extra="forbid")

    prefix: Namespace | None = None
    """Labels the namespace starts with; `*` matches any label."""
    suffix: Namespace | None = None
    """Labels the namespace ends with; `*` matches any label."""
    max_depth: int | None = Field(default=None, ge=0)
    """Namespaces longer than this are cut to it (and listed once)."""
    limit: int = Field(default=100, ge=0, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0)


class StoreItem(BaseModel):
    """An item, as LangGraph's server shows one."""

    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: str
    updated_at: str


class StoreSearchItem(StoreItem):
    """An item found by a search."""

    score: float | None = None
    """Its relevance to the query, when the store ranks by one."""


class StoreSearchResult(BaseModel):
    """What a search found."""

    items: list[StoreSearchItem]


class StoreNamespaces(BaseModel):
    """What a namespace listing found."""

    namespaces: list[list[str]]
