"""Two ALMA processes behind nginx with no sticky sessions: any process serves any run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.balancer import nginx
from loadtests.processes import Server, alma_server
from server.agent_protocol.client import open_thread
from server.engine.events import is_terminal
from tests.utils.redis_server import RedisServer
from tests.utils.system_tools import require_tool

pytestmark = pytest.mark.integration

ANALYTICAL = "Compare quicksort and mergesort for 10M integers"
HAIKU = {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]}
RUNS_PER_CLIENT = 4
ENV = {
    "ALMA_PROVIDER": "simulated",
    "ALMA_SIMULATED_TOKENS_PER_SECOND": "150",
    "ALMA_LIMIT_RUNS": str(RUNS_PER_CLIENT),
}


@pytest.fixture(scope="module")
def balanced(redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_tool("nginx")
    prefix = f"lb-{uuid.uuid4().hex[:6]}"
    env = {**ENV, "ALMA_REDIS_PREFIX": prefix}
    with (
        alma_server(redis.url, env=env) as first,
        alma_server(redis.url, env=env) as second,
        nginx(Path(tmp_path_factory.mktemp("nginx")), [first, second]) as balancer,
    ):
        yield balancer


def instance(url: str) -> str:
    with httpx.Client(base_url=url, timeout=10) as client:  # a new connection each time
        return str(client.get("/health").json()["instance"])


def test_requests_spread_over_both_processes(balanced: Server) -> None:
    assert len({instance(balanced.url) for _ in range(6)}) == 2


async def test_a_run_is_resumed_and_replayed_through_whichever_process_answers(
    balanced: Server,
) -> None:
    thread_id = f"t-{uuid.uuid4().hex[:10]}"
    async with open_thread(balanced.url, thread_id) as socket:
        await socket.subscribe("lifecycle", "messages")
        await socket.start(ANALYTICAL, context={"max_plan_steps": 2})
        seen = [await socket.next_event() for _ in range(20)]
    assert seen[-1] is not None
    # Each reconnection may land on either process; the stream continues regardless.
    rest: list[dict[str, Any]] = []
    since = seen[-1]["seq"]
    ended = False
    while not ended:
        async with open_thread(balanced.url, thread_id) as again:
            await again.subscribe("lifecycle", "messages", since=since)
            for _ in range(15):
                event = await again.next_event()
                assert event is not None
                rest.append(event)
                since = event["seq"]
                if is_terminal(event):
                    ended = True
                    break
    async with open_thread(balanced.url, thread_id) as replay:
        await replay.subscribe("lifecycle", "messages", since=0)
        everything = await replay.until_terminal()
    assert [*seen, *rest] == everything
    assert everything[-1]["params"]["data"]["event"] == "completed"


async def test_cancel_through_the_balancer_reaches_the_run(balanced: Server) -> None:
    thread_id = f"t-{uuid.uuid4().hex[:10]}"
    async with open_thread(balanced.url, thread_id) as socket:
        await socket.subscribe("lifecycle")
        run_id = await socket.start(ANALYTICAL)
        for _ in range(3):  # several connections: some land on the other process
            async with open_thread(balanced.url, thread_id) as other:
                answer = await other.command("run.cancel", run_id=run_id)
                if answer["type"] == "success":
                    break
        events = await socket.until_terminal(timeout=30)
    assert events[-1]["params"]["data"]["code"] == "cancelled"


async def test_run_limits_count_each_client_behind_the_balancer_across_processes(
    balanced: Server,
) -> None:
    # nginx appends the peer it saw; ALMA believes the header from nginx (loopback, the
    # default ALMA_FORWARDED_ALLOW_IPS) and so counts the address the client claimed.
    block = uuid.uuid4().int % 250 + 1
    alice, bob = f"10.{block}.0.1", f"10.{block}.0.2"

    async def start(client: httpx.AsyncClient, address: str) -> int:
        answer = await client.post(
            f"/threads/t-{uuid.uuid4().hex[:10]}/commands",
            json={"id": 1, "method": "run.start",
                  "params": {"assistant_id": "manager", "input": HAIKU}},
            headers={"X-Forwarded-For": address},
        )  # fmt: skip
        return answer.status_code

    async with httpx.AsyncClient(base_url=balanced.url, timeout=10) as client:
        # Round robin sends consecutive starts to alternate processes: one shared count.
        alices = [await start(client, alice) for _ in range(RUNS_PER_CLIENT + 1)]
        bobs = await start(client, bob)
    assert alices == [200] * RUNS_PER_CLIENT + [429]
    assert bobs == 200
