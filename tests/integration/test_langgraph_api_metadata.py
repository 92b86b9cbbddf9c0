"""Run metadata as LangGraph's server has it, ALMA beside `langgraph dev`, through the SDK.

Clients filter a thread's history by its metadata and read the metadata of streamed
events; both servers run the same graph on the same simulated model, so the same run
must carry the same metadata keys on both, and `runs.create` must answer alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.version import __version__ as LANGGRAPH_VERSION
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode

from server.version import VERSION
from tests.utils.redis_server import RedisServer
from tests.utils.side_by_side import Pair, alma_beside_dev

pytestmark = pytest.mark.integration

HAIKU: dict[str, Any] = {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]}
CREATIVE = {"route": "creative"}
ANALYTICAL: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Compare quicksort and mergesort"}]
}
SHORT_ANALYSIS = {"router": "heuristic", "max_plan_steps": 2}
PACE = {"ALMA_SIMULATED_TOKENS_PER_SECOND": "100"}
"""Answers streamed token by token, as a real model streams them."""
SERVER_KEYS = {"run_attempt", "langgraph_version", "langgraph_api_version", "langgraph_plan",
               "langgraph_host", "langgraph_api_url"}  # fmt: skip
"""What LangGraph's server says of itself in a run's metadata."""


@pytest.fixture(scope="module")
def servers(redis: RedisServer) -> Iterator[Pair]:
    with alma_beside_dev(redis.url, "meta", env=PACE) as pair:
        yield pair


async def _history_of_a_team(client: LangGraphClient) -> dict[str, Any]:
    """A run on a thread made with `team: x`; its history, whole and filtered."""
    thread_id = (await client.threads.create(metadata={"team": "x"}))["thread_id"]
    run = await client.runs.create(
        thread_id, "manager", input=HAIKU, context=CREATIVE, metadata={"asked_by": "ada"}
    )
    await client.runs.join(thread_id, run["run_id"])
    team = await client.threads.get_history(thread_id, limit=100, metadata={"team": "x"})
    return {
        "all": await client.threads.get_history(thread_id, limit=100),
        "team": team,
        "asker": await client.threads.get_history(thread_id, limit=100,
                                                  metadata={"asked_by": "ada"}),
        "other": await client.threads.get_history(thread_id, limit=100,
                                                  metadata={"team": "y"}),
        "keys": {key for state in team for key in state["metadata"] or {}},
    }  # fmt: skip


async def test_history_filters_by_the_threads_metadata_as_langgraph_dev(servers: Pair) -> None:
    ours, theirs = await asyncio.gather(*(_history_of_a_team(c) for c in servers.clients()))
    counts = [(len(seen["all"]), len(seen["team"]), len(seen["asker"]), len(seen["other"]))
              for seen in (ours, theirs)]  # fmt: skip
    assert counts[0] == counts[1]
    assert counts[0][1] == counts[0][0] > 0 and counts[0][3] == 0
    assert ours["keys"] == theirs["keys"]
    # The caller and the request are named as LangGraph's server names them.
    assert {"team", "asked_by", "thread_id", "user_id", "langgraph_auth_user_id",
            "langgraph_request_id"} | SERVER_KEYS <= ours["keys"]  # fmt: skip
    metadata = ours["team"][0]["metadata"]
    assert (metadata["run_attempt"], metadata["langgraph_version"]) == (1, LANGGRAPH_VERSION)
    assert metadata["langgraph_api_version"] == VERSION


async def _event_metadata(client: LangGraphClient, modes: list[StreamMode]) -> dict[str, set[str]]:
    """The metadata keys of a run's events in `modes`, by stream mode."""
    thread_id = (await client.threads.create(metadata={"team": "y"}))["thread_id"]
    keys: dict[str, set[str]] = {}
    async for part in client.runs.stream(
        thread_id, "manager", input=HAIKU, context=CREATIVE, metadata={"asked_by": "ada"},
        stream_mode=modes,
    ):  # fmt: skip
        data: Any = part.data
        if part.event == "messages":
            keys.setdefault("messages-tuple", set()).update(data[1])
        elif part.event == "messages/metadata":
            for found in data.values():
                keys.setdefault("messages", set()).update(found["metadata"])
        elif part.event == "events" and "metadata" in data:
            keys.setdefault("events", set()).update(data["metadata"])
    return keys


@pytest.mark.parametrize(
    "modes", [["messages-tuple", "events", "values", "updates"], ["messages"]], ids=str
)
async def test_events_carry_the_metadata_keys_langgraph_dev_gives_them(
    servers: Pair, modes: list[StreamMode]
) -> None:
    ours, theirs = await asyncio.gather(*(_event_metadata(c, modes) for c in servers.clients()))
    assert set(ours) == set(theirs) == set(modes) - {"values", "updates"}
    for mode, keys in theirs.items():
        assert ours[mode] == keys, mode
        assert {"team", "asked_by", "thread_id", "run_id"} | SERVER_KEYS <= keys


async def _created_then_seen(client: LangGraphClient, on_thread: bool) -> list[str]:
    """The status `runs.create` answers, then each status a GET finds, to `success`."""
    # A run of seconds, so that a GET sees it running.
    options: dict[str, Any] = {"input": ANALYTICAL, "context": SHORT_ANALYSIS}
    if on_thread:
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(thread_id, "manager", **options)
    else:
        run = await client.runs.create(None, "manager", on_completion="keep", **options)
    statuses: list[str] = [run["status"]]
    while statuses[-1] in ("pending", "running"):
        status = (await client.runs.get(run["thread_id"], run["run_id"]))["status"]
        if status != statuses[-1]:
            statuses.append(status)
        else:
            await asyncio.sleep(0.05)  # polling: the API has no way to await a status
    return statuses


@pytest.mark.parametrize("on_thread", [True, False], ids=["thread", "stateless"])
async def test_runs_create_answers_pending_as_langgraph_dev(servers: Pair, on_thread: bool) -> None:
    seen = []
    for client in servers.clients():
        seen.append(await _created_then_seen(client, on_thread))
    ours, theirs = seen
    assert ours[0] == theirs[0] == "pending"
    # Then running (ALMA takes a free thread at once; `langgraph dev` once a worker
    # picks the run up), then done.
    assert ours[-2:] == theirs[-2:] == ["running", "success"]
