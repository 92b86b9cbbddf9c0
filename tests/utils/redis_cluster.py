"""A Redis Cluster of our own on loopback ports: masters (and replicas) started by the test."""

from __future__ import annotations

import random
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.utils.redis_server import RedisServer, redis_server
from tests.utils.system_tools import require_tool


@dataclass
class RedisCluster:
    """A running cluster; `url` names one node, from which clients discover the rest."""

    nodes: list[RedisServer]
    password: str | None = None

    @property
    def url(self) -> str:
        url = self.nodes[0].url
        return url.replace("redis://", f"redis://:{self.password}@") if self.password else url


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, as Redis needs."""
    while True:
        port = random.randint(20_000, 45_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


@contextmanager
def redis_cluster(
    directory: Path,
    masters: int = 3,
    replicas: int = 0,
    node_timeout_ms: int = 2000,
    password: str | None = None,
) -> Iterator[RedisCluster]:
    """Start `masters × (1 + replicas)` nodes, join them into a cluster, stop them after.

    `node_timeout_ms` is how long a silent node takes to be declared failed, which is
    most of the time a replica takes to replace a dead master. With `password`, every
    node requires it (and replicas use it with their masters).
    """
    auth = ["--requirepass", password, "--masterauth", password] if password else []
    cli_auth = ["-a", password, "--no-auth-warning"] if password else []
    with ExitStack() as stack:
        nodes = []
        for index in range(masters * (1 + replicas)):
            folder = directory / f"node-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            nodes.append(stack.enter_context(redis_server(
                folder, "--cluster-enabled", "yes",
                "--cluster-config-file", str(folder / "nodes.conf"),
                "--cluster-node-timeout", str(node_timeout_ms), *auth, port=cluster_port(),
            )))  # fmt: skip
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            [require_tool("redis-cli"), *cli_auth, "--cluster", "create", *addresses,
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        _wait_ok(nodes, cli_auth)
        yield RedisCluster(nodes=nodes, password=password)


def _wait_ok(nodes: list[RedisServer], cli_auth: list[str], attempts: int = 100) -> None:
    # The cluster agrees on its slots a moment after `create` returns.
    for _ in range(attempts):
        states = [
            subprocess.run(
                [require_tool("redis-cli"), *cli_auth, "-p", str(node.port), "cluster", "info"],
                capture_output=True, text=True, timeout=10,
            ).stdout
            for node in nodes
        ]  # fmt: skip
        if all("cluster_state:ok" in state for state in states):
            return
        subprocess.run(
            [require_tool("redis-cli"), *cli_auth, "-p", str(nodes[0].port), "ping"],
            capture_output=True,
        )
    raise RuntimeError("the cluster did not reach cluster_state:ok")
