"""Numbering a run's events, writing them to the thread's log, then fanning them out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from server.engine.broker import Broker
from server.engine.events import Logged, numbered
from server.engine.pacing import WritePacing
from server.stores.event_log import EventLog

logger = logging.getLogger("alma.engine")


class Emitter:
    """Numbers a run's events, appends them to the log, then fans them out — in order.

    Events wait in a bounded queue and are written in batches: a burst of tokens costs
    one Redis round trip, and a slow log slows the run instead of growing memory. Writes
    are `pacing`'s interval apart (`server/engine/pacing.py`): the first event after a
    quiet spell (a run's start, an answer's first token) goes at once, and the tokens
    streaming after it wait for the next write together instead of costing one each. An
    event emitted `now` (the answer's first token, the run's end) does not wait.

    A write that fails (Redis restarting, a Cluster master failing over) is caught up
    later: the run's events the log lacks — those of the failed writes, and any the old
    master acknowledged but never replicated — are written again with the next batch,
    and at the end for up to `catch_up_seconds`, so the log holds the whole run.
    """

    def __init__(
        self,
        *,
        thread_id: str,
        first_seq: int,
        log: EventLog,
        broker: Broker,
        catch_up_seconds: float = 10.0,
        pacing: WritePacing | None = None,
    ) -> None:
        self.thread_id = thread_id
        self.next_seq = first_seq
        self.log = log
        self.broker = broker
        self.storage_error: Exception | None = None
        """Why the log lacks some of the run's events (None: it has them all)."""
        self.catch_up_seconds = catch_up_seconds
        self.pacing = pacing or WritePacing()
        self._last_write = float("-inf")
        self._emitted: list[Logged] = []
        self._next_try = 0.0
        self._queue: asyncio.Queue[Logged | None] = asyncio.Queue(maxsize=4096)
        self._loop = asyncio.get_running_loop()
        self._hurry: asyncio.Future[None] = self._loop.create_future()
        self._task = asyncio.create_task(self._flush())

    async def emit(self, event: dict[str, Any], *, now: bool = False) -> None:
        """Queue an event for the log and the subscribers; `now`: write it at once."""
        await self._queue.put(numbered(event, self.next_seq))
        self.next_seq += 1
        if now and not self._hurry.done():
            self._hurry.set_result(None)

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
            wait = self._last_write + self.pacing.interval() - self._loop.time()
            if wait > 0 and not self._hurry.done():
                await asyncio.wait({self._hurry}, timeout=wait)
            if self._hurry.done():
                self._hurry = self._loop.create_future()
            self._last_write = self._loop.time()
            batch = [first]
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    await self._write(batch)
                    return
                batch.append(item)
            await self._write(batch)

    async def _write(self, batch: list[Logged]) -> None:
        self._emitted.extend(batch)
        await self._store(batch)
        # Subscribers here hear every event even when the log could not take it: the
        # run goes on, and its end reaches them however the log fares.
        self.broker.publish(self.thread_id, batch)

    async def _store(self, batch: list[Logged]) -> None:
        if self.storage_error is not None and self._loop.time() < self._next_try:
            return  # tried a moment ago: the events wait for the next try
        try:
            if self.storage_error is None:
                await self.log.append(self.thread_id, batch)
            else:
                # Catch up from what the log really holds now.
                last = await self.log.last_seq(self.thread_id)
                await self.log.append(self.thread_id, [e for e in self._emitted if e["seq"] > last])
                logger.info("event log of thread %s caught up", self.thread_id)
            self.storage_error = None
        except Exception as exc:
            # Whatever broke the write (a Redis error, or a client library failing under
            # a fail-over), the writer must not die: subscribers would wait forever.
            if self.storage_error is None:
                logger.error("event log of thread %s failed: %r", self.thread_id, exc)
            self.storage_error = exc
            self._next_try = self._loop.time() + 1.0

    async def close(self) -> None:
        """Write what is queued, catch the log up if it fell behind, and stop."""
        await self._queue.put(None)
        if not self._hurry.done():
            self._hurry.set_result(None)
        await self._task
        deadline = self._loop.time() + self.catch_up_seconds
        while self.storage_error is not None and self._loop.time() < deadline:
            await asyncio.sleep(max(0.0, self._next_try - self._loop.time()))
            await self._store([])
