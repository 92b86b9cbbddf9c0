"""`/mcp`: the manager as an MCP tool, driven by the official MCP Python client.

A real `alma serve` on loopback with its own redis-server; the client speaks MCP's
streamable HTTP transport to it as Claude Desktop or Cursor would. Tool calls run
through the engine, so their threads, owners, records and limits are the API's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from server.guard.auth import new_key
from tests.utils.langgraph_dev import langgraph_dev
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

ALICE, ALICE_ENTRY = new_key("alice")
BOB, BOB_ENTRY = new_key("bob")
CAROL, CAROL_ENTRY = new_key("carol")
KEYS = {"ALMA_API_KEYS": f"{ALICE_ENTRY},{BOB_ENTRY},{CAROL_ENTRY}", "ALMA_LIMIT_RUNS": "2"}
HAIKU = "Write a haiku about rivers"
ANALYSIS = "Compare quicksort and mergesort for sorting 10M integers"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "test", "version": "1"}},
}  # fmt: skip


@pytest.fixture(scope="module")
def open_service(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix=f"mcp-{uuid.uuid4().hex[:6]}") as service:
        yield service


@pytest.fixture(scope="module")
def keyed_service(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix=f"mcpkeys-{uuid.uuid4().hex[:6]}", env=KEYS) as service:
        yield service


@asynccontextmanager
async def session(url: str, key: str | None = None) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session with the server at `url` (its `/mcp`)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def answer_of(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    [text] = result.content
    assert isinstance(text, types.TextContent)
    structured: dict[str, Any] = result.structured_content
    assert structured["answer"] == text.text and len(text.text) > 40
    return structured


async def test_the_manager_is_the_tool_with_its_input_schema(open_service: Service) -> None:
    async with session(open_service.url) as client:
        listed = await client.list_tools()
    [tool] = listed.tools
    assert tool.name == "manager"
    schema = tool.input_schema
    assert schema["type"] == "object" and schema["required"] == ["messages"]
    assert schema["properties"]["messages"]["type"] == "string"
    assert {"route", "refine", "thread_id"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    assert tool.output_schema is not None
    assert set(tool.output_schema["required"]) == {"answer", "route", "thread_id", "run_id"}


async def test_only_post_is_served_as_there_is_no_session(open_service: Service) -> None:
    async with httpx.AsyncClient(base_url=open_service.url) as http:
        for method in ("GET", "DELETE"):
            assert (await http.request(method, "/mcp")).status_code == 405


async def test_a_creative_request_is_answered_and_recorded(open_service: Service) -> None:
    async with session(open_service.url) as client:
        result = await client.call_tool("manager", {"messages": HAIKU})
    answer = answer_of(result)
    assert answer["route"] == "creative"
    # The run went through the engine: the thread and its run record are the API's.
    async with httpx.AsyncClient(base_url=open_service.url) as http:
        runs = (await http.get(f"/threads/{answer['thread_id']}/runs")).json()
    assert [(run["run_id"], run["status"]) for run in runs] == [(answer["run_id"], "success")]
    assert runs[0]["metadata"]["source"] == "mcp"


async def test_an_analytical_request_reports_progress_as_it_goes(open_service: Service) -> None:
    notes: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append((progress, message))

    async with session(open_service.url) as client:
        result = await client.call_tool(
            "manager", {"messages": ANALYSIS}, progress_callback=on_progress
        )
    assert answer_of(result)["route"] == "analytical"
    messages = [message or "" for _, message in notes]
    assert messages[0].startswith("routed to analytical")
    assert any(message.startswith("plan of ") for message in messages)
    assert "step 1 of" in " ".join(messages)
    assert any(message.endswith(" so far") for message in messages)
    assert messages[-1].startswith("answered: ") and messages[-1].endswith(" tokens")
    counts = [progress for progress, _ in notes]
    assert counts == sorted(set(counts)), "progress must only grow"


async def test_a_route_hint_and_a_thread_carry_a_conversation(open_service: Service) -> None:
    thread_id = f"mcp-{uuid.uuid4().hex[:8]}"
    async with session(open_service.url) as client:
        first = answer_of(
            await client.call_tool(
                "manager",
                {"messages": "My name is Ada and I like rivers", "thread_id": thread_id},
            )
        )
        second = answer_of(
            await client.call_tool(
                "manager",
                {"messages": ANALYSIS, "thread_id": thread_id, "route": "creative"},
            )
        )
    assert first["thread_id"] == second["thread_id"] == thread_id
    assert second["route"] == "creative"
    async with httpx.AsyncClient(base_url=open_service.url) as http:
        state = (await http.get(f"/threads/{thread_id}/state")).json()
    assert len(state["values"]["messages"]) == 4


async def test_bad_arguments_are_a_tool_error(open_service: Service) -> None:
    async with session(open_service.url) as client:
        result = await client.call_tool("manager", {"messages": HAIKU, "route": "poetic"})
    assert result.is_error
    [text] = result.content
    assert isinstance(text, types.TextContent) and "route" in text.text


async def test_no_key_or_a_wrong_key_is_refused_before_mcp(keyed_service: Service) -> None:
    async with httpx.AsyncClient(base_url=keyed_service.url) as http:
        headers = {"Accept": "application/json, text/event-stream"}
        missing = await http.post("/mcp", json=INITIALIZE, headers=headers)
        wrong = await http.post(
            "/mcp", json=INITIALIZE, headers={**headers, "Authorization": "Bearer alma_nope"}
        )
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "jsonrpc" not in response.json()
    assert "required" in missing.json()["detail"]
    assert "not valid" in wrong.json()["detail"]


async def test_a_key_owns_the_thread_its_call_creates(keyed_service: Service) -> None:
    async with session(keyed_service.url, ALICE) as client:
        answer = answer_of(await client.call_tool("manager", {"messages": HAIKU}))
    thread_id = answer["thread_id"]
    async with httpx.AsyncClient(base_url=keyed_service.url) as http:
        as_alice = await http.get(f"/threads/{thread_id}", headers={"X-API-Key": ALICE})
        as_bob = await http.get(f"/threads/{thread_id}", headers={"X-API-Key": BOB})
    assert as_alice.status_code == 200 and as_bob.status_code == 404
    async with session(keyed_service.url, BOB) as client:
        taken = await client.call_tool("manager", {"messages": HAIKU, "thread_id": thread_id})
    assert taken.is_error


async def test_calls_count_against_the_run_limit(keyed_service: Service) -> None:
    async with session(keyed_service.url, CAROL) as client:
        for _ in range(2):
            answer_of(await client.call_tool("manager", {"messages": HAIKU}))
        refused = await client.call_tool("manager", {"messages": HAIKU})
    assert refused.is_error
    [text] = refused.content
    assert isinstance(text, types.TextContent) and "runs" in text.text


async def test_the_tool_matches_langgraph_devs_for_the_same_graph(
    redis: RedisServer, open_service: Service
) -> None:
    with langgraph_dev(redis.url, prefix=f"mcpdev-{uuid.uuid4().hex[:6]}") as dev:
        async with session(dev) as client:
            [theirs] = (await client.list_tools()).tools
            called = await client.call_tool("manager", {"messages": HAIKU})
    async with session(open_service.url) as client:
        [ours] = (await client.list_tools()).tools
        answer = answer_of(await client.call_tool("manager", {"messages": HAIKU}))
    # The same name, and the same required input: a client set up for one calls the other.
    assert ours.name == theirs.name == "manager"
    assert theirs.input_schema["type"] == ours.input_schema["type"] == "object"
    assert theirs.input_schema["required"] == ours.input_schema["required"] == ["messages"]
    assert theirs.input_schema["properties"]["messages"]["type"] == "string"
    # Theirs answers with the final state's repr; the same simulated answer is in it.
    assert not called.is_error
    [text] = called.content
    assert isinstance(text, types.TextContent)
    # Ours may also be dedicated to a name an earlier test told ALMA (memory across
    # threads, owner `local`); the piece itself is the same.
    lines = answer["answer"].splitlines()
    [first, *_] = [line for line in lines if line and not line.startswith("*for ")]
    assert first in text.text


@pytest.fixture(scope="module")
def paced_service(redis: RedisServer) -> Iterator[Service]:
    # Answers of some seconds, so that a client can leave in the middle of one.
    env = {"ALMA_SIMULATED_TOKENS_PER_SECOND": "40"}
    with alma_service(redis.url, prefix=f"mcppace-{uuid.uuid4().hex[:6]}", env=env) as service:
        yield service


async def test_a_call_whose_client_leaves_stops_its_run(paced_service: Service) -> None:
    thread_id = f"mcp-{uuid.uuid4().hex[:8]}"
    noted = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        noted.set()

    async with session(paced_service.url) as client:
        call = asyncio.ensure_future(
            client.call_tool(
                "manager", {"messages": HAIKU, "thread_id": thread_id},
                progress_callback=on_progress,
            )
        )  # fmt: skip
        await noted.wait()
        call.cancel()
    async with httpx.AsyncClient(base_url=paced_service.url, timeout=30) as http:
        [run] = (await http.get(f"/threads/{thread_id}/runs")).json()
        await http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
        ended = (await http.get(f"/threads/{thread_id}/runs/{run['run_id']}")).json()
    assert ended["status"] == "interrupted"
