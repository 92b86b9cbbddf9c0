"""Redis clients that ride out restarts, and the server check every saver runs at setup."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

MINIMUM_VERSION = (6, 0)

REPLAYABLE = (ConnectionError, TimeoutError)
"""Errors after which a batch of ALMA's (idempotent) commands may simply be sent again."""
BATCH_ATTEMPTS = 4


def replay_delay(attempt: int) -> float:
    """Seconds to wait before sending a batch again after `attempt` failures."""
    return float(min(0.05 * 2**attempt, 1.0))


class UnsupportedRedisError(RuntimeError):
    """The server is too old for ALMA."""


def _options() -> dict[str, Any]:
    # A restarted or failed-over Redis is reconnected to with backoff, so a blip costs
    # a retry, not a restart of the service. redis-py does not replay a pipeline that
    # meets a pooled connection the restart killed; the savers do (see REPLAYABLE).
    return {
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=2.0), retries=5),
        "retry_on_error": [ConnectionError, TimeoutError],
        "socket_connect_timeout": 5.0,
        "socket_timeout": 10.0,
        "health_check_interval": 30,
    }


def async_client(
    url: str,
    *,
    cluster: bool = False,
    max_connections: int = 256,
    pool_timeout: float = 10.0,
) -> redis.asyncio.Redis | AsyncRedisCluster:
    """An async client for `url`, resilient to restarts.

    When all `max_connections` are busy a command waits up to `pool_timeout` seconds for
    one: a burst of runs queues for Redis instead of failing (redis-py's default pool
    raises "Too many connections" at its limit).
    """
    if cluster:
        return AsyncRedisCluster.from_url(
            url, retry=_options()["retry"], max_connections=max_connections
        )
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout, **_options()
    )
    return redis.asyncio.Redis.from_pool(pool)


def sync_client(url: str, *, cluster: bool = False) -> redis.Redis | RedisCluster:
    """A sync client for `url`, resilient to restarts."""
    if cluster:
        return RedisCluster.from_url(url, retry=_options()["retry"])
    return redis.Redis.from_url(url, **_options())


def check_server(info: dict[str, Any]) -> None:
    """Refuse servers older than Redis 6 (Valkey reports a compatible `redis_version`).

    Raises:
        UnsupportedRedisError: naming the version found.
    """
    version = str(info.get("redis_version", "0"))
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < MINIMUM_VERSION:
        raise UnsupportedRedisError(
            f"Redis {version} is too old: ALMA needs Redis 6 or newer (or Valkey)"
        )
