"""nginx on loopback in front of ALMA processes, from loadtests/nginx/alma.conf."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from loadtests.processes import LOOPBACK, Server, start
from memory.bench import free_port

CONFIG = Path(__file__).resolve().parent / "nginx" / "alma.conf"


def render(directory: Path, port: int, upstreams: Sequence[str]) -> str:
    """The config with its placeholders filled."""
    servers = "\n        ".join(f"server {address};" for address in upstreams)
    return (
        CONFIG.read_text()
        .replace("{dir}", str(directory))
        .replace("{port}", str(port))
        .replace("{servers}", servers)
    )


@contextmanager
def nginx(directory: Path, backends: Sequence[Server]) -> Iterator[Server]:
    """Run nginx, balancing over `backends` (round robin, no stickiness), for the block."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    upstreams = [backend.url.removeprefix("http://") for backend in backends]
    config = directory / "nginx.conf"
    config.write_text(render(directory, port, upstreams))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    command = [binary, "-c", str(config), "-p", str(directory)]
    url = f"http://{LOOPBACK}:{port}"
    with start("nginx", command, url=url, health="/health", env={},
               log=directory / "nginx.out") as server:  # fmt: skip
        yield server
