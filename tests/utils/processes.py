"""Run a real server process for a test: wait for the line that says it is ready, then stop it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A child process whose output is collected, with an event set when it is ready."""

    def __init__(self, command: Sequence[str], ready: str, env: Mapping[str, str]) -> None:
        self.output: list[str] = []
        self._ready_pattern = re.compile(ready)
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if self._ready_pattern.search(line):
                self.ready.set()
        self.ready.set()  # the process ended: wake the waiter so it can report why

    def wait_ready(self, timeout: float) -> None:
        if not self.ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.output[-40:]))

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up, as in a crash."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._reader.join(timeout=5)


@contextmanager
def running(
    command: Sequence[str], *, ready: str, env: Mapping[str, str] | None = None, timeout: float = 90
) -> Iterator[ServerProcess]:
    server = ServerProcess(command, ready, env or {})
    try:
        server.wait_ready(timeout)
        yield server
    finally:
        server.stop()
