"""What is known of each thread besides its checkpoints: times and metadata, and its owner.

LangGraph's server API describes a thread by when it was created, last updated and last
changed state, and by metadata its clients set (and its runs add: `graph_id`,
`assistant_id`). In Redis each thread has one hash, `<prefix>:{thread}:thread`, in the
thread's slot and expiring with the thread: the three times and the thread's title as
fields, and each metadata key as a field `m:<key>` holding its JSON value, so a shallow
merge is one `HSET` and never a read-modify-write. Without Redis a dict stands in.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from memory.connection import execute_replaying
from memory.keys import RedisKeys
from server.langgraph_api.assistants import RUN_METADATA
from server.stores.owners import (
    MAX_INDEXED,
    MemoryThreadOwners,
    RedisThreadOwners,
    ThreadEntry,
    ThreadOwners,
)
from server.stores.run_records import now_iso

_META = "m:"
"""Prefix of the hash fields that hold metadata keys."""

# ARGV: now, whether the state changed ("1"/"0"), ttl, title, then metadata field/value
# pairs. Creates the record if it is missing; a title is set once, if none is. One HSET
# writes every field; returns the record as it was before (empty if there was none),
# which the caller brings up to date.
_TOUCH = """
local found = redis.call('HGETALL', KEYS[1])
local fields = {'updated_at', ARGV[1]}
if #found == 0 then
  table.insert(fields, 'created_at'); table.insert(fields, ARGV[1])
  table.insert(fields, 'state_updated_at'); table.insert(fields, ARGV[1])
elseif ARGV[2] == '1' then
  table.insert(fields, 'state_updated_at'); table.insert(fields, ARGV[1])
end
if ARGV[4] ~= '' then
  local titled = false
  for i = 1, #found, 2 do if found[i] == 'title' then titled = true end end
  if not titled then table.insert(fields, 'title'); table.insert(fields, ARGV[4]) end
end
for i = 5, #ARGV do table.insert(fields, ARGV[i]) end
redis.call('HSET', KEYS[1], unpack(fields))
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return found
"""

# ARGV: now, ttl, then metadata field/value pairs. Returns {created (1/0), the record...}.
_CREATE = """
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  created = 1
  local fields = {'created_at', ARGV[1], 'updated_at', ARGV[1], 'state_updated_at', ARGV[1]}
  for i = 3, #ARGV do table.insert(fields, ARGV[i]) end
  redis.call('HSET', KEYS[1], unpack(fields))
  if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
end
local found = redis.call('HGETALL', KEYS[1])
table.insert(found, 1, created)
return found
"""


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    """A thread's times (ISO 8601, UTC) and metadata."""

    thread_id: str
    created_at: str
    updated_at: str
    state_updated_at: str
    """When a run or a state update last changed the thread's state."""
    metadata: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    """The start of the thread's first message: its name in its owner's list."""


def stand_in(thread_id: str) -> ThreadRecord:
    """A record for a thread that is owned but has none (it lapsed first): not stored.

    Reads never write; the thread's next run or update stores a real one.
    """
    now = now_iso()
    return ThreadRecord(thread_id=thread_id, created_at=now, updated_at=now, state_updated_at=now)


def touched(
    before: ThreadRecord | None,
    thread_id: str,
    now: str,
    metadata: Mapping[str, Any] | None,
    *,
    state: bool,
    title: str = "",
) -> ThreadRecord:
    """`before` (a new record if `None`) touched at `now`, with `metadata` merged in."""
    known = before or ThreadRecord(thread_id, now, now, now)
    return ThreadRecord(
        thread_id=thread_id,
        created_at=known.created_at,
        updated_at=now,
        state_updated_at=now if state else known.state_updated_at,
        metadata={**known.metadata, **copy.deepcopy(dict(metadata or {}))},
        title=known.title or title,
    )


class ThreadTakenError(LookupError):
    """The thread id belongs to another owner."""


