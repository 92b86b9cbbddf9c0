"""Conversation titles on Redis: kept in each thread's record, set by its first run."""

import uuid

import pytest
from redis.asyncio import Redis

from memory.keys import RedisKeys
from server.stores.owners import RedisThreadOwners
from server.stores.thread_records import RedisThreadRecords, Threads
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration


async def test_a_threads_title_is_its_first_runs_and_an_older_index_title_is_still_read(
    redis: RedisServer,
) -> None:
    client = Redis.from_url(redis.url)
    keys = RedisKeys(prefix=f"titles-{uuid.uuid4().hex[:8]}")
    owners = RedisThreadOwners(client, keys=keys, ttl=3600)
    threads = Threads(records=RedisThreadRecords(client, keys=keys, ttl=3600), owners=owners)
    try:
        await threads.ensure("t-new", "ada")
        assert [(e.thread_id, e.title) for e in await threads.listing("ada", 10)] == [("t-new", "")]
        await threads.run_created("t-new", "Write a haiku")
        await threads.run_created("t-new", "Now one about the sea")
        # Indexed, with its title, before the titles moved into the threads' records.
        await owners.claim("t-old", "ada")
        await owners.remember("ada", "t-old")
        await client.hset(keys.owner_titles("ada"), "t-old", "An older conversation")
        listed = {e.thread_id: e.title for e in await threads.listing("ada", 10)}
        assert listed == {"t-new": "Write a haiku", "t-old": "An older conversation"}
        record = await threads.get("t-new")
        assert record is not None and record.title == "Write a haiku"
        assert record.metadata["graph_id"] == "manager"
    finally:
        await client.aclose()
