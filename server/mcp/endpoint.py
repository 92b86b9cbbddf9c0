"""`/mcp`: the manager as a tool over MCP's streamable HTTP transport, keyed like every route.

The official `mcp` package speaks the protocol; this module gives it the one tool and
puts ALMA's key check in front. The transport runs stateless — no MCP session is kept
between requests — so any process of a scaled-out service answers any request, as with
the rest of the API. Responses are Server-Sent Events, so that a tool call's progress
notifications reach the client while the run goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
from fastapi import FastAPI
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from server.guard.auth import AuthError, Principal, key_from_headers
from server.mcp.progress import Note
from server.mcp.tool import TOOL_NAME, call_manager, manager_tool
from server.services import Services
from server.version import VERSION

PATH = "/mcp"
_PRINCIPAL = "alma_principal"
"""Where the key check leaves the caller, in the request's state, for the tool call."""


async def _list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[manager_tool()])


async def _call_tool(
    ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    if params.name != TOOL_NAME:
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
    request = ctx.request
    if not isinstance(request, Request):
        raise MCPError(types.INTERNAL_ERROR, "the tool is served over HTTP only")
    services: Services = request.app.state.services
    principal: Principal = getattr(request.state, _PRINCIPAL)
    meta = (ctx.params or {}).get("_meta")
    wants_progress = isinstance(meta, dict) and meta.get("progressToken") is not None

    async def report(note: Note) -> None:
        await ctx.session.report_progress(note.progress, message=note.message)

    return await call_manager(
        services, principal, params.arguments, report if wants_progress else None
    )


def _server() -> Server[Any]:
    return Server(
        "ALMA",
        version=VERSION,
        instructions="One tool, `manager`: ask it anything; it answers creatively or "
        "analytically and says which. Pass `thread_id` back to continue a conversation.",
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
    )


class McpEndpoint:
    """The ASGI app at `/mcp`: a request with a good key (or none needed) reaches MCP."""

    def __init__(self) -> None:
        """Serve nothing until `running` has started the transport."""
        self.sessions: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the transport's task group (the one its tool calls run in) meanwhile."""
        # A manager runs once only: each lifespan of the app (tests start one app
        # several times) gets its own.
        sessions = StreamableHTTPSessionManager(_server(), stateless=True)
        async with sessions.run():
            self.sessions = sessions
            try:
                yield
            finally:
                self.sessions = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a missing or wrong key with 401 before MCP reads a byte; else serve."""
        services: Services = scope["app"].state.services
        client = scope.get("client")
        try:
            principal = services.keys.identify(
                key_from_headers(Headers(scope=scope)), client[0] if client else "unknown"
            )
        except AuthError as exc:
            refusal = JSONResponse(
                {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
            await refusal(scope, receive, send)
            return
        if self.sessions is None:
            await JSONResponse({"detail": "the server is stopping"}, status_code=503)(
                scope, receive, send
            )
            return
        # A copy: the state the server hands each request must not carry one caller's
        # principal into another's.
        scope = {**scope, "state": {**scope.get("state", {}), _PRINCIPAL: principal}}
        await self.sessions.handle_request(scope, receive, send)


def mount(app: FastAPI) -> None:
    """Serve `/mcp` from `app`; the transport runs for as long as the app does."""
    endpoint = McpEndpoint()
    served = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        # Inside the service's own lifespan: tool calls still in flight end before the
        # services they use close.
        async with served(app) as state, endpoint.running():
            yield state

    app.router.lifespan_context = lifespan
    # A route, not a mount: a mount would answer `/mcp` with a redirect to `/mcp/`. POST
    # only: stateless, there is no session for a GET stream to follow or a DELETE to
    # end, and the others answer 405, as the transport allows.
    app.router.routes.append(Route(PATH, endpoint, methods=["POST"], name="mcp"))
