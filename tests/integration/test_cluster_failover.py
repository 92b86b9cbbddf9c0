"""A Redis Cluster master killed and replaced by its replica: ALMA keeps every conversation.

Two ALMA processes share a cluster of three masters with one replica each. The master
ALMA was pointed at is killed (SIGKILL) while runs stream; its replica takes its slots,
and both processes carry on through the new master without a restart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from server.agent_protocol.client import ProtocolClient, open_thread
from server.engine.events import is_terminal
from tests.utils.redis_cluster import RedisCluster, redis_cluster
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

HAIKU = "Write a haiku about rivers"
FOLLOW_UP = "Write a poem about the sea"
# An analytical plan of 8 steps streamed at 250 tokens/s runs for about three seconds
# untroubled: it is still streaming when the master dies.
LONG = "Compare quicksort and mergesort for 10M integers"
LONG_CONTEXT = {"max_plan_steps": 8}
PREFIX = f"fo-{uuid.uuid4().hex[:6]}"
ENV = {"ALMA_REDIS_CLUSTER": "true", "ALMA_SIMULATED_TOKENS_PER_SECOND": "250"}


@dataclass(frozen=True)
class Shard:
    """A master, its replica, and the slots they serve."""

    master: RedisServer
    replica: RedisServer
    slots: tuple[tuple[int, int], ...]

    def serves(self, thread_id: str) -> bool:
        # Every key of a thread carries `{thread_id}`, so the tag alone names its slot.
        slot = key_slot(f"{{{thread_id}}}".encode())
        return any(low <= slot <= high for low, high in self.slots)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    # A 5 s node timeout: the replica takes over some six seconds after the kill, longer
    # than one batch's replays span (2.5 s), so the runs must outlast a real fail-over.
    directory = tmp_path_factory.mktemp("failover")
    with redis_cluster(directory, masters=3, replicas=1, node_timeout_ms=5000) as started:
        yield started


@pytest.fixture(scope="module")
def pair(cluster: RedisCluster) -> Iterator[tuple[Service, Service]]:
    with (
        alma_service(cluster.url, prefix=PREFIX, env=ENV) as first,
        alma_service(cluster.url, prefix=PREFIX, env=ENV) as second,
    ):
        yield first, second


async def cluster_nodes(port: int) -> dict[str, dict[str, Any]]:
    """`CLUSTER NODES` as one node sees it, by `host:port`."""
    async with Redis(port=port) as client:
        view: dict[str, dict[str, Any]] = await client.cluster("NODES")
    return {address.split("@")[0]: entry for address, entry in view.items()}


async def shards(cluster: RedisCluster) -> list[Shard]:
    by_address = {f"127.0.0.1:{node.port}": node for node in cluster.nodes}
    view = await cluster_nodes(cluster.nodes[0].port)
    address_of = {entry["node_id"]: address for address, entry in view.items()}
    found = []
    for address, entry in view.items():
        if "slave" in entry["flags"]:
            master = view[address_of[entry["master_id"]]]
            slots = tuple((int(low), int(high)) for low, high in master["slots"])
            found.append(
                Shard(by_address[address_of[master["node_id"]]], by_address[address], slots)
            )
    assert len(found) == 3, view
    return found


def thread_on(shard: Shard) -> str:
    """A new thread id whose keys live on `shard`."""
    while not shard.serves(thread_id := f"t-{uuid.uuid4().hex[:10]}"):
        pass
    return thread_id


async def poll(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    """Ask `check()` until it holds, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout:g} s")
        await asyncio.sleep(0.05)


async def wait_replicated(shard: Shard) -> None:
    """Until the replica holds everything its master has written so far."""
    async with Redis(port=shard.master.port) as master, Redis(port=shard.replica.port) as replica:
        written = (await master.info("replication"))["master_repl_offset"]

        async def caught_up() -> bool:
            info = await replica.info("replication")
            return bool(info["master_link_status"] == "up" and info["slave_repl_offset"] >= written)

        await poll(caught_up, "replicated")


