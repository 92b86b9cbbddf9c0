"""ALMA answers LangGraph's store endpoints as `langgraph dev` does, each key in a store of its own.

Both servers run on one Redis; the official `langgraph-sdk` plays the same store calls
on each, and their answers are compared by value (timestamps by shape). Each test
writes under a namespace root of its own, since `langgraph dev` has one store for all.
"""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.guard.auth import new_key
from tests.utils.answers import status_of
from tests.utils.langgraph_dev import langgraph_dev
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service
from tests.utils.shapes import differences

pytestmark = pytest.mark.integration

ALICE, ALICE_ENTRY = new_key("alice")
BOB, BOB_ENTRY = new_key("bob")
CAROL, CAROL_ENTRY = new_key("carol.writer")
ERIN, ERIN_ENTRY = new_key("erin")
WRITES = 30
"""Each key's write budget (a put or a delete each): the other tests stay well under it."""
TIMES = ("created_at", "updated_at")


@pytest.fixture(scope="module")
def dev_url(redis: RedisServer) -> Iterator[str]:
    with langgraph_dev(redis.url, prefix="store-dev") as url:
        yield url


@pytest.fixture(scope="module")
def alma(redis: RedisServer) -> Iterator[Service]:
    env = {
        "ALMA_API_KEYS": f"{ALICE_ENTRY},{BOB_ENTRY},{CAROL_ENTRY},{ERIN_ENTRY}",
        "ALMA_LIMIT_WRITES": str(WRITES),
    }
    with alma_service(redis.url, prefix="store-alma", env=env) as service:
        yield service


@pytest.fixture
async def clients(alma: Service, dev_url: str) -> AsyncIterator[tuple[LangGraphClient, ...]]:
    """The official SDK pointed at ALMA as alice, at ALMA as bob, and at `langgraph dev`."""
    made = (
        get_client(url=alma.url, api_key=ALICE),
        get_client(url=alma.url, api_key=BOB),
        get_client(url=dev_url, api_key=None),
    )
    yield made
    for client in made:
        await client.aclose()


@pytest.fixture
def root() -> str:
    """A namespace root no other test writes under."""
    return f"t{uuid.uuid4().hex[:10]}"


async def namespaces(client: LangGraphClient, **conditions: Any) -> list[list[str]]:
    """The namespaces the client's listing finds."""
    found: list[list[str]] = (await client.store.list_namespaces(**conditions))["namespaces"]
    return found


def by_value(answer: Any) -> Any:
    """An answer with its timestamps taken out (they are compared by shape)."""
    if isinstance(answer, dict):
        return {key: by_value(value) for key, value in answer.items() if key not in TIMES}
    if isinstance(answer, list):
        return [by_value(value) for value in answer]
    return answer


