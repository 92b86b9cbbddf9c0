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
    BLOB,
    INDEX_RUN,
    LOAD_CHECKPOINT,
    PUT_CHECKPOINT,
    PUT_WRITES,
    REFS_SEP,
    RUN,
    SEP,
    WRITE,
    Loaded,
    before_id,
    checkpoint_member,
    namespace_range,
    split_member,
)
from memory.steps import Batch, Command, Steps, one

EMPTY = b"empty\x00"
"""A channel that has a version but no value (LangGraph's `"empty"` kind)."""


class CheckpointOps(BaseCheckpointSaver[str]):
    """Checkpoint storage on plain Redis data types, shared by the sync and async savers.

    Args:
        serde: Serializer for checkpoints, metadata and values; LangGraph's
            `JsonPlusSerializer` by default (wrap it in an `EncryptedSerializer` to encrypt
            at rest).
        prefix: Prefix of every key, so several deployments can share a database.
        ttl: Seconds a thread is kept after its last write; `None` keeps it forever.
        refresh_on_read: Whether reading a thread also restarts its time-to-live.
        cluster: Whether the client is a Redis Cluster client; a run's key is then
            written apart from its thread's (they are in different slots).
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
        """The key listing the threads a run wrote checkpoints to."""
        return self.keys.checkpoints_of_run(run_id)

    @property
    def _ttl_arg(self) -> int:
        return self.ttl or 0

    def _expire(self, keys: Iterable[str]) -> list[Command]:
        return [("EXPIRE", key, self.ttl) for key in keys] if self.ttl is not None else []

    def _dump_value(self, value: Any) -> bytes:
        kind, data = self.serde.dumps_typed(value)
        return b"".join((kind.encode(), b"\x00", data))

    def _load_value(self, stored: bytes) -> tuple[str, Any]:
        kind, _, data = stored.partition(b"\x00")
        text = kind.decode()
        return text, None if text == "empty" else self.serde.loads_typed((text, data))

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
        refs, _, record = loaded.stored.partition(b"\x00")
        kind, data, md_kind, md_data, parent_id = ormsgpack.unpackb(record)
        checkpoint: Checkpoint = self.serde.loads_typed((kind, data))
        values: dict[str, Any] = {}
        if refs:
            for name, blob in zip(refs.split(b"\x1e"), loaded.blobs, strict=True):
                if blob is None:
                    continue
                found_kind, value = self._load_value(blob)
                if found_kind != "empty":
                    values[name.rsplit(b"\x1f", 2)[1].decode()] = value
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

    def _read_members(self, thread_id: str, ns: str | None = None) -> Batch:
        """A batch reading the `c␟ns␟id` members of a thread (of one namespace, if given)."""
        low, high = namespace_range(ns)
        return one("ZRANGEBYLEX", self.thread_keys(thread_id).index, low, high)

    def _load(self, keys: ThreadKeys, ns: str, checkpoint_id: str) -> Command:
        ttl = self._ttl_arg if self.refresh_on_read else 0
        member = checkpoint_member(ns, checkpoint_id)
        return (LOAD_CHECKPOINT, 2, keys.data, keys.index, member, ttl)

    @staticmethod
    def _loaded(thread_id: str, ns: str, checkpoint_id: str, reply: Any) -> Loaded | None:
        if not reply:
            return None
        stored, blobs, values = reply
        return Loaded(
            thread_id=thread_id,
            ns=ns,
            checkpoint_id=checkpoint_id,
            stored=stored,
            blobs=values[:blobs],
            writes=values[blobs:],
        )

    # -- operations ----------------------------------------------------------------------

    def _get_tuple_steps(self, config: RunnableConfig) -> Steps:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = configurable.get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        keys = self.thread_keys(thread_id)
        if not checkpoint_id:
            # The latest first, alone: a namespace with none (every subgraph's, as a run
            # starts) then costs one command, not a script.
            low, high = namespace_range(ns)
            [latest] = yield one("ZREVRANGEBYLEX", keys.index, high, low, "LIMIT", 0, 1)
            if not latest:
                return None
            checkpoint_id = split_member(latest[0])[1]
        [reply] = yield Batch([self._load(keys, ns, checkpoint_id)])
        loaded = self._loaded(thread_id, ns, checkpoint_id, reply)
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
        only_id = get_checkpoint_id(config)
        bound = before_id(before)
        [members] = yield self._read_members(thread_id, config["configurable"].get("checkpoint_ns"))
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
            loads = [self._load(keys, ns, checkpoint_id) for checkpoint_id, ns in chunk]
            replies = yield Batch(loads)
            for (checkpoint_id, ns), reply in zip(chunk, replies, strict=True):
                loaded = self._loaded(thread_id, ns, checkpoint_id, reply)
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
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = configurable.get("checkpoint_ns", "")
        parent_id = configurable.get("checkpoint_id")
        keys = self.thread_keys(thread_id)
        stored = checkpoint.copy()
        values: dict[str, Any] = stored.pop("channel_values")  # type: ignore[misc]
        blob_prefix = f"{BLOB}{ns}{SEP}"
        fields: list[Any] = []
        for channel, version in new_versions.items():
            fields.append(f"{blob_prefix}{channel}{SEP}{version}")
            fields.append(self._dump_value(values[channel]) if channel in values else EMPTY)
        full_metadata = get_checkpoint_metadata(config, metadata)
        kind, data = self.serde.dumps_typed(stored)
        md_kind, md_data = self.serde.dumps_typed(full_metadata)
        member = checkpoint_member(ns, checkpoint["id"])
        refs = REFS_SEP.join(
            f"{blob_prefix}{channel}{SEP}{version}"
            for channel, version in checkpoint["channel_versions"].items()
        )
        record = ormsgpack.packb([kind, data, md_kind, md_data, parent_id])
        fields.append(member)
        fields.append(b"".join((refs.encode(), b"\x00", record)))
        run_id = full_metadata.get("run_id")
        run_member = f"{RUN}{run_id}{SEP}{ns}{SEP}{checkpoint['id']}" if run_id else ""
        ttl = self._ttl_arg
        if run_id and not self.cluster:
            script_keys: tuple[str, ...] = (*keys.all, self.run_key(str(run_id)))
        else:
            script_keys = keys.all
        commands: list[Command] = [
            (
                PUT_CHECKPOINT,
                len(script_keys),
                *script_keys,
                ttl,
                member,
                run_member,
                thread_id,
                *fields,
            )  # fmt: skip
        ]
        if run_id and self.cluster:
            commands.append(self._index_run(str(run_id), thread_id))
        yield Batch(commands)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def _index_run(self, run_id: str, thread_id: str) -> Command:
        """Note, in the run's own key, that it wrote checkpoints to `thread_id`."""
        return (INDEX_RUN, 1, self.run_key(run_id), thread_id, self._ttl_arg)

    def _put_writes_steps(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Steps:
        if not writes:
            return
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = configurable.get("checkpoint_ns", "")
        checkpoint_id = str(configurable["checkpoint_id"])
        keys = self.thread_keys(thread_id)
        prefix = f"{WRITE}{ns}{SEP}{checkpoint_id}{SEP}{task_id}{SEP}"
        replacing: list[Any] = []
        once: list[Any] = []
        for position, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, position)
            kind, data = self.serde.dumps_typed(value)
            packed = ormsgpack.packb([task_id, channel, kind, data, task_path, idx])
            # Special writes (errors, interrupts, …) replace what the task wrote before;
            # regular ones are written once, so a retried task cannot duplicate them.
            (replacing if idx < 0 else once).extend((f"{prefix}{idx}", packed))
        yield Batch(
            [(PUT_WRITES, 2, *keys.all, self._ttl_arg, len(replacing) // 2, *replacing, *once)]
        )
