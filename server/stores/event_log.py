"""Each thread's event log: every event a run emits, numbered, kept for replay.

In Redis it is a stream per thread (`<prefix>:{thread}:events`), capped and expiring, so
a client reconnecting to any process can resume from the last `seq` it saw. Each entry
holds one batch of consecutive events as the emitter writes it (up to `ENTRY_EVENTS`),
its id `0-<seq of its last event>`: one command per batch, not one per event. Without
Redis, a bounded in-process log stands in.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from memory.connection import execute_replaying
from memory.keys import RedisKeys
from server.engine.events import Logged, is_terminal, run_started

ENTRY_EVENTS = 256
"""Most events one stream entry holds: a longer batch is written as several entries.

A model streaming at a human pace fills an entry with a few tokens a flush; a run whose
model answers at once (a cache hit, a fast local model) writes its answer as one entry.
"""
_DUPLICATE_ID = "equal or smaller than the target stream top item"
"""Redis's (and Valkey's) refusal of an XADD whose id the stream already has."""
TAIL_ENTRIES = 16
"""Entries a subscription reads from the end of a log as it starts: a run's events fill a
handful of entries, so these usually hold the newest run whole."""


@dataclass(frozen=True, slots=True)
class LogTail:
    """The newest events of a thread's log, read in one go as a subscription starts."""

    events: list[Logged]
    """Oldest first."""
    whole: bool
    """The log holds nothing older than `events`."""

    @property
    def last_seq(self) -> int:
        """The `seq` of the newest event, 0 if none."""
        return self.events[-1]["seq"] if self.events else 0

    @property
    def unfinished(self) -> bool:
        """The newest event is not a run's end: that run may still be running, or be lost."""
        return bool(self.events) and not is_terminal(self.events[-1])

    def latest_run_start(self) -> int | None:
        """The `seq` that started the newest run, if these events hold it."""
        starts = (e["seq"] for e in reversed(self.events) if run_started(e) is not None)
        return next(starts, None)

    def after(self, seq: int) -> list[Logged] | None:
        """The events after `seq`, or `None` if some of them are older than these."""
        if not self.whole and (not self.events or self.events[0]["seq"] > seq + 1):
            return None
        return [e for e in self.events if e["seq"] > seq]


class EventLog(Protocol):
    """Where runs' events are kept for subscribers and replay."""

    async def append(self, thread_id: str, events: list[Logged]) -> None:
        """Store numbered events, in order."""

    async def read(self, thread_id: str, after: int, limit: int = 1000) -> list[Logged]:
        """Events with `seq` greater than `after`, oldest first."""

    async def last_seq(self, thread_id: str) -> int:
        """The `seq` of the thread's newest event, 0 if none."""

    async def last(self, thread_id: str) -> Logged | None:
        """The thread's newest event, if any."""

    async def latest_run_start(self, thread_id: str) -> int | None:
        """The `seq` of the event that started the thread's newest run, if the log has it."""

    async def tail(self, thread_id: str) -> LogTail:
        """The thread's newest events, in one read."""

    async def wait(self, thread_id: str, after: int, timeout: float) -> list[Logged]:
        """Events after `after`, waiting up to `timeout` seconds for the first."""

    async def delete(self, thread_id: str) -> None:
        """Forget a thread's events."""