async def play(client: LangGraphClient, root: str) -> dict[str, Any]:
    """Every store call, with and without its options, and what each answered."""
    store = client.store
    seen: dict[str, Any] = {}
    for user, age in (("u1", 30), ("u2", 41), ("u3", 25)):
        await store.put_item([root, "users", user], "profile", {"name": user, "age": age})
    await store.put_item([root, "prefs"], "u1", {"theme": "dark"}, index=False)
    await store.put_item([root, "docs", "d1", "v1"], "text", {"body": "hello", "age": 1})
    await store.put_item([root, "docs", "d2"], "text", {"body": "world", "age": 2})
    first = await store.get_item([root, "users", "u1"], "profile")
    await store.put_item([root, "users", "u1"], "profile", {"name": "u1", "age": 31})
    again = await store.get_item([root, "users", "u1"], "profile", refresh_ttl=True)
    assert first is not None and again is not None
    seen["get"] = again
    seen["update keeps created_at"] = again["created_at"] == first["created_at"]
    seen["update moves updated_at"] = again["updated_at"] >= first["updated_at"]
    seen["get missing key"] = await store.get_item([root, "users", "u1"], "missing")
    seen["search root"] = await store.search_items([root], limit=100)
    seen["search users"] = await store.search_items([root, "users"], limit=100)
    seen["search filter"] = await store.search_items([root, "users"], filter={"age": 41})
    seen["search operator"] = await store.search_items(
        [root, "users"], filter={"age": {"$gte": 30}}, limit=100
    )
    seen["search page"] = await store.search_items([root, "users"], limit=2, offset=1)
    seen["search past the end"] = await store.search_items([root], offset=50)
    seen["search query"] = await store.search_items([root, "docs"], query="hello", limit=100)
    seen["namespaces"] = await store.list_namespaces(prefix=[root])
    seen["namespaces depth 2"] = await store.list_namespaces(prefix=[root], max_depth=2)
    seen["namespaces suffix"] = await store.list_namespaces(prefix=[root], suffix=["u2"])
    seen["namespaces wildcard"] = await store.list_namespaces(prefix=[root, "*", "d1"])
    seen["namespaces page"] = await store.list_namespaces(prefix=[root], limit=2, offset=1)
    # Namespaces only this test has, found by suffix alone (the servers' others differ).
    await store.put_item([root, "tail", f"{root}end"], "k", {"n": 1})
    await store.put_item([f"{root}end"], "k", {"n": 2})
    seen["suffix alone"] = await store.list_namespaces(suffix=[f"{root}end"])
    seen["suffix wildcard"] = await store.list_namespaces(suffix=["*", f"{root}end"])
    seen["suffix wildcard cut"] = await store.list_namespaces(
        suffix=["*", "*", f"{root}end"], max_depth=1
    )
    await store.delete_item([root, "users", "u2"], "profile")
    await store.delete_item([root, "users", "u2"], "profile")  # gone already: still fine
    seen["get deleted"] = await store.get_item([root, "users", "u2"], "profile")
    seen["search after delete"] = await store.search_items([root, "users"], limit=100)
    return seen


async def refusals(client: LangGraphClient, root: str) -> dict[str, int]:
    """What each server answers to calls the store refuses."""
    http = client.http.client
    body = {"key": "k", "value": {}}
    return {
        "empty namespace": await status_of(client.store.put_item([], "k", {})),
        "root langgraph": await status_of(client.store.put_item(["langgraph"], "k", {})),
        "label with a period": (
            await http.put("/store/items", json={"namespace": ["a.b"], **body})
        ).status_code,
        "empty label": (
            await http.put("/store/items", json={"namespace": [""], **body})
        ).status_code,
        "value not an object": (
            await http.put("/store/items", json={"namespace": [root], "key": "k", "value": [1]})
        ).status_code,
        "get without a key": (
            await http.get("/store/items", params={"namespace": root})
        ).status_code,
        "get without a namespace": (
            await http.get("/store/items", params={"key": "k"})
        ).status_code,
        "unknown operator": await status_of(
            client.store.search_items([root], filter={"n": {"$near": 1}})
        ),
        "search bad label": (
            await http.post("/store/items/search", json={"namespace_prefix": ["x.y"]})
        ).status_code,
        "delete bad label": (
            await http.request("DELETE", "/store/items", json={"namespace": ["x."], "key": "k"})
        ).status_code,
    }


async def test_every_store_call_answers_as_langgraph_dev(
    clients: tuple[LangGraphClient, ...], root: str
) -> None:
    alice, _, dev = clients
    ours, theirs = await play(alice, root), await play(dev, root)
    assert by_value(ours) == by_value(theirs)
    assert differences(ours, theirs) == []
    assert ours["update moves updated_at"]
    assert ours["get missing key"] is None and ours["get deleted"] is None
    assert [item["key"] for item in ours["search filter"]["items"]] == ["profile"]
    assert ours["namespaces"]["namespaces"] == [
        [root, "docs", "d1", "v1"], [root, "docs", "d2"], [root, "prefs"],
        [root, "users", "u1"], [root, "users", "u2"], [root, "users", "u3"],
    ]  # fmt: skip
    assert ours["suffix wildcard"]["namespaces"] == [[root, "tail", f"{root}end"]]
    assert ours["suffix wildcard cut"]["namespaces"] == [[root]]


async def test_refusals_answer_as_langgraph_dev(
    clients: tuple[LangGraphClient, ...], root: str
) -> None:
    alice, _, dev = clients
    ours, theirs = await refusals(alice, root), await refusals(dev, root)
    assert ours == theirs
    assert ours["empty namespace"] == 400 and ours["label with a period"] == 422


