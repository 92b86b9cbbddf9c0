"""The sync Redis checkpointer, for scripts and sync graphs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from redis.cluster import RedisCluster

from memory.base import BaseRedisSaver
from memory.connection import check_server, send_batch_sync, sync_client
from memory.layout import LAYOUT
from memory.steps import Batch, Steps, advance


class RedisSaver(BaseRedisSaver):
    """LangGraph checkpointer on plain Redis (≥ 6), Valkey or Redis Cluster, sync.

    Same storage as `AsyncRedisSaver`: either can read what the other wrote.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        *,
        serde: SerializerProtocol | None = None,
        prefix: str = "alma",
        ttl: int | None = None,
        refresh_on_read: bool = False,
    ) -> None:
        super().__init__(
            serde=serde,
            prefix=prefix,
            ttl=ttl,
            refresh_on_read=refresh_on_read,
            cluster=isinstance(client, RedisCluster),
        )
        self.client = client

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        url: str,
        *,
        cluster: bool = False,
        serde: SerializerProtocol | None = None,
        prefix: str = "alma",
        ttl: int | None = None,
        refresh_on_read: bool = False,
    ) -> Iterator[RedisSaver]:
        """Connect to `url` and close when done; see `AsyncRedisSaver.from_conn_string`."""
        client = sync_client(url, cluster=cluster)
        try:
            yield cls(client, serde=serde, prefix=prefix, ttl=ttl, refresh_on_read=refresh_on_read)
        finally:
            client.close()

    def setup(self) -> None:
        """`AsyncRedisSaver.asetup`, sync."""
        check_server(self.client.info("server"))
        keys = self.keys
        if self.client.get(keys.layout) == LAYOUT:
            return
        for key in self.client.scan_iter(match=keys.legacy_checkpoint_orders(), count=1000):
            self._run(self._migrate_thread_steps(keys.thread_of_legacy_order(key)))
        for key in self.client.scan_iter(match=keys.legacy_runs(), count=1000):
            self.client.delete(key)
        self.client.set(keys.layout, LAYOUT)

    def _run(self, steps: Steps) -> Any:
        step = advance(steps, None)
        while isinstance(step, Batch):
            step = advance(steps, self._send(step))
        return step.value

    def _send(self, batch: Batch) -> list[Any]:
        # Every batch is idempotent, so one that met a dead connection is sent again.
        return send_batch_sync(self.client, batch)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Fetch a checkpoint: the one `config` names, or the latest of its namespace."""
        result: CheckpointTuple | None = self._run(self._get_tuple_steps(config))
        return result

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """List a thread's checkpoints, newest first."""
        yield from self._run(self._list_steps(config, filter=filter, before=before, limit=limit))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the channel values that changed since its parent."""
        stored: RunnableConfig = self._run(
            self._put_steps(config, checkpoint, metadata, new_versions)
        )
        return stored

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store the writes a task made against a checkpoint."""
        self._run(self._put_writes_steps(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread."""
        self._run(self._delete_thread_steps(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that the given runs wrote."""
        self._run(self._delete_for_runs_steps(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of one thread onto another, replacing it."""
        self._run(self._copy_thread_steps(source_thread_id, target_thread_id))

    def prune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest", keep: int = 1
    ) -> None:
        """Prune threads: keep the latest `keep` checkpoints per namespace, or delete all."""
        self._run(self._prune_steps(thread_ids, strategy, keep))
