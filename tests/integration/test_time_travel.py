"""Time travel: a run from an earlier checkpoint forks the thread, as on LangGraph's server.

ALMA and `langgraph dev` share one Redis; the official `langgraph-sdk` holds the same
three-turn conversation with each, re-runs the first turn with an edited message from
the checkpoint before it, and the two servers must agree on the new branch and on the
old one, still readable in the history. The agent protocol's `run.start` forks the same
way, from its `checkpoint_id`.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from server.agent_protocol.client import open_thread
from tests.utils.answers import each_as_json
from tests.utils.langgraph_dev import langgraph_dev
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

CONTEXT: dict[str, Any] = {"router": "heuristic", "route": "creative"}
TURNS = ("Write a poem about rivers", "Now one about mountains", "And one about the sea")
EDITED = "Write a poem about lakes"


@pytest.fixture(scope="module")
def dev_url(redis: RedisServer) -> Iterator[str]:
    with langgraph_dev(redis.url, prefix="time-travel-dev") as url:
        yield url


@pytest.fixture(scope="module")
def alma(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix="time-travel-alma") as service:
        yield service


@pytest.fixture
async def clients(alma: Service, dev_url: str) -> AsyncIterator[tuple[LangGraphClient, ...]]:
    pair = (get_client(url=alma.url, api_key=None), get_client(url=dev_url, api_key=None))
    yield pair
    for client in pair:
        await client.aclose()


def texts(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each message's type and text: what both servers must agree on."""
    found = []
    for message in values["messages"]:
        content = message["content"]
        if not isinstance(content, str):
            content = "".join(block.get("text", "") for block in content)
        found.append((message["type"], content))
    return found


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def three_turns(client: LangGraphClient) -> str:
    """A new thread that has answered the three turns, one run each."""
    thread = await client.threads.create(graph_id="manager")
    for text in TURNS:
        await client.runs.wait(thread["thread_id"], "manager", input=ask(text), context=CONTEXT)
    return str(thread["thread_id"])


def before_first_turn(history: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The checkpoint the first turn's input was written to, before any node ran."""
    return next(s for s in reversed(history) if s["metadata"]["source"] == "input")


async def edit_first_turn(client: LangGraphClient) -> dict[str, Any]:
    """Three turns, then the first re-run with an edited message: what each read shows."""
    thread_id = await three_turns(client)
    old = each_as_json(await client.threads.get_history(thread_id, limit=100))
    fork = before_first_turn(old)
    await client.runs.wait(
        thread_id, "manager", input=ask(EDITED), context=CONTEXT,
        checkpoint_id=fork["checkpoint"]["checkpoint_id"],
    )  # fmt: skip
    history = each_as_json(await client.threads.get_history(thread_id, limit=100))
    state = await client.threads.get_state(thread_id)
    old_head = old[0]["checkpoint"]["checkpoint_id"]
    at_old_head = await client.threads.get_state(thread_id, checkpoint_id=old_head)
    return {
        "thread_id": thread_id, "old": old, "fork": fork, "history": history,
        "state": state, "old_head": old_head, "at_old_head": at_old_head,
    }  # fmt: skip


async def test_a_run_from_an_earlier_checkpoint_forks_the_thread_as_dev_does(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    ours, theirs = await asyncio.gather(*(edit_first_turn(client) for client in clients))
    for found in (ours, theirs):
        # The new branch holds the edited first turn and its answer only.
        new = texts(found["state"]["values"])
        assert [kind for kind, _ in new] == ["human", "ai"]
        assert new[0] == ("human", EDITED)
        # It starts at the fork point: the new head's ancestors reach it.
        history = found["history"]
        parents = {s["checkpoint"]["checkpoint_id"]: s["parent_checkpoint"] for s in history}
        at = found["state"]["checkpoint"]["checkpoint_id"]
        chain = []
        while parents.get(at):
            at = parents[at]["checkpoint_id"]
            chain.append(at)
        assert found["fork"]["checkpoint"]["checkpoint_id"] in chain
        assert found["old_head"] not in chain
        # The old branch is kept: every one of its checkpoints is still in the history,
        # and its head still reads all three turns.
        ids = {s["checkpoint"]["checkpoint_id"] for s in found["history"]}
        assert {s["checkpoint"]["checkpoint_id"] for s in found["old"]} <= ids
        old_texts = texts(found["at_old_head"]["values"])
        assert [text for kind, text in old_texts if kind == "human"] == list(TURNS)
    assert texts(ours["state"]["values"]) == texts(theirs["state"]["values"])
    assert texts(ours["at_old_head"]["values"]) == texts(theirs["at_old_head"]["values"])
    assert len(ours["history"]) == len(theirs["history"])
    assert [s["metadata"]["source"] for s in ours["history"]] == [
        s["metadata"]["source"] for s in theirs["history"]
    ]


async def test_run_start_with_a_checkpoint_id_forks_over_the_protocol(alma: Service) -> None:
    thread_id = str(uuid.uuid4())
    async with open_thread(alma.url, thread_id, subprotocols=["alma"]) as client:
        await client.subscribe("lifecycle")
        for text in TURNS[:2]:
            await client.start(text, context=CONTEXT)
            await client.until_terminal()
    async with httpx.AsyncClient(base_url=alma.url) as http:
        old = (await http.post(f"/threads/{thread_id}/history", json={"limit": 100})).json()
        # With the protocol's default durability each run saves one checkpoint: the
        # first run's is the point to re-run the second turn from.
        first = next(s for s in old if len(s["values"]["messages"]) == 2)
        async with open_thread(alma.url, thread_id, subprotocols=["alma"]) as client:
            await client.subscribe("lifecycle")
            fork = first["checkpoint"]["checkpoint_id"]
            await client.start(EDITED, context=CONTEXT, checkpoint_id=fork)
            await client.until_terminal()
            # Forked from a checkpoint the thread never had: refused, nothing runs.
            refused = await client.command(
                "run.start", assistant_id="manager", input=ask(EDITED),
                checkpoint_id=str(uuid.uuid4()),
            )  # fmt: skip
        state = (await http.get(f"/threads/{thread_id}/state")).json()
        history = (await http.post(f"/threads/{thread_id}/history", json={"limit": 100})).json()
        old_head = old[0]["checkpoint"]["checkpoint_id"]
        at_old = (await http.get(f"/threads/{thread_id}/state/{old_head}")).json()
    humans = [m["content"] for m in state["values"]["messages"] if m["type"] == "human"]
    assert humans == [TURNS[0], EDITED]
    assert state["parent_checkpoint"]["checkpoint_id"] == fork
    assert len(history) == len(old) + 1
    assert [m["content"] for m in at_old["values"]["messages"] if m["type"] == "human"] == list(
        TURNS[:2]
    )
    assert (refused["type"], refused["error"]) == ("error", "no_such_checkpoint")
