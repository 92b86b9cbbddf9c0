"""What the sync and async Redis savers share: the key layout, encoding, and every operation.

Each operation is written once, as a generator that yields batches of Redis commands
and receives their replies (no I/O of its own); `RedisSaver` and `AsyncRedisSaver` only
run those batches on a sync or an async client.

Layout, for a thread `T` (all of a thread's keys share the `{T}` hash tag, so they live in
one Cluster slot and a thread's batch can run as one MULTI/EXEC):

- `<prefix>:{T}:order`       sorted set, every member scored 0 so it sorts by bytes:
                             `ns␟checkpoint_id` (checkpoint ids are time-ordered uuid6s)
- `<prefix>:{T}:checkpoints` hash: `ns␟id` → the checkpoint record; `ns␟id␟refs` → the
                             blob fields its channel values live in
- `<prefix>:{T}:blobs`       hash: `ns␟channel␟version` → a channel value
- `<prefix>:{T}:writes`      hash: `ns␟id␟task␟idx` → a pending write
- `<prefix>:{T}:write_index` sorted set of the `writes` fields, for range reads by checkpoint
- `<prefix>:run:{R}`         set of `T␟ns␟id` written by run `R`, for `delete_for_runs`

Only plain data types and Lua are used: no modules, so Redis ≥ 6, Valkey and managed
Redis all work. No operation scans the keyspace.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ormsgpack
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from memory.keys import RedisKeys, ThreadKeys

SEP = "\x1f"
"""Separates the parts of a field name; never found in namespaces, ids or channel names."""
REFS_SEP = "\x1e"
"""Separates blob field names in a checkpoint's `refs` field."""
HIGH = "\xff"
"""Sorts after any UTF-8 text: the open end of a lexicographic range."""

# One round trip for a whole checkpoint tuple: find the checkpoint (the latest in its
# namespace when no id is given), its record, its channel values and its pending writes.
LOAD_CHECKPOINT = """
local ns, wanted, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local sep = "\\31"
local id = wanted
if id == "" then
  local latest = redis.call("ZREVRANGEBYLEX", KEYS[1], "[" .. ns .. sep .. "\\255",
                            "[" .. ns .. sep, "LIMIT", 0, 1)
  if #latest == 0 then return false end
  id = string.sub(latest[1], #ns + 2)
end
local member = ns .. sep .. id
local found = redis.call("HMGET", KEYS[2], member, member .. sep .. "refs")
if not found[1] then return false end
local fields = {}
if found[2] then
  for f in string.gmatch(found[2], "[^\\30]+") do fields[#fields + 1] = f end
end
local blobs = {}
if #fields > 0 then blobs = redis.call("HMGET", KEYS[3], unpack(fields)) end
local write_fields = redis.call("ZRANGEBYLEX", KEYS[5], "[" .. member .. sep,
                                "[" .. member .. sep .. "\\255")
local writes = {}
if #write_fields > 0 then writes = redis.call("HMGET", KEYS[4], unpack(write_fields)) end
if ttl and ttl > 0 then
  for i = 1, 5 do redis.call("EXPIRE", KEYS[i], ttl) end
end
return {id, found[1], fields, blobs, writes}
"""


@dataclass(slots=True)
class Batch:
    """Commands to send in one round trip, optionally as one MULTI/EXEC transaction."""

    queue: Callable[[Any], None]
    """Queues the commands on a pipeline."""
    transaction: bool = False


Steps = Generator[Batch, list[Any], Any]
"""An operation: yields batches, receives each batch's replies, returns its result."""


@dataclass(frozen=True, slots=True)
class Done:
    """An operation's result, once it has no more batches to send."""

    value: Any


def advance(steps: Steps, replies: list[Any] | None) -> Batch | Done:
    """Feed an operation the replies to its last batch; get its next batch or its result."""
    try:
        return next(steps) if replies is None else steps.send(replies)
    except StopIteration as done:
        return Done(done.value)


@dataclass(slots=True)
class _Loaded:
    """A checkpoint as `LOAD_CHECKPOINT` returns it, before decoding."""

    thread_id: str
    ns: str
    checkpoint_id: str
    record: bytes
    blob_fields: list[str]
    blobs: list[bytes | None]
    writes: list[bytes | None]


