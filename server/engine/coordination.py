"""What ALMA processes sharing one Redis tell each other: who runs what, and stop that.

- Run leases: one active run per thread. The holder renews the lease while the run
  lives; a process that dies lets it lapse, so the thread frees itself.
- Control messages (Redis pub/sub): cancel a run wherever it executes; a run started,
  so processes with listeners on its thread follow its event log.

Without Redis the same interfaces work within the one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from memory.keys import RedisKeys
from server.engine.events import Logged

logger = logging.getLogger("alma.server")

ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]

# Delete / extend a lease only if it is still ours.
_RELEASE = """
local held = redis.call("GET", KEYS[1])
if held and cjson.decode(held)["run_id"] == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
"""
# KEYS[1]: the lease, KEYS[2]: the thread's event log. ARGV: run id, process, lease ms.
# Takes a free thread with its first `seq` already known: one round trip, and no second
# write of the lease. Returns {1, lease, the log's newest event} or {0, the holder}.
_TAKE = """
local newest = redis.call("XREVRANGE", KEYS[2], "+", "-", "COUNT", 1)
local seq, last = 0, false
if #newest > 0 then
  seq = tonumber(string.match(newest[1][1], "%-(%d+)$"))
  local fields = newest[1][2]
  last = fields[#fields]
end
local lease = cjson.encode({run_id = ARGV[1], owner = ARGV[2], first_seq = seq + 1})
if redis.call("SET", KEYS[1], lease, "NX", "PX", ARGV[3]) then return {1, lease, last} end
return {0, redis.call("GET", KEYS[1])}
"""
_RENEW = """
local held = redis.call("GET", KEYS[1])
if held and cjson.decode(held)["run_id"] == ARGV[1] then
  return redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
end
return false
"""


@dataclass(frozen=True)
class ActiveRun:
    """The run a thread is busy with, and where."""

    run_id: str
    owner: str
    """The process executing it."""
    first_seq: int
    """The `seq` of its first event in the thread's log (0 until known)."""


@dataclass(frozen=True)
class Taken:
    """A thread just taken: our lease, and how its event log ended when we took it."""

    lease: ActiveRun
    """Its `first_seq` follows the log's newest event (0 when the log was not read)."""
    newest: Logged | None
    """The log's newest event (`None`: an empty log, or one not read)."""
    read: bool
    """Whether the log was read as the thread was taken."""


class RunLeases(Protocol):
    """One active run per thread."""

    async def acquire(self, thread_id: str, run: ActiveRun) -> Taken | ActiveRun:
        """Take the thread for `run`, or return the run that holds it if it is busy."""

    async def renew(self, thread_id: str, run: ActiveRun) -> bool:
        """Extend (or update) our lease; `False` if it was lost."""

    async def release(self, thread_id: str, run_id: str) -> None:
        """Free the thread, if `run_id` still holds it."""

    async def holder(self, thread_id: str) -> ActiveRun | None:
        """The thread's active run, if any."""


class Control(Protocol):
    """Messages between processes."""

    async def publish(self, message: dict[str, Any]) -> None:
        """Send a message to every process (this one included)."""

    async def listen(self, handler: ControlHandler) -> None:
        """Deliver messages to `handler` until cancelled."""


class RedisRunLeases:
    """Run leases as `<prefix>:{thread}:active` keys with a time-to-live."""

    def __init__(self, client: Redis | RedisCluster, *, keys: RedisKeys, lease: float) -> None:
        self.client = client
        self.keys = keys
        self.lease_ms = int(lease * 1000)
        # Scripts go by their SHA1 (redis-py re-sends the source on NOSCRIPT), not with
        # their source on every call.
        self._take: Any = client.register_script(_TAKE)
        self._renew: Any = client.register_script(_RENEW)
        self._release: Any = client.register_script(_RELEASE)

    def key(self, thread_id: str) -> str:
        """The thread's lease, in the slot of its other keys."""
        return self.keys.lease(thread_id)

    async def acquire(self, thread_id: str, run: ActiveRun) -> Taken | ActiveRun:
        """Take the thread for `run` from the end of its log, or return its holder.

        The lease names the run's first `seq` (after the log's newest event) from the
        start: a run that finds its thread's last run ended writes its lease once.
        """
        keys = [self.key(thread_id), self.keys.events(thread_id)]
        taken, lease, *newest = await self._take(
            keys=keys, args=[run.run_id, run.owner, self.lease_ms]
        )
        held = ActiveRun(**orjson.loads(lease))
        if not taken:
            return held
        last = newest[0] if newest else None
        return Taken(held, Logged.decode(last) if last else None, read=True)

    async def renew(self, thread_id: str, run: ActiveRun) -> bool:
        """Extend (or update) our lease; `False` if it was lost."""
        renewed = await self._renew(
            keys=[self.key(thread_id)],
            args=[run.run_id, orjson.dumps(asdict(run)), self.lease_ms],
        )
        return bool(renewed)

    async def release(self, thread_id: str, run_id: str) -> None:
        """Free the thread, if `run_id` still holds it."""
        await self._release(keys=[self.key(thread_id)], args=[run_id])

    async def holder(self, thread_id: str) -> ActiveRun | None:
        """The thread's active run, if any."""
        held = await self.client.get(self.key(thread_id))
        return ActiveRun(**orjson.loads(held)) if held else None


class MemoryRunLeases:
    """Run leases within one process."""

    def __init__(self) -> None:
        self._held: dict[str, ActiveRun] = {}

    async def acquire(self, thread_id: str, run: ActiveRun) -> Taken | ActiveRun:
        """Take the thread for `run` (its log unread), or return the run that holds it."""
        holder = self._held.get(thread_id)
        if holder is not None:
            return holder
        self._held[thread_id] = run
        return Taken(run, None, read=False)

    async def renew(self, thread_id: str, run: ActiveRun) -> bool:
        """Update our lease; `False` if it was lost."""
        if self._held.get(thread_id, run).run_id != run.run_id:
            return False
        self._held[thread_id] = run
        return True

    async def release(self, thread_id: str, run_id: str) -> None:
        """Free the thread, if `run_id` still holds it."""
        if (held := self._held.get(thread_id)) is not None and held.run_id == run_id:
            del self._held[thread_id]

    async def holder(self, thread_id: str) -> ActiveRun | None:
        """The thread's active run, if any."""
        return self._held.get(thread_id)


class RedisControl:
    """Control messages over one Redis pub/sub channel."""

    def __init__(self, client: Redis | RedisCluster, *, keys: RedisKeys) -> None:
        self.client = client
        self.channel = keys.control

    async def publish(self, message: dict[str, Any]) -> None:
        """Send a message to every process."""
        await self.client.publish(self.channel, orjson.dumps(message))

    async def listen(self, handler: ControlHandler) -> None:
        """Deliver messages to `handler` until cancelled; resubscribe after Redis blips."""
        while True:
            pubsub: Any = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for raw in pubsub.listen():
                    if raw.get("type") == "message":
                        with contextlib.suppress(Exception):
                            await handler(orjson.loads(raw["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("control channel lost (%s); reconnecting", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


class MemoryControl:
    """Control messages within one process."""

    def __init__(self) -> None:
        self._handler: ControlHandler | None = None

    async def publish(self, message: dict[str, Any]) -> None:
        """Deliver at once to this process's handler."""
        if self._handler is not None:
            await self._handler(message)

    async def listen(self, handler: ControlHandler) -> None:
        """Register `handler`; returns only when cancelled."""
        self._handler = handler
        try:
            await asyncio.Event().wait()
        finally:
            self._handler = None
