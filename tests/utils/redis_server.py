"""A private `redis-server` per test session (or per test), on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.utils.processes import ServerProcess, free_port, running
from tests.utils.system_tools import require_tool


@dataclass
class RedisServer:
    """A running redis-server; `url` selects database 0."""

    port: int
    process: ServerProcess
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def redis_command(port: int, directory: Path, *extra: str) -> list[str]:
    return [
        require_tool("redis-server"),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        *extra,
    ]  # fmt: skip


@contextmanager
def redis_server(directory: Path, *extra: str, port: int | None = None) -> Iterator[RedisServer]:
    """Start redis-server (no persistence unless `extra` asks) and stop it afterwards."""
    port = port or free_port()
    command = redis_command(port, directory, *extra)
    with running(command, ready="Ready to accept connections", timeout=30) as process:
        yield RedisServer(port=port, process=process, directory=directory)
