"""`alma chat`'s commands, in process and against a keyed server.

`/edit` and `/retry`: each re-run forks the thread where the last turn started, so every
earlier answer stays in the thread's history, and the conversation goes on from the
newest branch. `/memories` and `/forget KEY`: what ALMA remembers of the user.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.guard.auth import new_key
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

KEY, ENTRY = new_key("alice")
PREFIX = "chat-commands"
ROUTE = ["--router", "heuristic", "--route", "creative"]
LINES = (
    "Write a poem about rivers",
    "/edit Write a poem about lakes",
    "/retry",
    "Now one about mountains",
)


@pytest.fixture(scope="module")
def service(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix=PREFIX, env={"ALMA_API_KEYS": ENTRY}) as running:
        yield running


async def chat(*args: str, env: dict[str, str], stdin: str = "") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "chat", *ROUTE, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **env},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def conversation(state: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["type"], m["content"]) for m in state["values"].get("messages", [])]


async def history(service: Service, thread_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=service.url, headers={"x-api-key": KEY}) as http:
        answer = await http.post(f"/threads/{thread_id}/history", json={"limit": 100})
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found


def answers_to(states: list[dict[str, Any]], first: str) -> set[str]:
    """The ids of the answers given to `first` as a conversation's first message."""
    found = set()
    for state in states:
        messages = state["values"].get("messages", [])
        if len(messages) >= 2 and messages[0]["content"] == first:
            found.add(messages[1]["id"])
    return found


def check_branches(states: list[dict[str, Any]]) -> None:
    """Latest: the lakes turn (retried) and mountains; every earlier answer still there."""
    latest = conversation(states[0])
    assert [text for kind, text in latest if kind == "human"] == [
        "Write a poem about lakes", "Now one about mountains",
    ]  # fmt: skip
    assert [kind for kind, _ in latest] == ["human", "ai", "human", "ai"]
    # The first answer is kept on its branch; the edit and the retry each answered the
    # lakes poem on a branch of their own.
    assert len(answers_to(states, "Write a poem about rivers")) == 1
    assert len(answers_to(states, "Write a poem about lakes")) == 2


async def test_several_messages_to_a_server_are_answered_in_turn(service: Service) -> None:
    # Regression: each turn subscribed anew, and the replayed end of the turn before
    # ended it at once; the next message then found the thread busy and was refused.
    lines = "Write a poem about rivers\nNow one about lakes\nAnd one about the sea\n"
    status, out, err = await chat("--url", service.url, env={"ALMA_API_KEY": KEY}, stdin=lines)
    assert status == 0, err[-2000:]
    assert out.count(" · thread ") == 3
    # One subscription for the whole chat: each poem is printed once, whole.
    assert out.count("→ creative") == 3
    assert out.count("I went to find rivers at the edge of day,") == 1


async def test_edit_and_retry_over_a_keyed_server(service: Service) -> None:
    thread_id = str(uuid.uuid4())
    status, out, err = await chat(
        "--url", service.url, "--thread", thread_id,
        env={"ALMA_API_KEY": KEY}, stdin="\n".join(LINES) + "\n",
    )  # fmt: skip
    assert status == 0, err[-2000:]
    assert out.count("thread " + thread_id) == 4, "four turns were answered"
    check_branches(await history(service, thread_id))


async def test_edit_and_retry_in_process(service: Service, redis: RedisServer) -> None:
    thread_id = str(uuid.uuid4())
    env = {"ALMA_REDIS_URL": redis.url, "ALMA_REDIS_PREFIX": PREFIX,
           "ALMA_SIMULATED_TTFT": "0", "ALMA_SIMULATED_TOKENS_PER_SECOND": "0"}  # fmt: skip
    status, _, err = await chat(
        "--owner", "alice", "--thread", thread_id, env=env, stdin="\n".join(LINES) + "\n"
    )
    assert status == 0, err[-2000:]
    check_branches(await history(service, thread_id))


async def test_a_rerun_before_any_message_is_explained(service: Service) -> None:
    status, out, err = await chat(
        "--url", service.url, env={"ALMA_API_KEY": KEY}, stdin="/retry\n/edit\n"
    )
    assert status == 0 and out == ""
    assert "/retry: there is no message to re-run yet" in err


async def test_without_its_key_a_keyed_server_refuses_the_chat(service: Service) -> None:
    status, _, err = await chat("--url", service.url, "Hello", env={"ALMA_API_KEY": ""})
    assert status == 1
    assert f"alma: cannot talk to {service.url}" in err


MEMORY_LINES = (
    "I work in Rust.",
    "/memories",
    "/forget work",
    "/forget work",
    "/memories",
    "/forget",
)


def check_memories(out: str) -> None:
    listed, after = out.split("forgotten: work\n", 1)
    assert "  work: you work in Rust\n" in listed
    assert "no memory 'work' (see /memories)" in after
    assert "(ALMA remembers nothing of you)" in after
    assert "/forget needs the memory's key: /forget KEY (see /memories)" in after


async def test_memories_are_listed_and_forgotten_on_a_keyed_server(service: Service) -> None:
    status, out, err = await chat(
        "--url", service.url, env={"ALMA_API_KEY": KEY}, stdin="\n".join(MEMORY_LINES) + "\n"
    )
    assert status == 0, err[-2000:]
    check_memories(out)
    async with httpx.AsyncClient(base_url=service.url, headers={"x-api-key": KEY}) as http:
        found = await http.post("/store/items/search", json={"namespace_prefix": ["memories"]})
    assert found.json()["items"] == []


async def test_memories_are_listed_and_forgotten_in_process(redis: RedisServer) -> None:
    env = {"ALMA_REDIS_URL": redis.url, "ALMA_REDIS_PREFIX": f"{PREFIX}-local",
           "ALMA_SIMULATED_TTFT": "0", "ALMA_SIMULATED_TOKENS_PER_SECOND": "0"}  # fmt: skip
    status, out, err = await chat("--owner", "carol", env=env, stdin="\n".join(MEMORY_LINES) + "\n")
    assert status == 0, err[-2000:]
    check_memories(out)
