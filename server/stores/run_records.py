"""What is known of each run, for listing and polling: LangGraph's Run object.

In Redis a thread's runs are one hash, `<prefix>:{thread}:runs` (run id → JSON), in the
thread's slot and expiring with the thread. Records are written when a run is accepted,
when it starts executing and when it ends; any process can read them. Without Redis a
dict stands in.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from memory.connection import execute_replaying
from memory.keys import RedisKeys

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
ACTIVE: frozenset[str] = frozenset({"pending", "running"})


def now_iso() -> str:
    """The current time as LangGraph writes it: ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat()


@dataclass
class RunRecord:
    """One run: who started it on which thread, with what, and how it stands."""

    run_id: str
    thread_id: str
    assistant_id: str
    status: RunStatus = "pending"
    metadata: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    multitask_strategy: str = "reject"
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    first_seq: int = 0
    """The `seq` of the run's first event in the thread's log (0 until it starts)."""
    error: dict[str, str] | None = None
    """`{"error": <kind>, "message": ...}` for a run that failed."""
    sort_key: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        """The record as LangGraph's API shows a Run."""
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "assistant_id": self.assistant_id,
            "metadata": self.metadata,
            "status": self.status,
            "kwargs": self.kwargs,
            "multitask_strategy": self.multitask_strategy,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "langsmith_session_name": None,
        }


def _load(raw: bytes | str) -> RunRecord:
    return RunRecord(**orjson.loads(raw))


def _newest_first(records: list[RunRecord]) -> list[RunRecord]:
    return sorted(records, key=lambda record: record.sort_key, reverse=True)


class RunRecords(Protocol):
    """Where run records live."""

    async def put(self, record: RunRecord) -> None:
        """Store (or replace) a record, stamping `updated_at`."""

    async def get(self, thread_id: str, run_id: str) -> RunRecord | None:
        """One run of a thread."""

    async def list(self, thread_id: str) -> list[RunRecord]:
        """A thread's runs, newest first."""

    async def delete(self, thread_id: str, run_id: str) -> bool:
        """Forget one run; whether it was there."""

    async def delete_thread(self, thread_id: str) -> None:
        """Forget every run of a thread."""


class RedisRunRecords:
    """Run records as one expiring hash per thread."""

    def __init__(self, client: Redis | RedisCluster, *, keys: RedisKeys, ttl: int | None) -> None:
        self.client = client
        self.keys = keys
        self.ttl = ttl

    def key(self, thread_id: str) -> str:
        """The hash of `thread_id`'s runs, in the thread's slot."""
        return self.keys.runs(thread_id)

    async def put(self, record: RunRecord) -> None:
        """Store (or replace) a record, stamping `updated_at`."""
        record.updated_at = now_iso()
        key = self.key(record.thread_id)
        packed = orjson.dumps(asdict(record))

        def queue(pipe: Any) -> None:
            pipe.hset(key, record.run_id, packed)
            # The TTL restarts as a run is created or starts, not again as it ends.
            if self.ttl and record.status in ACTIVE:
                pipe.expire(key, self.ttl)

        await execute_replaying(self.client, queue)

    async def get(self, thread_id: str, run_id: str) -> RunRecord | None:
        """One run of a thread."""
        raw: Any = await self.client.hget(self.key(thread_id), run_id)
        return _load(raw) if raw else None

    async def list(self, thread_id: str) -> list[RunRecord]:
        """A thread's runs, newest first."""
        raw: Any = await self.client.hvals(self.key(thread_id))
        return _newest_first([_load(item) for item in raw])

    async def delete(self, thread_id: str, run_id: str) -> bool:
        """Forget one run; whether it was there."""
        return bool(await self.client.hdel(self.key(thread_id), run_id))

    async def delete_thread(self, thread_id: str) -> None:
        """Forget every run of a thread."""
        await self.client.delete(self.key(thread_id))


class MemoryRunRecords:
    """Run records within one process."""

    def __init__(self) -> None:
        self._threads: dict[str, dict[str, RunRecord]] = {}

    async def put(self, record: RunRecord) -> None:
        """Store (or replace) a record, stamping `updated_at`."""
        record.updated_at = now_iso()
        stored = RunRecord(**asdict(record))
        self._threads.setdefault(record.thread_id, {})[record.run_id] = stored

    async def get(self, thread_id: str, run_id: str) -> RunRecord | None:
        """One run of a thread."""
        found = self._threads.get(thread_id, {}).get(run_id)
        return RunRecord(**asdict(found)) if found else None

    async def list(self, thread_id: str) -> list[RunRecord]:
        """A thread's runs, newest first."""
        return _newest_first(
            [RunRecord(**asdict(r)) for r in self._threads.get(thread_id, {}).values()]
        )

    async def delete(self, thread_id: str, run_id: str) -> bool:
        """Forget one run; whether it was there."""
        return self._threads.get(thread_id, {}).pop(run_id, None) is not None

    async def delete_thread(self, thread_id: str) -> None:
        """Forget every run of a thread."""
        self._threads.pop(thread_id, None)
