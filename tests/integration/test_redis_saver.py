"""ALMA's Redis saver on a real redis-server: TTL, pruning, copying, run deletion, interop."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver

from memory.aio import AsyncRedisSaver
from memory.layout import as_text
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


async def test_every_key_of_a_thread_carries_the_ttl_and_checkpoints_restart_it(
    client: aioredis.Redis,
) -> None:
    saver = make_saver(client, ttl=60)
    [first] = await put_chain(saver, "t1", 1, run_id="run-1")
    await saver.aput_writes(config("t1", "", first), [("messages", "hi")], "task-1")
    keys = [*saver.thread_keys("t1").all, saver.run_key("run-1")]
    assert await client.exists(*keys) == len(keys)
    ttls = [await client.ttl(key) for key in keys]
    assert all(0 < ttl <= 60 for ttl in ttls), ttls

    await client.expire(saver.thread_keys("t1").index, 5)
    await put_chain(saver, "t1", 1)
    assert await client.ttl(saver.thread_keys("t1").index) > 5


async def test_writes_give_keys_they_create_a_ttl(client: aioredis.Redis) -> None:
    saver = make_saver(client, ttl=60)
    # Writes with no checkpoint written before them create the thread's keys.
    await saver.aput_writes(config("w", "", "some-id"), [("a", 1), ("b", 2)], "task-1")
    keys = saver.thread_keys("w").all
    assert await client.exists(*keys) == 2
    ttls = [await client.ttl(key) for key in keys]
    assert all(0 < ttl <= 60 for ttl in ttls), ttls


async def test_a_tasks_regular_writes_are_written_once_and_special_ones_replace(
    client: aioredis.Redis,
) -> None:
    saver = make_saver(client)
    [first] = await put_chain(saver, "once", 1)
    at = config("once", "", first)
    await saver.aput_writes(at, [("a", 1), ("b", 2)], "task-1")
    await saver.aput_writes(at, [("a", 10), ("b", 20)], "task-1")  # a retried task
    await saver.aput_writes(at, [("c", 3)], "task-2")
    await saver.aput_writes(at, [("c", 30)], "task-2")
    await saver.aput_writes(at, [("__error__", "first")], "task-3")
    await saver.aput_writes(at, [("__error__", "second")], "task-3")
    found = await saver.aget_tuple(at)
    assert found is not None
    assert sorted(found.pending_writes or []) == [
        ("task-1", "a", 1),
        ("task-1", "b", 2),
        ("task-2", "c", 3),
        ("task-3", "__error__", "second"),
    ]


async def test_a_thread_deleted_before_setup_moved_it_leaves_no_first_layout_keys(
    client: aioredis.Redis,
) -> None:
    saver = make_saver(client)
    legacy = saver.keys.legacy_checkpoints("old")
    await client.zadd(legacy[0], {"\x1fsome-id": 0})
    await client.hset(legacy[1], "\x1fsome-id", b"a first-layout record")
    assert await saver.aget_tuple(config("old")) is None
    [kept] = await put_chain(saver, "old", 1)
    assert [t.checkpoint["id"] async for t in saver.alist(config("old"))] == [kept]
    await saver.adelete_thread("old")
    assert await client.exists(*legacy, *saver.thread_keys("old").all) == 0


async def count_fields(client: aioredis.Redis, key: str, kind: str) -> int:
    prefix = f"{kind}\x1f"
    return len([name for name in await client.hkeys(key) if as_text(name).startswith(prefix)])


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
    assert await client.ttl(saver.thread_keys("forever").data) == -1


async def test_reading_refreshes_the_ttl_when_asked(client: aioredis.Redis) -> None:
    saver = make_saver(client, ttl=60, refresh_on_read=True)
    await put_chain(saver, "t", 1)
    await client.expire(saver.thread_keys("t").data, 5)
    await saver.aget_tuple(config("t"))
    assert await client.ttl(saver.thread_keys("t").data) > 5


async def test_prune_keeps_exactly_the_latest_n_per_namespace(client: aioredis.Redis) -> None:
    saver = make_saver(client)
    root = await put_chain(saver, "p", 10)
    child = await put_chain(saver, "p", 6, ns="child:1")
    await saver.aprune(["p"], keep=3)
    assert await listed(saver, "p", "") == root[-3:][::-1]
    assert await listed(saver, "p", "child:1") == child[-3:][::-1]
    # Blobs only the dropped checkpoints used are gone; the kept ones still load.
    assert await count_fields(client, saver.thread_keys("p").data, "b") == 6
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
    assert await count_fields(client, saver.thread_keys("a").data, "w") == 0
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
    stored = await raw.hgetall("secret:{vault}:checkpoints:v2")
    await raw.aclose()
    assert stored
    assert not any(b"hidden rivers" in value for value in stored.values())


def first_layout_fixture() -> Any:
    return json.loads((Path(__file__).parent / "data" / "first_layout_thread.json").read_text())


async def restore(client: aioredis.Redis, keys: dict[str, Any]) -> None:
    for key, stored in keys.items():
        value = stored["value"]
        if stored["type"] == "hash":
            await client.hset(
                key, mapping={bytes.fromhex(f): bytes.fromhex(v) for f, v in value.items()}
            )
        elif stored["type"] == "zset":
            await client.zadd(key, {bytes.fromhex(m): 0 for m in value})
        else:
            await client.sadd(key, *(bytes.fromhex(m) for m in value))
        await client.expire(key, 3600)


async def test_setup_moves_a_thread_of_the_first_layout_into_the_current_one(
    client: aioredis.Redis,
) -> None:
    """A conversation written by the first layout (tests/integration/data) survives the upgrade."""
    from graphs.manager import build_manager_graph

    fixture = first_layout_fixture()
    thread_id, prefix = fixture["thread_id"], fixture["prefix"]
    await restore(client, fixture["keys"])
    saver = AsyncRedisSaver(client, prefix=prefix, ttl=fixture["ttl"])
    await saver.asetup()

    graph = build_manager_graph(provider=simulated_provider(), checkpointer=saver)
    state = await graph.aget_state(config(thread_id))
    assert [[m.type, m.text] for m in state.values["messages"]] == fixture["messages"]
    listed = [
        [t.config["configurable"]["checkpoint_ns"], t.checkpoint["id"], len(t.pending_writes or [])]
        async for t in saver.alist({"configurable": {"thread_id": thread_id}})
    ]
    assert listed == fixture["checkpoints"]
    assert await client.exists(*fixture["keys"]) == 0  # the first layout's keys are gone
    ttls = [await client.ttl(key) for key in saver.thread_keys(thread_id).all]
    assert all(0 < ttl <= 3600 for ttl in ttls), ttls  # the thread's TTL carried over

    # The thread goes on, and its runs can still be rolled back.
    await saver.adelete_for_runs(["22222222-2222-4222-8222-222222222222"])
    state = await graph.aget_state(config(thread_id))
    assert [m.text for m in state.values["messages"]] == [m[1] for m in fixture["messages"][:2]]
    await ask(graph, "Write a haiku about rivers", config(thread_id))
    assert len((await graph.aget_state(config(thread_id))).values["messages"]) == 4

    late = saver.keys.legacy_checkpoints("late")[0]
    await client.zadd(late, {"\x1fsome-id": 0})
    await saver.asetup()  # once per prefix: a later setup scans nothing
    assert await client.exists(late) == 1


async def test_the_sync_savers_setup_moves_the_first_layout_too(
    client: aioredis.Redis, redis: RedisServer
) -> None:
    fixture = first_layout_fixture()
    prefix = f"sync-{uuid.uuid4().hex[:6]}"
    keys = {key.replace("old:", f"{prefix}:", 1): value for key, value in fixture["keys"].items()}
    await restore(client, keys)
    with RedisSaver.from_conn_string(redis.url, prefix=prefix) as saver:
        saver.setup()
        found = saver.list({"configurable": {"thread_id": fixture["thread_id"]}})
        listed = [t.checkpoint["id"] for t in found]
    assert listed == [checkpoint_id for _, checkpoint_id, _ in fixture["checkpoints"]]
    assert await client.exists(*keys) == 0


async def test_scripts_redis_has_lost_are_sent_again(client: aioredis.Redis) -> None:
    """After a restart Redis knows no scripts: EVALSHA fails and the source goes instead."""
    saver = make_saver(client)
    [first] = await put_chain(saver, "flushed", 1)
    await client.script_flush()
    await saver.aput_writes(config("flushed", "", first), [("a", 1)], "task-1")
    await client.script_flush()
    found = await saver.aget_tuple(config("flushed"))
    assert found is not None and found.checkpoint["id"] == first
    assert found.pending_writes == [("task-1", "a", 1)]
    await client.script_flush()
    [second] = await put_chain(saver, "flushed", 1)
    assert [t.checkpoint["id"] async for t in saver.alist(config("flushed"))] == [second, first]
