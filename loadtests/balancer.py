"""nginx on loopback in front of ALMA processes, from loadtests/nginx/alma.conf."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from loadtests.processes import LOOPBACK, Server, alma_server, free_port, start

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


@contextmanager
def alma_behind_nginx(
    redis_url: str,
    *,
    logs: Sequence[Path],
    directory: Path,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
) -> Iterator[tuple[Server, list[Server]]]:
    """One `alma serve` per log file, sharing `redis_url`, behind nginx; (nginx, processes).

    nginx keeps its files in `directory`.
    """
    # Processes serve each other's threads only when they read and write the same keys.
    shared = {**(env or {}), "ALMA_REDIS_PREFIX": f"load-{uuid.uuid4().hex[:8]}"}
    with ExitStack() as stack:
        backends = []
        for log in logs:
            log.parent.mkdir(parents=True, exist_ok=True)
            backends.append(
                stack.enter_context(alma_server(redis_url, env=shared, workers=workers, log=log))
            )
        yield stack.enter_context(nginx(directory, backends)), backends
