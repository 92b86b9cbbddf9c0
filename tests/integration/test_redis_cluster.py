"""Two ALMA processes on a 3-master Redis Cluster: every Redis use works across slots."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.agent_protocol.client import open_thread
from tests.utils.processes import free_port
from tests.utils.redis_cluster import RedisCluster, redis_cluster
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

ANALYTICAL = "Compare quicksort and mergesort for 10M integers"
ENV = {
    "ALMA_REDIS_CLUSTER": "true",
    "ALMA_SIMULATED_TOKENS_PER_SECOND": "250",
    "ALMA_CACHE_TTL": "600",
    "ALMA_LIMIT_RUNS": "12",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.fixture(scope="module")
def pair(cluster: RedisCluster) -> Iterator[tuple[Service, Service]]:
    prefix = f"cl-{uuid.uuid4().hex[:6]}"
    with (
        alma_service(cluster.url, prefix=prefix, env=ENV) as first,
        alma_service(cluster.url, prefix=prefix, env=ENV) as second,
    ):
        yield first, second


def thread() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_a_run_on_one_process_is_resumed_read_and_replayed_on_the_other(
    pair: tuple[Service, Service],
) -> None:
    first, second = pair
    thread_id = thread()
    async with open_thread(first.url, thread_id) as socket:
        await socket.subscribe("lifecycle", "messages")
        await socket.start(ANALYTICAL, context={"max_plan_steps": 2})
        seen = [await socket.next_event() for _ in range(10)]
    assert seen[-1] is not None
    async with open_thread(second.url, thread_id) as elsewhere:
        await elsewhere.subscribe("lifecycle", "messages", since=seen[-1]["seq"])
        rest = await elsewhere.until_terminal()
    assert rest[-1]["params"]["data"]["event"] == "completed"
    async with open_thread(second.url, thread_id) as replay:
        await replay.subscribe("lifecycle", "messages", since=0)
        assert await replay.until_terminal() == [*seen, *rest]
    # The checkpoints (keys spread over the cluster's slots by thread) read back anywhere.
    async with httpx.AsyncClient(base_url=second.url) as client:
        state = (await client.get(f"/threads/{thread_id}/state")).json()
        listed = (await client.get("/threads")).json()
        history = (await client.get(f"/threads/{thread_id}/history")).json()
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai"]
    assert thread_id in {t["thread_id"] for t in listed}
    assert len(history) == 1  # the run's steps, saved once as it ended


async def test_cancel_and_the_run_limit_reach_across_processes(
    pair: tuple[Service, Service],
) -> None:
    first, second = pair
    thread_id = thread()
    async with open_thread(first.url, thread_id) as socket:
        await socket.subscribe("lifecycle")
        run_id = await socket.start(ANALYTICAL)
        async with open_thread(second.url, thread_id) as remote:
            answer = await remote.command("run.cancel", run_id=run_id)
            assert answer["type"] == "success", answer
        events = await socket.until_terminal(timeout=15)
    assert events[-1]["params"]["data"]["code"] == "cancelled"

    # The run limit (12 per window, this test module's runs included) is one count in
    # the cluster, whichever process takes the run.
    refused = None
    for index in range(14):
        service = pair[index % 2]
        async with open_thread(service.url, thread()) as socket:
            answer = await socket.command(
                "run.start", assistant_id="manager",
                input={"messages": [{"role": "user", "content": "Write a haiku"}]},
            )  # fmt: skip
        if answer["type"] == "error":
            refused = answer
            break
    assert refused is not None and refused["error"] == "permission_denied"
    assert "12 runs per 60 s" in refused["message"]


def test_the_cluster_holds_each_threads_keys_in_one_slot(
    cluster: RedisCluster, pair: tuple[Service, Service]
) -> None:
    from redis.cluster import RedisCluster as Client
    from redis.crc import key_slot

    client = Client.from_url(cluster.url)
    try:
        keys = [k.decode() for k in client.scan_iter(match="cl-*", target_nodes=Client.ALL_NODES)]
        by_thread: dict[str, set[int]] = {}
        for key in keys:
            if "{" in key:
                tag = key[key.index("{") + 1 : key.index("}")]
                by_thread.setdefault(tag, set()).add(key_slot(key.encode()))
    finally:
        client.close()
    assert len(by_thread) >= 3
    assert all(len(slots) == 1 for slots in by_thread.values()), by_thread
    assert len({next(iter(s)) for s in by_thread.values()}) > 1  # spread over the slots


async def test_a_cluster_with_a_password_and_a_dead_seed_serves_runs_and_limits(
    tmp_path: Path,
) -> None:
    with redis_cluster(tmp_path, password="s3cret") as secured:
        # The URL names a node that is not there; the others are given as seeds.
        down = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in secured.nodes)
        env = {"ALMA_REDIS_CLUSTER": "true", "ALMA_REDIS_CLUSTER_NODES": seeds,
               "ALMA_LIMIT_RUNS": "2"}  # fmt: skip
        with alma_service(down, prefix=f"pw-{uuid.uuid4().hex[:6]}", env=env) as service:
            body = {"assistant_id": "manager", "context": {"route": "creative"},
                    "input": {"messages": [{"role": "user", "content": "A haiku"}]}}  # fmt: skip
            async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
                answers = [await client.post("/runs/wait", json=body) for _ in range(3)]
    # The run limit is counted in the cluster, through the service's own client.
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert "Traceback" not in "".join(service.process.output)
