"""A thread's join stream (`GET /threads/{id}/stream`), beside `langgraph dev`'s.

Two ALMA processes share one Redis (a run executes on one, the stream is served by
either) and `langgraph dev` serves the same graph on the same simulated model. The
official Python SDK follows each server's thread while runs come and go; the event
sequences must agree, `Last-Event-ID` must resume with exactly what came after, and
another owner's thread must not exist.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from server.guard.auth import new_key
from tests.integration.test_langgraph_api_runs import (
    ANALYTICAL,
    HAIKU,
    SHORT_ANALYSIS,
    first_payloads,
    sequence,
)
from tests.utils.langgraph_dev import langgraph_dev
from tests.utils.redis_server import RedisServer
from tests.utils.service import alma_service
from tests.utils.shapes import differences

pytestmark = pytest.mark.integration

ALICE, ALICE_ENTRY = new_key("alice")
BOB, BOB_ENTRY = new_key("bob")
CREATIVE: dict[str, Any] = {"route": "creative"}
ENV = {
    "ALMA_SIMULATED_TOKENS_PER_SECOND": "100",
    "ALMA_SSE_HEARTBEAT_SECONDS": "0.5",
}
"""Runs of a second or so, so that a stream is cut while a run goes on."""


@dataclass(frozen=True)
class Servers:
    """Two ALMA processes on one Redis, and `langgraph dev`."""

    alma: str
    other: str
    """The second ALMA process."""
    dev: str


@pytest.fixture(scope="module")
def servers(redis: RedisServer) -> Iterator[Servers]:
    tag = uuid.uuid4().hex[:6]
    env = {**ENV, "ALMA_API_KEYS": f"{ALICE_ENTRY},{BOB_ENTRY}"}
    with (
        alma_service(redis.url, prefix=f"join-{tag}", env=env) as alma,
        alma_service(redis.url, prefix=f"join-{tag}", env=env) as other,
        langgraph_dev(redis.url, prefix=f"joindev-{tag}", env=ENV) as dev,
    ):
        yield Servers(alma=alma.url, other=other.url, dev=dev)


@asynccontextmanager
async def joined(
    client: LangGraphClient, thread_id: str, **options: Any
) -> AsyncIterator[AsyncIterator[StreamPart]]:
    """The thread's join stream, once the server has answered it (and so follows it).

    `join_stream`'s own request, through the SDK's hook for the response: a run started
    before the answer could begin before the stream does.
    """
    opened = asyncio.Event()
    headers = {"Last-Event-ID": options["last_event_id"]} if "last_event_id" in options else {}
    parts = client.http.stream(
        f"/threads/{thread_id}/stream",
        "GET",
        params={"stream_mode": options.get("stream_mode", "run_modes")},
        headers=headers,
        on_response=lambda _: opened.set(),
    )
    first = asyncio.ensure_future(anext(parts))
    answered = asyncio.ensure_future(opened.wait())
    await asyncio.wait({first, answered}, return_when=asyncio.FIRST_COMPLETED)
    answered.cancel()

    async def following() -> AsyncGenerator[StreamPart, None]:
        yield await first
        async for part in parts:
            yield part

    rest = following()
    try:
        yield rest
    finally:
        await rest.aclose()
        first.cancel()
        await asyncio.wait({first})
        await parts.aclose()  # type: ignore[attr-defined]


async def until_runs_end(parts: AsyncIterator[StreamPart], runs: int) -> list[StreamPart]:
    """The parts up to the `run_done` of the `runs`-th run to end."""
    seen: list[StreamPart] = []
    async for part in parts:
        seen.append(part)
        if part.event == "metadata" and part.data.get("status") == "run_done":
            runs -= 1
            if runs == 0:
                return seen
    raise AssertionError(f"the stream ended after {len(seen)} parts")


def named(parts: list[StreamPart]) -> list[tuple[str, Any]]:
    return [(part.event, part.data) for part in parts]


async def two_runs(client: LangGraphClient) -> tuple[list[StreamPart], list[str]]:
    """A thread followed while two runs, in different modes, go one after the other."""
    thread_id = str((await client.threads.create())["thread_id"])
    async with joined(client, thread_id) as parts:
        collecting = asyncio.ensure_future(until_runs_end(parts, 2))
        first = await client.runs.create(
            thread_id, "manager", input=HAIKU, context=CREATIVE, stream_mode=["values", "updates"]
        )
        await client.runs.join(thread_id, first["run_id"])
        second = await client.runs.create(
            thread_id, "manager", input=ANALYTICAL, context=SHORT_ANALYSIS
        )
        await client.runs.join(thread_id, second["run_id"])
        seen = await asyncio.wait_for(collecting, 60)
    return seen, [first["run_id"], second["run_id"]]


async def test_a_thread_is_followed_run_after_run_as_langgraph_dev_follows_it(
    servers: Servers,
) -> None:
    alma = get_client(url=servers.alma, api_key=ALICE)
    dev = get_client(url=servers.dev, api_key=None)
    (ours, our_runs), (theirs, their_runs) = await asyncio.gather(two_runs(alma), two_runs(dev))

    assert sequence(named(ours)) == sequence(named(theirs))
    # recall (writes the memories), remember (writes nothing) with route, the answer.
    assert sequence(named(ours))[:9] == [
        "metadata", "values", "updates", "values", "updates x2", "values", "updates", "values",
        "metadata x2",
    ]  # fmt: skip
    assert differences(first_payloads(named(ours)), first_payloads(named(theirs))) == []
    for parts, runs in ((ours, our_runs), (theirs, their_runs)):
        metadata = [part.data for part in parts if part.event == "metadata"]
        assert metadata == [
            {"run_id": runs[0], "attempt": 1}, {"status": "run_done", "run_id": runs[0]},
            {"run_id": runs[1], "attempt": 1}, {"status": "run_done", "run_id": runs[1]},
        ]  # fmt: skip
    ours_final, theirs_final = ([p.data for p in parts if p.event == "values"][-1]
                                for parts in (ours, theirs))  # fmt: skip
    assert ours_final["messages"][-1]["content"] == theirs_final["messages"][-1]["content"]
    assert ours_final["messages"][-1]["content"].startswith("## Answer")
    ids = [int(part.id) for part in ours if part.id]
    assert len(ids) == len(ours) and ids == sorted(set(ids))


async def test_last_event_id_resumes_a_cut_stream_with_exactly_the_rest(servers: Servers) -> None:
    client = get_client(url=servers.alma, api_key=ALICE)
    thread_id = str((await client.threads.create())["thread_id"])
    async with joined(client, thread_id) as whole:
        everything = asyncio.ensure_future(until_runs_end(whole, 1))
        async with joined(client, thread_id) as cut:
            # A question of its own: an answer cached by an earlier test comes at once.
            question = f"Write a story about rivers and {uuid.uuid4().hex[:8]}"
            story: dict[str, Any] = {"messages": [{"role": "user", "content": question}]}
            await client.runs.create(
                thread_id, "manager", context=CREATIVE, input=story,
                stream_mode=["values", "messages-tuple"], stream_subgraphs=True,
            )  # fmt: skip
            before = [await anext(cut) for _ in range(5)]
        # The cut stream's connection is closed while the run still streams its answer.
        assert not everything.done()
        async with joined(client, thread_id, last_event_id=before[-1].id) as resumed:
            after = await asyncio.wait_for(until_runs_end(resumed, 1), 60)
        expected = await asyncio.wait_for(everything, 60)
    assert [(p.event, p.id, p.data) for p in before + after] == [
        (p.event, p.id, p.data) for p in expected
    ]
    assert sum(part.event.startswith("messages|") for part in after) > 10

    # The SDK's own call resumes anywhere in the thread's past runs, as exactly.
    for cut_after in (0, 7, len(expected) - 2):
        again = await client.threads.join_stream(thread_id, last_event_id=expected[cut_after].id)
        rest = await asyncio.wait_for(until_runs_end(again, 1), 30)
        await again.aclose()  # type: ignore[attr-defined]
        assert [p.id for p in rest] == [p.id for p in expected[cut_after + 1 :]]


async def test_a_run_on_one_process_streams_through_the_other(servers: Servers) -> None:
    here = get_client(url=servers.alma, api_key=ALICE)
    there = get_client(url=servers.other, api_key=ALICE)
    thread_id = str((await here.threads.create())["thread_id"])
    async with joined(here, thread_id) as local, joined(there, thread_id) as remote:
        ours = asyncio.ensure_future(until_runs_end(local, 2))
        theirs = asyncio.ensure_future(until_runs_end(remote, 2))
        for _ in range(2):
            run = await here.runs.create(thread_id, "manager", input=HAIKU, context=CREATIVE)
            await here.runs.join(thread_id, run["run_id"])
        seen_here, seen_there = await asyncio.wait_for(asyncio.gather(ours, theirs), 60)
    assert [(p.event, p.id, p.data) for p in seen_there] == [
        (p.event, p.id, p.data) for p in seen_here
    ]
    assert sequence(named(seen_there)) == [
        "metadata", "values x4", "metadata x2", "values x4", "metadata"
    ]  # fmt: skip


async def test_an_idle_thread_is_held_open_with_heartbeats_and_lifecycle_filters(
    servers: Servers,
) -> None:
    client = get_client(url=servers.alma, api_key=ALICE)
    thread_id = str((await client.threads.create())["thread_id"])
    async with (
        httpx.AsyncClient(base_url=servers.alma, timeout=30) as http,
        http.stream(
            "GET", f"/threads/{thread_id}/stream", headers={"Authorization": f"Bearer {ALICE}"}
        ) as idle,
    ):
        assert idle.status_code == 200
        assert idle.headers["content-type"].startswith("text/event-stream")
        lines = idle.aiter_lines()
        assert await asyncio.wait_for(anext(lines), 10) == ": heartbeat"
        assert await asyncio.wait_for(anext(lines), 10) == ""
        assert await asyncio.wait_for(anext(lines), 10) == ": heartbeat"

    async with joined(client, thread_id, stream_mode="lifecycle") as parts:
        collecting = asyncio.ensure_future(until_runs_end(parts, 1))
        run = await client.runs.create(thread_id, "manager", input=HAIKU, context=CREATIVE)
        seen = await asyncio.wait_for(collecting, 60)
    assert named(seen) == [
        ("metadata", {"run_id": run["run_id"], "attempt": 1}),
        ("metadata", {"status": "run_done", "run_id": run["run_id"]}),
    ]


async def test_another_owners_thread_and_unknown_modes_are_refused(servers: Servers) -> None:
    alice = get_client(url=servers.alma, api_key=ALICE)
    thread_id = str((await alice.threads.create())["thread_id"])
    as_bob = {"Authorization": f"Bearer {BOB}"}
    as_alice = {"Authorization": f"Bearer {ALICE}"}
    async with httpx.AsyncClient(base_url=servers.alma, timeout=10) as http:
        for url in (servers.alma, servers.other):
            hidden = await http.get(f"{url}/threads/{thread_id}/stream", headers=as_bob)
            assert hidden.status_code == 404
        missing = await http.get(f"/threads/{uuid.uuid4()}/stream", headers=as_alice)
        assert missing.status_code == 404
        anonymous = await http.get(f"/threads/{thread_id}/stream")
        assert anonymous.status_code == 401
        unknown = await http.get(
            f"/threads/{thread_id}/stream", params={"stream_modes": "values"}, headers=as_alice
        )
        assert unknown.status_code == 422
