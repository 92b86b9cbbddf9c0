"""Batch runs, bulk cancel and thread prune, through the Python SDK, beside `langgraph dev`.

Both servers serve the same graph on the same simulated model: each scenario is played
on both and must end the same (statuses, counts, status codes). Then what ALMA adds:
owners (another owner's runs and threads are as missing ones) and `keep_latest`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.guard.auth import new_key
from tests.utils.answers import status_of
from tests.utils.redis_server import RedisServer
from tests.utils.service import alma_service
from tests.utils.shapes import differences
from tests.utils.side_by_side import Pair, alma_beside_dev

pytestmark = pytest.mark.integration

HAIKU: dict[str, Any] = {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]}
ANALYTICAL: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Compare quicksort and mergesort"}]
}
LONG_ANALYSIS: dict[str, Any] = {"router": "heuristic", "max_plan_steps": 8}
PACE = {"ALMA_SIMULATED_TOKENS_PER_SECOND": "100"}
"""Runs of seconds, so that a cancel meets a running run even on a busy machine."""


@pytest.fixture(scope="module")
def servers(redis: RedisServer) -> Iterator[Pair]:
    with alma_beside_dev(redis.url, "bulk", env=PACE) as pair:
        yield pair


async def on_both(servers: Pair, scenario: Any) -> tuple[Any, Any]:
    """`scenario(client)` on ALMA and on `langgraph dev`, at once."""
    alma, dev = servers.clients()
    ours, theirs = await asyncio.gather(scenario(alma), scenario(dev))
    return ours, theirs


async def _batch(client: LangGraphClient) -> dict[str, Any]:
    # The SDK's `RunCreate` names every field; a request sends only those it needs.
    batch: list[Any] = [
        {"assistant_id": "manager", "input": HAIKU},
        # Kept, so that joining it after it ended still finds its thread.
        {"assistant_id": "manager", "input": HAIKU, "metadata": {"n": 2}, "on_completion": "keep"},
    ]
    runs = await client.runs.create_batch(batch)
    await client.runs.join(runs[1]["thread_id"], runs[1]["run_id"])
    kept = await client.runs.get(runs[1]["thread_id"], runs[1]["run_id"])
    empty = await status_of(client.http.post("/runs/batch", json=[]))
    unknown_mode: list[Any] = [{"assistant_id": "manager", "input": HAIKU, "stream_mode": 7}]
    bad = await status_of(client.runs.create_batch(unknown_mode))
    return {
        "raw": runs,
        "facts": {
            "count": len(runs),
            "statuses": [run["status"] for run in runs],
            "distinct_threads": len({run["thread_id"] for run in runs}),
            "metadata_n": (runs[1]["metadata"] or {}).get("n"),
            "kept": kept["status"],
            "empty": empty,
            "bad": bad,
        },
    }


async def test_a_batch_creates_stateless_runs_alike(servers: Pair) -> None:
    ours, theirs = await on_both(servers, _batch)
    assert ours["facts"] == theirs["facts"] == {
        "count": 2, "statuses": ["pending", "pending"], "distinct_threads": 2,
        "metadata_n": 2, "kept": "success", "empty": 422, "bad": 422,
    }  # fmt: skip
    assert differences(ours["raw"], theirs["raw"]) == []


async def _cancel_by_ids(client: LangGraphClient) -> dict[str, Any]:
    thread_id = (await client.threads.create())["thread_id"]
    first = await client.runs.create(thread_id, "manager", input=ANALYTICAL, context=LONG_ANALYSIS)
    queued = await client.runs.create(
        thread_id, "manager", input=HAIKU, multitask_strategy="enqueue"
    )
    await client.runs.cancel_many(thread_id=thread_id, run_ids=[first["run_id"], queued["run_id"]])
    for run in (first, queued):
        await client.runs.join(thread_id, run["run_id"])
    statuses = {
        name: (await client.runs.get(thread_id, run["run_id"]))["status"]
        for name, run in (("first", first), ("queued", queued))
    }
    again = await status_of(client.runs.cancel_many(thread_id=thread_id, run_ids=[first["run_id"]]))
    unknown = await status_of(
        client.runs.cancel_many(thread_id=thread_id, run_ids=[str(uuid.uuid4())])
    )
    return {"statuses": statuses, "again": again, "unknown": unknown}


async def test_bulk_cancel_by_thread_and_run_ids_ends_the_same(servers: Pair) -> None:
    ours, theirs = await on_both(servers, _cancel_by_ids)
    assert (
        ours
        == theirs
        == {
            "statuses": {"first": "interrupted", "queued": "interrupted"},
            "again": 404,
            "unknown": 404,
        }
    )


async def _cancel_by_status(client: LangGraphClient) -> dict[str, Any]:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "manager", input=ANALYTICAL, context=LONG_ANALYSIS)
    # Running, not merely created: `running` is what is cancelled.
    while (await client.runs.get(thread_id, run["run_id"]))["status"] != "running":
        await asyncio.sleep(0.02)
    await client.runs.cancel_many(status="running")
    await client.runs.join(thread_id, run["run_id"])
    ended = (await client.runs.get(thread_id, run["run_id"]))["status"]
    nothing_left = await status_of(client.runs.cancel_many(status="all"))
    both_ways = await status_of(
        client.http.post("/runs/cancel", json={"status": "all", "thread_id": thread_id,
                                               "run_ids": [run["run_id"]]})
    )  # fmt: skip
    half = await status_of(client.http.post("/runs/cancel", json={"thread_id": thread_id}))
    return {"ended": ended, "nothing_left": nothing_left, "both_ways": both_ways, "half": half}


async def test_bulk_cancel_by_status_ends_the_same(servers: Pair) -> None:
    ours, theirs = await on_both(servers, _cancel_by_status)
    assert ours == theirs == {
        "ended": "interrupted", "nothing_left": 404, "both_ways": 422, "half": 422,
    }  # fmt: skip


async def _prune(client: LangGraphClient) -> dict[str, Any]:
    kept = (await client.threads.create())["thread_id"]
    pruned = []
    for _ in range(2):
        thread_id = (await client.threads.create())["thread_id"]
        await client.runs.wait(thread_id, "manager", input=HAIKU)
        pruned.append(thread_id)
    result = await client.threads.prune([*pruned, str(uuid.uuid4())])
    gone = [await status_of(client.threads.get(thread_id)) for thread_id in pruned]
    nothing = await client.threads.prune([])
    return {
        "raw": result,
        "facts": {
            "result": result, "gone": gone, "nothing": nothing,
            "kept": await status_of(client.threads.get(kept)),
            "bad_strategy": await status_of(
                client.http.post("/threads/prune", json={"thread_ids": [kept], "strategy": "x"})
            ),
        },
    }  # fmt: skip


async def test_prune_deletes_threads_alike(servers: Pair) -> None:
    ours, theirs = await on_both(servers, _prune)
    assert ours["facts"] == theirs["facts"] == {
        "result": {"pruned_count": 2}, "gone": [404, 404], "nothing": {"pruned_count": 0},
        "kept": 200, "bad_strategy": 422,
    }  # fmt: skip


async def test_keep_latest_keeps_a_thread_and_its_state_but_not_its_history(
    servers: Pair,
) -> None:
    client = get_client(url=servers.alma)
    thread_id = (await client.threads.create())["thread_id"]
    for _ in range(2):
        await client.runs.wait(thread_id, "manager", input=HAIKU)
    before = await client.threads.get_state(thread_id)
    assert len(await client.threads.get_history(thread_id, limit=100)) > 1
    assert await client.threads.prune([thread_id], strategy="keep_latest") == {"pruned_count": 1}
    after = await client.threads.get_state(thread_id)
    assert after["values"] == before["values"]
    assert after["checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]
    assert len(await client.threads.get_history(thread_id, limit=100)) == 1
    # `langgraph dev` (its in-memory runtime) does not offer the strategy.
    dev = get_client(url=servers.dev)
    dev_thread = (await dev.threads.create())["thread_id"]
    assert await status_of(dev.threads.prune([dev_thread], strategy="keep_latest")) == 422


@pytest.fixture(scope="module")
def guarded(redis: RedisServer) -> Iterator[tuple[str, str, str]]:
    alice, alice_entry = new_key("alice")
    bob, bob_entry = new_key("bob")
    env = {**PACE, "ALMA_API_KEYS": f"{alice_entry},{bob_entry}"}
    with alma_service(redis.url, prefix=f"bulkkeys-{uuid.uuid4().hex[:6]}", env=env) as alma:
        yield alma.url, alice, bob


async def test_bulk_routes_touch_only_the_callers_own(guarded: tuple[str, str, str]) -> None:
    url, alice_key, bob_key = guarded
    alice = get_client(url=url, api_key=alice_key)
    bob = get_client(url=url, api_key=bob_key)
    assert await status_of(get_client(url=url, api_key=None).threads.prune([])) == 401
    thread_id = (await alice.threads.create())["thread_id"]
    run = await alice.runs.create(thread_id, "manager", input=ANALYTICAL, context=LONG_ANALYSIS)
    while (await alice.runs.get(thread_id, run["run_id"]))["status"] != "running":
        await asyncio.sleep(0.02)
    # Alice's thread and run do not exist for Bob.
    by_ids = bob.runs.cancel_many(thread_id=thread_id, run_ids=[run["run_id"]])
    assert await status_of(by_ids) == 404
    assert await status_of(bob.runs.cancel_many(status="all")) == 404
    assert await bob.threads.prune([thread_id]) == {"pruned_count": 0}
    assert await bob.threads.prune([thread_id], strategy="keep_latest") == {"pruned_count": 0}
    assert (await alice.runs.get(thread_id, run["run_id"]))["status"] == "running"
    # Bob's batch runs are his: Alice cannot cancel them.
    long_run: list[Any] = [
        {"assistant_id": "manager", "input": ANALYTICAL, "context": LONG_ANALYSIS}
    ]
    [bobs] = await bob.runs.create_batch(long_run)
    mine = alice.runs.cancel_many(thread_id=bobs["thread_id"], run_ids=[bobs["run_id"]])
    assert await status_of(mine) == 404
    # Each one's own, they may.
    await alice.runs.cancel_many(status="all")
    await alice.runs.join(thread_id, run["run_id"])
    assert (await alice.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    await bob.runs.cancel_many(thread_id=bobs["thread_id"], run_ids=[bobs["run_id"]])
    # Bob's run was stateless: its thread goes as the run ends, so a join that comes
    # after that finds no thread (404) rather than the ended run (200).
    assert await status_of(bob.runs.join(bobs["thread_id"], bobs["run_id"])) in (200, 404)
    assert await alice.threads.prune([thread_id]) == {"pruned_count": 1}
    assert await status_of(alice.threads.get(thread_id)) == 404