async def wait_promoted(shard: Shard, survivors: list[RedisServer]) -> None:
    """Until every surviving node serves requests and names the replica master of the slots."""
    replica = f"127.0.0.1:{shard.replica.port}"

    async def promoted() -> bool:
        for node in survivors:
            async with Redis(port=node.port) as client:
                state = (await client.cluster("info"))["cluster_state"]
            entry = (await cluster_nodes(node.port))[replica]
            if state != "ok" or "master" not in entry["flags"] or not entry["slots"]:
                return False
        return True

    await poll(promoted, "promoted")


async def wait_listening(cluster: RedisCluster, channel: str, processes: int) -> None:
    """Until `processes` subscribers listen on `channel` (summed over the live nodes)."""

    async def listening() -> bool:
        total = 0
        for node in cluster.nodes:
            if node.process.process.poll() is not None:
                continue  # the killed master
            async with Redis(port=node.port) as client:
                [(_, count)] = await client.pubsub_numsub(channel)
            total += int(count)
        return total >= processes

    await poll(listening, f"{processes} processes listening on {channel}")


async def turn(service: Service, thread_id: str, text: str) -> dict[str, Any]:
    """Run one message on the thread to its end; the end's data."""
    async with open_thread(service.url, thread_id) as socket:
        await socket.subscribe("lifecycle")
        run_id = await socket.start(text)
        # A thread whose last run ended when its log could not be written (its master
        # had died) is told that end first, as the new run takes the thread.
        while (events := await socket.until_terminal()) and is_terminal(events[-1]):
            data: dict[str, Any] = events[-1]["params"]["data"]
            if data["run_id"] == run_id:
                return data
    raise AssertionError(f"the connection closed before run {run_id} ended")


async def streaming(
    stack: AsyncExitStack, service: Service, thread_id: str
) -> tuple[ProtocolClient, list[dict[str, Any]]]:
    """Start a long run; return once its answer streams, with the events seen so far."""
    socket = await stack.enter_async_context(open_thread(service.url, thread_id))
    await socket.subscribe("lifecycle", "messages")
    await socket.start(LONG, context=LONG_CONTEXT)
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["method"] != "messages":
        event = await socket.next_event()
        assert event is not None, "the connection closed before the answer streamed"
        seen.append(event)
    return socket, seen


async def read_thread(service: Service, thread_id: str) -> tuple[dict[str, Any], list[Any]]:
    """The thread's state and checkpoint history, over HTTP."""
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        state = await client.get(f"/threads/{thread_id}/state")
        history = await client.get(f"/threads/{thread_id}/history", params={"limit": 100})
    assert state.status_code == 200, state.text
    assert history.status_code == 200, history.text
    return state.json(), history.json()


def messages(state: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["type"], str(m["content"])) for m in state["values"]["messages"]]


