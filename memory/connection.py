"""Redis clients that ride out restarts, and the server check every saver runs at setup."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, ConnectionError, NoScriptError, TimeoutError
from redis.retry import Retry

from memory.layout import Script
from memory.steps import Batch, Command

MINIMUM_VERSION = (6, 0)

REPLAYABLE = (ConnectionError, TimeoutError, ClusterDownError)
"""Errors after which a batch of ALMA's (idempotent) commands may simply be sent again.

A Cluster answers CLUSTERDOWN (refusing the command, running nothing) on every master
from the moment one master is declared failed until its replica has taken over.
"""
BATCH_ATTEMPTS = 7


def replay_delay(attempt: int) -> float:
    """Seconds to wait before sending a batch again after `attempt` failures.

    The attempts span about 2.5 s: a restart's blip, or a Cluster's fail-over from the
    moment it notices the dead master (a replica waits 0.5-1 s, then is elected).
    """
    return float(min(0.05 * 2**attempt, 1.0))


class UnsupportedRedisError(RuntimeError):
    """The server is too old for ALMA."""


class FailoverSafeRedisCluster(AsyncRedisCluster):
    """redis-py's async Cluster client, made to carry on while a master fails over.

    It closes three gaps of redis-py's own (8.x), each of which failed runs on masters
    that were alive, or kept failing them after the replica had taken over.
    """

    def forget_layout(self) -> None:
        """Reload the cluster's layout before the next command.

        For transactions: redis-py reloads it after only every fifth connection error one
        meets, so they go on being sent to a dead master after its replica took over.
        """
        self._initialize = True

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> AsyncRedisCluster:
        """Load the cluster's layout, if it is stale, skipping masters that do not answer.

        After reloading the layout, redis-py reads the command table from its default
        node: the first master it knows. Until a replica has taken over from a master
        that died, that can be the dead master, and then every reload fails — and every
        command with it, for every master.
        """
        for _ in range(len(self.nodes_manager.nodes_cache)):
            try:
                return await super().initialize(
                    additional_startup_nodes_info, last_failed_node_name
                )
            except (ConnectionError, TimeoutError):
                # Only the command-table read raises these (an unreachable startup node
                # is skipped); the parser holds the node it asked.
                unreachable = getattr(self.commands_parser, "node", None)
                if unreachable is None:
                    raise
                self.nodes_manager.move_node_to_end_of_cached_nodes(unreachable.name)
        return await super().initialize(additional_startup_nodes_info, last_failed_node_name)

    async def aclose(self) -> None:
        """Close the client's connections; any busy with a command, once it ends.

        redis-py calls this itself to start afresh when a command meets CLUSTERDOWN or
        a dead node, and its own version closes connections other commands are in the
        middle of, which then fail in ways no retry expects (under uvloop, a
        `RuntimeError` or an `AttributeError`). Those are left to redis-py's lazy
        reconnection instead: closed as their command ends.
        """
        nodes = [*self.nodes_manager.nodes_cache.values()]
        nodes += self.nodes_manager.startup_nodes.values()
        if not any(len(node._connections) > len(node._free) for node in nodes):
            await super().aclose()
            return
        self._initialize = True
        for node in nodes:
            node.update_active_connections_for_reconnect()
            await node.disconnect_free_connections()


async def execute_replaying(
    client: redis.asyncio.Redis | AsyncRedisCluster,
    queue: Callable[[Any], object],
    *,
    transaction: bool = False,
) -> list[Any]:
    """Send the commands `queue` puts on a pipeline, again after a dead connection.

    Only for idempotent batches. After a restart the pool still holds connections the
    old server closed, and redis-py does not send a pipeline again on a fresh one: the
    first batch after every restart would fail.
    """
    return await _replaying(client, lambda: _execute_once(client, queue, transaction=transaction))


async def _replaying(
    client: redis.asyncio.Redis | AsyncRedisCluster,
    send: Callable[[], Awaitable[list[Any]]],
) -> list[Any]:
    """`send()`, again (up to `BATCH_ATTEMPTS` times) after a dead connection."""
    for attempt in range(BATCH_ATTEMPTS):
        try:
            return await send()
        except REPLAYABLE:
            if isinstance(client, FailoverSafeRedisCluster):
                client.forget_layout()  # the slot's master may have changed
            if attempt == BATCH_ATTEMPTS - 1:
                raise
            await asyncio.sleep(replay_delay(attempt))
    raise AssertionError("unreachable")


async def _execute_once(
    client: redis.asyncio.Redis | AsyncRedisCluster,
    queue: Callable[[Any], object],
    *,
    transaction: bool,
) -> list[Any]:
    if transaction and isinstance(client, AsyncRedisCluster):
        # redis-py queues each command of a Cluster transaction from a thread
        # with an event loop of its own, and reloads a layout a connection
        # error marked stale there — leaving connections tied to that loop
        # in the pool. Reloading first, here, keeps them on ours; queueing
        # blocks this loop, so nothing can mark the layout stale meanwhile.
        await client.initialize()
    pipe = client.pipeline(transaction=transaction)
    queue(pipe)
    replies: list[Any] = await pipe.execute()
    return replies


def _words(command: Command, *, by_source: bool) -> Sequence[Any]:
    head = command[0]
    if isinstance(head, Script):
        if by_source:
            return ("EVAL", head.source, *command[1:])
        return ("EVALSHA", head.sha, *command[1:])
    return command


async def _send_async(
    client: redis.asyncio.Redis | AsyncRedisCluster,
    batch: Batch,
    *,
    by_source: bool,
) -> list[Any]:
    if len(batch.commands) == 1 and not batch.transaction:
        return [await client.execute_command(*_words(batch.commands[0], by_source=by_source))]

    def queue(pipe: Any) -> None:
        for command in batch.commands:
            pipe.execute_command(*_words(command, by_source=by_source))

    return await _execute_once(client, queue, transaction=batch.transaction)


async def send_batch(
    client: redis.asyncio.Redis | AsyncRedisCluster,
    batch: Batch,
) -> list[Any]:
    """Send a batch's commands in one round trip, again after a dead connection.

    Scripts go by their SHA1; if Redis does not have them (it restarted, or this is a
    Cluster node that never ran them) the batch goes again with their source, which
    Redis then keeps. Only for idempotent batches, as `execute_replaying`.
    """
    by_source = False

    async def send() -> list[Any]:
        nonlocal by_source
        try:
            return await _send_async(client, batch, by_source=by_source)
        except NoScriptError:
            if by_source:
                raise
            by_source = True  # and for any replay: Redis has lost its scripts
            return await _send_async(client, batch, by_source=True)

    return await _replaying(client, send)


def send_batch_sync(client: redis.Redis | RedisCluster, batch: Batch) -> list[Any]:
    """`send_batch` on a sync client."""
    by_source = False
    attempt = 0
    while True:
        try:
            if len(batch.commands) == 1 and not batch.transaction:
                command = _words(batch.commands[0], by_source=by_source)
                return [client.execute_command(*command)]  # type: ignore[no-untyped-call]
            pipe = client.pipeline(transaction=batch.transaction)
            for command in batch.commands:
                pipe.execute_command(*_words(command, by_source=by_source))
            replies: list[Any] = pipe.execute()
            return replies
        except NoScriptError:
            if by_source:
                raise
            by_source = True
        except REPLAYABLE:
            attempt += 1
            if attempt >= BATCH_ATTEMPTS:
                raise
            time.sleep(replay_delay(attempt - 1))


def _options(*, asynchronous: bool) -> dict[str, Any]:
    # A restarted or failed-over Redis is reconnected to with backoff, so a blip costs
    # a retry, not a restart of the service. redis-py does not replay a pipeline that
    # meets a pooled connection the restart killed; `execute_replaying` does.
    # An async client needs the async Retry: given the sync one, its `call_with_retry`
    # returns the command's coroutine unawaited, so no failure is ever retried and the
    # first command after every restart fails on a dead pooled connection.
    kind = AsyncRetry if asynchronous else Retry
    return {
        "retry": kind(ExponentialWithJitterBackoff(base=0.05, cap=2.0), retries=5),
        "retry_on_error": [ConnectionError, TimeoutError],
        "socket_connect_timeout": 5.0,
        "socket_timeout": 10.0,
        "health_check_interval": 30,
    }


def async_client(
    url: str,
    *,
    cluster: bool = False,
    seeds: Sequence[str] = (),
    max_connections: int = 256,
    pool_timeout: float = 10.0,
) -> redis.asyncio.Redis | AsyncRedisCluster:
    """An async client for `url`, resilient to restarts.

    When all `max_connections` are busy a command waits up to `pool_timeout` seconds for
    one: a burst of runs queues for Redis instead of failing (redis-py's default pool
    raises "Too many connections" at its limit).
    """
    if cluster:
        # The same timeouts as a single server's, and any seed node to start from: with
        # only the URL's, a process cannot start while that one node is down.
        options = _options(asynchronous=True)
        del options["retry_on_error"]  # the Cluster client retries what it can itself
        nodes = [ClusterNode(host, int(port)) for host, port in (s.rsplit(":", 1) for s in seeds)]
        return FailoverSafeRedisCluster.from_url(
            url, max_connections=max_connections, startup_nodes=nodes or None, **options
        )
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout, **_options(asynchronous=True)
    )
    return redis.asyncio.Redis.from_pool(pool)


def sync_client(url: str, *, cluster: bool = False) -> redis.Redis | RedisCluster:
    """A sync client for `url`, resilient to restarts."""
    if cluster:
        return RedisCluster.from_url(url, retry=_options(asynchronous=False)["retry"])
    return redis.Redis.from_url(url, **_options(asynchronous=False))


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


def redact_url(url: str) -> str:
    """`url` fit for a log or a report: its password, if any, masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + host))
