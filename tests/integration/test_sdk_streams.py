"""The official `langgraph-sdk` thread streams, unchanged, against `alma serve`."""

import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import pytest
from langgraph_sdk import get_client

from tests.utils.answers import as_json
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix="sdk-test") as running:
        yield running


def text_of(content: str | list[dict[str, Any]]) -> str:
    """A message's text, whether content is a string or standard content blocks."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


def is_root_terminal(event: Mapping[str, Any]) -> bool:
    params = event.get("params") or {}
    return (
        event.get("method") == "lifecycle"
        and not params.get("namespace")
        and params["data"]["event"] in ("completed", "failed")
    )


@pytest.mark.parametrize("transport", ["websocket", "sse"])
async def test_sdk_thread_stream_receives_tokens_lifecycle_and_values(
    service: Service, transport: Literal["websocket", "sse"]
) -> None:
    client = get_client(url=service.url)
    thread_id = str(uuid.uuid4())
    events: list[dict[str, Any]] = []
    async with client.threads.stream(
        thread_id, assistant_id="manager", transport=transport
    ) as thread:
        subscription = thread.subscribe(["lifecycle", "messages", "values", "custom"])
        started = await thread.run.start(
            input={"messages": [{"role": "user", "content": "Compare quicksort and mergesort"}]},
            config={"configurable": {"max_plan_steps": 2}},
        )
        async for event in subscription:
            events.append(as_json(event))
            if is_root_terminal(event):
                break

    assert started["run_id"]
    methods = [e["method"] for e in events]
    assert methods[0] == "lifecycle" and events[0]["params"]["data"]["event"] == "running"
    assert events[-1]["params"]["data"]["event"] == "completed"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    deltas = [
        e for e in events
        if e["method"] == "messages" and e["params"]["data"]["event"] == "content-block-delta"
    ]  # fmt: skip
    assert len(deltas) > 20
    nodes = {e["params"].get("node") for e in deltas}
    assert {"plan", "analyse", "synthesise"} <= nodes
    assert all(e["params"]["namespace"][0].startswith("analytical:") for e in deltas)

    progress = [e["params"]["data"] for e in events if e["method"] == "custom"]
    assert progress[0]["name"] == "plan"
    assert [p["payload"]["status"] for p in progress[1:]] == ["started", "finished"] * 2

    final = [e for e in events if e["method"] == "values" and not e["params"]["namespace"]][-1]
    messages = final["params"]["data"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai"]
    final_text = text_of(messages[-1]["content"])
    assert final_text.startswith("## Answer")
    answer = "".join(
        e["params"]["data"]["delta"]["text"] for e in deltas if e["params"]["node"] == "synthesise"
    )
    assert answer == final_text
