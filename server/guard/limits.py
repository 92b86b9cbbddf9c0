"""Per-caller limits, shared by every process through Redis.

Runs, model tokens and writes per window are sliding-window counters
(`server/guard/windows.py`); connections open at once use a lease-based semaphore, so a
crashed process's slots free themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from memory.keys import RedisKeys
from server.guard.windows import Charge, MemoryWindows, RedisWindows, Windows
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
        self._runs = runs
        self._tokens = tokens
        self._writes = writes
        self._windows: Windows
        if redis is not None:
            self._windows = RedisWindows(redis, prefix=keys.limits, window=window)
            self.slots: RedisConnectionSlots | MemoryConnectionSlots = RedisConnectionSlots(
                redis, keys=keys
            )
        else:
            self._windows = MemoryWindows(window=window)
            self.slots = MemoryConnectionSlots()

    async def start_run(self, key: str) -> Verdict:
        """Count a new run, unless the caller is out of runs or tokens for the window."""
        outcome = await self._windows.charge(
            key, [Charge("tokens", self._tokens, 0), Charge("runs", self._runs, 1)], capped=False
        )
        reset = outcome.reset_after
        if outcome.refused == 0:
            return _counted(Verdict("model tokens", False, self._tokens, 0, reset, self.window))
        remaining = self._runs - outcome.used[1]
        allowed = outcome.refused is None
        return _counted(Verdict("runs", allowed, self._runs, remaining, reset, self.window))

    async def write(self, key: str) -> Verdict:
        """Count a write that is not a run, unless the caller is out of writes.

        Writes: a thread created or copied, a state or a metadata update.
        """
        outcome = await self._windows.charge(key, [Charge("writes", self._writes, 1)], capped=False)
        remaining = self._writes - outcome.used[0]
        return _counted(
            Verdict("writes", outcome.refused is None, self._writes, remaining,
                    outcome.reset_after, self.window)
        )  # fmt: skip

    async def spend_tokens(self, key: str, tokens: int) -> None:
        """Charge a finished run's model tokens (up to what the window has left)."""
        if tokens > 0:
            await self._windows.charge(key, [Charge("tokens", self._tokens, tokens)], capped=True)

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
