"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from server.routes import health, stream, threads
from server.services import open_services
from server.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; its parts open with the app's lifespan and close with it."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            yield

    app = FastAPI(
        title="ALMA",
        summary="A manager agent that routes to creative or analytical subgraphs, streamed.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(threads.router)
    app.include_router(stream.router)
    return app
