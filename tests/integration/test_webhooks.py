"""Run webhooks: called when the run ends, retried, and only where the operator allows.

The receiver is a real HTTP server on loopback that fails its first call and accepts
the next; ALMA is told to allow exactly its address (`127.0.0.1`), which is the one way
to open a loopback address. Every other spelling of loopback is refused at creation.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.utils.redis_server import RedisServer
from tests.utils.service import alma_service

pytestmark = pytest.mark.integration

HAIKU: dict[str, Any] = {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]}
ANALYTICAL: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Compare quicksort and mergesort"}]
}


@dataclass
class Receiver:
    """What the loopback receiver was sent."""

    port: int
    attempts: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    fail_first: int = 1

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with lock:
                state.attempts.append(body)
                failing = len(state.attempts) <= state.fail_first
                if not failing:
                    state.accepted.append(body)
            self.send_response(503 if failing else 204)
            self.end_headers()
            if not failing:
                state.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: the test reads what arrived instead

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def alma(redis: RedisServer) -> Iterator[str]:
    env = {
        "ALMA_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,localhost,allowed.example",
        "ALMA_WEBHOOK_BACKOFF_SECONDS": "0.05",
        "ALMA_WEBHOOK_TIMEOUT_SECONDS": "5",
        # Runs of seconds, so that a cancel meets a running run.
        "ALMA_SIMULATED_TOKENS_PER_SECOND": "100",
    }
    with alma_service(redis.url, prefix=f"hooks-{uuid.uuid4().hex[:6]}", env=env) as service:
        yield service.url


async def test_a_webhook_is_retried_and_gets_the_ended_run_once(
    alma: str, receiver: Receiver
) -> None:
    client = get_client(url=alma)
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        thread_id, "manager", input=HAIKU, webhook=receiver.url(), metadata={"tag": "hook"}
    )
    shown: dict[str, Any] = dict(run)
    assert shown["kwargs"]["webhook"] == receiver.url()  # as LangGraph's Run lists it
    await client.runs.join(thread_id, run["run_id"])
    assert await asyncio.to_thread(receiver.arrived.wait, 30)
    assert len(receiver.attempts) == 2  # the first was answered 503
    [payload] = receiver.accepted
    assert payload["run_id"] == run["run_id"] and payload["thread_id"] == thread_id
    assert payload["status"] == "success"
    assert payload["metadata"]["tag"] == "hook"
    assert payload["values"]["messages"][-1]["type"] == "ai"
    for key in ("run_started_at", "run_ended_at", "webhook_sent_at", "created_at"):
        assert isinstance(payload[key], str)
    assert "error" not in payload


async def test_a_stateless_run_that_is_cancelled_reports_so(alma: str, receiver: Receiver) -> None:
    receiver.fail_first = 0
    client = get_client(url=alma)
    run = await client.runs.create(
        None, "manager", input=ANALYTICAL, webhook=receiver.url("/stateless"),
        context={"router": "heuristic", "max_plan_steps": 8},
    )  # fmt: skip
    await client.runs.cancel_many(thread_id=run["thread_id"], run_ids=[run["run_id"]])
    assert await asyncio.to_thread(receiver.arrived.wait, 30)
    [payload] = receiver.accepted
    assert payload["run_id"] == run["run_id"]
    assert payload["status"] == "interrupted"
    assert payload["error"] == {"error": "cancelled", "message": "the run was cancelled"}
    # Its thread was temporary, and is gone by now; its values were read before.
    assert payload["values"]["messages"][0]["content"] == ANALYTICAL["messages"][0]["content"]


@pytest.mark.parametrize(
    ("webhook", "reason"),
    [
        ("http://evil.example/hook", "not one the operator allows (ALMA_WEBHOOK_ALLOWED_HOSTS)"),
        ("http://127.1:9/hook", "shorthand form"),
        ("http://0x7f.1:9/hook", "shorthand form"),
        ("http://[::1]:9/hook", "not one the operator allows"),
        ("http://[::ffff:127.0.0.1]:9/hook", "not one the operator allows"),
        ("http://0.0.0.0:9/hook", "not one the operator allows"),
        ("http://localhost:9/hook", "loopback address"),
        ("http://allowed.example@127.0.0.1:9/hook", "credentials"),
        ("/threads", "absolute http"),
    ],
)
async def test_a_webhook_the_policy_refuses_is_refused_at_creation(
    alma: str, webhook: str, reason: str
) -> None:
    client = get_client(url=alma)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.create(None, "manager", input=HAIKU, webhook=webhook)
    assert refused.value.response.status_code == 422
    assert reason in refused.value.response.json()["detail"]


async def test_without_allowed_hosts_webhooks_are_off(redis: RedisServer) -> None:
    with alma_service(redis.url, prefix=f"nohooks-{uuid.uuid4().hex[:6]}") as service:
        client = get_client(url=service.url)
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await client.runs.wait(None, "manager", input=HAIKU, webhook="https://a.example/")
    assert refused.value.response.status_code == 422
    detail = refused.value.response.json()["detail"]
    assert "webhooks are off" in detail and "ALMA_WEBHOOK_ALLOWED_HOSTS" in detail
