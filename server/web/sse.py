"""Server-Sent Events: frames, and heartbeats while a stream is quiet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}
"""Never cached; nginx must pass frames on at once instead of buffering them."""
HEARTBEAT = b": heartbeat\r\n\r\n"


def frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One event. `data` is compact JSON (one line); `id` lets a client resume after it."""
    head = b"event: " + event.encode() + b"\r\ndata: " + data + b"\r\n"
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\r\n"
    return head + b"\r\n"


async def with_heartbeats(
    source: AsyncIterator[bytes], every: float, beat: bytes = HEARTBEAT
) -> AsyncIterator[bytes]:
    """`source`'s chunks, with `beat` after each quiet `every` seconds.

    Proxies and browsers drop connections that stay silent; a beat also shows a client
    that the server is alive while a long step runs.
    """
    pending: asyncio.Task[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield beat
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield chunk
    finally:
        if pending is not None:
            # The source cannot be closed while a read of it is still running: let the
            # cancelled read finish first (whatever it ends with, the stream is over).
            pending.cancel()
            await asyncio.wait({pending})
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()
