"""Per-caller limits, shared by every process through Redis.

Runs and model tokens per window use the `limits` library's sliding-window counters;
connections open at once use a lease-based semaphore, so a crashed process's slots free
themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from memory.keys import RedisKeys
from server.observability.metrics import RATE_LIMITED

SLOT_LEASE_SECONDS = 60.0
"""A connection's slot outlives a crashed process by at most this."""

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[3]) then
  return {0, count}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, count + 1}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one more is allowed under a limit, and where the limit stands."""

    name: str
    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    """Seconds until the window frees room (the retry delay when refused)."""
    window: int

    @property
    def retry_after(self) -> int:
        """Whole seconds a refused caller should wait."""
        return max(1, math.ceil(self.reset_after))

    def headers(self) -> dict[str, str]:
        """`RateLimit-*` headers (and `Retry-After` when refused)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.remaining, 0)),
            "RateLimit-Reset": str(max(0, math.ceil(self.reset_after))),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers

    def explain(self, who: str) -> str:
        """The refusal in words, naming the limit and the wait."""
        per = f" per {self.window} s" if self.window else " at once"
        return (
            f"rate limit reached for {who}: {self.limit} {self.name}{per}; "
            f"retry in {self.retry_after} s"
        )


class ConnectionSlots(Protocol):
    """Connections open at once, per caller."""

    async def acquire(self, key: str, connection_id: str, limit: int) -> tuple[bool, int]:
        """Take a slot; `(taken, slots in use)`."""

    async def release(self, key: str, connection_id: str) -> None:
        """Give a slot back."""