@dataclass(slots=True)
class _Removal:
    """Fields to remove from one thread's keys."""

    checkpoints: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)


def _member(ns: str, checkpoint_id: str) -> str:
    return f"{ns}{SEP}{checkpoint_id}"


def _split_member(member: bytes | str) -> tuple[str, str]:
    text = member.decode() if isinstance(member, bytes) else member
    ns, _, checkpoint_id = text.rpartition(SEP)
    return ns, checkpoint_id


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _before_id(before: RunnableConfig | Mapping[str, Any] | None) -> str | None:
    """The checkpoint id a `before` bound names.

    LangGraph passes a config; `langgraph dev` hands a client's checkpoint on as it came,
    `{"checkpoint_id": ..., "thread_id": ..., "checkpoint_ns": ...}`. Both are read.
    """
    if not before:
        return None
    configurable = before.get("configurable")
    bound = configurable if isinstance(configurable, Mapping) else before
    found = bound.get("checkpoint_id")
    return str(found) if found else None


class BaseRedisSaver(BaseCheckpointSaver[str]):
    """Checkpoint storage on plain Redis data types, shared by the sync and async savers.

    Args:
        serde: Serializer for checkpoints, metadata and values; LangGraph's
            `JsonPlusSerializer` by default (wrap it in an `EncryptedSerializer` to encrypt
            at rest).
        prefix: Prefix of every key, so several deployments can share a database.
        ttl: Seconds a thread is kept after its last write; `None` keeps it forever.
        refresh_on_read: Whether reading a thread also restarts its time-to-live.
        cluster: Whether the client is a Redis Cluster client; batches that touch keys of
            different slots are then split.
    """

    def __init__(
        self,
        *,
        serde: SerializerProtocol | None = None,
        prefix: str = "alma",
        ttl: int | None = None,
        refresh_on_read: bool = False,
        cluster: bool = False,
    ) -> None:
        super().__init__(serde=serde)
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be a positive number of seconds, or None to keep forever")
        self.prefix = prefix
        self.keys = RedisKeys(prefix)
        self.ttl = ttl
        self.refresh_on_read = refresh_on_read
        self.cluster = cluster

    # -- keys and encoding ---------------------------------------------------------------

    def thread_keys(self, thread_id: str) -> ThreadKeys:
        """The keys of `thread_id`, all in the slot of its `{thread_id}` hash tag."""
        return self.keys.checkpoints(thread_id)

    def run_key(self, run_id: str) -> str:
        """The key listing the checkpoints a run wrote."""
        return self.keys.checkpoints_of_run(run_id)

    def _expire(self, pipe: Any, keys: Iterable[str]) -> None:
        if self.ttl is not None:
            for key in keys:
                pipe.expire(key, self.ttl)

    def _dump(self, value: Any) -> bytes:
        return ormsgpack.packb(list(self.serde.dumps_typed(value)))

    def _load(self, packed: bytes) -> Any:
        kind, data = ormsgpack.unpackb(packed)
        return self.serde.loads_typed((kind, data))

    def get_next_version(self, current: str | None, channel: None) -> str:
        """A version that sorts after `current` and differs between forks of a thread.

        The random part keeps two branches that both reach version N of a channel from
        sharing one blob field.
        """
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- decoding ------------------------------------------------------------------------

    def _tuple(self, loaded: _Loaded) -> CheckpointTuple:
        kind, data, md_kind, md_data, parent_id = ormsgpack.unpackb(loaded.record)
        checkpoint: Checkpoint = self.serde.loads_typed((kind, data))
        values: dict[str, Any] = {}
        for name, blob in zip(loaded.blob_fields, loaded.blobs, strict=True):
            if blob is None:
                continue
            channel = name.rsplit(SEP, 2)[1]
            kind_, data_ = ormsgpack.unpackb(blob)
            if kind_ != "empty":
                values[channel] = self.serde.loads_typed((kind_, data_))
        writes = [ormsgpack.unpackb(raw) for raw in loaded.writes if raw is not None]
        writes.sort(key=lambda w: writes_sort_key(w[4], w[0], w[5]))
        configurable = {
            "thread_id": loaded.thread_id,
            "checkpoint_ns": loaded.ns,
            "checkpoint_id": loaded.checkpoint_id,
        }
        parent = (
            {"configurable": {**configurable, "checkpoint_id": parent_id}} if parent_id else None
        )
        return CheckpointTuple(
            config={"configurable": configurable},
            checkpoint={**checkpoint, "channel_values": values},
            metadata=self.serde.loads_typed((md_kind, md_data)),
            parent_config=parent,  # type: ignore[arg-type]
            pending_writes=[
                (task_id, channel, self.serde.loads_typed((kind_, data_)))
                for task_id, channel, kind_, data_, _path, _idx in writes
            ],
        )

    def _refs(self, checkpoint: Checkpoint, ns: str) -> list[str]:
        return [
            f"{ns}{SEP}{channel}{SEP}{version}"
            for channel, version in checkpoint["channel_versions"].items()
        ]

    def _read_members(self, thread_id: str) -> Batch:
        """A batch reading every `ns␟id` member of a thread, oldest first per namespace."""
        order = self.thread_keys(thread_id).order
        return Batch(lambda p: p.zrange(order, 0, -1))

    def _queue_load(self, pipe: Any, thread_id: str, ns: str, checkpoint_id: str) -> None:
        ttl = self.ttl if self.refresh_on_read and self.ttl else 0
        keys = self.thread_keys(thread_id).all
        pipe.eval(LOAD_CHECKPOINT, len(keys), *keys, ns, checkpoint_id, ttl)

    @staticmethod
    def _loaded(thread_id: str, ns: str, reply: Any) -> _Loaded | None:
        if not reply:
            return None
        checkpoint_id, record, fields, blobs, writes = reply
        return _Loaded(
            thread_id=thread_id,
            ns=ns,
            checkpoint_id=_text(checkpoint_id),
            record=record,
            blob_fields=[_text(name) for name in fields],
            blobs=list(blobs),
            writes=list(writes),
        )

    # -- operations ----------------------------------------------------------------------

    def _get_tuple_steps(self, config: RunnableConfig) -> Steps:
        thread_id = str(config["configurable"]["thread_id"])
        ns = config["configurable"].get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config) or ""
        [reply] = yield Batch(lambda p: self._queue_load(p, thread_id, ns, checkpoint_id))
        loaded = self._loaded(thread_id, ns, reply)
        return self._tuple(loaded) if loaded else None

    def _list_steps(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
        page: int = 64,
    ) -> Steps:
        if config is None:
            raise ValueError(
                "listing checkpoints needs a thread_id: ALMA's Redis saver does not scan "
                "the whole database"
            )
        thread_id = str(config["configurable"]["thread_id"])
        keys = self.thread_keys(thread_id)
        ns_filter = config["configurable"].get("checkpoint_ns")
        only_id = get_checkpoint_id(config)
        before_id = _before_id(before)
        if ns_filter is None:
            [members] = yield self._read_members(thread_id)
        else:
            low, high = f"[{ns_filter}{SEP}", f"[{ns_filter}{SEP}{HIGH}"
            [members] = yield Batch(lambda p: p.zrangebylex(keys.order, low, high))
        candidates = sorted(
            (
                (checkpoint_id, ns)
                for ns, checkpoint_id in map(_split_member, members)
                if (only_id is None or checkpoint_id == only_id)
                and (before_id is None or checkpoint_id < before_id)
            ),
            reverse=True,
        )
        found: list[CheckpointTuple] = []
        for start in range(0, len(candidates), page):
            chunk = candidates[start : start + page]

            def queue(p: Any, chunk: list[tuple[str, str]] = chunk) -> None:
                for checkpoint_id, ns in chunk:
                    self._queue_load(p, thread_id, ns, checkpoint_id)

            replies = yield Batch(queue)
            for (_, ns), reply in zip(chunk, replies, strict=True):
                loaded = self._loaded(thread_id, ns, reply)
                if loaded is None:
                    continue  # removed between the two reads
                tup = self._tuple(loaded)
                if filter and not all(tup.metadata.get(k) == v for k, v in filter.items()):
                    continue
                found.append(tup)
                if limit is not None and len(found) >= limit:
                    return found
        return found

    def _put_steps(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Steps:
        thread_id = str(config["configurable"]["thread_id"])
        ns = config["configurable"].get("checkpoint_ns", "")
        parent_id = config["configurable"].get("checkpoint_id")
        keys = self.thread_keys(thread_id)
        stored = checkpoint.copy()
        values: dict[str, Any] = stored.pop("channel_values")  # type: ignore[misc]
        blobs = {
            f"{ns}{SEP}{channel}{SEP}{version}": ormsgpack.packb(
                list(self.serde.dumps_typed(values[channel]))
                if channel in values
                else ["empty", b""]
            )
            for channel, version in new_versions.items()
        }
        full_metadata = get_checkpoint_metadata(config, metadata)
        kind, data = self.serde.dumps_typed(stored)
        md_kind, md_data = self.serde.dumps_typed(full_metadata)
        member = _member(ns, checkpoint["id"])
        record = ormsgpack.packb([kind, data, md_kind, md_data, parent_id])
        refs = REFS_SEP.join(self._refs(checkpoint, ns))
        run_id = full_metadata.get("run_id")

        def queue(p: Any) -> None:
            if blobs:
                p.hset(keys.blobs, mapping=blobs)
            p.hset(keys.checkpoints, mapping={member: record, f"{member}{SEP}refs": refs})
            p.zadd(keys.order, {member: 0})
            self._expire(p, keys.all)
            if run_id and not self.cluster:
                self._queue_run_index(p, str(run_id), [f"{thread_id}{SEP}{member}"])

        yield Batch(queue, transaction=True)
        if run_id and self.cluster:
            location = f"{thread_id}{SEP}{member}"
            yield Batch(lambda p: self._queue_run_index(p, str(run_id), [location]))
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def _queue_run_index(self, pipe: Any, run_id: str, locations: Sequence[str]) -> None:
        key = self.run_key(run_id)
        pipe.sadd(key, *locations)
        self._expire(pipe, [key])

    def _put_writes_steps(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Steps:
        thread_id = str(config["configurable"]["thread_id"])
        ns = config["configurable"].get("checkpoint_ns", "")
        checkpoint_id = str(config["configurable"]["checkpoint_id"])
        keys = self.thread_keys(thread_id)
        member = _member(ns, checkpoint_id)
        entries: list[tuple[str, bytes, bool]] = []
        for position, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, position)
            kind, data = self.serde.dumps_typed(value)
            packed = ormsgpack.packb([task_id, channel, kind, data, task_path, idx])
            # Special writes (errors, interrupts, …) replace what the task wrote before;
            # regular ones are written once, so a retried task cannot duplicate them.
            entries.append((f"{member}{SEP}{task_id}{SEP}{idx}", packed, idx < 0))

        def queue(p: Any) -> None:
            for name, packed, replace in entries:
                if replace:
                    p.hset(keys.writes, name, packed)
                else:
                    p.hsetnx(keys.writes, name, packed)
            p.zadd(keys.write_index, {name: 0 for name, _, _ in entries})
            self._expire(p, keys.all)

        if entries:
            yield Batch(queue, transaction=True)

    def _delete_thread_steps(self, thread_id: str) -> Steps:
        keys = self.thread_keys(thread_id)
        yield Batch(lambda p: p.delete(*keys.all), transaction=True)

    def _removal_steps(self, thread_id: str, members: Sequence[str]) -> Steps:
        """Remove checkpoints (by `ns␟id` member) of one thread with their writes."""
        keys = self.thread_keys(thread_id)

        def find_writes(p: Any) -> None:
            for member in members:
                p.zrangebylex(keys.write_index, f"[{member}{SEP}", f"[{member}{SEP}{HIGH}")

        found = yield Batch(find_writes)
        removal = _Removal(order=list(members))
        for member, write_fields in zip(members, found, strict=True):
            removal.checkpoints += [member, f"{member}{SEP}refs"]
            removal.writes += [_text(name) for name in write_fields]

        def remove(p: Any) -> None:
            if removal.checkpoints:
                p.hdel(keys.checkpoints, *removal.checkpoints)
                p.zrem(keys.order, *removal.order)
            if removal.writes:
                p.hdel(keys.writes, *removal.writes)
                p.zrem(keys.write_index, *removal.writes)

        yield Batch(remove, transaction=True)

    def _delete_for_runs_steps(self, run_ids: Sequence[str]) -> Steps:
        if not run_ids:
            return
        run_keys = [self.run_key(run_id) for run_id in run_ids]

        def read(p: Any) -> None:
            for key in run_keys:
                p.smembers(key)

        found = yield Batch(read)
        by_thread: dict[str, list[str]] = defaultdict(list)
        for locations in found:
            for location in locations:
                thread_id, _, member = _text(location).partition(SEP)
                by_thread[thread_id].append(member)
        for thread_id, members in by_thread.items():
            yield from self._removal_steps(thread_id, sorted(set(members)))

        def forget(p: Any) -> None:
            for key in run_keys:
                p.delete(key)

        yield Batch(forget)

    def _copy_thread_steps(self, source: str, target: str) -> Steps:
        src, dst = self.thread_keys(source), self.thread_keys(target)

        def read(p: Any) -> None:
            p.hgetall(src.checkpoints)
            p.hgetall(src.blobs)
            p.hgetall(src.writes)
            p.zrange(src.order, 0, -1)
            p.zrange(src.write_index, 0, -1)

        checkpoints, blobs, writes, order, write_index = yield Batch(read)
        if not order:
            return
        runs: dict[str, list[str]] = defaultdict(list)
        for name, record in checkpoints.items():
            member = _text(name)
            if member.endswith(f"{SEP}refs"):
                continue
            _, _, md_kind, md_data, _ = ormsgpack.unpackb(record)
            run_id = self.serde.loads_typed((md_kind, md_data)).get("run_id")
            if run_id:
                runs[str(run_id)].append(f"{target}{SEP}{member}")

        def write(p: Any) -> None:
            p.delete(*dst.all)
            p.hset(dst.checkpoints, mapping=checkpoints)
            if blobs:
                p.hset(dst.blobs, mapping=blobs)
            if writes:
                p.hset(dst.writes, mapping=writes)
                p.zadd(dst.write_index, dict.fromkeys(write_index, 0))
            p.zadd(dst.order, dict.fromkeys(order, 0))
            self._expire(p, dst.all)

        yield Batch(write, transaction=True)
        if runs:

            def index(p: Any) -> None:
                for run_id, locations in runs.items():
                    self._queue_run_index(p, run_id, locations)

            yield Batch(index)

    def _prune_steps(self, thread_ids: Sequence[str], strategy: str, keep: int) -> Steps:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        if keep < 1:
            raise ValueError("keep must be at least 1")
        for thread_id in thread_ids:
            if strategy == "delete":
                yield from self._delete_thread_steps(thread_id)
                continue
            [members] = yield self._read_members(thread_id)
            by_ns: dict[str, list[str]] = defaultdict(list)
            for member in members:
                ns, checkpoint_id = _split_member(member)
                by_ns[ns].append(checkpoint_id)
            kept: list[str] = []
            dropped: list[str] = []
            for ns, ids in by_ns.items():
                ids.sort(reverse=True)
                kept += [_member(ns, i) for i in ids[:keep]]
                dropped += [_member(ns, i) for i in ids[keep:]]
            if not dropped:
                continue
            yield from self._removal_steps(thread_id, dropped)
            yield from self._drop_unreferenced_blobs(thread_id, kept)

    def _drop_unreferenced_blobs(self, thread_id: str, kept: Sequence[str]) -> Steps:
        keys = self.thread_keys(thread_id)

        def read(p: Any) -> None:
            p.hmget(keys.checkpoints, [f"{member}{SEP}refs" for member in kept])
            p.hkeys(keys.blobs)

        refs, names = yield Batch(read)
        referenced = {field for joined in refs if joined for field in _text(joined).split(REFS_SEP)}
        orphans = [_text(name) for name in names if _text(name) not in referenced]
        if orphans:
            yield Batch(lambda p: p.hdel(keys.blobs, *orphans), transaction=True)
