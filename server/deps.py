"""FastAPI dependencies, so routes stay short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket

from server.services import Services


def get_services(request: Request) -> Services:
    """The process's services (built by the app's lifespan)."""
    services: Services = request.app.state.services
    return services


def get_ws_services(websocket: WebSocket) -> Services:
    """The process's services, for a WebSocket route."""
    services: Services = websocket.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
WsServicesDep = Annotated[Services, Depends(get_ws_services)]
