"""`alma chat --url` is a client of a running server, and shows what the local chat shows."""

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.utils.processes import ROOT, free_port
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

INSTANT = {
    "PATH": "/usr/bin:/bin",
    "ALMA_SIMULATED_TTFT": "0",
    "ALMA_SIMULATED_TOKENS_PER_SECOND": "0",
}


@pytest.fixture(scope="module")
def service(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix="remote-chat") as running:
        yield running


def chat(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "chat", *args],
        cwd=ROOT,
        env={**INSTANT, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def without_summary(output: str) -> list[str]:
    """The printed run, less its last line (timings differ from run to run)."""
    return output.rstrip("\n").split("\n")[:-1]


def test_remote_chat_prints_what_the_local_chat_prints(
    service: Service, redis: RedisServer
) -> None:
    question = "Compare quicksort and mergesort for 10M integers"
    remote = chat("--url", service.url.replace("http", "ws"), "--max-steps", "2", question)
    assert remote.returncode == 0, remote.stderr
    local = chat("--max-steps", "2", question, ALMA_REDIS_URL=redis.url)
    assert local.returncode == 0, local.stderr

    shown = without_summary(remote.stdout)
    assert shown == without_summary(local.stdout)
    assert shown[0].startswith("→ analytical")
    assert "[step 2 of 2]" in remote.stdout
    assert remote.stdout.rstrip().split("\n")[-1].startswith("first token")


async def test_remote_chat_keeps_one_thread_across_messages(service: Service) -> None:
    result = chat(
        "--url",
        service.url,
        "--thread",
        "remote-1",
        stdin="Write a haiku about rivers\nNow one about the sea\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("thread remote-1") == 2

    async with httpx.AsyncClient(base_url=service.url) as client:
        answer = await client.post(
            "/threads/remote-1/commands", json={"id": 1, "method": "state.get", "params": {}}
        )
    messages = answer.json()["result"]["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "human", "ai"]


def test_a_server_that_is_not_there_is_a_clear_error() -> None:
    result = chat("--url", f"ws://127.0.0.1:{free_port()}", "Write a haiku about rivers")
    assert result.returncode == 1
    assert "cannot talk to ws://127.0.0.1:" in result.stderr
