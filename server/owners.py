"""Which owner each thread belongs to: set by the first touch, checked on every access.

In Redis the owner is `<prefix>:{thread}:owner`, in the thread's slot, expiring with
the thread; without Redis, a dict in process memory stands in.
"""

from __future__ import annotations

from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

_CLAIM = """
local current = redis.call('GET', KEYS[1])
if not current then
  current = ARGV[1]
  redis.call('SET', KEYS[1], current)
end
if current == ARGV[1] and tonumber(ARGV[2]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return current
"""


class ThreadOwners(Protocol):
    """Thread ownership."""

    async def claim(self, thread_id: str, owner: str) -> str:
        """Make `owner` the thread's owner unless it has one; the owner it now has."""

    async def owner_of(self, thread_id: str) -> str | None:
        """The thread's owner, `None` for a thread no one has touched."""

    async def forget(self, thread_id: str) -> None:
        """The thread is deleted: it has no owner any more."""


class RedisThreadOwners:
    """Owners in Redis, shared by every process."""

    def __init__(self, client: Redis | RedisCluster, *, prefix: str, ttl: int | None) -> None:
        """Keep owners under `prefix`, expiring `ttl` seconds after the last claim."""
        self.client = client
        self.prefix = prefix
        self.ttl = ttl or 0
        self._claim: Any = client.register_script(_CLAIM)

    def key(self, thread_id: str) -> str:
        """The thread's owner key."""
        return f"{self.prefix}:{{{thread_id}}}:owner"

    async def claim(self, thread_id: str, owner: str) -> str:
        """Make `owner` the thread's owner unless it has one; the owner it now has."""
        current = await self._claim(keys=[self.key(thread_id)], args=[owner, self.ttl])
        return current.decode() if isinstance(current, bytes) else str(current)

    async def owner_of(self, thread_id: str) -> str | None:
        """The thread's owner, `None` for a thread no one has touched."""
        current: Any = await self.client.get(self.key(thread_id))
        if current is None:
            return None
        return current.decode() if isinstance(current, bytes) else str(current)

    async def forget(self, thread_id: str) -> None:
        """The thread is deleted: it has no owner any more."""
        await self.client.delete(self.key(thread_id))


class MemoryThreadOwners:
    """Owners in process memory, when there is no Redis."""

    def __init__(self) -> None:
        """No thread has an owner yet."""
        self._owners: dict[str, str] = {}

    async def claim(self, thread_id: str, owner: str) -> str:
        """Make `owner` the thread's owner unless it has one; the owner it now has."""
        return self._owners.setdefault(thread_id, owner)

    async def owner_of(self, thread_id: str) -> str | None:
        """The thread's owner, `None` for a thread no one has touched."""
        return self._owners.get(thread_id)

    async def forget(self, thread_id: str) -> None:
        """The thread is deleted: it has no owner any more."""
        self._owners.pop(thread_id, None)
