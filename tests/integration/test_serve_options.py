"""What `alma serve` hands uvicorn, seen in the real server: event loop, WebSocket compression,
sockets without Nagle's algorithm."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.utils.processes import free_port
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration


@contextmanager
def serving(redis: RedisServer, name: str, value: str | None) -> Iterator[Service]:
    """`alma serve` with setting `name` at `value`, or at its default if `None`."""
    env = {} if value is None else {name: value}
    with alma_service(redis.url, prefix="serve-options", env=env) as service:
        yield service


def uvloop_loaded(pid: int) -> bool:
    """Whether the process has uvloop's compiled loop mapped into its memory."""
    return "uvloop/loop." in Path(f"/proc/{pid}/maps").read_text()


def negotiated(service: Service) -> str | None:
    """The extensions the server accepted for a client that offers permessage-deflate."""
    # websockets' client offers permessage-deflate unless told not to, as browsers do.
    url = service.url.replace("http://", "ws://") + f"/threads/{uuid.uuid4()}/stream/events"
    with connect(url) as socket:
        assert socket.response is not None
        return socket.response.headers.get("Sec-WebSocket-Extensions")


@pytest.mark.parametrize(("setting", "uvloop"), [(None, False), ("uvloop", True)])
def test_the_server_runs_on_the_configured_loop(
    redis: RedisServer, setting: str | None, uvloop: bool
) -> None:
    with serving(redis, "ALMA_EVENT_LOOP", setting) as service:
        assert uvloop_loaded(service.process.process.pid) is uvloop


@pytest.mark.parametrize(("setting", "compressed"), [(None, False), ("true", True)])
def test_websocket_compression_follows_the_setting(
    redis: RedisServer, setting: str | None, compressed: bool
) -> None:
    with serving(redis, "ALMA_WS_COMPRESSION", setting) as service:
        extensions = negotiated(service)
    assert (extensions is not None and "permessage-deflate" in extensions) is compressed


@pytest.mark.parametrize("workers", ["1", "2"])
def test_keep_alive_requests_do_not_wait_on_delayed_acks(redis: RedisServer, workers: str) -> None:
    # With Nagle's algorithm on, a response's second small write waits for the client's
    # ACK of the first, which Linux delays 40 ms: every request on a kept-alive connection
    # took 44 ms with two workers (their listening socket comes from uvicorn, and asyncio
    # turns Nagle off only on sockets that say they are TCP), 1 ms with one.
    with serving(redis, "ALMA_WORKERS", workers) as service, httpx.Client() as client:
        took = []
        for _ in range(21):  # the first request opens the connection; the rest reuse it
            began = time.perf_counter()
            assert client.get(f"{service.url}/health").is_success
            took.append(time.perf_counter() - began)
    assert statistics.median(took[1:]) < 0.02, [round(t * 1000, 1) for t in took]


@pytest.mark.parametrize(
    ("redis_url", "why"),
    [("", "ALMA_REDIS_URL is empty"), ("redis://127.0.0.1:{port}/0", "cannot be used")],
)
def test_several_workers_refuse_to_start_without_a_redis_to_share(redis_url: str, why: str) -> None:
    # Each would keep its own threads in memory: a thread made on one worker was not
    # found (404) on the other, request by request.
    env = {**os.environ, "ALMA_REDIS_URL": redis_url.format(port=free_port())}
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(free_port())]
    done = subprocess.run(
        [*command, "--workers", "2"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "several workers share threads, runs and limits through Redis" in done.stderr
    assert why in done.stderr
