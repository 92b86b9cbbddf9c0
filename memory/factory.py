"""Open conversation memory: Redis when configured and reachable, else process memory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from langgraph.cache.base import BaseCache
from langgraph.cache.memory import InMemoryCache
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from memory.aio import AsyncRedisSaver
from memory.cache import AsyncRedisCache
from memory.connection import UnsupportedRedisError, async_client, redact_url
from memory.keys import RedisKeys
from memory.process import ProcessMemorySaver
from memory.settings import MemorySettings
from memory.store import RedisStore

logger = logging.getLogger("alma.memory")


class RedisUnavailableError(RuntimeError):
    """Redis is required by the settings but cannot be used."""


@dataclass(frozen=True)
class Memory:
    """Where the graph keeps threads and cached answers, and how to describe it."""

    checkpointer: BaseCheckpointSaver[Any]
    store: BaseStore
    """Long-term memory across threads (LangGraph's store), beside the checkpointer."""
    cache: BaseCache[Any] | None
    cache_ttl: int | None
    description: str
    durable: bool
    """Whether threads outlive the process (Redis) or not (process memory)."""
    redis: Redis | RedisCluster | None = None
    """The Redis client, shared with the rest of the service; `None` in process memory."""
    keys: RedisKeys = RedisKeys()
    """Every key this service writes, under its prefix."""


def _serde(settings: MemorySettings) -> SerializerProtocol:
    if settings.checkpoint_encryption_key is None:
        return JsonPlusSerializer()
    key = bytes.fromhex(settings.checkpoint_encryption_key.get_secret_value())
    return EncryptedSerializer.from_pycryptodome_aes(key=key)


@asynccontextmanager
async def open_memory(settings: MemorySettings) -> AsyncIterator[Memory]:
    """Connect to Redis when configured; otherwise, or if it is down, use process memory.

    Raises:
        RedisUnavailableError: when `redis_required` is set and Redis cannot be used.
    """
    url = str(settings.redis_url) if settings.redis_url else None
    if url is None:
        if settings.redis_required:
            raise RedisUnavailableError("ALMA_REDIS_REQUIRED is set but ALMA_REDIS_URL is empty")
        yield _in_process("no Redis configured (ALMA_REDIS_URL is empty)", settings.cache_ttl)
        return
    client = async_client(
        url,
        cluster=settings.redis_cluster,
        seeds=[node.strip() for node in settings.redis_cluster_nodes.split(",") if node.strip()],
        max_connections=settings.redis_max_connections,
        pool_timeout=settings.redis_pool_timeout,
    )
    try:
        saver = AsyncRedisSaver(
            client,
            serde=_serde(settings),
            prefix=settings.redis_prefix,
            ttl=settings.ttl_seconds,
            refresh_on_read=settings.thread_ttl_refresh_on_read,
        )
        await saver.asetup()
    except (RedisError, OSError, UnsupportedRedisError) as exc:
        await client.aclose()
        reason = f"Redis at {redact_url(url)} cannot be used ({exc})"
        if settings.redis_required:
            raise RedisUnavailableError(f"{reason}; ALMA_REDIS_REQUIRED is set") from exc
        yield _in_process(reason, settings.cache_ttl)
        return
    ttl = f"threads kept {settings.thread_ttl}s after last write" if saver.ttl else "kept forever"
    # One hash tag for every cache key: LangGraph reads a step's entries with one MGET,
    # which Redis Cluster only allows within a slot.
    cache: BaseCache[Any] | None = (
        AsyncRedisCache(client, prefix=RedisKeys(settings.redis_prefix).cache)
        if settings.cache_ttl
        else None
    )
    memory = Memory(
        checkpointer=saver,
        store=RedisStore(
            client,
            keys=RedisKeys(settings.redis_prefix),
            ttl={
                "default_ttl": settings.store_ttl / 60 if settings.store_ttl else None,
                "refresh_on_read": settings.store_ttl_refresh_on_read,
            },
        ),
        cache=cache,
        cache_ttl=settings.cache_ttl or None,
        description=f"Redis at {redact_url(url)} ({ttl})",
        durable=True,
        redis=client,
        keys=RedisKeys(settings.redis_prefix),
    )
    logger.info("conversation memory: %s", memory.description)
    try:
        yield memory
    finally:
        await client.aclose()


def _in_process(reason: str, cache_ttl: int = 0) -> Memory:
    logger.warning(
        "conversation memory: process memory only — %s; conversations end with the process",
        reason,
    )
    return Memory(
        checkpointer=ProcessMemorySaver(),
        store=InMemoryStore(),
        cache=InMemoryCache() if cache_ttl else None,
        cache_ttl=cache_ttl or None,
        description=f"process memory ({reason})",
        durable=False,
    )


@asynccontextmanager
async def open_checkpointer(
    settings: MemorySettings | None = None,
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """Just the checkpointer: the factory `langgraph.json` names for `langgraph dev`."""
    async with open_memory(settings or MemorySettings()) as memory:
        yield memory.checkpointer


@asynccontextmanager
async def open_store(settings: MemorySettings | None = None) -> AsyncIterator[BaseStore]:
    """Just the store: the factory `langgraph.json` names for `langgraph dev`."""
    async with open_memory(settings or MemorySettings()) as memory:
        yield memory.store
