"""Numbering a run's events, writing them to the thread's log, then fanning them out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from server.broker import Broker
from server.event_log import EventLog
from server.events import Logged, numbered

logger = logging.getLogger("alma.server")


class Emitter:
    """Numbers a run's events, appends them to the log, then fans them out — in order.

    Events wait in a bounded queue and are written in batches: a burst of tokens costs
    one Redis round trip, and a slow log slows the run instead of growing memory.
    """

    def __init__(self, *, thread_id: str, first_seq: int, log: EventLog, broker: Broker) -> None:
        self.thread_id = thread_id
        self.next_seq = first_seq
        self.log = log
        self.broker = broker
        self.storage_error: Exception | None = None
        self._queue: asyncio.Queue[Logged | None] = asyncio.Queue(maxsize=4096)
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._flush())

    async def emit(self, event: dict[str, Any]) -> None:
        """Queue an event for the log and the subscribers."""
        await self._queue.put(numbered(event, self.next_seq))
        self.next_seq += 1

    def emit_soon(self, event: dict[str, Any]) -> None:
        """Queue an event from synchronous code (a callback), from any thread.

        For progress markers only: when the queue is full the event is dropped rather
        than blocking the graph.
        """
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._put_now(event)
        else:
            self._loop.call_soon_threadsafe(self._put_now, event)

    def _put_now(self, event: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(numbered(event, self.next_seq))
            self.next_seq += 1

    async def _flush(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    await self._write(batch)
                    return
                batch.append(item)
            await self._write(batch)

    async def _write(self, batch: list[Logged]) -> None:
        if self.storage_error is None:
            try:
                await self.log.append(self.thread_id, batch)
            except Exception as exc:
                # Whatever broke the write (a Redis error, or a client library failing
                # under a fail-over), subscribers here still hear how the run ends;
                # resume is what is lost. The writer must not die: they would wait forever.
                self.storage_error = exc
                logger.error("event log of thread %s failed: %r", self.thread_id, exc)
        self.broker.publish(self.thread_id, batch)

    async def close(self) -> None:
        """Write what is queued and stop."""
        await self._queue.put(None)
        await self._task
