"""While Redis is away, every route that needs it says so: 503 `storage_unavailable`.

A client can act on a JSON 503 with `Retry-After`, and on a WebSocket closed with 1013
and a reason; a text/plain 500, or a socket dropped without a close frame, tells it
nothing. The log gets one line per refusal, not a traceback.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis

from tests.utils.redis_server import redis_server
from tests.utils.service import alma_service

pytestmark = pytest.mark.integration


def redis_client(url: str) -> Redis:
    return Redis.from_url(url)


HAIKU = {
    "assistant_id": "manager",
    "context": {"route": "creative"},
    "input": {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]},
}


async def test_with_redis_down_every_route_answers_503_and_sockets_close_with_1013(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path) as redis, alma_service(redis.url, prefix="outage") as service:
        thread = f"t-{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            created = await client.post("/threads", json={"thread_id": thread})
            assert created.status_code == 200, created.text
            assert (await client.post(f"/threads/{thread}/runs/wait", json=HAIKU)).is_success
            redis.process.kill()

            requests = [
                ("POST", "/threads", {}),
                ("GET", f"/threads/{thread}", None),
                ("GET", f"/threads/{thread}/state", None),
                ("POST", "/threads/search", {}),
                ("GET", f"/threads/{thread}/runs", None),
                ("POST", f"/threads/{thread}/runs/wait", HAIKU),
                ("POST", "/runs/wait", HAIKU),
                ("POST", f"/threads/{thread}/commands",
                 {"id": 1, "method": "state.get", "params": {}}),
            ]  # fmt: skip
            for method, path, body in requests:
                answer = await client.request(method, path, json=body)
                assert answer.status_code == 503, (method, path, answer.status_code, answer.text)
                assert answer.headers["content-type"] == "application/json", (method, path)
                assert answer.json()["error"] == "storage_unavailable"
                assert int(answer.headers["retry-after"]) > 0

        url = service.url.replace("http://", "ws://") + f"/threads/{thread}/stream/events"
        async with websockets.connect(url) as socket:
            await socket.send('{"id": 1, "method": "state.get", "params": {}}')
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await socket.recv()
        assert closed.value.rcvd is not None, "closed without a close frame"
        assert closed.value.rcvd.code == 1013
        assert "storage is unavailable" in closed.value.rcvd.reason

    log = "".join(service.process.output)
    assert "Traceback" not in log and "Exception in ASGI application" not in log
    assert log.count("storage unavailable (") >= len(requests)


async def test_the_first_run_after_a_redis_restart_logs_its_events(tmp_path: Path) -> None:
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    with (
        redis_server(tmp_path, *durable) as redis,
        alma_service(redis.url, prefix="restart") as service,
    ):
        port = redis.port
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            before = (await client.post("/threads", json={})).json()["thread_id"]
            assert (await client.post(f"/threads/{before}/runs/wait", json=HAIKU)).is_success
            redis.process.kill()
            # Back on the same port: the service's pooled connections are all dead now.
            with redis_server(tmp_path, *durable, port=port) as again:
                made = await client.post("/threads", json={})
                assert made.is_success, made.text
                after = made.json()["thread_id"]
                answer = await client.post(f"/threads/{after}/runs/wait", json=HAIKU)
                assert answer.is_success, answer.text
                client_of_redis = redis_client(again.url)
                try:
                    entries: Any = await client_of_redis.xrange(f"restart:{{{after}}}:events")
                    logged = sum(len(fields) for _, fields in entries)  # a batch an entry
                finally:
                    await client_of_redis.aclose()
    assert logged > 10, "the run's events were not logged"
    log = "".join(service.process.output)
    assert "event log of thread" not in log, log[-3000:]