class ThreadRecords(Protocol):
    """Where thread records live."""

    async def create(
        self, thread_id: str, metadata: Mapping[str, Any]
    ) -> tuple[ThreadRecord, bool]:
        """The thread's record, created with `metadata` if missing; and whether it was."""

    async def touch(
        self, thread_id: str, metadata: Mapping[str, Any] | None, *, state: bool, title: str = ""
    ) -> ThreadRecord:
        """Bump `updated_at` (and `state_updated_at` with `state`), merge `metadata` in.

        A missing record is created; `title`, when not empty, names a thread that has no
        title yet.
        """

    async def get_many(self, thread_ids: Sequence[str]) -> list[ThreadRecord | None]:
        """The records of `thread_ids`, in order; `None` where there is none."""

    async def delete(self, thread_id: str) -> None:
        """Forget the thread's record."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(metadata: Mapping[str, Any] | None) -> list[str | bytes]:
    pairs: list[str | bytes] = []
    for key, value in (metadata or {}).items():
        pairs += [f"{_META}{key}", orjson.dumps(value)]
    return pairs


def _record(thread_id: str, flat: Sequence[bytes | str]) -> ThreadRecord | None:
    if not flat:
        return None
    found = {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
    return ThreadRecord(
        thread_id=thread_id,
        created_at=_text(found.pop("created_at")),
        updated_at=_text(found.pop("updated_at")),
        state_updated_at=_text(found.pop("state_updated_at")),
        title=_text(found.pop("title", b"")),
        metadata={
            name.removeprefix(_META): orjson.loads(value)
            for name, value in found.items()
            if name.startswith(_META)
        },
    )


class RedisThreadRecords:
    """Thread records as one expiring hash per thread."""

    def __init__(self, client: Redis | RedisCluster, *, keys: RedisKeys, ttl: int | None) -> None:
        """Keep records at `keys`, expiring `ttl` seconds after the last write."""
        self.client = client
        self.keys = keys
        self.ttl = ttl or 0
        self._touch: Any = client.register_script(_TOUCH)
        self._create: Any = client.register_script(_CREATE)

    def key(self, thread_id: str) -> str:
        """The thread's record, in the slot of its other keys."""
        return self.keys.thread(thread_id)

    async def create(
        self, thread_id: str, metadata: Mapping[str, Any]
    ) -> tuple[ThreadRecord, bool]:
        """The thread's record, created with `metadata` if missing; and whether it was."""
        args = [now_iso(), self.ttl, *_fields(metadata)]
        created, *flat = await self._create(keys=[self.key(thread_id)], args=args)
        record = _record(thread_id, flat)
        assert record is not None  # the script has just written it if it was missing
        return record, bool(created)

    async def touch(
        self, thread_id: str, metadata: Mapping[str, Any] | None, *, state: bool, title: str = ""
    ) -> ThreadRecord:
        """See `ThreadRecords.touch`: one script, whose reply is the record before."""
        now = now_iso()
        args = [now, "1" if state else "0", self.ttl, title, *_fields(metadata)]
        before = _record(thread_id, await self._touch(keys=[self.key(thread_id)], args=args))
        return touched(before, thread_id, now, metadata, state=state, title=title)

    async def get_many(self, thread_ids: Sequence[str]) -> list[ThreadRecord | None]:
        """The records of `thread_ids`, in order, in one round trip."""
        if not thread_ids:
            return []

        def queue(pipe: Any) -> None:
            for thread_id in thread_ids:
                pipe.hgetall(self.key(thread_id))

        found = await execute_replaying(self.client, queue)
        return [
            _record(thread_id, [part for pair in raw.items() for part in pair])
            for thread_id, raw in zip(thread_ids, found, strict=True)
        ]

    async def delete(self, thread_id: str) -> None:
        """Forget the thread's record."""
        await self.client.delete(self.key(thread_id))


class MemoryThreadRecords:
    """Thread records in process memory, when there is no Redis."""

    def __init__(self) -> None:
        """No thread has a record yet."""
        self._records: dict[str, ThreadRecord] = {}

    async def create(
        self, thread_id: str, metadata: Mapping[str, Any]
    ) -> tuple[ThreadRecord, bool]:
        """The thread's record, created with `metadata` if missing; and whether it was."""
        if (known := self._records.get(thread_id)) is not None:
            return known, False
        now = now_iso()
        record = ThreadRecord(thread_id, now, now, now, copy.deepcopy(dict(metadata)))
        self._records[thread_id] = record
        return record, True

    async def touch(
        self, thread_id: str, metadata: Mapping[str, Any] | None, *, state: bool, title: str = ""
    ) -> ThreadRecord:
        """See `ThreadRecords.touch`."""
        known = self._records.get(thread_id)
        record = touched(known, thread_id, now_iso(), metadata, state=state, title=title)
        self._records[thread_id] = record
        return record

    async def get_many(self, thread_ids: Sequence[str]) -> list[ThreadRecord | None]:
        """The records of `thread_ids`, in order."""
        return [self._records.get(thread_id) for thread_id in thread_ids]

    async def delete(self, thread_id: str) -> None:
        """Forget the thread's record."""
        self._records.pop(thread_id, None)


