"""LangGraph Studio's local server (`langgraph dev`) loads langgraph.json and runs the manager."""

from collections.abc import Iterator
from typing import Any

import pytest
from langgraph_sdk import get_client

from memory.aio import AsyncRedisSaver
from tests.utils.langgraph_dev import langgraph_dev
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def studio_url(redis: RedisServer) -> Iterator[str]:
    with langgraph_dev(redis.url, prefix="studio-test") as url:
        yield url


async def test_studio_serves_the_manager_with_both_subgraphs(studio_url: str) -> None:
    client = get_client(url=studio_url)
    [assistant] = await client.assistants.search(graph_id="manager")
    drawing = await client.assistants.get_graph(assistant["assistant_id"], xray=True)
    nodes = {node["id"] for node in drawing["nodes"]}
    assert {
        "route",
        "consult_router",
        "creative:compose",
        "analytical:plan",
        "analytical:synthesise",
    } <= nodes
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    assert schemas["context_schema"] is not None
    assert {"router", "route", "refine", "max_plan_steps"} <= set(
        schemas["context_schema"]["properties"]
    )


async def test_sdk_streams_tokens_progress_and_state_from_subgraphs(
    studio_url: str, redis: RedisServer
) -> None:
    client = get_client(url=studio_url)
    thread = await client.threads.create()
    events: list[tuple[str, Any]] = []
    question: dict[str, Any] = {
        "messages": [{"role": "user", "content": "Compare quicksort and mergesort"}]
    }
    async for part in client.runs.stream(
        thread["thread_id"],
        "manager",
        input=question,
        context={"router": "heuristic", "max_plan_steps": 2},
        stream_mode=["messages-tuple", "updates", "custom"],
        stream_subgraphs=True,
    ):
        events.append((part.event, part.data))

    kinds = {event.split("|")[0] for event, _ in events}
    assert {"metadata", "messages", "updates", "custom"} <= kinds
    assert not [data for event, data in events if event == "error"]
    tokens = [data for event, data in events if event.startswith("messages|analytical:")]
    assert len(tokens) > 10
    custom = [data for event, data in events if event.startswith("custom|analytical:")]
    assert custom[0] == {"type": "plan", "steps": custom[0]["steps"]}
    assert sum(1 for c in custom if c.get("status") == "finished") == 2

    state = await client.threads.get_state(thread["thread_id"])
    values = state["values"]
    assert isinstance(values, dict)
    assert values["decision"]["route"] == "analytical"
    assert values["messages"][-1]["type"] == "ai"
    assert values["usage"]["nodes"]["analyse"]["calls"] == 2

    # The thread lives in Redis, through langgraph.json's `checkpointer.path`.
    async with AsyncRedisSaver.from_conn_string(redis.url, prefix="studio-test") as saver:
        stored = await saver.aget_tuple({"configurable": {"thread_id": thread["thread_id"]}})
    assert stored is not None
    assert stored.checkpoint["channel_values"]["decision"]["route"] == "analytical"
