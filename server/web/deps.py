"""FastAPI dependencies, so routes stay short."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Path, Request, WebSocket, status
from starlette.requests import HTTPConnection

from server.guard.auth import AuthError, Principal, key_from_headers
from server.guard.limits import Verdict
from server.guard.refusals import Refused
from server.guard.validation import THREAD_ID_PATTERN, check_state_messages
from server.services import Services
from server.stores.thread_records import ThreadRecord, stand_in

# The dependencies are coroutines although none awaits: FastAPI runs a plain function
# dependency in a worker thread, a thread hop on every request and connection.


async def get_services(request: Request) -> Services:
    """The process's services (built by the app's lifespan)."""
    services: Services = request.app.state.services
    return services


async def get_ws_services(websocket: WebSocket) -> Services:
    """The process's services, for a WebSocket route."""
    services: Services = websocket.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
WsServicesDep = Annotated[Services, Depends(get_ws_services)]


def client_address(connection: HTTPConnection) -> str:
    """The caller's address (what limits count by when there are no keys)."""
    return connection.client.host if connection.client else "unknown"


async def get_principal(request: Request, services: ServicesDep) -> Principal:
    """The caller, from their API key; 401 when a key is required and missing or wrong."""
    return principal_of(request, services)


def principal_of(request: Request, services: Services) -> Principal:
    """See `get_principal`."""
    try:
        return services.keys.identify(key_from_headers(request.headers), client_address(request))
    except AuthError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from exc


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def enforce(verdict: Verdict, who: str) -> None:
    """Refuse a request over one of the caller's limits: 429, saying which and how long.

    Raises:
        HTTPException: 429 with `Retry-After` and the `RateLimit-*` headers.
    """
    if not verdict.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, verdict.explain(who), headers=verdict.headers()
        )


def thread_not_found(thread_id: str) -> HTTPException:
    """The one answer for a thread that is missing or another owner's: they look alike."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"Thread with ID {thread_id} not found")


async def require_own_thread(services: Services, thread_id: str, owner: str) -> None:
    """Let `owner` through to their own thread; any other thread is not found.

    Raises:
        HTTPException: 404, the same for a missing thread and another owner's.
    """
    if await services.owners.owner_of(thread_id) != owner:
        raise thread_not_found(thread_id)


def http_refusal(exc: Refused) -> HTTPException:
    """A refusal of the service as the LangGraph API answers it."""
    return HTTPException(exc.http_status, exc.message, headers=exc.headers or None)


def operator_endpoint(name: str) -> Callable[[Request, Services], Awaitable[None]]:
    """A dependency: operational endpoint `name` needs a key, as every route does.

    Unless no key is required at all (development), or the operator opened it with
    `ALMA_OPEN_ENDPOINTS` (a scraper on a private network, public API docs).
    """

    async def check(request: Request, services: ServicesDep) -> None:
        if name not in services.settings.open_endpoints:
            principal_of(request, services)

    return check


ThreadId = Annotated[str, Path(pattern=THREAD_ID_PATTERN, max_length=128)]
"""A thread id in a path, validated (1-128 of letters, digits and `._:@-`)."""


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """A browser may connect from the service's own origin or a configured one.

    Clients that are not browsers send no `Origin` and are let through (keys guard them).
    """
    if origin is None:
        return True
    if host and origin in (f"http://{host}", f"https://{host}"):
        return True
    return origin in allowed


NO_THREAD: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such thread, or it belongs to another owner."}
}
"""The OpenAPI note of a thread route's 404."""


async def hold_write(
    services: Services,
    principal: Principal,
    *,
    metadata: Any = None,
    new_thread: bool = False,
) -> None:
    """Hold a write that is not a run to what a run's input is held to.

    It counts against the caller's write budget (shared by every process), its metadata
    is bounded like a message, and a new thread must fit the owner's quota.
    """
    settings = services.settings
    if metadata:
        size = len(orjson.dumps(metadata))
        if size > settings.max_message_chars:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"metadata is {size} characters of JSON; the limit is "
                f"{settings.max_message_chars} (ALMA_MAX_MESSAGE_CHARS)",
            )
    enforce(await services.limits.write(principal.limit_key), principal.owner)
    if new_thread:
        held = await services.owners.count(principal.owner)
        if held >= settings.max_threads_per_owner:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{principal.owner} holds {held} threads, the most allowed "
                "(ALMA_MAX_THREADS_PER_OWNER); delete some first",
            )


def checked_state_values(values: Any, services: Services) -> Any:
    """State values to write, their messages validated and normalised as run input's are."""
    if not isinstance(values, dict) or "messages" not in values:
        return values
    settings = services.settings
    try:
        checked = check_state_messages(
            values["messages"],
            max_messages=settings.max_messages,
            max_chars=settings.max_message_chars,
        )
    except Refused as exc:
        raise http_refusal(exc) from exc
    return {**values, "messages": checked}


async def owned_thread(services: Services, thread_id: str, owner: str) -> ThreadRecord:
    """`owner`'s thread's record (an unstored stand-in for one without); else 404."""
    await require_own_thread(services, thread_id, owner)
    return await services.threads.get(thread_id) or stand_in(thread_id)
