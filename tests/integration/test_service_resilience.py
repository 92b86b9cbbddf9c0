"""The service under strain: many processes, many dropped connections, slow readers,
shutdown, and Redis dying under it."""

import asyncio
import os
import signal
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.agent_protocol.client import open_thread
from server.engine.events import is_terminal
from tests.utils.redis_server import RedisServer, redis_server
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

PACED = {"ALMA_SIMULATED_TOKENS_PER_SECOND": "250"}
ANALYTICAL = "Compare quicksort and mergesort for 10M integers"


def thread() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as client:
        result: dict[str, Any] = (await client.get("/stats")).json()
        return result


async def test_a_second_process_resumes_a_run_of_the_first(redis: RedisServer) -> None:
    with (
        alma_service(redis.url, prefix="multi", env=PACED) as first,
        alma_service(redis.url, prefix="multi", env=PACED) as second,
    ):
        thread_id = thread()
        async with open_thread(first.url, thread_id) as socket:
            await socket.subscribe("lifecycle", "messages")
            await socket.start(ANALYTICAL, context={"max_plan_steps": 2})
            seen = [await socket.next_event() for _ in range(10)]
        assert seen[-1] is not None
        async with open_thread(second.url, thread_id) as elsewhere:
            await elsewhere.subscribe("lifecycle", "messages", since=seen[-1]["seq"])
            rest = await elsewhere.until_terminal()
            # Cancel, too, reaches across processes.
            other = await elsewhere.command("run.cancel", run_id="not-running")
        assert other["error"] == "no_such_run"
        async with open_thread(second.url, thread_id) as replay:
            await replay.subscribe("lifecycle", "messages", since=0)
            everything = await replay.until_terminal()
        assert [*seen, *rest] == everything
        assert everything[-1]["params"]["data"]["event"] == "completed"


async def test_cancel_reaches_a_run_on_another_process(redis: RedisServer) -> None:
    with (
        alma_service(redis.url, prefix="multi", env=PACED) as first,
        alma_service(redis.url, prefix="multi", env=PACED) as second,
    ):
        thread_id = thread()
        async with open_thread(first.url, thread_id) as socket:
            await socket.subscribe("lifecycle")
            run_id = await socket.start(ANALYTICAL)
            async with open_thread(second.url, thread_id) as remote:
                answer = await remote.command("run.cancel", run_id=run_id)
                assert answer["type"] == "success", answer
            events = await socket.until_terminal(timeout=15)
        assert events[-1]["params"]["data"]["code"] == "cancelled"


async def test_five_hundred_dropped_connections_leave_nothing_behind(
    redis: RedisServer,
) -> None:
    # Slow enough that the run outlasts all 500 connections.
    env = {"ALMA_SIMULATED_TOKENS_PER_SECOND": "20"}
    with alma_service(redis.url, prefix="leaks", env=env) as service:
        await asyncio.sleep(0.5)  # let start-up tasks settle before taking the baseline
        baseline = await stats(service.url)
        thread_id = thread()
        async with open_thread(service.url, thread_id) as owner:
            await owner.subscribe("lifecycle")
            run_id = await owner.start(ANALYTICAL, context={"max_plan_steps": 8})

            async def drop_mid_stream(abruptly: bool) -> None:
                url = service.url.replace("http", "ws") + f"/threads/{thread_id}/stream/events"
                # No client-side flow control: while closing, a paused reader would
                # not see the server's close frame behind the tokens still coming.
                async with connect(url, max_queue=None) as websocket:
                    await websocket.send(
                        '{"id": 1, "method": "subscription.subscribe",'
                        ' "params": {"channels": ["messages"]}}'
                    )
                    await websocket.recv()  # the answer
                    await websocket.recv()  # and an event: mid-stream
                    if abruptly:
                        websocket.transport.abort()  # as a network failure would
                # else leaving the block closes the connection cleanly

            for _ in range(10):
                await asyncio.gather(*(drop_mid_stream(i % 2 == 0) for i in range(50)))
            during = await stats(service.url)
            assert during["active_runs"] == 1
            await owner.command("run.cancel", run_id=run_id)
            await owner.until_terminal()
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            after = await stats(service.url)
            settled = (after["subscriptions"], after["websockets"], after["active_runs"]) == (
                0,
                0,
                0,
            )
            if settled and after["tasks"] <= baseline["tasks"]:
                break
            assert asyncio.get_running_loop().time() < deadline, (baseline, after)
            await asyncio.sleep(0.1)  # the server tears connections down on its own time
        assert after["topics"] == 0