class RedisConnectionSlots:
    """Slots as a sorted set per caller, scored by lease expiry; leases are renewed."""

    def __init__(self, client: Redis | RedisCluster, *, keys: RedisKeys) -> None:
        """Keep slots at `keys`."""
        self.client = client
        self.keys = keys
        self._acquire: Any = client.register_script(_ACQUIRE)
        self._held: dict[tuple[str, str], None] = {}
        self._renewer: asyncio.Task[None] | None = None

    def _key(self, key: str) -> str:
        return self.keys.connections(key)

    async def acquire(self, key: str, connection_id: str, limit: int) -> tuple[bool, int]:
        """Take a slot; `(taken, slots in use)`."""
        now = time.time()
        taken, count = await self._acquire(
            keys=[self._key(key)],
            args=[now, now + SLOT_LEASE_SECONDS, limit, connection_id, int(SLOT_LEASE_SECONDS)],
        )
        if taken:
            self._held[(key, connection_id)] = None
            if self._renewer is None or self._renewer.done():
                self._renewer = asyncio.create_task(self._renew())
        return bool(taken), int(count)

    async def release(self, key: str, connection_id: str) -> None:
        """Give a slot back."""
        self._held.pop((key, connection_id), None)
        if not self._held and self._renewer is not None:
            self._renewer.cancel()  # nothing left to renew; the next slot starts it again
            self._renewer = None
        with contextlib.suppress(RedisError, OSError):
            await self.client.zrem(self._key(key), connection_id)

    async def _renew(self) -> None:
        # One task per process renews every slot it holds, so slots of a process that
        # died lapse within a lease.
        while self._held:
            await asyncio.sleep(SLOT_LEASE_SECONDS / 3)
            expiry = time.time() + SLOT_LEASE_SECONDS
            pipe = self.client.pipeline(transaction=False)
            for key, connection_id in list(self._held):
                pipe.zadd(self._key(key), {connection_id: expiry}, xx=True)
            with contextlib.suppress(RedisError, OSError):
                await pipe.execute()

    async def aclose(self) -> None:
        """Stop renewing."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer


class MemoryConnectionSlots:
    """Slots in process memory, when there is no Redis."""

    def __init__(self) -> None:
        """No slot is taken."""
        self._held: dict[str, set[str]] = {}

    async def acquire(self, key: str, connection_id: str, limit: int) -> tuple[bool, int]:
        """Take a slot; `(taken, slots in use)`."""
        held = self._held.setdefault(key, set())
        if len(held) >= limit:
            return False, len(held)
        held.add(connection_id)
        return True, len(held)

    async def release(self, key: str, connection_id: str) -> None:
        """Give a slot back."""
        held = self._held.get(key)
        if held is not None:
            held.discard(connection_id)
            if not held:
                del self._held[key]

    async def aclose(self) -> None:
        """Nothing to stop."""


def _counted(verdict: Verdict) -> Verdict:
    if not verdict.allowed:
        RATE_LIMITED.labels(verdict.name.split()[-1]).inc()
    return verdict


class RateLimits:
    """The limits of every caller: runs and tokens per window, connections at once."""

    def __init__(
        self,
        *,
        runs: int,
        tokens: int,
        connections: int,
        writes: int = 120,
        window: int,
        redis: Redis | RedisCluster | None,
        keys: RedisKeys,
    ) -> None:
        """Limits over Redis when given (shared by processes), else in process memory."""
        self.window = window
        self.connections = connections
        self._runs = RateLimitItemPerSecond(runs, window)
        self._tokens = RateLimitItemPerSecond(tokens, window)
        self._writes = RateLimitItemPerSecond(writes, window)
        storage: Any
        if isinstance(redis, RedisCluster):
            # `limits` builds a Cluster client of its own from a URI, without the
            # password, TLS, timeouts and fail-over handling of the service's: it is
            # made to use the service's client instead (the one it built never connects).
            storage = RedisClusterStorage(
                "async+redis+cluster://127.0.0.1:7000",
                implementation="redispy",
                key_prefix=keys.limits,
            )
            storage.bridge.storage = redis
            storage.bridge.connection_getter = lambda _: redis
            storage.bridge.register_scripts()
        elif redis is not None:
            # The URI is a formality: the counters share the service's connection pool.
            pool: Any = redis.connection_pool
            storage = RedisStorage(
                "async+redis://localhost:6379",
                implementation="redispy",
                connection_pool=pool,
                key_prefix=keys.limits,
            )
        if redis is not None:
            self.slots: RedisConnectionSlots | MemoryConnectionSlots = RedisConnectionSlots(
                redis, keys=keys
            )
        else:
            storage = MemoryStorage()
            self.slots = MemoryConnectionSlots()
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    async def _stats(self, item: RateLimitItem, key: str) -> tuple[int, float]:
        stats = await self._limiter.get_window_stats(item, key)
        return stats.remaining, max(0.0, stats.reset_time - time.time())

    async def start_run(self, key: str) -> Verdict:
        """Count a new run, unless the caller is out of runs or tokens for the window."""
        tokens_left, tokens_reset = await self._stats(self._tokens, key)
        if tokens_left <= 0:
            return _counted(
                Verdict("model tokens", False, self._tokens.amount, 0, tokens_reset, self.window)
            )
        allowed = await self._limiter.hit(self._runs, key)
        remaining, reset = await self._stats(self._runs, key)
        return _counted(Verdict("runs", allowed, self._runs.amount, remaining, reset, self.window))

    async def write(self, key: str) -> Verdict:
        """Count a write that is not a run, unless the caller is out of writes.

        Writes: a thread created or copied, a state or a metadata update.
        """
        allowed = await self._limiter.hit(self._writes, key)
        remaining, reset = await self._stats(self._writes, key)
        return _counted(
            Verdict("writes", allowed, self._writes.amount, remaining, reset, self.window)
        )

    async def spend_tokens(self, key: str, tokens: int) -> None:
        """Charge a finished run's model tokens (up to what the window has left)."""
        if tokens <= 0:
            return
        remaining, _ = await self._stats(self._tokens, key)
        if remaining > 0:
            await self._limiter.hit(self._tokens, key, cost=min(tokens, remaining))

    async def open_connection(self, key: str, connection_id: str) -> Verdict:
        """Take one of the caller's connection slots."""
        taken, count = await self.slots.acquire(key, connection_id, self.connections)
        remaining = self.connections - count
        reset = 0.0 if taken else SLOT_LEASE_SECONDS / 6
        return _counted(Verdict("connections", taken, self.connections, remaining, reset, 0))

    async def close_connection(self, key: str, connection_id: str) -> None:
        """Give the slot back."""
        await self.slots.release(key, connection_id)

    async def aclose(self) -> None:
        """Stop background work."""
        await self.slots.aclose()
