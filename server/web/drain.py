"""A graceful stop: on SIGTERM, drain while the listener still answers, then let uvicorn stop.

uvicorn's own shutdown closes the listener and every connection first and only then
runs the app's shutdown, so a drain placed there is never seen: `/ready` cannot turn
503, new runs meet a refused connection, and running answers lose their clients. Here
the signal starts the drain at once — `/ready` 503, new runs refused with a clear code,
running answers streamed to their clients for up to the grace period, the rest ended
with a final event that says why — and hands the signal on to uvicorn afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from starlette.websockets import WebSocketState

from server.services import Services

logger = logging.getLogger("alma.server")

CLOSE_SERVICE_RESTART = 1012
RESTART_REASON = "server restarting; reconnect and resume with since"

PUMP_SECONDS = 5.0
"""How long a connection may take to send what its subscriptions hold, before closing."""
Handler = Callable[[int, FrameType | None], Any] | int | None


def install_drain(services: Services, grace: float) -> None:
    """Drain on SIGTERM or SIGINT before uvicorn's own handling of it (a second one stops at once).

    Call from inside the running app (its lifespan), after uvicorn has set its handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only (an in-process test client runs here)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous: Handler = signal.getsignal(sig)
        if not callable(previous):
            continue  # no server handles this signal here (an in-process test client)
        signal.signal(sig, _handler(loop, services, grace, previous))


def _handler(
    loop: asyncio.AbstractEventLoop, services: Services, grace: float, previous: Any
) -> Callable[[int, FrameType | None], None]:
    draining: list[asyncio.Future[None]] = []

    def handle(sig: int, frame: FrameType | None) -> None:
        if draining:
            previous(sig, frame)  # asked twice: stop now
            return

        def start() -> None:
            task = asyncio.ensure_future(_drain(services, grace))
            task.add_done_callback(lambda _: previous(sig, frame))
            draining.append(task)

        loop.call_soon_threadsafe(start)

    return handle


async def _drain(services: Services, grace: float) -> None:
    logger.info("shutting down: draining runs for up to %g s", grace)
    try:
        # Runs finish (or end with a final event) and their clients hear the end.
        await services.runs.shutdown(grace)
        # Subscriptions end: SSE streams finish cleanly; sockets close with a reason.
        await services.broker.close()
        for socket in list(services.connections):
            # What each subscription still holds goes out before the close.
            connection = getattr(socket.state, "connection", None)
            pumps = [task for _, task in connection.subscriptions.values()] if connection else []
            if pumps:
                await asyncio.wait(pumps, timeout=PUMP_SECONDS)
            if socket.client_state == WebSocketState.CONNECTED:
                try:
                    await socket.close(CLOSE_SERVICE_RESTART, RESTART_REASON)
                except RuntimeError:
                    pass  # the client left first
    except Exception:
        logger.exception("draining failed; stopping anyway")
