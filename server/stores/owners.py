"""Which owner each thread belongs to: set by the first touch, checked on every access.

In Redis the owner is `<prefix>:{thread}:owner`, in the thread's slot, expiring with
the thread. Each owner also has an index of their threads, newest first
(`<prefix>:owner:{owner}:threads`, in the owner's slot), so a client can offer "your
conversations" without scanning; their titles are in the threads' records. Titles
written before they moved there are read from `…:titles`, which is no longer written.
Without Redis, dicts stand in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from memory.keys import RedisKeys

MAX_INDEXED = 1000
"""Threads kept in an owner's index; older ones drop out of the list (not the store)."""


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    """One of an owner's threads."""

    thread_id: str
    title: str
    updated_at: float
    """Unix seconds of the latest run."""


class ThreadOwners(Protocol):
    """Thread ownership."""

    async def remember(self, owner: str, thread_id: str) -> None:
        """Put the thread first in its owner's index."""

    async def threads_of(self, owner: str, limit: int) -> list[ThreadEntry]:
        """The owner's threads, newest first (titled only where an old index kept one)."""

    async def claim(self, thread_id: str, owner: str) -> str:
        """Make `owner` the thread's owner unless it has one; the owner it now has."""

    async def count(self, owner: str) -> int:
        """How many threads the owner's index holds."""

    async def owner_of(self, thread_id: str) -> str | None:
        """The thread's owner, `None` for a thread no one has touched."""

    async def forget(self, thread_id: str) -> None:
        """The thread is deleted: it has no owner any more."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisThreadOwners:
    """Owners in Redis, shared by every process."""

    def __init__(self, client: Redis | RedisCluster, *, keys: RedisKeys, ttl: int | None) -> None:
        """Keep owners at `keys`, expiring `ttl` seconds after the last claim."""
        self.client = client
        self.keys = keys
        self.ttl = ttl or 0

    def _index(self, owner: str) -> tuple[str, str]:
        return (
            self.keys.owner_threads(owner),
            self.keys.owner_titles(owner),
        )

    async def remember(self, owner: str, thread_id: str) -> None:
        """Put the thread first in its owner's index; the oldest beyond `MAX_INDEXED` go."""
        threads, _ = self._index(owner)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(threads, {thread_id: time.time()})
        pipe.zremrangebyrank(threads, 0, -MAX_INDEXED - 1)
        if self.ttl:
            pipe.expire(threads, self.ttl)
        await pipe.execute()

    async def count(self, owner: str) -> int:
        """How many threads the owner's index holds (those past their TTL included)."""
        threads, _ = self._index(owner)
        found: int = await self.client.zcard(threads)
        return found

    async def threads_of(self, owner: str, limit: int) -> list[ThreadEntry]:
        """The owner's threads, newest first; threads past their TTL are left out."""
        threads, titles = self._index(owner)
        oldest = time.time() - self.ttl if self.ttl else 0
        found: Any = await self.client.zrange(
            threads, "+inf", oldest, desc=True, byscore=True, withscores=True,
            offset=0, num=limit,
        )  # fmt: skip
        if not found:
            return []
        names: Any = await self.client.hmget(titles, [member for member, _ in found])
        return [
            ThreadEntry(thread_id=_text(member), title=_text(name or b""), updated_at=score)
            for (member, score), name in zip(found, names, strict=True)
        ]

    def key(self, thread_id: str) -> str:
        """The thread's owner key."""
        return self.keys.owner(thread_id)

    async def claim(self, thread_id: str, owner: str) -> str:
        """Make `owner` the thread's owner unless it has one; the owner it now has."""
        key = self.key(thread_id)
        while True:
            # One command for a new thread; one more, to read it, for a claimed one
            # (and an EXPIRE when it was already `owner`'s: its TTL restarts).
            if await self.client.set(key, owner, nx=True, ex=self.ttl or None):
                return owner
            current = await self.client.get(key)
            if current is not None:  # else: deleted between the two; claim again
                break
        current = _text(current)
        if current == owner and self.ttl:
            await self.client.expire(key, self.ttl)
        return current

    async def owner_of(self, thread_id: str) -> str | None:
        """The thread's owner, `None` for a thread no one has touched."""
        current: Any = await self.client.get(self.key(thread_id))
        if current is None:
            return None
        return current.decode() if isinstance(current, bytes) else str(current)

    async def forget(self, thread_id: str) -> None:
        """The thread is deleted: it has no owner any more, and leaves their index."""
        owner = await self.owner_of(thread_id)
        await self.client.delete(self.key(thread_id))
        if owner is not None:
            threads, titles = self._index(owner)
            await self.client.zrem(threads, thread_id)
            await self.client.hdel(titles, thread_id)


class MemoryThreadOwners:
    """Owners in process memory, when there is no Redis."""

    def __init__(self) -> None:
        """No thread has an owner yet."""
        self._owners: dict[str, str] = {}
        self._index: dict[str, dict[str, ThreadEntry]] = {}

    async def remember(self, owner: str, thread_id: str) -> None:
        """Put the thread first in its owner's index."""
        index = self._index.setdefault(owner, {})
        index.pop(thread_id, None)
        index[thread_id] = ThreadEntry(thread_id, "", time.time())
        while len(index) > MAX_INDEXED:
            del index[next(iter(index))]

    async def threads_of(self, owner: str, limit: int) -> list[ThreadEntry]:
        """The owner's threads, newest first."""
        return list(reversed(self._index.get(owner, {}).values()))[:limit]

    async def count(self, owner: str) -> int:
        """How many threads the owner has."""
        return len(self._index.get(owner, {}))

    async def claim(self, thread_id: str, owner: str) -> str:
        """Make `owner` the thread's owner unless it has one; the owner it now has."""
        return self._owners.setdefault(thread_id, owner)

    async def owner_of(self, thread_id: str) -> str | None:
        """The thread's owner, `None` for a thread no one has touched."""
        return self._owners.get(thread_id)

    async def forget(self, thread_id: str) -> None:
        """The thread is deleted: it has no owner any more, and leaves their index."""
        owner = self._owners.pop(thread_id, None)
        if owner is not None:
            self._index.get(owner, {}).pop(thread_id, None)
