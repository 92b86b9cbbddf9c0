"""LangGraph's store over HTTP: items under namespaces, as LangGraph's server answers them.

Paths, bodies and answers follow `langgraph dev`, so `langgraph-sdk`'s `client.store`
works unchanged. Each API key has a store of its own (`server/stores/owned_store.py`):
what one key wrote, no other key reads, finds, lists or deletes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError

from server.guard.auth import Principal
from server.langgraph_api.store_requests import (
    StoreDelete,
    StoreItem,
    StoreListNamespaces,
    StoreNamespaces,
    StorePut,
    StoreSearch,
    StoreSearchResult,
)
from server.services import Services
from server.stores.owned_store import OwnedStore
from server.web.deps import PrincipalDep, ServicesDep, hold_write

router = APIRouter(prefix="/store", tags=["store"])

REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"description": "The store refused the request (say, an empty namespace)."}
}
"""The OpenAPI note of what the store itself refuses."""
JOINED_LABELS = r"^[^.]+(\.[^.]+)*$"
JOINED = "The namespace's labels (each non-empty, without periods), joined with periods."


def _store(services: Services, principal: Principal) -> OwnedStore:
    return OwnedStore(services.memory.store, principal.owner)


def _refused(exc: Exception) -> HTTPException:
    # The store's own checks (an empty namespace, a root label `langgraph`, a filter
    # operator it does not know) are the client's mistakes, as LangGraph answers them.
    return HTTPException(status.HTTP_400_BAD_REQUEST, str(exc))


@router.put("/items", status_code=status.HTTP_204_NO_CONTENT, responses=REFUSED)
async def put_item(body: StorePut, services: ServicesDep, principal: PrincipalDep) -> None:
    """Store an item under the caller's namespace and key, replacing any there."""
    store = _store(services, principal)
    if body.ttl is not None and not store.supports_ttl:
        # A validation error of the field, as the OpenAPI document says a 422 is.
        reason = "this service's store does not expire items: send no ttl"
        raise RequestValidationError(
            [{"loc": ("body", "ttl"), "msg": reason, "type": "value_error"}]
        )
    await hold_write(services, principal)
    try:
        await store.aput(
            tuple(body.namespace), body.key, body.value, index=body.index, ttl=body.ttl
        )
    except ValueError as exc:
        raise _refused(exc) from exc


@router.get("/items", responses={400: {"description": "No key, or the store refused."}})
async def get_item(
    services: ServicesDep,
    principal: PrincipalDep,
    namespace: Annotated[str, Query(pattern=JOINED_LABELS, description=JOINED)],
    key: str | None = None,
    refresh_ttl: bool | None = None,
) -> StoreItem | None:
    """The caller's item at the namespace and key; `null` when there is none."""
    if not key:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Key is required")
    labels = tuple(namespace.split("."))
    try:
        item = await _store(services, principal).aget(labels, key, refresh_ttl=refresh_ttl)
    except ValueError as exc:
        raise _refused(exc) from exc
    return None if item is None else StoreItem(**item.dict())


@router.delete("/items", status_code=status.HTTP_204_NO_CONTENT, responses=REFUSED)
async def delete_item(body: StoreDelete, services: ServicesDep, principal: PrincipalDep) -> None:
    """Delete the caller's item at the namespace and key, if there is one."""
    await hold_write(services, principal)
    try:
        await _store(services, principal).adelete(tuple(body.namespace), body.key)
    except ValueError as exc:
        raise _refused(exc) from exc


@router.post("/items/search", responses=REFUSED)
async def search_items(
    body: StoreSearch, services: ServicesDep, principal: PrincipalDep
) -> StoreSearchResult:
    """The caller's items under the namespace prefix that pass the filter, a page of them."""
    try:
        items = await _store(services, principal).asearch(
            tuple(body.namespace_prefix or ()),
            query=body.query,
            filter=body.filter,
            limit=body.limit,
            offset=body.offset,
            refresh_ttl=body.refresh_ttl,
        )
    except (ValueError, TypeError) as exc:
        # TypeError: a comparison the item's value cannot take (`$gt` on a missing field).
        raise _refused(exc) from exc
    return StoreSearchResult.model_validate({"items": [item.dict() for item in items]})


@router.post("/namespaces", responses=REFUSED)
async def list_namespaces(
    body: StoreListNamespaces, services: ServicesDep, principal: PrincipalDep
) -> StoreNamespaces:
    """The caller's namespaces that match, sorted, cut to `max_depth`, a page of them."""
    try:
        found = await _store(services, principal).alist_namespaces(
            prefix=tuple(body.prefix) if body.prefix else None,
            suffix=tuple(body.suffix) if body.suffix else None,
            max_depth=body.max_depth,
            limit=body.limit,
            offset=body.offset,
        )
    except ValueError as exc:
        raise _refused(exc) from exc
    return StoreNamespaces(namespaces=[list(namespace) for namespace in found])
