"""ALMA's LangGraph store on a real redis-server and a 3-master Cluster, against InMemoryStore.

The differential test runs the same operations on LangGraph's `InMemoryStore` and on
`RedisStore` and asks for the same answers. One difference is by design:
`InMemoryStore` keeps every namespace it ever saw, even emptied or only read, and lists
it; `RedisStore` lists namespaces that hold items. The reference forgets empty
namespaces after each operation to match.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore, GetOp, Item, MatchCondition, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from memory.connection import async_client
from memory.keys import RedisKeys
from memory.store import RedisStore
from tests.utils.redis_cluster import RedisCluster, redis_cluster
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with redis_cluster(tmp_path_factory.mktemp("store-cluster")) as started:
        yield started


@pytest.fixture(params=["server", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """Where to keep the store: one redis-server, or a 3-master Cluster."""
    if request.param == "cluster":
        started: RedisCluster = request.getfixturevalue("cluster")
        return started.url, True
    server: RedisServer = request.getfixturevalue("redis")
    return server.url, False


async def open_store(
    url: tuple[str, bool], **options: Any
) -> tuple[Redis | ClusterClient, RedisStore]:
    client = async_client(url[0], cluster=url[1])
    keys = RedisKeys(f"st-{uuid.uuid4().hex[:8]}")
    return client, RedisStore(client, keys=keys, **options)


@pytest.fixture
async def store(redis_url: tuple[str, bool]) -> AsyncIterator[RedisStore]:
    client, opened = await open_store(redis_url)
    yield opened
    await client.aclose()


# -- the differential test --------------------------------------------------------------------

labels = st.sampled_from(["a", "b", "c"])
# Few namespaces, so operations meet; listed out of name order, so the simplest scripts
# already create them out of order.
namespaces = st.sampled_from([("b",), ("a", "c"), ("a",), ("c", "b"), ("a", "b")])
prefixes = st.sampled_from([(), (), ("a",), ("b",), ("a", "b")])
item_keys = st.sampled_from(["k1", "k2", "k3"])
values = st.fixed_dictionaries(
    {"n": st.integers(0, 3)},
    optional={
        "s": st.sampled_from(["x", "y"]),
        "tags": st.lists(st.sampled_from(["p", "q"]), max_size=2),
        "nested": st.fixed_dictionaries({"x": st.integers(0, 2)}),
    },
)
filters = st.one_of(
    st.none(),
    st.builds(lambda n: {"n": n}, st.integers(0, 3)),
    st.builds(
        lambda op, n: {"n": {op: n}},
        st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
        st.integers(0, 3),
    ),
    st.builds(lambda s: {"s": {"$ne": s}}, st.sampled_from(["x", "y"])),
    st.builds(lambda s: {"s": {"$eq": s}}, st.sampled_from(["x", "y"])),
    st.builds(lambda x: {"nested": {"x": x}}, st.integers(0, 2)),
    st.builds(lambda t: {"tags": t}, st.lists(st.sampled_from(["p", "q"]), max_size=2)),
)
conditions = st.lists(
    st.builds(
        MatchCondition,
        match_type=st.sampled_from(["prefix", "suffix"]),
        path=st.lists(st.sampled_from(["a", "b", "c", "*"]), min_size=1, max_size=2).map(tuple),
    ),
    max_size=2,
)
puts = st.tuples(st.just("put"), namespaces, item_keys, values)
operations = st.one_of(
    puts,
    puts,
    puts,
    st.tuples(st.just("delete"), namespaces, item_keys),
    st.tuples(st.just("get"), namespaces, item_keys),
    st.tuples(st.just("search"), prefixes, filters, st.integers(1, 6), st.integers(0, 3)),
    st.tuples(
        st.just("list"),
        conditions,
        st.one_of(st.none(), st.integers(1, 3)),
        st.integers(1, 5),
        st.integers(0, 2),
    ),
    st.tuples(
        st.just("writes"),
        st.lists(st.tuples(namespaces, item_keys, st.one_of(st.none(), values)), max_size=4),
    ),
)


async def apply(store: BaseStore, operation: tuple[Any, ...]) -> Any:
    """Run one operation through the store's public API; what it answered."""
    kind, *args = operation
    if kind == "put":
        return await store.aput(*args)
    if kind == "delete":
        return await store.adelete(*args)
    if kind == "get":
        return await store.aget(*args)
    if kind == "search":
        prefix, filter, limit, offset = args
        return await store.asearch(prefix, filter=filter, limit=limit, offset=offset)
    if kind == "list":
        match, max_depth, limit, offset = args
        prefix = [c.path for c in match if c.match_type == "prefix"]
        suffix = [c.path for c in match if c.match_type == "suffix"]
        return await store.alist_namespaces(
            prefix=prefix[0] if prefix else None,
            suffix=suffix[0] if suffix else None,
            max_depth=max_depth,
            limit=limit,
            offset=offset,
        )
    return await store.abatch([PutOp(ns, key, value) for ns, key, value in args[0]])


