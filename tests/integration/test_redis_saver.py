"""ALMA's Redis saver on a real redis-server: TTL, pruning, copying, run deletion, interop."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver

from memory.aio import AsyncRedisSaver
from memory.saver import RedisSaver
from tests.utils.graphs import ask, simulated_provider
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis.url)
    yield connection
    await connection.aclose()


def make_saver(client: aioredis.Redis, **options: Any) -> AsyncRedisSaver:
    return AsyncRedisSaver(client, prefix=f"t-{uuid.uuid4().hex[:8]}", **options)


def config(thread: str, ns: str = "", checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def put_chain(
    saver: AsyncRedisSaver, thread: str, count: int, *, ns: str = "", run_id: str | None = None
) -> list[str]:
    """Put `count` checkpoints, each a child of the last, each changing `counter`."""
    ids: list[str] = []
    version: str | None = None
    for step in range(count):
        checkpoint: Checkpoint = empty_checkpoint()
        checkpoint["id"] = str(uuid6(clock_seq=-1))
        version = saver.get_next_version(version, None)
        checkpoint["channel_values"] = {"counter": step}
        checkpoint["channel_versions"] = {"counter": version}
        metadata: Any = {"source": "loop", "step": step, "parents": {}}
        if run_id:
            metadata["run_id"] = run_id
        await saver.aput(
            config(thread, ns, ids[-1] if ids else None),
            checkpoint,
            metadata,
            {"counter": version},
        )
        ids.append(checkpoint["id"])
    return ids


async def listed(saver: AsyncRedisSaver, thread: str, ns: str | None = "") -> list[str]:
    cfg: Any = {"configurable": {"thread_id": thread}}
    if ns is not None:
        cfg["configurable"]["checkpoint_ns"] = ns
    return [t.checkpoint["id"] async for t in saver.alist(cfg)]


async def test_the_server_runs_no_modules(client: aioredis.Redis) -> None:
    assert await client.module_list() == []


async def test_every_key_of_a_thread_carries_the_ttl_and_writes_refresh_it(
    client: aioredis.Redis,
) -> None:
    saver = make_saver(client, ttl=60)
    [first] = await put_chain(saver, "t1", 1, run_id="run-1")
    await saver.aput_writes(config("t1", "", first), [("messages", "hi")], "task-1")
    keys = [*saver.thread_keys("t1").all, saver.run_key("run-1")]
    assert await client.exists(*keys) == len(keys)
    ttls = [await client.ttl(key) for key in keys]
    assert all(0 < ttl <= 60 for ttl in ttls), ttls

    await client.expire(saver.thread_keys("t1").order, 5)
    await put_chain(saver, "t1", 1)
    assert await client.ttl(saver.thread_keys("t1").order) > 5


async def test_a_thread_expires_after_its_ttl(client: aioredis.Redis) -> None:
    saver = make_saver(client, ttl=1)
    await put_chain(saver, "short-lived", 2)
    assert await saver.aget_tuple(config("short-lived")) is not None
    deadline = time.monotonic() + 5
    while await client.exists(*saver.thread_keys("short-lived").all):
        assert time.monotonic() < deadline, "keys outlived their TTL"
        await asyncio.sleep(0.1)  # waiting on Redis's clock; nothing to await instead
    assert await saver.aget_tuple(config("short-lived")) is None


async def test_without_ttl_keys_are_kept(client: aioredis.Redis) -> None:
    saver = make_saver(client, ttl=None)
    await put_chain(saver, "forever", 1)
    assert await client.ttl(saver.thread_keys("forever").checkpoints) == -1


async def test_reading_refreshes_the_ttl_when_asked(client: aioredis.Redis) -> None:
    saver = make_saver(client, ttl=60, refresh_on_read=True)
    await put_chain(saver, "t", 1)
    await client.expire(saver.thread_keys("t").checkpoints, 5)
    await saver.aget_tuple(config("t"))
    assert await client.ttl(saver.thread_keys("t").checkpoints) > 5


async def test_prune_keeps_exactly_the_latest_n_per_namespace(client: aioredis.Redis) -> None:
    saver = make_saver(client)
    root = await put_chain(saver, "p", 10)
    child = await put_chain(saver, "p", 6, ns="child:1")
    await saver.aprune(["p"], keep=3)
    assert await listed(saver, "p", "") == root[-3:][::-1]
    assert await listed(saver, "p", "child:1") == child[-3:][::-1]
    # Blobs only the dropped checkpoints used are gone; the kept ones still load.
    assert await client.hlen(saver.thread_keys("p").blobs) == 6
    latest = await saver.aget_tuple(config("p"))
    assert latest is not None and latest.checkpoint["channel_values"] == {"counter": 9}


async def test_copy_thread_copies_and_leaves_the_source_intact(client: aioredis.Redis) -> None:
    saver = make_saver(client)
    ids = await put_chain(saver, "src", 3)
    await saver.aput_writes(config("src", "", ids[-1]), [("note", "pending")], "task-1")
    await saver.acopy_thread("src", "dst")
    assert await listed(saver, "dst") == await listed(saver, "src") == ids[::-1]
    copied = await saver.aget_tuple(config("dst"))
    assert copied is not None
    assert copied.config["configurable"]["thread_id"] == "dst"
    assert copied.pending_writes == [("task-1", "note", "pending")]
    # The copy is independent of its source.
    await put_chain(saver, "dst", 1)
    assert len(await listed(saver, "dst")) == 4
    assert len(await listed(saver, "src")) == 3


async def test_before_may_be_a_config_or_a_checkpoint_as_langgraph_dev_passes_it(
    client: aioredis.Redis,
) -> None:
    saver = make_saver(client)
    ids = await put_chain(saver, "b", 4)
    # `langgraph dev` hands a client's Checkpoint on as it came, with no `configurable`.
    bounds: list[Any] = [
        config("b", "", ids[2]),
        {"checkpoint_id": ids[2], "thread_id": "b", "checkpoint_ns": ""},
        {"checkpoint_id": ids[2]},
    ]
    for before in bounds:
        older = [t.checkpoint["id"] async for t in saver.alist(config("b"), before=before)]
        assert older == ids[:2][::-1], before
    everything = [t.checkpoint["id"] async for t in saver.alist(config("b"), before={})]
    assert everything == ids[::-1]


async def test_delete_for_runs_removes_only_those_runs(client: aioredis.Redis) -> None:
    saver = make_saver(client)
    kept = await put_chain(saver, "a", 2, run_id="run-keep")
    gone = await put_chain(saver, "a", 2, run_id="run-gone")
    other = await put_chain(saver, "b", 1, run_id="run-gone")
    await saver.aput_writes(config("a", "", gone[-1]), [("x", 1)], "task")
    await saver.adelete_for_runs(["run-gone"])
    assert await listed(saver, "a") == kept[::-1]
    assert await listed(saver, "b") == []
    assert other
    assert await client.hlen(saver.thread_keys("a").writes) == 0
    assert not await client.exists(saver.run_key("run-gone"))


async def test_sync_and_async_savers_read_each_other(redis: RedisServer) -> None:
    prefix = f"interop-{uuid.uuid4().hex[:6]}"
    async with AsyncRedisSaver.from_conn_string(redis.url, prefix=prefix) as saver:
        ids = await put_chain(saver, "shared", 2)

    def read_and_write() -> tuple[list[str], Any]:
        with RedisSaver.from_conn_string(redis.url, prefix=prefix) as sync_saver:
            sync_saver.setup()
            seen = [t.checkpoint["id"] for t in sync_saver.list(config("shared"))]
            sync_saver.delete_thread("shared")
            return seen, sync_saver.get_tuple(config("shared"))

    seen, after = await asyncio.to_thread(read_and_write)
    assert seen == ids[::-1]
    assert after is None


async def test_the_graph_behaves_the_same_on_redis_and_in_memory(
    client: aioredis.Redis,
) -> None:
    from graphs.manager import build_manager_graph

    results = []
    for checkpointer in (make_saver(client), InMemorySaver()):
        graph = build_manager_graph(provider=simulated_provider(), checkpointer=checkpointer)
        thread = config(f"same-{uuid.uuid4().hex[:6]}")
        await ask(graph, "Write a haiku about rivers", thread)
        state = await ask(graph, "Compare quicksort and mergesort", thread, max_plan_steps=2)
        history = [s async for s in graph.aget_state_history(thread)]
        results.append(
            (
                [(m.type, m.text) for m in state["messages"]],
                state["usage"]["total"],
                len(history),
            )
        )
    assert results[0] == results[1]


async def test_async_saver_serves_sync_callers_on_other_threads(client: aioredis.Redis) -> None:
    saver = make_saver(client)
    ids = await put_chain(saver, "bridge", 2)
    found = await asyncio.to_thread(saver.get_tuple, config("bridge"))
    assert found is not None and found.checkpoint["id"] == ids[-1]
    with pytest.raises(asyncio.InvalidStateError):
        saver.get_tuple(config("bridge"))  # on the saver's own loop: refused, not deadlocked


async def test_threads_can_be_encrypted_at_rest(redis: RedisServer) -> None:
    from memory.factory import open_memory
    from memory.settings import MemorySettings

    settings = MemorySettings(
        redis_url=redis.url,
        redis_prefix="secret",
        checkpoint_encryption_key="00112233445566778899aabbccddeeff",
    )
    async with open_memory(settings) as memory:
        from graphs.manager import build_manager_graph

        graph = build_manager_graph(provider=simulated_provider(), checkpointer=memory.checkpointer)
        state = await ask(graph, "Write a haiku about hidden rivers", config("vault"))
        assert state["messages"][0].text == "Write a haiku about hidden rivers"

    raw = aioredis.Redis.from_url(redis.url)
    stored = await raw.hgetall("secret:{vault}:blobs")
    await raw.aclose()
    assert stored
    assert not any(b"hidden rivers" in value for value in stored.values())
