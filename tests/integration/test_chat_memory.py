"""`alma chat --thread` keeps a conversation in Redis across separate processes."""

import subprocess
import sys

import pytest

from memory.aio import AsyncRedisSaver
from tests.utils.processes import ROOT
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration


def chat(redis: RedisServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "ALMA_REDIS_URL": redis.url,
        "ALMA_REDIS_PREFIX": "chat-test",
        "ALMA_SIMULATED_TTFT": "0",
        "ALMA_SIMULATED_TOKENS_PER_SECOND": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "chat", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_second_invocation_remembers_the_first(redis: RedisServer) -> None:
    first = chat(redis, "--thread", "study-1", "Write a haiku about rivers")
    assert first.returncode == 0, first.stderr
    assert "conversation memory: Redis" in first.stderr
    second = chat(redis, "--thread", "study-1", "Compare quicksort and mergesort")
    assert second.returncode == 0, second.stderr

    async with AsyncRedisSaver.from_conn_string(redis.url, prefix="chat-test") as saver:
        latest = await saver.aget_tuple({"configurable": {"thread_id": "study-1"}})
    assert latest is not None
    messages = latest.checkpoint["channel_values"]["messages"]
    assert [m.type for m in messages] == ["human", "ai", "human", "ai"]
    assert messages[0].text == "Write a haiku about rivers"
    assert latest.checkpoint["channel_values"]["decision"]["route"] == "analytical"


def test_without_redis_chat_falls_back_to_process_memory_and_says_so(
    redis: RedisServer,
) -> None:
    dead = RedisServer(port=1, process=redis.process, directory=redis.directory)
    result = chat(dead, "Write a haiku about rivers")
    assert result.returncode == 0, result.stderr
    assert "process memory only" in result.stderr


def test_required_redis_that_is_down_stops_with_a_clear_message(redis: RedisServer) -> None:
    dead = RedisServer(port=1, process=redis.process, directory=redis.directory)
    env_args = ("Write a haiku about rivers",)
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "chat", *env_args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "ALMA_REDIS_URL": dead.url, "ALMA_REDIS_REQUIRED": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ALMA_REDIS_REQUIRED is set" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_later_invocation_writes_for_the_user_it_remembers(redis: RedisServer) -> None:
    first = chat(redis, "--thread", "ada", "My name is Ada and I like rivers")
    assert first.returncode == 0, first.stderr
    # A short reply, not a multi-step analysis.
    assert "→ creative" in first.stdout and "Plan" not in first.stdout
    assert "Nice to meet you, Ada. I'll remember that you like rivers." in first.stdout

    second = chat(redis, "--thread", "ada", "Write a short poem using my name")
    assert second.returncode == 0, second.stderr
    poem = second.stdout.split("\n\n", 1)[1].rsplit("\nfirst token", 1)[0]
    assert "Ada" in poem and "rivers" in poem
    assert "using my name" not in poem and "Write a short poem" not in poem
