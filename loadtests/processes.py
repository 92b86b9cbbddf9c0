"""The processes a benchmark or load run starts: ALMA, `langgraph dev`, a model simulator.

A private `redis-server` too, when the run is given no Redis.

Each starts on a free loopback port, is ready when its health URL answers, and is
stopped (SIGTERM, then SIGKILL) when the block ends.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psutil
import redis

from memory.connection import redact_url

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 90.0
REDIS_START_TIMEOUT_S = 10.0

# A load run is one client opening many streams: per-caller limits would refuse it.
UNLIMITED = {
    "ALMA_LIMIT_CONNECTIONS": "100000",
    "ALMA_LIMIT_RUNS": "100000000",
    "ALMA_LIMIT_TOKENS": "1000000000000",
}


class StartError(RuntimeError):
    """A process did not start; the message says which and why."""


def raise_descriptor_limit(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; the soft limit now.

    The server under test and Locust are children and inherit it (Locust raises its own
    only as far as 10,000); the locustfile calls it too, for Locust run on its own.

    Raises:
        StartError: when the hard limit is below `needed`: the load would lose sockets.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    if hard != unlimited and hard < needed:
        raise StartError(
            f"this load needs about {needed:,} file descriptors in the server and in Locust; "
            f"the hard limit (RLIMIT_NOFILE, `ulimit -Hn`) is {hard:,}: raise it, or ask for "
            "fewer users or idle sockets"
        )
    # Linux refuses an unlimited soft limit on descriptors even when the hard one is.
    target = hard if hard != unlimited else max(soft, needed)
    if soft != unlimited and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass
class Server:
    """A started process and the URL it serves."""

    name: str
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        """The process id (the parent, when it has workers)."""
        return self.process.pid

    def family(self) -> list[psutil.Process]:
        """The process and its children (a server's workers), or none once it is gone."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def usage(self) -> tuple[float, int]:
        """CPU seconds used so far and resident memory now, with its child processes."""
        cpu, rss = 0.0, 0
        for process in self.family():
            try:
                times = process.cpu_times()
                cpu += times.user + times.system
                rss += process.memory_info().rss
            except psutil.Error:
                continue
        return cpu, rss


@contextmanager
def start(
    name: str,
    command: Sequence[str],
    *,
    url: str,
    health: str,
    env: Mapping[str, str],
    log: Path | None = None,
) -> Iterator[Server]:
    """Run `command` until the block ends; ready once `url + health` answers 200."""
    output: IO[bytes] | int = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        list(command),
        env={**os.environ, **env},
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_ready(name, process, url + health)
        yield Server(name=name, url=url, process=process)
    finally:
        _stop(process)
        if not isinstance(output, int):
            output.close()


def _wait_ready(name: str, process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartError(f"{name} exited with status {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling another process's port: there is nothing to await
    raise StartError(f"{name} was not ready within {START_TIMEOUT_S:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def alma_server(
    redis_url: str,
    *,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    log: Path | None = None,
) -> Iterator[Server]:
    """`alma serve` on a free port, against `redis_url`, without per-caller limits."""
    port = free_port()
    environment = {
        "ALMA_REDIS_URL": redis_url,
        "ALMA_REDIS_REQUIRED": "true",
        "ALMA_REDIS_PREFIX": f"load-{uuid.uuid4().hex[:8]}",
        "ALMA_THREAD_TTL": "3600",
        "ALMA_LOG_LEVEL": "warning",
        **UNLIMITED,
        **(env or {}),
    }
    command = [sys.executable, "-m", "server.cli", "serve", "--host", LOOPBACK]
    command += ["--port", str(port), "--workers", str(workers)]
    url = f"http://{LOOPBACK}:{port}"
    with start("alma serve", command, url=url, health="/ready", env=environment, log=log) as s:
        yield s


@contextmanager
def langgraph_dev(
    redis_url: str, *, env: Mapping[str, str] | None = None, jobs: int, log: Path | None = None
) -> Iterator[Server]:
    """LangGraph's own server on the same graph, with `jobs` runs allowed at once."""
    port = free_port()
    cli = shutil.which("langgraph") or str(Path(sys.executable).with_name("langgraph"))
    environment = {
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "ALMA_REDIS_URL": redis_url,
        "ALMA_REDIS_REQUIRED": "true",
        "ALMA_REDIS_PREFIX": f"lgdev-{uuid.uuid4().hex[:8]}",
        "LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    command = [cli, "dev", "--no-browser", "--no-reload", "--host", LOOPBACK,
               "--port", str(port), "--n-jobs-per-worker", str(jobs)]  # fmt: skip
    url = f"http://{LOOPBACK}:{port}"
    with start("langgraph dev", command, url=url, health="/ok", env=environment, log=log) as s:
        yield s


@contextmanager
def model_simulator(
    profile: str, *, fault_rate: float = 0.0, log: Path | None = None
) -> Iterator[Server]:
    """The OpenAI-compatible simulator (loadtests/openai_endpoint.py) on a free port."""
    port = free_port()
    command = [sys.executable, "-m", "loadtests.openai_endpoint", "--host", LOOPBACK,
               "--port", str(port), "--profile", profile,
               "--fault-rate", str(fault_rate)]  # fmt: skip
    url = f"http://{LOOPBACK}:{port}"
    with start("model simulator", command, url=url, health="/healthz", env={}, log=log) as s:
        yield s


def provider_env(simulator: Server) -> dict[str, str]:
    """Settings that point ALMA's real provider path (ChatOpenAI) at the simulator."""
    return {
        "ALMA_PROVIDER": "openai",
        "OPENAI_BASE_URL": f"{simulator.url}/v1",
        "OPENAI_API_KEY": "sk-simulated",
        "ALMA_MODEL_MAX_CONNECTIONS": "1000",
    }


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """The Redis a benchmark or load run talks to, and how to describe it."""

    url: str
    where: str


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_for_ping(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    client = redis.Redis(host=LOOPBACK, port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        while True:
            if process.poll() is not None:
                raise StartError(
                    f"redis-server exited with status {process.returncode}:\n{_tail(log)}"
                )
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise StartError(
                    f"redis-server did not answer PING within {REDIS_START_TIMEOUT_S:.0f} s:\n"
                    f"{_tail(log)}"
                )
            time.sleep(0.05)
    finally:
        client.close()


def _stop_redis(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def local_redis() -> Iterator[RedisTarget]:
    """Start a private redis-server on a free loopback port; stop it on the way out.

    It keeps nothing on disk (`--save ""`, `--appendonly no`) and works in a temporary
    directory. It runs in its own session, so Ctrl-C reaches the benchmark, which then
    stops it.

    Raises:
        StartError: when redis-server is missing or does not answer PING in time.
    """
    executable = shutil.which("redis-server")
    if executable is None:
        raise StartError("redis-server is not on PATH; install it or pass --redis-url")
    with tempfile.TemporaryDirectory(prefix="alma-bench-redis-") as directory:
        port = free_port()
        log = Path(directory) / "redis-server.log"
        command = [executable, "--port", str(port), "--bind", LOOPBACK]
        command += ["--save", "", "--appendonly", "no", "--dir", directory]
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_for_ping(process, port, log)
            yield RedisTarget(
                url=f"redis://{LOOPBACK}:{port}/0",
                where=f"started by the benchmark: {executable} (pid {process.pid}) on "
                f"{LOOPBACK}:{port}, no persistence, stopped at the end",
            )
        finally:
            _stop_redis(process)


@contextmanager
def redis_target(url: str | None) -> Iterator[RedisTarget]:
    """The Redis at `url`, or a private one when `url` is `None`."""
    if url is None:
        with local_redis() as target:
            yield target
    else:
        yield RedisTarget(url=url, where=f"given: {redact_url(url)}")
