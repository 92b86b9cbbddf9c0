"""Idle HTTP connections: kept as long as ALMA_HTTP_KEEP_ALIVE_SECONDS says, by the real server."""

from __future__ import annotations

import socket
import time

import pytest

from tests.utils.redis_server import RedisServer
from tests.utils.service import alma_service

pytestmark = pytest.mark.integration

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


def answered(connection: socket.socket) -> bytes:
    """One response to `REQUEST`, read whole (its body is small and has a length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))  # fmt: skip
    while len(body) < length:
        body += connection.recv(65536)
    return head


def test_an_idle_connection_is_kept_for_the_configured_seconds(redis: RedisServer) -> None:
    env = {"ALMA_HTTP_KEEP_ALIVE_SECONDS": "1"}
    with (
        alma_service(redis.url, prefix="keep-alive", env=env) as service,
        socket.create_connection(("127.0.0.1", service.port), timeout=15) as connection,
    ):
        connection.sendall(REQUEST)
        assert answered(connection).startswith(b"HTTP/1.1 200")
        connection.sendall(REQUEST)  # the same connection serves the next request
        assert answered(connection).startswith(b"HTTP/1.1 200")
        idle = time.monotonic()
        assert connection.recv(1) == b""  # the server closes it once it has been idle
        # After the configured second, well before uvicorn's default of 5.
        assert time.monotonic() - idle < 4