async def test_a_master_failing_over_to_its_replica_loses_no_conversation(
    cluster: RedisCluster, pair: tuple[Service, Service]
) -> None:
    first, second = pair
    layout = await shards(cluster)
    # The node ALMA was given as its address dies: the processes must go on through the
    # nodes they learnt of from it.
    [doomed] = [shard for shard in layout if shard.master is cluster.nodes[0]]
    elsewhere = next(shard for shard in layout if shard is not doomed)
    survivors = [node for node in cluster.nodes if node is not doomed.master]

    remembered, untouched = thread_on(doomed), thread_on(elsewhere)
    assert (await turn(first, remembered, HAIKU))["event"] == "completed"
    assert (await turn(second, untouched, HAIKU))["event"] == "completed"
    before = await read_thread(first, remembered)
    assert [kind for kind, _ in messages(before[0])] == ["human", "ai"]
    # Replication is asynchronous: only what reached the replica can outlive the master.
    await wait_replicated(doomed)

    interrupted_thread, other_thread = thread_on(doomed), thread_on(elsewhere)
    async with AsyncExitStack() as stack:
        interrupted, interrupted_seen = await streaming(stack, first, interrupted_thread)
        other, other_seen = await streaming(stack, second, other_thread)
        killed = time.monotonic()
        doomed.master.process.kill()
        await wait_promoted(doomed, survivors)
        promoted_after = time.monotonic() - killed
        other_seen += await other.until_terminal()
        interrupted_seen += await interrupted.until_terminal()
        interrupted_end = interrupted_seen[-1]["params"]["data"]

    # The run whose master died under it ends, one way or the other, with a verdict:
    # completed (its writes waited out the fail-over) or failed for want of storage —
    # caught by the server, or by the graph around the subgraph whose checkpoint could
    # not be written, which files it as "internal" with Redis's own words.
    assert interrupted_end["event"] in ("completed", "failed"), interrupted_end
    if interrupted_end["event"] == "failed":
        error = interrupted_end["error"]
        storage_words = (f"127.0.0.1:{doomed.master.port}", "The cluster is down")
        assert interrupted_end["code"] == "storage_unavailable" or (
            interrupted_end["code"] == "internal" and any(w in error for w in storage_words)
        ), interrupted_end
        assert "Traceback" not in error, interrupted_end
    # Its event log holds everything its client saw, to its end — what the new master
    # lacked (written after the kill, or not yet replicated) was written again there.
    async with open_thread(second.url, interrupted_thread) as replay:
        await replay.subscribe("lifecycle", "messages", since=0)
        assert await replay.until_terminal() == interrupted_seen
    # The run on another master streamed through the fail-over, finished, and its event
    # log replays whole from the other process.
    other_end = other_seen[-1]["params"]["data"]
    assert other_end["event"] == "completed", (other_end, f"promoted in {promoted_after:.1f} s")
    async with open_thread(first.url, other_thread) as replay:
        await replay.subscribe("lifecycle", "messages", since=0)
        assert await replay.until_terminal() == other_seen

    # The conversation written before the kill reads back unchanged, from either process.
    for service in pair:
        assert await read_thread(service, remembered) == before
    # It goes on, on the promoted replica, remembering its first turn.
    assert (await turn(second, remembered, FOLLOW_UP))["event"] == "completed"
    state, history = await read_thread(first, remembered)
    assert [kind for kind, _ in messages(state)] == ["human", "ai", "human", "ai"]
    assert messages(state)[:2] == messages(before[0])
    assert messages(state)[2] == ("human", FOLLOW_UP)
    assert len(history) > len(before[1])

    # The interrupted thread, a new thread on the promoted master, and a thread elsewhere
    # all take runs.
    assert (await turn(first, interrupted_thread, FOLLOW_UP))["event"] == "completed"
    interrupted_state, _ = await read_thread(second, interrupted_thread)
    assert messages(interrupted_state)[-2] == ("human", FOLLOW_UP)
    assert messages(interrupted_state)[-1][0] == "ai"
    assert (await turn(second, thread_on(doomed), HAIKU))["event"] == "completed"
    assert (await turn(first, untouched, FOLLOW_UP))["event"] == "completed"

    # Both processes hear each other again: a cancel sent through one reaches a run on
    # the other, on the promoted master.
    await wait_listening(cluster, f"{PREFIX}:control", processes=2)
    cancelled_thread = thread_on(doomed)
    async with open_thread(first.url, cancelled_thread) as socket:
        await socket.subscribe("lifecycle")
        run_id = await socket.start(LONG, context=LONG_CONTEXT)
        async with open_thread(second.url, cancelled_thread) as remote:
            answer = await remote.command("run.cancel", run_id=run_id)
            assert answer["type"] == "success", answer
        events = await socket.until_terminal(timeout=15)
    assert events[-1]["params"]["data"]["code"] == "cancelled"