def forget_empty_namespaces(reference: InMemoryStore) -> None:
    for namespace in [ns for ns, items in reference._data.items() if not items]:
        del reference._data[namespace]


def shape(answer: Any) -> Any:
    """An answer without its timestamps, which differ by a few microseconds."""
    if isinstance(answer, Item):
        return (answer.namespace, answer.key, answer.value)
    if isinstance(answer, list):
        return [shape(entry) for entry in answer]
    return answer


def timestamps_agree(expected: Any, found: Any) -> None:
    """Items' times relate as the reference's do: updates order the same way."""
    pairs = list(zip(expected, found, strict=True)) if isinstance(found, list) else []
    if isinstance(found, Item):
        pairs = [(expected, found)]
    for _, mine in pairs:
        if isinstance(mine, Item):
            assert mine.created_at <= mine.updated_at
    for (ref_a, a), (ref_b, b) in zip(pairs, pairs[1:], strict=False):
        if isinstance(a, Item) and isinstance(b, Item) and ref_a.updated_at < ref_b.updated_at:
            assert a.updated_at <= b.updated_at


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    script=st.tuples(
        st.lists(puts, min_size=3, max_size=12), st.lists(operations, min_size=5, max_size=30)
    ).map(lambda parts: parts[0] + parts[1])
)
async def test_answers_match_in_memory_store(
    redis_url: tuple[str, bool], script: list[tuple[Any, ...]]
) -> None:
    client, store = await open_store(redis_url)
    reference = InMemoryStore()
    try:
        for operation in script:
            expected = await apply(reference, operation)
            forget_empty_namespaces(reference)
            found = await apply(store, operation)
            assert shape(found) == shape(expected), operation
            timestamps_agree(expected, found)
    finally:
        await client.aclose()


# -- semantics -----------------------------------------------------------------------------


async def test_an_update_keeps_created_at_and_moves_updated_at(store: RedisStore) -> None:
    await store.aput(("users", "u1"), "prefs", {"theme": "dark"})
    first = await store.aget(("users", "u1"), "prefs")
    await store.aput(("users", "u1"), "prefs", {"theme": "light"})
    second = await store.aget(("users", "u1"), "prefs")
    assert first is not None and second is not None
    assert second.value == {"theme": "light"}
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at


async def test_reads_in_a_batch_see_the_state_before_its_writes(store: RedisStore) -> None:
    await store.aput(("docs",), "a", {"v": 1})
    answers = await store.abatch(
        [
            PutOp(("docs",), "a", {"v": 2}),
            GetOp(("docs",), "a"),
            PutOp(("docs",), "b", {"v": 3}),
            SearchOp(("docs",)),
            PutOp(("docs",), "a", None),
        ]
    )
    got, found = answers[1], answers[3]
    assert isinstance(got, Item) and got.value == {"v": 1}
    assert isinstance(found, list)
    assert [item.key for item in found if isinstance(item, Item)] == ["a"]
    assert await store.aget(("docs",), "a") is None
    assert [item.key for item in await store.asearch(("docs",))] == ["b"]


async def test_a_query_without_an_index_searches_as_without_a_query(store: RedisStore) -> None:
    await store.aput(("docs",), "a", {"text": "python"}, index=["text"])
    await store.aput(("docs",), "b", {"text": "rust"})
    found = await store.asearch(("docs",), query="python", limit=5)
    assert [(item.key, item.score) for item in found] == [("a", None), ("b", None)]