class RedisEventLog:
    """The event log as one capped, expiring Redis stream per thread."""

    def __init__(
        self, client: Redis | RedisCluster, *, keys: RedisKeys, maxlen: int, ttl: int
    ) -> None:
        self.client = client
        self.keys = keys
        self.maxlen = maxlen
        self.ttl = ttl

    def key(self, thread_id: str) -> str:
        """The thread's stream, in the slot of its other keys."""
        return self.keys.events(thread_id)

    async def append(self, thread_id: str, events: list[Logged]) -> None:
        """Store numbered events, in order, in one round trip.

        The TTL restarts when a run starts (the batch with its root `running`), not
        with every batch: one command per run instead of one per batch. A log is kept
        the TTL (a day by default) from its newest run's start, which outlasts any run.
        """
        if not events:
            return
        key = self.key(thread_id)
        refresh = any(run_started(e) is not None for e in events)

        entries = [events[i : i + ENTRY_EVENTS] for i in range(0, len(events), ENTRY_EVENTS)]

        def queue(pipe: Any) -> None:
            for entry in entries:
                pipe.xadd(
                    key,
                    {str(n): event.raw for n, event in enumerate(entry)},
                    id=f"0-{entry[-1]['seq']}",
                    maxlen=self.maxlen,
                    approximate=True,
                )
            if refresh:
                pipe.expire(key, self.ttl)

        try:
            # A batch that met a connection a Redis restart closed is sent again on a
            # fresh one: a run never ends with its events unlogged for that.
            await execute_replaying(self.client, queue)
        except ResponseError as exc:
            # A batch is sent again when it loses the connection (as a Cluster client
            # does to every connection while a master fails over). If an earlier send
            # got through, its entries refuse to be added twice: that is success.
            if _DUPLICATE_ID not in str(exc) or await self.last_seq(thread_id) < events[-1]["seq"]:
                raise
            await self.client.expire(key, self.ttl)

    @staticmethod
    def _decode(entries: list[Any], after: int = 0) -> list[Logged]:
        # An entry holds a batch (fields "0", "1", …; "e" in logs written before
        # batches); the first entry read may begin at or before `after`.
        events = (Logged.decode(raw) for _, fields in entries for raw in fields.values())
        return [event for event in events if event["seq"] > after]

    async def read(self, thread_id: str, after: int, limit: int = 1000) -> list[Logged]:
        """Events with `seq` greater than `after`, oldest first.

        At least `limit` of them when the log holds that many more (a page shorter than
        `limit` is the last).
        """
        found: list[Logged] = []
        start = f"(0-{after}"
        while True:
            entries: Any = await self.client.xrange(self.key(thread_id), start, "+", count=limit)
            found.extend(self._decode(entries, after))
            if len(entries) < limit or len(found) >= limit:
                return found
            start = f"({_entry_id(entries[-1][0])}"

    async def last_seq(self, thread_id: str) -> int:
        """The `seq` of the thread's newest event, 0 if none."""
        newest: Any = await self.client.xrevrange(self.key(thread_id), "+", "-", count=1)
        if not newest:
            return 0
        return int(_entry_id(newest[0][0]).split("-")[1])

    async def last(self, thread_id: str) -> Logged | None:
        """The thread's newest event, if any."""
        newest: Any = await self.client.xrevrange(self.key(thread_id), "+", "-", count=1)
        return self._decode(newest)[-1] if newest else None

    async def latest_run_start(self, thread_id: str) -> int | None:
        """The `seq` of the event that started the thread's newest run, if the log has it.

        Read backwards a few entries at a time: a run's events fill a handful of entries.
        """
        end = "+"
        while True:
            entries: Any = await self.client.xrevrange(self.key(thread_id), end, "-", count=16)
            for event in reversed(self._decode(list(reversed(entries)))):
                if run_started(event) is not None:
                    return int(event["seq"])
            if len(entries) < 16:
                return None
            end = f"({_entry_id(entries[-1][0])}"

    async def tail(self, thread_id: str) -> LogTail:
        """The events of the thread's newest `TAIL_ENTRIES` entries, in one command."""
        entries: Any = await self.client.xrevrange(
            self.key(thread_id), "+", "-", count=TAIL_ENTRIES
        )
        return LogTail(self._decode(entries[::-1]), whole=len(entries) < TAIL_ENTRIES)

    async def wait(self, thread_id: str, after: int, timeout: float) -> list[Logged]:
        """Events after `after`, blocking in Redis up to `timeout` seconds for the first."""
        found: Any = await self.client.xread(
            {self.key(thread_id): f"0-{after}"}, count=1000, block=int(timeout * 1000)
        )
        return self._decode(found[0][1], after) if found else []

    async def delete(self, thread_id: str) -> None:
        """Forget a thread's events."""
        await self.client.delete(self.key(thread_id))


def _entry_id(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class MemoryEventLog:
    """The event log in process memory, when no Redis is configured: bounded per thread."""

    def __init__(self, *, maxlen: int) -> None:
        self._events: defaultdict[str, deque[Logged]] = defaultdict(lambda: deque(maxlen=maxlen))
        self._changed: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def append(self, thread_id: str, events: list[Logged]) -> None:
        """Store numbered events, in order."""
        self._events[thread_id].extend(events)
        changed = self._changed.pop(thread_id, None)
        if changed is not None:
            changed.set()

    async def read(self, thread_id: str, after: int, limit: int = 1000) -> list[Logged]:
        """Events with `seq` greater than `after`, oldest first."""
        return [e for e in self._events.get(thread_id, ()) if e["seq"] > after][:limit]

    async def last_seq(self, thread_id: str) -> int:
        """The `seq` of the thread's newest event, 0 if none."""
        events = self._events.get(thread_id)
        return events[-1]["seq"] if events else 0

    async def last(self, thread_id: str) -> Logged | None:
        """The thread's newest event, if any."""
        events = self._events.get(thread_id)
        return events[-1] if events else None

    async def latest_run_start(self, thread_id: str) -> int | None:
        """The `seq` of the event that started the thread's newest run, if the log has it."""
        return (await self.tail(thread_id)).latest_run_start()

    async def tail(self, thread_id: str) -> LogTail:
        """The thread's whole log: in memory it costs nothing to read."""
        return LogTail(list(self._events.get(thread_id, ())), whole=True)

    async def wait(self, thread_id: str, after: int, timeout: float) -> list[Logged]:
        """Events after `after`, waiting up to `timeout` seconds for the first."""
        found = await self.read(thread_id, after)
        if found:
            return found
        changed = self._changed[thread_id]
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return []
        return await self.read(thread_id, after)

    async def delete(self, thread_id: str) -> None:
        """Forget a thread's events."""
        self._events.pop(thread_id, None)