async def test_a_slow_reader_is_closed_and_can_resume(redis: RedisServer) -> None:
    env = {**PACED, "ALMA_SIMULATED_TOKENS_PER_SECOND": "0", "ALMA_SEND_QUEUE_SIZE": "16"}
    with alma_service(redis.url, prefix="slow", env=env) as service:
        thread_id = thread()
        # A reader that never reads, with the smallest socket buffer the kernel allows.
        raw = socket.create_connection(("127.0.0.1", service.port))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        url = service.url.replace("http", "ws") + f"/threads/{thread_id}/stream/events"
        async with connect(url, sock=raw, max_queue=1) as slow:
            await slow.send(
                '{"id": 1, "method": "subscription.subscribe", "params": {"channels": '
                '["messages", "values", "updates", "lifecycle"]}}'
            )
            async with open_thread(service.url, thread_id) as owner:
                await owner.subscribe("lifecycle")
                # Runs until the kernel's and uvicorn's buffers are full and the server
                # drops the slow subscription (only the owner's is left).
                for _ in range(30):
                    await owner.start(ANALYTICAL, context={"max_plan_steps": 8})
                    await owner.until_terminal()
                    if (await stats(service.url))["subscriptions"] == 1:
                        break
                assert (await stats(service.url))["subscriptions"] == 1
            # Now read: the server gave up on this connection.
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(slow.recv(), timeout=10)
            # The close frame queues behind everything the reader never took; when the
            # server gives up waiting for it to drain, the reader sees the socket drop
            # (1006) instead. Either way the server let go of it (asserted above).
            assert slow.close_code in (4008, 1006)
            if slow.close_code == 4008:
                assert "resume with since=" in (slow.close_reason or "")
        health = await stats(service.url)
        assert health["subscriptions"] == 0


async def test_shutdown_lets_runs_finish_and_tells_clients(redis: RedisServer) -> None:
    env = {**PACED, "ALMA_SHUTDOWN_GRACE_SECONDS": "20"}
    with alma_service(redis.url, prefix="drain", env=env) as service:
        thread_id = thread()
        async with open_thread(service.url, thread_id) as socket:
            await socket.subscribe("lifecycle")
            await socket.start("Write a haiku about rivers")
            os.kill(service.process.process.pid, signal.SIGTERM)
            while await socket.next_event() is not None:
                pass
            assert socket.close_code in (1001, 1012)
        # Uvicorn drains, then ends by the signal it caught, as the convention wants.
        assert service.process.process.wait(timeout=30) == -signal.SIGTERM
        assert any("Application shutdown complete" in line for line in service.process.output)
    # The run finished within the grace period, and its end is in the log for resume.
    with alma_service(redis.url, prefix="drain") as again:
        async with open_thread(again.url, thread_id) as replay:
            await replay.subscribe("lifecycle", since=0)
            events = await replay.until_terminal()
        assert events[-1]["params"]["data"]["event"] == "completed"


