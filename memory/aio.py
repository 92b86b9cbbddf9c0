"""The async Redis checkpointer, for the service and `langgraph dev`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from memory.base import BaseRedisSaver
from memory.connection import async_client, check_server, send_batch
from memory.layout import LAYOUT
from memory.steps import Batch, Steps, advance


class AsyncRedisSaver(BaseRedisSaver):
    """LangGraph checkpointer on plain Redis (≥ 6), Valkey or Redis Cluster, async.

    The sync methods (for code outside the loop, such as a thread of `langgraph dev`)
    hand their work to the loop the saver was created on. Serialisation runs inline:
    msgpack is fast, and a worker thread would hold the GIL all the same.
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
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
        self.loop = asyncio.get_running_loop()

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        url: str,
        *,
        cluster: bool = False,
        serde: SerializerProtocol | None = None,
        prefix: str = "alma",
        ttl: int | None = None,
        refresh_on_read: bool = False,
    ) -> AsyncIterator[AsyncRedisSaver]:
        """Connect to `url` (`redis://`, `rediss://`, `unix://`) and close when done.

        Args:
            url: Where Redis listens.
            cluster: Whether `url` names a node of a Redis Cluster.
            serde: See `BaseRedisSaver`.
            prefix: See `BaseRedisSaver`.
            ttl: See `BaseRedisSaver`.
            refresh_on_read: See `BaseRedisSaver`.
        """
        client = async_client(url, cluster=cluster)
        try:
            yield cls(client, serde=serde, prefix=prefix, ttl=ttl, refresh_on_read=refresh_on_read)
        finally:
            await client.aclose()

    async def asetup(self) -> None:
        """Check the server, and move threads still in the first layout into this one.

        The move happens once per prefix (`memory/layout.py`); idempotent.
        """
        check_server(await self.client.info("server"))
        keys = self.keys
        if await self.client.get(keys.layout) == LAYOUT:
            return
        async for key in self.client.scan_iter(match=keys.legacy_checkpoint_orders(), count=1000):
            await self._run(self._migrate_thread_steps(keys.thread_of_legacy_order(key)))
        async for key in self.client.scan_iter(match=keys.legacy_runs(), count=1000):
            await self.client.delete(key)
        await self.client.set(keys.layout, LAYOUT)

    async def _run(self, steps: Steps) -> Any:
        step = advance(steps, None)
        while isinstance(step, Batch):
            step = advance(steps, await self._send(step))
        return step.value

    async def _send(self, batch: Batch) -> list[Any]:
        # Every batch is idempotent, so one that met a dead connection is sent again.
        return await send_batch(self.client, batch)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Fetch a checkpoint: the one `config` names, or the latest of its namespace."""
        result: CheckpointTuple | None = await self._run(self._get_tuple_steps(config))
        return result

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """List a thread's checkpoints, newest first.

        Args:
            config: The thread, and optionally the namespace or checkpoint, to list.
            filter: Metadata that listed checkpoints must match.
            before: List only checkpoints older than this one.
            limit: Most checkpoints to list.
        """
        found: list[CheckpointTuple] = await self._run(
            self._list_steps(config, filter=filter, before=before, limit=limit)
        )
        for tup in found:
            yield tup

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the channel values that changed since its parent."""
        stored: RunnableConfig = await self._run(
            self._put_steps(config, checkpoint, metadata, new_versions)
        )
        return stored

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store the writes a task made against a checkpoint."""
        await self._run(self._put_writes_steps(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread."""
        await self._run(self._delete_thread_steps(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that the given runs wrote."""
        await self._run(self._delete_for_runs_steps(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of one thread onto another, replacing it."""
        await self._run(self._copy_thread_steps(source_thread_id, target_thread_id))

    async def aprune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest", keep: int = 1
    ) -> None:
        """Prune threads: keep the latest `keep` checkpoints per namespace, or delete all.

        Blobs no kept checkpoint refers to are removed too. Not `DeltaChannel`-aware:
        ALMA's graphs use none.
        """
        await self._run(self._prune_steps(thread_ids, strategy, keep))

    # -- sync bridge ---------------------------------------------------------------------

    def _sync(self, coroutine: Any) -> Any:
        try:
            if asyncio.get_running_loop() is self.loop:
                coroutine.close()
                raise asyncio.InvalidStateError(
                    "AsyncRedisSaver's sync methods cannot run on its own event loop; "
                    "use the async methods (aget_tuple, aput, …) there"
                )
        except RuntimeError:
            pass
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Sync `aget_tuple`, for callers on other threads."""
        result: CheckpointTuple | None = self._sync(self.aget_tuple(config))
        return result

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Sync `alist`, for callers on other threads."""
        steps = self._list_steps(config, filter=filter, before=before, limit=limit)
        found: list[CheckpointTuple] = self._sync(self._run(steps))
        yield from found

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Sync `aput`, for callers on other threads."""
        stored: RunnableConfig = self._sync(self.aput(config, checkpoint, metadata, new_versions))
        return stored

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Sync `aput_writes`, for callers on other threads."""
        self._sync(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Sync `adelete_thread`, for callers on other threads."""
        self._sync(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Sync `adelete_for_runs`, for callers on other threads."""
        self._sync(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Sync `acopy_thread`, for callers on other threads."""
        self._sync(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(
        self, thread_ids: Sequence[str], *, strategy: str = "keep_latest", keep: int = 1
    ) -> None:
        """Sync `aprune`, for callers on other threads."""
        self._sync(self.aprune(thread_ids, strategy=strategy, keep=keep))
