"""The FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from server import mcp
from server.guard.storage_outage import storage_unavailable
from server.observability.logs import configure_logging
from server.services import open_services
from server.settings import Settings
from server.version import VERSION
from server.web.drain import install_drain
from server.web.middleware import (
    BodyLimit,
    KeylessGuard,
    PlainTextJson,
    RequestContext,
    keyless_hosts,
)
from server.web.routes import (
    assistants,
    bulk,
    crons,
    docs,
    health,
    page,
    runs,
    store,
    stream,
    thread_state,
    threads,
)

logger = logging.getLogger("alma.server")


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own handler echoes the input back, which fails on values JSON cannot
    # carry (Infinity) and repeats hostile content; the field and the reason suffice.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"loc": [str(part) for part in error["loc"]], "msg": str(error["msg"]),
         "type": str(error["type"])}
        for error in errors
    ]  # fmt: skip
    return JSONResponse({"detail": detail}, status_code=422)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; its parts open with the app's lifespan and close with it."""
    settings = settings or Settings()
    # Each uvicorn worker builds its own app: logging is set up here, in every process.
    configure_logging(settings.log_setup())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            if not services.keys.required:
                logger.warning(
                    "authentication off: no ALMA_API_KEYS (development mode); every client "
                    "is the owner 'local' and limits count per client address"
                )
            app.state.services = services
            install_drain(services, settings.shutdown_grace_seconds)
            yield

    app = FastAPI(
        title="ALMA",
        summary="A manager agent that routes to creative or analytical subgraphs, streamed.",
        version=VERSION,
        lifespan=lifespan,
        # Served by routes/docs.py instead, behind the same key check as /metrics.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    _add_middleware(app, settings)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(RedisError, storage_unavailable)
    # `bulk` before `threads`: `POST /threads/prune` is not a thread's id.
    # `crons` before `runs`: `/runs/crons` and `/threads/{id}/runs/crons` are not runs.
    routers = (health, assistants, bulk, threads, thread_state, crons, runs, stream, store,
               page, docs)  # fmt: skip
    for module in routers:
        app.include_router(module.router)
    app.mount("/static", page.static_files(), name="static")
    mcp.mount(app)
    return app


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """The middleware, innermost first: each one added wraps those before it."""
    app.add_middleware(PlainTextJson)
    if settings.cors_origins:
        # What LangGraph Studio and `useStream` need from a browser page: any method and
        # requested header, the run's `Content-Location`, the pagination headers, and
        # (when configured) Private Network Access for an https page calling localhost.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            allow_private_network=settings.cors_allow_private_network,
            expose_headers=["retry-after", "ratelimit-limit", "ratelimit-remaining",
                            "ratelimit-reset", "content-location", "location",
                            "x-pagination-total", "x-pagination-next"],
        )  # fmt: skip
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if not settings.key_owners():
        app.add_middleware(
            KeylessGuard,
            hosts=keyless_hosts(settings.host, settings.allowed_hosts),
            origins=settings.cors_origins,
        )
    # Added last, so it wraps everything: even a refused request gets an id and a line.
    app.add_middleware(RequestContext)