async def test_redis_dying_mid_run_fails_the_run_not_the_server_nor_the_thread(
    tmp_path: Path,
) -> None:
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    thread_id = thread()
    with redis_server(tmp_path, *durable) as first_redis:
        port = first_redis.port
        with alma_service(first_redis.url, prefix="fault", env=PACED) as service:
            async with open_thread(service.url, thread_id) as socket:
                await socket.subscribe("lifecycle")
                await socket.start("Write a haiku about rivers")
                assert (await socket.until_terminal())[-1]["params"]["data"]["event"] == (
                    "completed"
                )
                await socket.start(ANALYTICAL)
                await socket.next_event()
                first_redis.process.kill()
                events = await socket.until_terminal(timeout=90)
            ended = events[-1]["params"]["data"]
            assert is_terminal(events[-1]) and ended["event"] == "failed"
            assert ended["code"] == "storage_unavailable"
            async with httpx.AsyncClient(base_url=service.url) as client:
                assert (await client.get("/health")).status_code == 200
                down = await client.get("/ready")
                assert down.status_code == 503
                assert down.json()["components"]["redis"]["status"] == "down"
                # Redis restarts from its append-only file; ALMA was never restarted.
                with redis_server(tmp_path, *durable, port=port):
                    up = await client.get("/ready")
                    assert up.status_code == 200, up.json()
                    history = (await client.get(f"/threads/{thread_id}/history")).json()
                    assert history and all(entry["checkpoint_id"] for entry in history)
                    async with open_thread(service.url, thread_id) as socket:
                        await socket.subscribe("lifecycle")
                        run_id = await socket.start("Now write one about the sea")
                        ended = (await socket.until_terminal())[-1]["params"]["data"]
                    assert ended["run_id"] == run_id and ended["event"] == "completed"
                    # However long Redis was away, the log says how the failed run ended,
                    # before the next one began.
                    async with open_thread(service.url, thread_id) as replay:
                        await replay.subscribe("lifecycle", since=0)
                        logged = [e["params"]["data"] for e in await replay.until_terminal()]
                        # (root events carry their run id; a subgraph's do not)
                        while logged[-1].get("run_id") != run_id:
                            logged += [e["params"]["data"] for e in await replay.until_terminal()]
                    ends = [d for d in logged if d.get("run_id") and d["event"] != "running"]
                    assert [d.get("code") for d in ends[-2:]] == ["storage_unavailable", None]
                    state = (await client.get(f"/threads/{thread_id}/state")).json()
    said = [(m["type"], m["content"]) for m in state["values"]["messages"]]
    # The first turn survived whole; the failed one left no half answer behind it.
    assert said[0] == ("human", "Write a haiku about rivers") and said[1][0] == "ai"
    assert said[-2] == ("human", "Now write one about the sea") and said[-1][0] == "ai"
    assert all(text for _, text in said)


KILLABLE = {"ALMA_SIMULATED_TOKENS_PER_SECOND": "40", "ALMA_RUN_LEASE_SECONDS": "3"}
"""Answers that last seconds, and leases that lapse three seconds after a process dies."""


async def start_and_kill(first: Service, thread_id: str) -> list[dict[str, Any]]:
    """Start an analysis on `first`, read 15 of its events, then SIGKILL `first`."""
    async with open_thread(first.url, thread_id) as starter:
        await starter.subscribe("lifecycle", "messages")
        await starter.start(ANALYTICAL)
        seen = [await starter.next_event() for _ in range(15)]
        first.process.kill()  # mid-answer: no chance to say goodbye
    return [event for event in seen if event is not None]


async def resume(service: Service, thread_id: str, since: int) -> list[dict[str, Any]]:
    """Reconnect to `service` and read from `since` to the run's end."""
    async with open_thread(service.url, thread_id) as again:
        await again.subscribe("lifecycle", "messages", since=since)
        return await again.until_terminal(timeout=60)


@pytest.mark.parametrize("durability", ["exit", "async"])
async def test_a_killed_processs_run_ends_with_an_error_seen_elsewhere(
    redis: RedisServer, durability: str
) -> None:
    env = {**KILLABLE, "ALMA_DURABILITY": durability}
    prefix = f"killed-{durability}"
    with (
        alma_service(redis.url, prefix=prefix, env=env) as first,
        alma_service(redis.url, prefix=prefix, env=env) as second,
    ):
        thread_id = thread()
        async with open_thread(second.url, thread_id) as watcher:
            await watcher.subscribe("lifecycle", "messages")
            mine = await start_and_kill(first, thread_id)
            events = await watcher.until_terminal(timeout=60)
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(set(seqs))  # nothing repeated, nothing out of order
        ending = events[-1]["params"]["data"]
        assert (ending["event"], ending["code"]) == ("failed", "worker_lost")
        assert "send the message again" in ending["error"]
        # The starter reconnects to the survivor and resumes where it was.
        assert [*mine, *await resume(second, thread_id, mine[-1]["seq"])] == events
        # The thread is usable at once through the survivor, with its history intact.
        async with open_thread(second.url, thread_id) as socket:
            await socket.subscribe("lifecycle")
            await socket.start("Write a haiku about rivers", context={"route": "creative"})
            after = await socket.until_terminal(timeout=60)
        assert after[-1]["params"]["data"]["event"] == "completed"
        async with httpx.AsyncClient(base_url=second.url) as client:
            state = (await client.get(f"/threads/{thread_id}/state")).json()
        said = [(m["type"], m["content"]) for m in state["values"]["messages"]]
        assert said[-2][0] == "human" and said[-1][0] == "ai"
        # Saving only as a run ends, the killed run left nothing in the thread; saving
        # each step, it left its question (and the steps it had finished).
        first_said = "Write a haiku about rivers" if durability == "exit" else ANALYTICAL
        assert said[0] == ("human", first_said)


