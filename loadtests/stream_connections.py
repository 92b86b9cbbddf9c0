"""What opening one event stream costs a server: a WebSocket, a subscription, a close.

The official SDKs open a WebSocket per subscription on a thread (`langgraph-sdk`'s v3
thread stream opens one for its events and, for a run it starts, usually one more), so
this is paid on every run before the run's own work. Measured the way the SDK does it:
connect to `/threads/{id}/stream/events`, send the `subscription.subscribe` command, wait
for its answer, close. One connection at a time, each on a fresh thread, so what is
measured is the server's own cost, not queueing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.client import connect

from loadtests.memory_bench import percentile
from loadtests.processes import Server

SUBSCRIBE = {"channels": ["lifecycle", "messages"]}


@dataclass(frozen=True, slots=True)
class ConnectionFigures:
    """One server's cost of opening an event stream, per connection."""

    connections: int
    p50_ms: float
    """From opening the TCP connection to the subscription's answer, at the client."""
    server_cpu_ms: float
    redis_commands: float


async def measure_connections(
    server: Server, redis_commands: Callable[[], int], count: int
) -> ConnectionFigures:
    """Open `count` event streams on `server` one after another, each on a new thread.

    `redis_commands()` reads Redis's count of commands served so far.

    Raises:
        RuntimeError: a subscription was not answered with success.
    """
    base = server.url.replace("http://", "ws://", 1)
    cpu_before, commands_before = server.usage()[0], redis_commands()
    took: list[int] = []
    for _ in range(count):
        began = time.perf_counter()
        async with connect(f"{base}/threads/{uuid.uuid4()}/stream/events") as socket:
            command = {"id": 1, "method": "subscription.subscribe", "params": SUBSCRIBE}
            await socket.send(json.dumps(command))
            answer = json.loads(await socket.recv())
            took.append(round((time.perf_counter() - began) * 1e6))
        if answer.get("type") != "success":
            raise RuntimeError(f"{server.name}: subscribing was answered {answer}")
    cpu_after, commands_after = server.usage()[0], redis_commands()
    return ConnectionFigures(
        connections=count,
        p50_ms=percentile(sorted(took), 50) / 1000,
        server_cpu_ms=(cpu_after - cpu_before) * 1000 / count,
        redis_commands=(commands_after - commands_before) / count,
    )
