"""The checkpoint operations of the Redis savers: keys, encoding, read, list and write.

Each operation is written once, as a generator that yields batches of Redis commands
and receives their replies (`memory/steps.py`); `RedisSaver` and `AsyncRedisSaver` run
them on a sync or an async client. The layout they read and write is `memory/layout.py`;
a thread's upkeep (delete, copy, prune) is `memory/base.py`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
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
from memory.layout import (
    HIGH,
    LOAD_CHECKPOINT,
    REFS_SEP,
    SEP,
    Loaded,
    as_text,
    before_id,
    member_of,
    split_member,
)
from memory.steps import Batch, Steps


class CheckpointOps(BaseCheckpointSaver[str]):
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

    def _tuple(self, loaded: Loaded) -> CheckpointTuple:
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
    def _loaded(thread_id: str, ns: str, reply: Any) -> Loaded | None:
        if not reply:
            return None
        checkpoint_id, record, fields, blobs, writes = reply
        return Loaded(
            thread_id=thread_id,
            ns=ns,
            checkpoint_id=as_text(checkpoint_id),
            record=record,
            blob_fields=[as_text(name) for name in fields],
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
        bound = before_id(before)
        if ns_filter is None:
            [members] = yield self._read_members(thread_id)
        else:
            low, high = f"[{ns_filter}{SEP}", f"[{ns_filter}{SEP}{HIGH}"
            [members] = yield Batch(lambda p: p.zrangebylex(keys.order, low, high))
        candidates = sorted(
            (
                (checkpoint_id, ns)
                for ns, checkpoint_id in map(split_member, members)
                if (only_id is None or checkpoint_id == only_id)
                and (bound is None or checkpoint_id < bound)
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
        member = member_of(ns, checkpoint["id"])
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
        member = member_of(ns, checkpoint_id)
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
            # Only the keys written here: a task's writes follow the checkpoint they
            # belong to, whose write restarted the whole thread's TTL moments before.
            self._expire(p, (keys.writes, keys.write_index))

        if entries:
            yield Batch(queue, transaction=True)
