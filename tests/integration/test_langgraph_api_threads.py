"""ALMA answers LangGraph's thread, state and history endpoints as `langgraph dev` does.

Both servers run on one Redis; the official `langgraph-sdk` talks to each, and their
answers are compared by shape (`tests.utils.shapes`) and by content.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
import redis.asyncio as aioredis
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)
from langgraph_sdk.schema import Checkpoint

from server.guard.auth import new_key
from tests.utils.answers import as_json, each_as_json
from tests.utils.langgraph_dev import langgraph_dev
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service
from tests.utils.shapes import differences

pytestmark = pytest.mark.integration

ALICE, ALICE_ENTRY = new_key("alice")
BOB, BOB_ENTRY = new_key("bob")
ANALYTICAL = "Compare quicksort and mergesort for 10M integers"
CONTEXT: dict[str, Any] = {"router": "heuristic", "max_plan_steps": 2}
CHECKPOINT_METADATA = ("source", "step", "parents")
"""What ALMA's and dev's checkpoint metadata share; the rest describes each server's runs."""


@pytest.fixture(scope="module")
def dev_url(redis: RedisServer) -> Iterator[str]:
    with langgraph_dev(redis.url, prefix="lgapi-threads-dev") as url:
        yield url


@pytest.fixture(scope="module")
def alma(redis: RedisServer) -> Iterator[Service]:
    env = {"ALMA_API_KEYS": f"{ALICE_ENTRY},{BOB_ENTRY}"}
    with alma_service(redis.url, prefix="lgapi-threads-alma", env=env) as service:
        yield service


def clients_for(alma: Service, dev_url: str) -> tuple[LangGraphClient, LangGraphClient]:
    """The official SDK, pointed at ALMA (as alice) and at `langgraph dev`."""
    return get_client(url=alma.url, api_key=ALICE), get_client(url=dev_url, api_key=None)


@pytest.fixture
async def clients(
    alma: Service, dev_url: str
) -> AsyncIterator[tuple[LangGraphClient, LangGraphClient]]:
    ours, theirs = clients_for(alma, dev_url)
    yield ours, theirs
    await ours.aclose()
    await theirs.aclose()


async def finish_run(client: LangGraphClient, thread_id: str, text: str = ANALYTICAL) -> None:
    """Run the manager on the thread, to its end, through LangGraph's runs API."""
    question: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    await client.runs.wait(thread_id, "manager", input=question, context=CONTEXT)


async def thread_with_a_run(client: LangGraphClient, **metadata: Any) -> str:
    """A new thread (with `metadata`) that has answered the analytical question."""
    thread = await client.threads.create(metadata=metadata, graph_id="manager")
    await finish_run(client, thread["thread_id"])
    return str(thread["thread_id"])


@dataclass(frozen=True)
class Finished:
    """One thread per server that has answered the analytical question; read only."""

    alma: str
    dev: str


@pytest.fixture(scope="module")
def finished(alma: Service, dev_url: str) -> Finished:
    async def fill() -> Finished:
        ours, theirs = clients_for(alma, dev_url)
        try:
            found = await asyncio.gather(
                thread_with_a_run(ours, probe="finished"),
                thread_with_a_run(theirs, probe="finished"),
            )
        finally:
            await ours.aclose()
            await theirs.aclose()
        return Finished(*found)

    return asyncio.run(fill())


def base_url(client: LangGraphClient) -> str:
    return str(client.http.client.base_url)


def same_shape(ours: Any, theirs: Any) -> None:
    assert differences(ours, theirs) == []


def comparable(state: Any) -> Any:
    """A ThreadState (or a list of them) as both servers would write it.

    Only the checkpoint metadata both write is kept: each adds what describes its runs
    (`langgraph_*`, ALMA's `owner`, ...).
    """
    if isinstance(state, list):
        return [comparable(item) for item in state]
    state = dict(state)
    for name in ("checkpoint", "parent_checkpoint"):
        if state.get(name) and "checkpoint_map" in state[name]:
            # Keyed by namespace, which ends in a task id of each server's own.
            found = state[name]["checkpoint_map"]
            state[name] = {
                **state[name],
                "checkpoint_map": {k.split(":")[0]: v for k, v in found.items()},
            }
    if state.get("metadata") is not None:
        state["metadata"] = {k: state["metadata"][k] for k in CHECKPOINT_METADATA}
    state["tasks"] = [
        {**task, "state": comparable(task["state"]) if task["state"] else None}
        for task in state["tasks"]
    ]
    return state