async def test_labels_with_braces_keep_a_namespace_in_one_slot(store: RedisStore) -> None:
    for namespace in [("}x",), ("{a}", "b"), ("{", "}")]:
        await store.aput(namespace, "k", {"ns": list(namespace)})
        item = await store.aget(namespace, "k")
        assert item is not None and item.value == {"ns": list(namespace)}
    assert await store.alist_namespaces() == [("{", "}"), ("{a}", "b"), ("}x",)]


async def test_the_sync_api_works_from_another_thread(store: RedisStore) -> None:
    def use() -> Any:
        store.put(("sync",), "k", {"v": 1})
        return store.get(("sync",), "k"), store.search(("sync",)), store.list_namespaces()

    got, found, listed = await asyncio.to_thread(use)
    assert got is not None and got.value == {"v": 1}
    assert [item.key for item in found] == ["k"]
    assert listed == [("sync",)]
    with pytest.raises(asyncio.InvalidStateError):
        store.get(("sync",), "k")


# -- TTL ----------------------------------------------------------------------------------


async def test_expired_items_leave_get_search_and_the_namespace_list(
    redis_url: tuple[str, bool],
) -> None:
    client, store = await open_store(redis_url)
    try:
        await store.aput(("short",), "gone", {"v": 1}, ttl=0.002)  # 120 ms
        await store.aput(("long",), "kept", {"v": 2})
        assert await store.alist_namespaces() == [("long",), ("short",)]
        item_key = store.keys.store_namespace("short").items + "gone"
        remaining = await client.pttl(item_key)
        assert 0 < remaining <= 120
        await asyncio.sleep(remaining / 1000 + 0.05)  # Redis expires it natively
        assert await store.aget(("short",), "gone") is None
        assert await store.asearch(("short",)) == []
        assert await store.alist_namespaces() == [("long",)]
        # The reads took the expired item out of the namespace's order and the index.
        assert await client.exists(store.keys.store_namespace("short").keys) == 0
        indexed = await client.zrange(store.keys.store_index, 0, -1)
        assert indexed == [b"long"]
    finally:
        await client.aclose()


async def test_reads_restart_the_ttl_unless_told_not_to(redis_url: tuple[str, bool]) -> None:
    client, store = await open_store(redis_url, ttl={"default_ttl": 10, "refresh_on_read": True})
    try:
        await store.aput(("t",), "k", {"v": 1})  # the default: 10 minutes
        item_key = store.keys.store_namespace("t").items + "k"
        assert 590_000 < await client.pttl(item_key) <= 600_000
        await client.pexpire(item_key, 5_000)
        await store.aget(("t",), "k", refresh_ttl=False)
        assert await client.pttl(item_key) <= 5_000
        await store.aget(("t",), "k")
        assert await client.pttl(item_key) > 590_000
        await client.pexpire(item_key, 5_000)
        await store.asearch(("t",))
        assert await client.pttl(item_key) > 590_000
        await store.aput(("t",), "k", {"v": 2}, ttl=None)
        assert await client.pttl(item_key) == -1  # kept forever now
    finally:
        await client.aclose()


# -- from a graph ------------------------------------------------------------------------


class Notes(TypedDict):
    user: str
    note: str
    seen: list[str]


async def remember(state: Notes, runtime: Runtime[None]) -> dict[str, Any]:
    """A node that keeps the user's note in the store and reads back all of them."""
    assert runtime.store is not None
    namespace = ("notes", state["user"])
    await runtime.store.aput(namespace, uuid.uuid4().hex, {"text": state["note"]})
    found = await runtime.store.asearch(namespace, limit=10)
    return {"seen": [item.value["text"] for item in found]}


async def test_a_graph_node_reaches_the_store_through_its_runtime(store: RedisStore) -> None:
    builder = StateGraph(Notes)
    builder.add_node("remember", remember)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", END)
    graph = builder.compile(store=store)
    await graph.ainvoke({"user": "u1", "note": "likes tea", "seen": []})
    result = await graph.ainvoke({"user": "u1", "note": "lives in Oslo", "seen": []})
    assert result["seen"] == ["likes tea", "lives in Oslo"]
    assert await store.alist_namespaces(prefix=("notes",)) == [("notes", "u1")]
