"""What LangGraph Studio does with a server, done to `alma serve` as a browser would.

Studio (https://smith.langchain.com/studio/?baseUrl=<ALMA's URL>) calls the server from
the browser: every call carries Studio's Origin, JSON bodies go as `text/plain` (no
preflight), and calls that need one are preflighted, with Chrome's Private Network
Access header when the page is public and ALMA is on a private address.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

STUDIO = "https://smith.langchain.com"
ENV = {
    "ALMA_CORS_ORIGINS": STUDIO,
    "ALMA_CORS_ALLOW_PRIVATE_NETWORK": "true",
    "ALMA_SIMULATED_TOKENS_PER_SECOND": "150",
}


@pytest.fixture(scope="module")
def alma(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix=f"studio-{uuid.uuid4().hex[:6]}", env=ENV) as service:
        yield service


class Browser:
    """Studio's page calling ALMA: its Origin on everything, JSON sent as text/plain."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        content = None if body is None else json.dumps(body)
        headers = {"Content-Type": "text/plain;charset=UTF-8"} if body is not None else {}
        answer = await self.client.request(method, path, content=content, headers=headers,
                                           params=params)  # fmt: skip
        assert answer.status_code < 400, (method, path, answer.status_code, answer.text)
        assert answer.headers["access-control-allow-origin"] == STUDIO
        return answer.json() if answer.content else None

    async def preflight(self, method: str, path: str) -> httpx.Response:
        return await self.client.options(path, headers={
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type,x-api-key,last-event-id",
            "Access-Control-Request-Private-Network": "true",
        })  # fmt: skip

    async def stream(self, path: str, body: Any) -> AsyncIterator[tuple[str, Any]]:
        plain = {"Content-Type": "text/plain;charset=UTF-8"}
        async with self.client.stream("POST", path, content=json.dumps(body), headers=plain) as r:
            assert r.status_code == 200
            assert r.headers["access-control-allow-origin"] == STUDIO
            assert "content-location" in r.headers["access-control-expose-headers"].lower()
            event = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    yield event, json.loads(line.removeprefix("data: "))


async def test_a_studio_session_against_alma(alma: Service) -> None:
    async with httpx.AsyncClient(base_url=alma.url, headers={"Origin": STUDIO},
                                 timeout=30) as client:  # fmt: skip
        studio = Browser(client)
        preflight = await studio.preflight("DELETE", "/threads/t-1")
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-private-network"] == "true"

        # Opening the server: what it is, which graphs, how they look.
        info = await studio.call("GET", "/info")
        assert info["flags"]["assistants"] is True
        [assistant] = await studio.call("POST", "/assistants/search",
                                        {"limit": 10, "offset": 0,
                                         "metadata": {"created_by": "system"}})  # fmt: skip
        assistant_id = assistant["assistant_id"]
        assert (await studio.call("GET", f"/assistants/{assistant_id}"))["graph_id"] == "manager"
        drawing = await studio.call("GET", f"/assistants/{assistant_id}/graph", xray="true")
        assert "analytical:synthesise" in {node["id"] for node in drawing["nodes"]}
        schemas = await studio.call("GET", f"/assistants/{assistant_id}/schemas")
        assert "max_plan_steps" in schemas["context_schema"]["properties"]
        subgraphs = await studio.call("GET", f"/assistants/{assistant_id}/subgraphs",
                                      recurse="true")  # fmt: skip
        assert set(subgraphs) == {"creative", "analytical"}
        await studio.call("POST", f"/assistants/{assistant_id}/versions", {"limit": 10})

        # A new thread, a run streamed as Studio streams it, the thread's history.
        thread = await studio.call("POST", "/threads", {"metadata": {"graph_id": "manager"}})
        thread_id = thread["thread_id"]
        assert any(t["thread_id"] == thread_id for t in
                   await studio.call("POST", "/threads/search", {"limit": 10}))  # fmt: skip
        run_body = {
            "assistant_id": assistant_id,
            "input": {"messages": [{"role": "user", "content": "Compare A and B"}]},
            "context": {"router": "heuristic", "max_plan_steps": 2},
            "stream_mode": ["debug", "messages-tuple", "values", "updates"],
            "stream_subgraphs": True,
            "stream_resumable": True,
            "on_disconnect": "continue",
        }
        events = [e async for e in studio.stream(f"/threads/{thread_id}/runs/stream", run_body)]
        kinds = {name.split("|")[0] for name, _ in events}
        assert {"metadata", "debug", "messages", "values", "updates"} <= kinds
        checkpoints = [data["payload"] for name, data in events
                       if name == "debug" and data["type"] == "checkpoint"]  # fmt: skip
        # Studio draws the run's timeline from these two, step by step.
        assert checkpoints[0]["parent_checkpoint"] is None
        assert all(cp["checkpoint"]["thread_id"] == thread_id for cp in checkpoints)
        assert [cp["parent_checkpoint"]["checkpoint_id"] for cp in checkpoints[1:]] == [
            cp["checkpoint"]["checkpoint_id"] for cp in checkpoints[:-1]
        ]
        history = await studio.call("POST", f"/threads/{thread_id}/history", {"limit": 10})
        assert len(history) == len(checkpoints)
        state = await studio.call("GET", f"/threads/{thread_id}/state", subgraphs="true")
        assert state["values"]["messages"][-1]["type"] == "ai"
        runs = await studio.call("GET", f"/threads/{thread_id}/runs")
        assert runs[0]["status"] == "success"

        # Editing a step and forking from it, as Studio's "edit state" does.
        forked = await studio.call("POST", f"/threads/{thread_id}/state", {
            "values": {"messages": [{"role": "user", "content": "And C?"}]},
            "checkpoint_id": history[1]["checkpoint_id"],
        })  # fmt: skip
        assert forked["checkpoint"]["checkpoint_id"]
        at = await studio.call("GET", f"/threads/{thread_id}/state/"
                               f"{forked['checkpoint']['checkpoint_id']}")  # fmt: skip
        assert at["values"]["messages"][-1]["content"] == "And C?"

        # Rejoining a run's stream from its start; tidying threads up.
        rejoined = [name async for name, _ in _join(studio, thread_id, runs[0]["run_id"])]
        assert rejoined[0] == "metadata"
        await studio.call("PATCH", f"/threads/{thread_id}", {"metadata": {"title": "x"}})
        copy = await studio.call("POST", f"/threads/{thread_id}/copy")
        await studio.call("DELETE", f"/threads/{copy['thread_id']}")
        await studio.call("DELETE", f"/threads/{thread_id}")


async def _join(studio: Browser, thread_id: str, run_id: str) -> AsyncIterator[tuple[str, Any]]:
    path = f"/threads/{thread_id}/runs/{run_id}/stream"
    async with studio.client.stream("GET", path, headers={"Last-Event-ID": "-1"}) as answer:
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if line.startswith("event: "):
                yield line.removeprefix("event: "), None
