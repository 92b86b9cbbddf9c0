"""LangGraph's node cache on Redis, with async I/O that does not block the event loop.

LangGraph ships a `RedisCache`, but its async methods call its sync ones: it needs a
sync client and stalls the event loop on every lookup. This one speaks `redis.asyncio`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import ormsgpack
from langgraph.cache.base import BaseCache, FullKey, Namespace
from langgraph.checkpoint.serde.base import SerializerProtocol
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from memory.connection import execute_replaying

logger = logging.getLogger("alma.memory")

DEFAULT_TTL = 24 * 3600
"""Seconds an entry cached without a TTL is kept all the same: every ALMA key expires."""


class AsyncRedisCache(BaseCache[Any]):
    """Cached node writes in Redis; a Redis failure is a cache miss, never a failed run.

    Args:
        client: An async Redis (or Cluster) client.
        prefix: Prefix of every key; give it a hash tag (`alma:{cache}:`) so one step's
            keys share a Cluster slot and can be read with one MGET.
        serde: Serializer for cached values.
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = "alma:{cache}:",
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.client = client
        self.prefix = prefix

    def _key(self, namespace: Namespace, key: str) -> str:
        return f"{self.prefix}{':'.join(namespace)}:{key}"

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        """The cached values among `keys`."""
        if not keys:
            return {}
        try:
            found = await self.client.mget([self._key(ns, key) for ns, key in keys])
        except RedisError as exc:
            logger.warning("node cache unavailable, treating as a miss: %s", exc)
            return {}
        values: dict[FullKey, Any] = {}
        for full_key, packed in zip(keys, found, strict=True):
            if isinstance(packed, bytes):
                encoding, data = ormsgpack.unpackb(packed)
                values[full_key] = self.serde.loads_typed((encoding, data))
        return values

    async def aset(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        """Cache values, each with its TTL in seconds."""
        if not pairs:
            return
        packed = {
            self._key(namespace, key): (ormsgpack.packb(list(self.serde.dumps_typed(value))), ttl)
            for (namespace, key), (value, ttl) in pairs.items()
        }

        def queue(pipe: Any) -> None:
            for name, (value, ttl) in packed.items():
                pipe.set(name, value, ex=ttl or DEFAULT_TTL)

        try:
            await execute_replaying(self.client, queue)
        except RedisError as exc:
            logger.warning("node cache unavailable, answer not cached: %s", exc)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Forget cached values, of some namespaces or all (an operator's tool: it scans)."""
        patterns = (
            [f"{self.prefix}*"]
            if namespaces is None
            else [f"{self.prefix}{':'.join(ns)}:*" for ns in namespaces]
        )
        for pattern in patterns:
            batch: list[Any] = []
            async for key in self.client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await self.client.unlink(*batch)
                    batch.clear()
            if batch:
                await self.client.unlink(*batch)

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        """Not available: this cache serves async runs (`ainvoke`, `astream`)."""
        raise NotImplementedError("AsyncRedisCache serves async graph runs only")

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        """Not available: this cache serves async runs (`ainvoke`, `astream`)."""
        raise NotImplementedError("AsyncRedisCache serves async graph runs only")

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Not available: this cache serves async runs (`ainvoke`, `astream`)."""
        raise NotImplementedError("AsyncRedisCache serves async graph runs only")
