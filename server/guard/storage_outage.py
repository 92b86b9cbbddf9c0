"""What a client gets while Redis is away: a clear, retryable refusal, and one log line.

Over HTTP, a JSON 503 with the code `storage_unavailable` and `Retry-After`; over a
WebSocket, a close with 1013 (try again later) and a reason. Either way the log gets a
single warning naming the route, not a traceback per request.
"""

from __future__ import annotations

import logging

from fastapi import Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketState

from nodes.errors import ErrorCode

logger = logging.getLogger("alma.storage")

RETRY_AFTER_SECONDS = 2
"""How long a client waits before trying again: about what a Redis restart or fail-over
takes, and what the reconnecting client's first backoff is."""
CLOSE_TRY_AGAIN_LATER = 1013
MESSAGE = "conversation storage is unavailable; try again shortly"


def _log(where: str, exc: BaseException) -> None:
    logger.warning(
        "storage unavailable (%s): %s: %s", where, type(exc).__name__, exc,
        extra={"error_code": ErrorCode.STORAGE_UNAVAILABLE},
    )  # fmt: skip


async def storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The answer to an HTTP request that needed Redis while it was away."""
    _log(f"{request.method} {request.url.path}", exc)
    return JSONResponse(
        {"error": ErrorCode.STORAGE_UNAVAILABLE, "message": MESSAGE},
        status_code=503,
        headers={"retry-after": str(RETRY_AFTER_SECONDS)},
    )


async def close_for_outage(websocket: WebSocket, exc: BaseException) -> None:
    """Close a WebSocket whose work needed Redis while it was away."""
    _log(f"WebSocket {websocket.url.path}", exc)
    if websocket.client_state == WebSocketState.CONNECTED:
        try:
            await websocket.close(CLOSE_TRY_AGAIN_LATER, MESSAGE)
        except RuntimeError:
            pass  # the client left first