def texts(state: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(m["type"], m["content"]) for m in state["values"]["messages"]]


def steps(history: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, list[str], list[str]]]:
    """Each checkpoint's step, source, next nodes and task names, newest first."""
    return [
        (s["metadata"]["step"], s["metadata"]["source"], s["next"], [t["name"] for t in s["tasks"]])
        for s in history
    ]


# -- threads -------------------------------------------------------------------------------


async def test_a_new_thread_and_its_empty_state_are_dev_s(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    ours, theirs = clients
    made = await ours.threads.create(metadata={"n": 1}, graph_id="manager")
    expected = await theirs.threads.create(metadata={"n": 1}, graph_id="manager")
    same_shape(made, expected)
    for thread in (as_json(made), as_json(expected)):
        assert thread["metadata"] == {"n": 1, "graph_id": "manager"}
        assert (thread["status"], thread["values"], thread["config"]) == ("idle", None, {})
        assert thread["created_at"] == thread["updated_at"] == thread["state_updated_at"]
    assert uuid.UUID(made["thread_id"]).version == 4

    read = await ours.threads.get(made["thread_id"])
    same_shape(read, await theirs.threads.get(expected["thread_id"]))
    assert read == made

    state = await ours.threads.get_state(made["thread_id"])
    assert state == await theirs.threads.get_state(expected["thread_id"])
    assert state["values"] == {} and state["checkpoint"] is None
    assert await ours.threads.get_history(made["thread_id"]) == []
    assert await theirs.threads.get_history(expected["thread_id"]) == []

    for client in (ours, theirs):
        with pytest.raises(NotFoundError):
            await client.threads.get(str(uuid.uuid4()))
        with pytest.raises(NotFoundError):
            await client.threads.get_state(str(uuid.uuid4()))


async def test_an_existing_id_conflicts_or_returns_the_thread_unchanged(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    for client in clients:
        thread_id = str(uuid.uuid4())
        first = await client.threads.create(thread_id=thread_id, metadata={"n": 1})
        with pytest.raises(ConflictError):
            await client.threads.create(thread_id=thread_id, metadata={"n": 2})
        again = await client.threads.create(
            thread_id=thread_id, metadata={"n": 3}, if_exists="do_nothing"
        )
        assert again == first
    # ALMA also takes the ids its own protocol does; `langgraph dev` only uuids.
    ours, theirs = clients
    named = f"alma.thread:{uuid.uuid4().hex[:8]}"
    assert (await ours.threads.create(thread_id=named))["thread_id"] == named
    with pytest.raises(UnprocessableEntityError):
        await theirs.threads.create(thread_id=named)


async def test_update_merges_metadata_and_may_answer_nothing(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    answers = []
    for client in clients:
        thread = await client.threads.create(metadata={"n": 1, "keep": "yes"})
        await asyncio.sleep(0.002)  # so that a new `updated_at` differs from the old
        updated = await client.threads.update(
            thread["thread_id"], metadata={"n": None, "extra": "x"}
        )
        assert updated["metadata"] == {"n": None, "keep": "yes", "extra": "x"}
        assert updated["updated_at"] > thread["updated_at"]
        assert as_json(updated)["state_updated_at"] == as_json(thread)["state_updated_at"]
        # The SDK types a minimal update's answer as None: this checks that it is.
        nothing = await client.threads.update(  # type: ignore[func-returns-value]
            thread["thread_id"], metadata={"m": 1}, return_minimal=True
        )
        assert nothing is None
        read = await client.threads.get(thread["thread_id"])
        assert read["metadata"] == {"n": None, "keep": "yes", "extra": "x", "m": 1}
        answers.append(updated)
    same_shape(*answers)


async def test_delete_removes_the_thread_and_its_state(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    for client in clients:
        thread_id = await thread_with_a_run(client)
        await client.threads.delete(thread_id)
        for read in (client.threads.get, client.threads.get_state, client.threads.get_history):
            with pytest.raises(NotFoundError):
                await read(thread_id)
        with pytest.raises(NotFoundError):
            await client.threads.delete(thread_id)


async def test_deleting_a_thread_under_a_run_leaves_no_key_behind(
    clients: tuple[LangGraphClient, LangGraphClient], redis: RedisServer
) -> None:
    ours, _ = clients
    thread_id = await thread_with_a_run(ours)
    pattern = f"lgapi-threads-alma:{{{thread_id}}}:*"
    connection = aioredis.Redis.from_url(redis.url)
    try:
        keys = await connection.keys(pattern)
        assert f"lgapi-threads-alma:{{{thread_id}}}:thread".encode() in keys
        assert all([await connection.ttl(key) > 0 for key in keys])  # every key expires
        question: dict[str, Any] = {
            "messages": [{"role": "user", "content": "Write a story about a ship"}]
        }
        await ours.runs.create(thread_id, "manager", input=question, context=CONTEXT)
        await ours.threads.delete(thread_id)
        # Checkpoints, event log, run records, record, owner: all gone, and nothing the
        # stopped run wrote as it ended came back.
        assert await connection.keys(pattern) == []
    finally:
        await connection.aclose()
    with pytest.raises(NotFoundError):
        await ours.threads.get(thread_id)


async def search_page(url: str, key: str | None, body: dict[str, Any]) -> httpx.Response:
    headers = {"x-api-key": key} if key else {}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        response = await client.post("/threads/search", json=body)
    assert response.status_code == 200, response.text
    return response


async def test_search_filters_sorts_and_pages_like_dev(
    clients: tuple[LangGraphClient, LangGraphClient], alma: Service, dev_url: str
) -> None:
    tag = uuid.uuid4().hex
    made: dict[int, list[str]] = {}
    for index, client in enumerate(clients):
        ids = []
        for n in range(3):
            thread = await client.threads.create(metadata={"tag": tag, "n": n})
            ids.append(thread["thread_id"])
        # Updating the oldest makes it the most recently updated.
        await client.threads.update(ids[0], metadata={"touched": True})
        made[index] = ids
    ours, theirs = clients
    for index, client in enumerate(clients):
        ids = made[index]
        mine = {"tag": tag}
        found = await client.threads.search(metadata=mine)
        assert [t["thread_id"] for t in found] == [ids[0], ids[2], ids[1]]  # updated_at desc
        oldest_first = await client.threads.search(
            metadata=mine, sort_by="created_at", sort_order="asc"
        )
        assert [t["thread_id"] for t in oldest_first] == ids
        by_id = await client.threads.search(metadata=mine, sort_by="thread_id")
        assert [t["thread_id"] for t in by_id] == sorted(ids, reverse=True)
        only = await client.threads.search(metadata={"tag": tag, "n": 1})
        assert [t["thread_id"] for t in only] == [ids[1]]
        chosen = await client.threads.search(metadata=mine, ids=ids[1:])
        assert {t["thread_id"] for t in chosen} == set(ids[1:])
        assert len(await client.threads.search(metadata=mine, status="idle")) == 3
        assert await client.threads.search(metadata=mine, status="busy") == []
        picked = await client.threads.search(metadata=mine, select=["thread_id", "metadata"])
        assert all(set(t) == {"thread_id", "metadata"} for t in picked)
        assert await client.threads.count(metadata=mine) == 3
        assert await client.threads.count(metadata={"tag": tag}, status="interrupted") == 0
    same_shape(
        await ours.threads.search(metadata={"tag": tag}),
        await theirs.threads.search(metadata={"tag": tag}),
    )

    # Pages: the next offset when there is more. ALMA's total is the real count;
    # `langgraph dev`'s is offset + limit + 1 while there is more.
    page: dict[str, Any] = {"metadata": {"tag": tag}, "limit": 2}
    first = await search_page(alma.url, ALICE, page)
    assert first.headers["x-pagination-next"] == "2"
    assert first.headers["x-pagination-total"] == "3"
    assert (await search_page(dev_url, None, page)).headers["x-pagination-next"] == "2"
    last = await search_page(alma.url, ALICE, {**page, "offset": 2})
    assert [t["thread_id"] for t in last.json()] == [made[0][1]]
    assert "x-pagination-next" not in last.headers
    assert last.headers["x-pagination-total"] == "3"


async def test_search_by_state_values(
    clients: tuple[LangGraphClient, LangGraphClient], finished: Finished
) -> None:
    ours, _ = clients
    # `langgraph dev` answers 500 here whenever a thread has no values yet.
    analytical = await ours.threads.search(values={"decision": {"route": "analytical"}})
    assert finished.alma in {t["thread_id"] for t in analytical}
    creative = await ours.threads.search(values={"decision": {"route": "creative"}})
    assert finished.alma not in {t["thread_id"] for t in creative}
    assert await ours.threads.count(values={"decision": {"route": "analytical"}}) >= 1


# -- state and history ----------------------------------------------------------------------


async def test_a_finished_thread_and_its_state_are_dev_s(
    clients: tuple[LangGraphClient, LangGraphClient], finished: Finished
) -> None:
    ours, theirs = clients
    thread = as_json(await ours.threads.get(finished.alma))
    expected = as_json(await theirs.threads.get(finished.dev))
    # Metadata set by each server's runs (graph_id, assistant_id) is the runs' business.
    same_shape({**thread, "metadata": {}}, {**expected, "metadata": {}})
    assert thread["status"] == expected["status"] == "idle"
    assert thread["config"] == expected["config"] == {"configurable": {}}
    assert thread["values"] is not None and expected["values"] is not None
    assert texts(thread) == texts(expected)
    assert {"probe": "finished", "graph_id": "manager"}.items() <= thread["metadata"].items()

    state = as_json(await ours.threads.get_state(finished.alma))
    dev_state = as_json(await theirs.threads.get_state(finished.dev))
    same_shape(comparable(state), comparable(dev_state))
    assert [m for m, _ in texts(state)] == ["human", "ai"]
    assert texts(state) == texts(dev_state)
    assert state["values"]["decision"] == dev_state["values"]["decision"]
    assert state["values"]["usage"] == dev_state["values"]["usage"]
    assert (state["next"], state["tasks"]) == ([], [])
    assert state["checkpoint"] == {
        "checkpoint_id": state["checkpoint_id"],
        "thread_id": finished.alma,
        "checkpoint_ns": "",
    }
    assert state["parent_checkpoint"]["checkpoint_id"] == state["parent_checkpoint_id"]
    assert comparable(state)["metadata"] == comparable(dev_state)["metadata"]
    # With no task pending, subgraphs add nothing.
    assert await ours.threads.get_state(finished.alma, subgraphs=True) == state


async def test_the_history_of_a_finished_run_is_dev_s(
    clients: tuple[LangGraphClient, LangGraphClient], finished: Finished
) -> None:
    ours, theirs = clients
    history = each_as_json(await ours.threads.get_history(finished.alma))
    dev_history = each_as_json(await theirs.threads.get_history(finished.dev))
    same_shape(comparable(history), comparable(dev_history))
    assert (
        steps(history)
        == steps(dev_history)
        == [
            (4, "loop", [], []),
            (3, "loop", ["analytical"], ["analytical"]),
            (2, "loop", ["route"], ["route"]),
            (1, "loop", ["remember"], ["remember"]),
            (0, "loop", ["recall"], ["recall"]),
            (-1, "input", ["__start__"], ["__start__"]),
        ]
    )
    # Each entry's parent is the next one down.
    for child, parent in zip(history, history[1:], strict=False):
        assert child["parent_checkpoint_id"] == parent["checkpoint_id"]
    [start] = history[-1]["tasks"]
    assert start["result"] == {"messages": [{"role": "user", "content": ANALYTICAL}]}
    [analytical] = history[1]["tasks"]
    assert analytical["checkpoint"]["checkpoint_ns"].startswith("analytical:")
    assert texts({"values": analytical["result"]}) == texts(history[0])

    for client, thread_id, full in ((ours, finished.alma, history),
                                    (theirs, finished.dev, dev_history)):  # fmt: skip
        assert await client.threads.get_history(thread_id, limit=2) == full[:2]
        # `before` as the SDK sends a Checkpoint: the entries strictly older.
        older = await client.threads.get_history(thread_id, before=full[1]["checkpoint"])
        assert older == full[2:]
        [entry] = await client.threads.get_history(thread_id, metadata={"source": "input"})
        assert entry == full[-1]
        [entry] = await client.threads.get_history(thread_id, metadata={"step": 3})
        assert entry == full[1]
        assert await client.threads.get_history(
            thread_id, checkpoint=cast(Checkpoint, {"checkpoint_ns": "analytical"})
        ) == []  # fmt: skip
    # An id as `before`: ALMA takes it; `langgraph dev`'s schema wants an object.
    by_id = await ours.threads.get_history(finished.alma, before=history[1]["checkpoint_id"])
    assert by_id == history[2:]

    cases = [(ours, ALICE, finished.alma, history), (theirs, None, finished.dev, dev_history)]
    for sdk, key, thread_id, full in cases:
        headers = {"x-api-key": key} if key else {}
        async with httpx.AsyncClient(base_url=base_url(sdk), headers=headers) as http:
            got = await http.get(
                f"/threads/{thread_id}/history",
                params={"limit": 2, "before": full[0]["checkpoint_id"]},
            )
        assert got.status_code == 200
        assert got.json() == full[1:3]


async def test_state_at_a_checkpoint_with_and_without_subgraphs(
    clients: tuple[LangGraphClient, LangGraphClient], finished: Finished
) -> None:
    ours, theirs = clients
    answers = []
    for client, thread_id in ((ours, finished.alma), (theirs, finished.dev)):
        history = each_as_json(await client.threads.get_history(thread_id))
        at = history[1]
        by_id = as_json(
            await client.threads.get_state(thread_id, checkpoint_id=at["checkpoint_id"])
        )
        by_checkpoint = as_json(
            await client.threads.get_state(thread_id, checkpoint=at["checkpoint"])
        )
        assert by_id == by_checkpoint == at
        expanded = as_json(
            await client.threads.get_state(thread_id, checkpoint=at["checkpoint"], subgraphs=True)
        )
        [task] = expanded["tasks"]
        # The pending subgraph's own state, in place of its checkpoint configuration.
        assert task["checkpoint"] is None
        assert (
            task["state"]["checkpoint"]["checkpoint_ns"]
            == at["tasks"][0]["checkpoint"]["checkpoint_ns"]
        )
        answers.append((by_id, expanded))
    (ours_at, ours_expanded), (dev_at, dev_expanded) = answers
    same_shape(comparable(ours_at), comparable(dev_at))
    same_shape(comparable(ours_expanded), comparable(dev_expanded))


async def test_state_updates_go_through_reducers_and_fork(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    answers: list[tuple[Any, ...]] = []
    for client in clients:
        thread_id = await thread_with_a_run(client)
        before = as_json(await client.threads.get_state(thread_id))
        note = {"type": "human", "content": "extra note", "id": "note-1"}
        written = as_json(await client.threads.update_state(thread_id, {"messages": [note]}))
        assert set(written) == {"checkpoint", "configurable", "checkpoint_id"}
        assert written["checkpoint"]["checkpoint_id"] == written["checkpoint_id"]
        after = as_json(await client.threads.get_state(thread_id))
        assert after["checkpoint_id"] == written["checkpoint_id"]
        assert texts(after) == [*texts(before), ("human", "extra note")]
        assert after["metadata"]["source"] == "update"
        assert after["parent_checkpoint_id"] == before["checkpoint_id"]

        with pytest.raises(BadRequestError) as unknown:
            await client.threads.update_state(thread_id, {"error": None}, as_node="nope")
        assert "Node nope does not exist" in unknown.value.response.text

        # As the router: the next step is the route it names, and the thread waits on it.
        decision = {**before["values"]["decision"], "route": "creative"}
        await client.threads.update_state(thread_id, {"decision": decision}, as_node="route")
        routed = await client.threads.get_state(thread_id)
        assert routed["next"] == ["creative"]
        thread = await client.threads.get(thread_id)
        assert thread["status"] == "interrupted"
        waiting = await client.threads.search(status="interrupted", limit=100)
        assert thread_id in {t["thread_id"] for t in waiting}

        # From an old checkpoint: a fork, and the thread's head.
        history = each_as_json(await client.threads.get_history(thread_id, limit=100))
        origin = history[-2]  # step 0, before the route
        forked = as_json(
            await client.threads.update_state(
                thread_id, {"error": None}, checkpoint_id=origin["checkpoint_id"]
            )
        )
        head = as_json(await client.threads.get_state(thread_id))
        assert head["checkpoint_id"] == forked["checkpoint_id"]
        assert head["parent_checkpoint_id"] == origin["checkpoint_id"]
        assert texts(head) == texts(origin)
        # Metadata set by each server's runs (graph_id, assistant_id) is the runs' business.
        answers.append((written, comparable(after), {**thread, "metadata": {}}, comparable(head)))
    for ours, theirs in zip(*answers, strict=True):
        same_shape(ours, theirs)


async def test_a_copy_has_the_whole_history(
    clients: tuple[LangGraphClient, LangGraphClient], finished: Finished
) -> None:
    ours, theirs = clients
    copies = []
    for client, thread_id, key in ((ours, finished.alma, ALICE), (theirs, finished.dev, None)):
        headers = {"x-api-key": key} if key else {}
        async with httpx.AsyncClient(base_url=base_url(client), headers=headers) as http:
            answer = await http.post(f"/threads/{thread_id}/copy")
        assert answer.status_code == 200, answer.text
        copy = answer.json()
        assert copy["thread_id"] != thread_id
        assert copy["metadata"] == (await client.threads.get(thread_id))["metadata"]
        original = each_as_json(await client.threads.get_history(thread_id))
        copied = each_as_json(await client.threads.get_history(copy["thread_id"]))
        assert steps(copied) == steps(original)
        assert [s["checkpoint_id"] for s in copied] == [s["checkpoint_id"] for s in original]
        assert all(s["checkpoint"]["thread_id"] == copy["thread_id"] for s in copied)
        assert texts(copied[0]) == texts(original[0])
        copies.append(copy)
    # `langgraph dev` leaves `values` out of its answer; ALMA fills it in.
    same_shape({**copies[0], "values": None, "metadata": {}}, {**copies[1], "metadata": {}})


# -- ownership ------------------------------------------------------------------------------


async def test_another_key_s_thread_is_not_found(alma: Service, finished: Finished) -> None:
    bob = get_client(url=alma.url, api_key=BOB)
    alice = get_client(url=alma.url, api_key=ALICE)
    thread_id = finished.alma
    try:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: bob.threads.get(thread_id),
            lambda: bob.threads.update(thread_id, metadata={"mine": True}),
            lambda: bob.threads.get_state(thread_id),
            lambda: bob.threads.get_state(thread_id, checkpoint_id="1"),
            lambda: bob.threads.get_history(thread_id),
            lambda: bob.threads.update_state(thread_id, {"error": None}),
            lambda: bob.threads.copy(thread_id),
            lambda: bob.threads.delete(thread_id),
        ]
        for call in calls:
            with pytest.raises(NotFoundError):
                await call()
        with pytest.raises(ConflictError):
            await bob.threads.create(thread_id=thread_id)
        assert thread_id not in {t["thread_id"] for t in await bob.threads.search(limit=1000)}
        assert thread_id in {t["thread_id"] for t in await alice.threads.search(limit=1000)}
        # Untouched by all of that.
        thread = as_json(await alice.threads.get(thread_id))
        assert "mine" not in thread["metadata"] and thread["values"] is not None
    finally:
        await bob.aclose()
        await alice.aclose()
