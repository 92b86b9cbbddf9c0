"""Crons: their records, and when each next ticks — shared by every process.

In Redis three keys, all in one slot (`{crons}`) so one script can claim a tick:

- `<p>:{crons}:records` (hash): cron id → the record as JSON;
- `<p>:{crons}:due` (sorted set): cron id → its next tick, in epoch milliseconds. Only
  crons that will tick again are there: a disabled or ended cron is not;
- `<p>:{crons}:owner:<O>` (set): an owner's cron ids.

A tick is claimed by moving the cron's score from that tick to the next one, only if
it still holds that tick (`claim`): whichever process does so first starts the run, any
other finds the score moved and does nothing. Nothing ties a cron to a process, so a
dead process's crons tick on wherever a scheduler still runs. Without Redis, dicts in
this process stand in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from memory.connection import execute_replaying
from memory.keys import RedisKeys
from server.stores.run_records import now_iso

# KEYS[1]: the due set. ARGV: cron id, the tick claimed (ms), the next tick (ms, or ""
# when there is none). Compared as numbers: Redis spells a score as it likes.
_CLAIM = """
local held = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not held or tonumber(held) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == "" then redis.call("ZREM", KEYS[1], ARGV[1])
else redis.call("ZADD", KEYS[1], ARGV[3], ARGV[1]) end
return 1
"""


@dataclass
class CronRecord:
    """One cron: whose it is, what it runs, and on which schedule."""

    cron_id: str
    owner: str
    limit_key: str
    """Whom its runs' limits count against: its creator's, as when they start a run."""
    assistant_id: str
    thread_id: str | None
    """`None`: a stateless cron, a new thread per run."""
    schedule: str
    payload: dict[str, Any]
    """The run request as the SDK sent it (LangGraph's `payload`)."""
    timezone: str | None = None
    end_time: str | None = None
    """ISO 8601 in UTC; no run starts after it."""
    on_run_completed: str | None = None
    """A stateless cron's threads: `delete` (the default) or `keep`."""
    enabled: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)

    def public(self, next_run_ms: int | None) -> dict[str, Any]:
        """The cron as LangGraph's API shows one (its owner as `user_id`)."""
        return {
            "cron_id": self.cron_id,
            "assistant_id": self.assistant_id,
            "thread_id": self.thread_id,
            "user_id": self.owner,
            "end_time": self.end_time,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "payload": self.payload,
            "next_run_date": iso_of_ms(next_run_ms),
            "metadata": self.metadata,
            "on_run_completed": self.on_run_completed,
            "enabled": self.enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def iso_of_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as LangGraph writes a time: ISO 8601 in UTC."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@dataclass(frozen=True)
class StoredCron:
    """A cron and its next tick (`None`: it will not tick again)."""

    record: CronRecord
    next_run_ms: int | None

    def public(self) -> dict[str, Any]:
        """See `CronRecord.public`."""
        return self.record.public(self.next_run_ms)


def _load(raw: bytes | str) -> CronRecord:
    return CronRecord(**orjson.loads(raw))


class Crons(Protocol):
    """Where crons live, and who may start their next tick."""

    async def put(self, record: CronRecord, next_run_ms: int | None) -> None:
        """Store (or replace) a cron and when it next ticks (`None`: never again)."""

    async def get(self, cron_id: str) -> StoredCron | None:
        """One cron, whoever owns it."""

    async def of_owner(self, owner: str) -> list[StoredCron]:
        """An owner's crons, in no order."""

    async def delete(self, record: CronRecord) -> bool:
        """Forget a cron; whether it was there."""

    async def due(self, now_ms: int, limit: int) -> list[tuple[str, int]]:
        """Up to `limit` crons whose tick has come, with that tick, earliest first."""

    async def earliest(self) -> int | None:
        """The next tick of any cron, if one will tick."""

    async def claim(self, cron_id: str, tick_ms: int, next_run_ms: int | None) -> bool:
        """Take tick `tick_ms` of the cron, moving it to `next_run_ms`; whether we did.

        False when another process took it first, or the cron changed or went meanwhile.
        """


class RedisCrons:
    """Crons in one Redis slot, claimed tick by tick with a compare-and-set script."""

    def __init__(self, client: Redis | RedisCluster, *, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        self._claim: Any = client.register_script(_CLAIM)

    async def put(self, record: CronRecord, next_run_ms: int | None) -> None:
        """Store (or replace) a cron and when it next ticks (`None`: never again)."""
        packed = orjson.dumps(asdict(record))
        due = self.keys.cron_due

        def queue(pipe: Any) -> None:
            pipe.hset(self.keys.cron_records, record.cron_id, packed)
            pipe.sadd(self.keys.owner_crons(record.owner), record.cron_id)
            if next_run_ms is None:
                pipe.zrem(due, record.cron_id)
            else:
                pipe.zadd(due, {record.cron_id: next_run_ms})

        await execute_replaying(self.client, queue, transaction=True)

    async def get(self, cron_id: str) -> StoredCron | None:
        """One cron, whoever owns it."""
        found = await self._with_ticks([cron_id])
        return found[0] if found else None

    async def of_owner(self, owner: str) -> list[StoredCron]:
        """An owner's crons, in no order."""
        ids: Any = await self.client.smembers(self.keys.owner_crons(owner))
        return await self._with_ticks([i.decode() if isinstance(i, bytes) else i for i in ids])

    async def _with_ticks(self, cron_ids: list[str]) -> list[StoredCron]:
        if not cron_ids:
            return []

        def queue(pipe: Any) -> None:
            pipe.hmget(self.keys.cron_records, cron_ids)
            pipe.zmscore(self.keys.cron_due, cron_ids)

        raws, scores = await execute_replaying(self.client, queue)
        return [
            StoredCron(_load(raw), int(score) if score is not None else None)
            for raw, score in zip(raws, scores, strict=True)
            if raw is not None
        ]

    async def delete(self, record: CronRecord) -> bool:
        """Forget a cron; whether it was there."""

        def queue(pipe: Any) -> None:
            pipe.hdel(self.keys.cron_records, record.cron_id)
            pipe.zrem(self.keys.cron_due, record.cron_id)
            pipe.srem(self.keys.owner_crons(record.owner), record.cron_id)

        removed, *_ = await execute_replaying(self.client, queue, transaction=True)
        return bool(removed)

    async def due(self, now_ms: int, limit: int) -> list[tuple[str, int]]:
        """Up to `limit` crons whose tick has come, with that tick, earliest first."""
        raw: Any = await self.client.zrangebyscore(
            self.keys.cron_due, "-inf", now_ms, start=0, num=limit, withscores=True
        )
        return [(_text(member), int(score)) for member, score in raw]

    async def earliest(self) -> int | None:
        """The next tick of any cron, if one will tick."""
        raw: Any = await self.client.zrange(self.keys.cron_due, 0, 0, withscores=True)
        return int(raw[0][1]) if raw else None

    async def claim(self, cron_id: str, tick_ms: int, next_run_ms: int | None) -> bool:
        """Take tick `tick_ms` of the cron, moving it to `next_run_ms`; whether we did."""
        following = "" if next_run_ms is None else str(next_run_ms)
        return bool(
            await self._claim(keys=[self.keys.cron_due], args=[cron_id, tick_ms, following])
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class MemoryCrons:
    """Crons within one process (no Redis: one process serves them all)."""

    def __init__(self) -> None:
        self._records: dict[str, CronRecord] = {}
        self._due: dict[str, int] = {}

    async def put(self, record: CronRecord, next_run_ms: int | None) -> None:
        """Store (or replace) a cron and when it next ticks (`None`: never again)."""
        self._records[record.cron_id] = CronRecord(**asdict(record))
        if next_run_ms is None:
            self._due.pop(record.cron_id, None)
        else:
            self._due[record.cron_id] = next_run_ms

    async def get(self, cron_id: str) -> StoredCron | None:
        """One cron, whoever owns it."""
        found = self._records.get(cron_id)
        if found is None:
            return None
        return StoredCron(CronRecord(**asdict(found)), self._due.get(cron_id))

    async def of_owner(self, owner: str) -> list[StoredCron]:
        """An owner's crons, in no order."""
        return [
            StoredCron(CronRecord(**asdict(record)), self._due.get(cron_id))
            for cron_id, record in self._records.items()
            if record.owner == owner
        ]

    async def delete(self, record: CronRecord) -> bool:
        """Forget a cron; whether it was there."""
        self._due.pop(record.cron_id, None)
        return self._records.pop(record.cron_id, None) is not None

    async def due(self, now_ms: int, limit: int) -> list[tuple[str, int]]:
        """Up to `limit` crons whose tick has come, with that tick, earliest first."""
        ready = sorted((tick, cron_id) for cron_id, tick in self._due.items() if tick <= now_ms)
        return [(cron_id, tick) for tick, cron_id in ready[:limit]]

    async def earliest(self) -> int | None:
        """The next tick of any cron, if one will tick."""
        return min(self._due.values(), default=None)

    async def claim(self, cron_id: str, tick_ms: int, next_run_ms: int | None) -> bool:
        """Take tick `tick_ms` of the cron, moving it to `next_run_ms`; whether we did."""
        if self._due.get(cron_id) != tick_ms:
            return False
        if next_run_ms is None:
            del self._due[cron_id]
        else:
            self._due[cron_id] = next_run_ms
        return True


def open_crons(client: Redis | RedisCluster | None, *, keys: RedisKeys) -> Crons:
    """Crons in Redis when there is one, else in this process."""
    return RedisCrons(client, keys=keys) if client is not None else MemoryCrons()