async def test_a_client_of_a_killed_process_resumes_elsewhere_and_hears_the_end(
    redis: RedisServer,
) -> None:
    with (
        alma_service(redis.url, prefix="alone", env=KILLABLE) as first,
        alma_service(redis.url, prefix="alone", env=KILLABLE) as second,
    ):
        thread_id = thread()
        # Nobody on the survivor is listening when the process dies.
        mine = await start_and_kill(first, thread_id)
        resumed = await resume(second, thread_id, mine[-1]["seq"])
        seqs = [e["seq"] for e in [*mine, *resumed]]
        assert seqs == sorted(set(seqs))
        assert resumed[-1]["params"]["data"]["code"] == "worker_lost"


async def test_sigterm_drains_while_the_listener_still_answers(redis: RedisServer) -> None:
    env = {**PACED, "ALMA_SHUTDOWN_GRACE_SECONDS": "20"}
    with alma_service(redis.url, prefix="drain-live", env=env) as service:
        async with (
            open_thread(service.url, thread()) as websocket,
            httpx.AsyncClient(base_url=service.url, timeout=60) as http,
        ):
            await websocket.subscribe("lifecycle", "messages")
            ours = await websocket.start(ANALYTICAL, context={"max_plan_steps": 3})
            assert await websocket.next_event() is not None  # mid-answer
            sse_thread = (await http.post("/threads", json={})).json()["thread_id"]
            body = {"assistant_id": "manager", "stream_mode": ["values"],
                    "input": {"messages": [{"role": "user", "content": ANALYTICAL}]},
                    "context": {"max_plan_steps": 3}}  # fmt: skip
            async with http.stream("POST", f"/threads/{sse_thread}/runs/stream", json=body) as sse:
                chunks = sse.aiter_text()
                assert "event: metadata" in await anext(chunks)

                os.kill(service.process.process.pid, signal.SIGTERM)
                # The listener still answers: readiness says no, new runs are refused.
                ready = await http.get("/ready")
                assert ready.status_code == 503
                assert ready.json()["components"]["server"]["detail"] == "shutting down"
                refused = await http.post("/runs/wait", json=body)
                assert refused.status_code == 503 and "shutting down" in refused.text
                # The answers in flight go on to their clients, to their end.
                rest = "".join([chunk async for chunk in chunks])
            # …the last state, with the whole answer, and a clean end of stream.
            assert "## Answer" in rest.rsplit("event: values", 1)[-1]
            assert "event: error" not in rest
            events = await websocket.until_terminal(timeout=60)
            ended = events[-1]["params"]["data"]
            assert ended["run_id"] == ours and ended["event"] == "completed"
            # Then the socket is closed with a code and a reason.
            while await websocket.next_event() is not None:
                pass
            assert websocket.close_code == 1012
            assert "reconnect" in websocket.close_reason
        assert service.process.process.wait(timeout=30) == -signal.SIGTERM


async def test_an_answer_that_outlasts_the_grace_period_ends_saying_why(
    redis: RedisServer,
) -> None:
    env = {"ALMA_SIMULATED_TOKENS_PER_SECOND": "40", "ALMA_SHUTDOWN_GRACE_SECONDS": "1"}
    with alma_service(redis.url, prefix="drain-cut", env=env) as service:
        async with open_thread(service.url, thread()) as websocket:
            await websocket.subscribe("lifecycle", "messages")
            ours = await websocket.start(ANALYTICAL, context={"max_plan_steps": 6})
            assert await websocket.next_event() is not None
            os.kill(service.process.process.pid, signal.SIGTERM)
            ended = (await websocket.until_terminal(timeout=60))[-1]["params"]["data"]
            assert ended["run_id"] == ours and ended["code"] == "cancelled"
            assert "shut down" in ended["error"] and "send the message again" in ended["error"]
        assert service.process.process.wait(timeout=30) == -signal.SIGTERM