class Threads:
    """Threads as LangGraph's server API knows them: a record, owned by one caller."""

    def __init__(self, *, records: ThreadRecords, owners: ThreadOwners) -> None:
        """Keep records in `records`; who owns which thread in `owners`."""
        self.records = records
        self.owners = owners

    async def ensure(
        self, thread_id: str, owner: str, metadata: Mapping[str, Any] | None = None
    ) -> bool:
        """Make sure the thread exists, for `owner`; whether this call created it.

        A thread `owner` claimed without a record (started over the WebSocket protocol)
        gets one now. `metadata` is set only on a thread created here.

        Raises:
            ThreadTakenError: when the thread belongs to another owner.
        """
        if await self.owners.claim(thread_id, owner) != owner:
            raise ThreadTakenError(thread_id)
        _, created = await self.records.create(thread_id, metadata or {})
        if created:
            # In the owner's index, so searches find it; its title comes with a first run.
            await self.owners.remember(owner, thread_id)
        return created

    async def run_created(self, thread_id: str, title: str = "") -> dict[str, Any]:
        """A run was created on the thread; the thread's metadata, which the run starts from.

        Its times move, and it names the graph that runs it, as on LangGraph's server;
        `title` names a thread that has no title yet.
        """
        record = await self.records.touch(thread_id, RUN_METADATA, state=True, title=title)
        return record.metadata

    async def listing(self, owner: str, limit: int) -> list[ThreadEntry]:
        """The owner's threads, newest run first, with their titles."""
        entries = await self.owners.threads_of(owner, limit)
        records = await self.records.get_many([entry.thread_id for entry in entries])
        return [
            # Threads titled before titles moved into their records keep the index's.
            replace(entry, title=record.title) if record and record.title else entry
            for entry, record in zip(entries, records, strict=True)
        ]

    async def touch(
        self, thread_id: str, metadata: Mapping[str, Any] | None = None, *, state: bool = True
    ) -> ThreadRecord:
        """The thread changed: bump its times, merge `metadata` into its metadata.

        `updated_at` moves, and `state_updated_at` too unless `state` is false (a
        change of metadata only). Metadata merges shallowly. For the runs engine:
        `touch(thread_id, {"graph_id": ..., "assistant_id": ...})` as a run starts.
        A thread with no record gets one.
        """
        return await self.records.touch(thread_id, metadata, state=state)

    async def get(self, thread_id: str) -> ThreadRecord | None:
        """The thread's record, if it has one."""
        [record] = await self.records.get_many([thread_id])
        return record

    async def of_owner(self, owner: str) -> list[ThreadRecord]:
        """The records of `owner`'s threads (those in their index), newest run first."""
        entries = await self.owners.threads_of(owner, MAX_INDEXED)
        ids = [entry.thread_id for entry in entries]
        found = []
        for thread_id, record in zip(ids, await self.records.get_many(ids), strict=True):
            found.append(record or stand_in(thread_id))
        return found

    async def delete(self, thread_id: str) -> None:
        """Forget the thread's record (its checkpoints, log and owner go elsewhere)."""
        await self.records.delete(thread_id)


def open_threads(
    redis: Redis | RedisCluster | None, *, keys: RedisKeys, ttl: int | None
) -> Threads:
    """Thread records and owners in Redis, shared by every process; in process memory without."""
    if redis is None:
        return Threads(records=MemoryThreadRecords(), owners=MemoryThreadOwners())
    return Threads(
        records=RedisThreadRecords(redis, keys=keys, ttl=ttl),
        owners=RedisThreadOwners(redis, keys=keys, ttl=ttl),
    )
