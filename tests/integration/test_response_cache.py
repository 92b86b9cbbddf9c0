"""Answers of deterministic nodes cached in Redis, shared by separate graph instances."""

import pytest
import redis.asyncio as aioredis

from graphs.manager import build_manager_graph
from memory.factory import open_memory
from memory.settings import MemorySettings
from tests.utils.graphs import ask, simulated, simulated_provider
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration


async def test_a_second_process_answers_from_the_redis_cache(redis: RedisServer) -> None:
    settings = MemorySettings(
        redis_url=redis.url,
        redis_prefix="cache-test",
        cache_ttl=120,
    )
    answers, calls = [], []
    for _ in range(2):  # two services sharing one Redis, as two processes would
        async with open_memory(settings) as memory:
            assert memory.cache is not None
            provider = simulated_provider()
            graph = build_manager_graph(
                provider=provider,
                checkpointer=memory.checkpointer,
                cache=memory.cache,
                cache_ttl=memory.cache_ttl,
            )
            state = await ask(graph, "Compare quicksort and mergesort", max_plan_steps=2)
            answers.append(state["messages"][-1].text)
            calls.append(simulated(provider, "analytical").calls)
    assert answers[0] == answers[1]
    assert calls == [4, 0]

    client = aioredis.Redis.from_url(redis.url)
    keys = [key async for key in client.scan_iter(match="cache-test:{cache}:*")]
    assert len(keys) == 4
    ttls = [await client.ttl(key) for key in keys]
    assert all(0 < ttl <= 120 for ttl in ttls), ttls
    await client.aclose()


async def test_a_cache_that_cannot_be_reached_is_a_miss_not_a_failure() -> None:
    from memory.cache import AsyncRedisCache

    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    cache = AsyncRedisCache(client)
    key = (("compose",), "abc")
    await cache.aset({key: ("value", 60)})
    assert await cache.aget([key]) == {}
    await client.aclose()