async def test_an_item_with_a_ttl_is_stored_and_read_alike(
    clients: tuple[LangGraphClient, ...], root: str
) -> None:
    alice, _, dev = clients
    seen: list[list[Any]] = []
    for client in (alice, dev):
        await client.store.put_item([root, "short"], "k", {"n": 1}, ttl=60)
        got = await client.store.get_item([root, "short"], "k", refresh_ttl=True)
        found = await client.store.search_items([root], refresh_ttl=False)
        seen.append([got, found])
    assert by_value(seen[0]) == by_value(seen[1])
    assert differences(seen[0], seen[1]) == []
    assert seen[0][0] is not None and seen[0][0]["value"] == {"n": 1}


async def test_another_key_never_reaches_the_items(
    clients: tuple[LangGraphClient, ...], root: str
) -> None:
    alice, bob, _ = clients
    await alice.store.put_item([root, "secret"], "k", {"owner": "alice"})
    # Bob sees nothing of alice's, under her namespace or anywhere. (Listing comes first:
    # an in-memory store lists a namespace once a read has looked into it.)
    assert await namespaces(bob, prefix=[root]) == []
    assert await namespaces(bob, suffix=["secret"]) == []
    assert all(ns[0] != root for ns in await namespaces(bob, limit=1000))
    assert await bob.store.get_item([root, "secret"], "k") is None
    assert (await bob.store.search_items([root]))["items"] == []
    everything = (await bob.store.search_items([], limit=1000))["items"]
    assert all(item["namespace"][0] != root for item in everything)
    # Bob's item at the same place is his own; his delete leaves alice's.
    await bob.store.put_item([root, "secret"], "k", {"owner": "bob"})
    await bob.store.delete_item([root, "secret"], "k")
    await bob.store.delete_item([root, "secret"], "k")
    mine = await alice.store.get_item([root, "secret"], "k")
    assert mine is not None and mine["value"] == {"owner": "alice"}
    # Alice sees her namespace exactly as she wrote it: her owner label is hidden.
    assert mine["namespace"] == [root, "secret"]
    assert await namespaces(alice, prefix=[root]) == [[root, "secret"]]
    assert await namespaces(alice, prefix=[root], max_depth=1) == [[root]]
    found = (await alice.store.search_items([root]))["items"]
    assert [item["namespace"] for item in found] == [[root, "secret"]]


async def test_an_owner_with_a_period_in_the_name_has_a_store(alma: Service, root: str) -> None:
    carol = get_client(url=alma.url, api_key=CAROL)
    try:
        await carol.store.put_item([root], "k", {"n": 1})
        assert await namespaces(carol, prefix=[root]) == [[root]]
        item = await carol.store.get_item([root], "k")
        assert item is not None and item["namespace"] == [root]
    finally:
        await carol.aclose()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}}),
        ("GET", "/store/items?namespace=a&key=k", None),
        ("DELETE", "/store/items", {"namespace": ["a"], "key": "k"}),
        ("POST", "/store/items/search", {"namespace_prefix": ["a"]}),
        ("POST", "/store/namespaces", {}),
    ],
)
@pytest.mark.parametrize("key", [None, "alma_not-a-key"])
async def test_every_store_route_needs_a_key(
    alma: Service, method: str, path: str, body: dict[str, Any] | None, key: str | None
) -> None:
    headers = {"x-api-key": key} if key else {}
    async with httpx.AsyncClient(base_url=alma.url) as http:
        answer = await http.request(method, path, json=body, headers=headers)
    assert answer.status_code == 401


async def test_writes_count_against_the_keys_write_budget(alma: Service) -> None:
    """Puts and deletes spend the key's writes, as other writes do; reads spend none."""
    async with httpx.AsyncClient(base_url=alma.url, headers={"x-api-key": ERIN}) as http:
        where = {"namespace": ["budget"], "key": "k"}
        answers = [
            (await http.put("/store/items", json={**where, "value": {"n": n}})).status_code
            for n in range(WRITES + 1)
        ]
        delete = await http.request("DELETE", "/store/items", json=where)
        read = await http.get("/store/items", params={"namespace": "budget", "key": "k"})
    assert answers == [204] * WRITES + [429]
    assert delete.status_code == 429 and "retry-after" in delete.headers
    assert read.status_code == 200 and read.json()["value"] == {"n": WRITES - 1}
