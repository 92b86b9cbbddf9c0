"""A subscription's replay on a Redis log longer than the end it reads first."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from memory.keys import RedisKeys
from server.agent_protocol.messages import SubscribeParams
from server.engine.broker import Broker, Subscription
from server.engine.events import Logged, lifecycle, numbered
from server.stores.event_log import TAIL_ENTRIES, RedisEventLog
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration

CHANNELS = ["lifecycle", "custom"]


def custom(n: int) -> dict[str, Any]:
    return {"type": "event", "method": "custom", "params": {"namespace": [], "data": n}}


async def log_of(redis: RedisServer) -> tuple[Redis, RedisEventLog]:
    client = Redis.from_url(redis.url)
    keys = RedisKeys(prefix=f"replay-{uuid.uuid4().hex[:8]}")
    return client, RedisEventLog(client, keys=keys, maxlen=10_000, ttl=3600)


async def write_run(log: RedisEventLog, thread_id: str, first: int, entries: int, *,
                    ended: bool) -> int:  # fmt: skip
    """A run of `entries` stream entries from `first`; the seq of its last event."""
    seq = first
    await log.append(thread_id, [numbered(lifecycle("running", run_id=f"r{first}"), seq)])
    for n in range(entries - 1 - ended):
        seq += 1
        await log.append(thread_id, [numbered(custom(n), seq)])
    if ended:
        seq += 1
        await log.append(thread_id, [numbered(lifecycle("completed", run_id=f"r{first}"), seq)])
    return seq


def queued(subscription: Subscription) -> list[Logged]:
    events = []
    while not subscription.queue.empty():
        event = subscription.queue.get_nowait()
        assert event is not None
        events.append(event)
    return events


async def no_run(thread_id: str) -> None:
    return None


async def test_a_run_longer_than_the_logs_end_read_first_is_replayed_from_its_start(
    redis: RedisServer,
) -> None:
    client, log = await log_of(redis)
    try:
        before = await write_run(log, "t", 1, 3, ended=True)
        last = await write_run(log, "t", before + 1, TAIL_ENTRIES * 2, ended=True)
        broker = Broker(log=log, queue_size=1000, run_origin=no_run)

        newest = await broker.subscribe("t", SubscribeParams(channels=CHANNELS))
        resumed = await broker.subscribe("t", SubscribeParams(channels=CHANNELS, since=2))

        # Its `running` lies further back than the entries read first: read on from there.
        assert [e["seq"] for e in queued(newest)] == list(range(before + 1, last + 1))
        assert [e["seq"] for e in queued(resumed)] == list(range(3, last + 1))
    finally:
        await client.aclose()


async def test_a_run_left_unfinished_is_ended_before_the_replay_which_shows_its_end(
    redis: RedisServer,
) -> None:
    client, log = await log_of(redis)
    ended: list[str] = []

    async def end_orphan(thread_id: str) -> None:
        # As the run manager does for a run whose process died: log its end.
        ended.append(thread_id)
        seq = await log.last_seq(thread_id) + 1
        await log.append(thread_id, [numbered(lifecycle("failed", run_id="r1"), seq)])

    try:
        last = await write_run(log, "t", 1, 4, ended=False)
        await write_run(log, "done", 1, 4, ended=True)
        broker = Broker(log=log, queue_size=1000, run_origin=no_run, on_orphan=end_orphan)

        orphaned = await broker.subscribe("t", SubscribeParams(channels=CHANNELS))
        await broker.subscribe("done", SubscribeParams(channels=CHANNELS))

        assert ended == ["t"]  # a thread whose last run ended is left alone
        replayed = queued(orphaned)
        assert [e["seq"] for e in replayed] == list(range(1, last + 2))
        assert replayed[-1]["params"]["data"]["event"] == "failed"
    finally:
        await client.aclose()


async def test_a_thread_with_a_run_holding_it_replays_that_run_from_its_start(
    redis: RedisServer,
) -> None:
    client, log = await log_of(redis)
    try:
        before = await write_run(log, "t", 1, 5, ended=True)
        last = await write_run(log, "t", before + 1, 3, ended=False)

        async def running_here(thread_id: str) -> tuple[int, bool]:
            return before + 1, True  # the run's first seq, and it runs on this process

        broker = Broker(log=log, queue_size=1000, run_origin=running_here)
        subscription = await broker.subscribe("t", SubscribeParams(channels=CHANNELS))

        assert [e["seq"] for e in queued(subscription)] == list(range(before + 1, last + 1))
    finally:
        await client.aclose()
