"""A blocking client of the streaming protocol for Locust's gevent users.

Locust users are greenlets; `websocket-client` works on plain sockets, which gevent's
monkey patching makes cooperative, where an asyncio client would not run. It speaks to
ALMA and to `langgraph dev` alike (the same protocol, the same paths).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import websocket

from server.agent_protocol.client import stream_url
from server.engine.events import is_terminal

CHANNELS = ["lifecycle", "messages", "updates", "custom"]


class ProtocolFailure(Exception):
    """The server refused a command or ended a run unexpectedly."""


@dataclass
class RunTiming:
    """What one run took, seen from the client."""

    started: float
    first_token: float | None = None
    ended: float | None = None
    outcome: str = ""
    code: str | None = None
    tokens: int = 0
    last_seq: int = 0
    seqs: list[int] = field(default_factory=list)

    def observe(self, event: dict[str, Any]) -> bool:
        """Note a token or the run's end; whether the run has ended."""
        seq = int(event.get("seq") or 0)
        self.seqs.append(seq)
        self.last_seq = max(self.last_seq, seq)
        if event.get("method") == "messages":
            data = event["params"].get("data") or {}
            delta = data.get("delta") or {}
            if data.get("event") == "content-block-delta" and delta.get("type") == "text-delta":
                self.tokens += 1
                if self.first_token is None:
                    self.first_token = time.perf_counter()
        elif is_terminal(event):
            data = event["params"]["data"]
            self.ended = time.perf_counter()
            self.outcome = str(data.get("event"))
            self.code = data.get("code")
            return True
        return False


class ThreadSocket:
    """One WebSocket to a thread's event stream."""

    def __init__(self, base_url: str, thread_id: str, *, timeout: float = 120) -> None:
        self.url = stream_url(base_url, thread_id)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        self.socket = websocket.create_connection(self.url, timeout=timeout)

    def close(self) -> None:
        """Close the connection."""
        self.socket.close()

    def drop(self) -> None:
        """Cut the connection without a closing handshake, as a network failure would."""
        self.socket.shutdown()  # type: ignore[no-untyped-call]

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its answer; events read meanwhile are kept."""
        command_id = next(self._ids)
        self.socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        while True:
            message = self._read()
            if message.get("type") == "event":
                self._events.append(message)
                continue
            if message.get("id") != command_id:
                continue
            if message.get("type") != "success":
                raise ProtocolFailure(f"{method}: {message.get('error')}: {message.get('message')}")
            result: dict[str, Any] = message.get("result") or {}
            return result

    def _read(self) -> dict[str, Any]:
        raw = self.socket.recv()
        message: dict[str, Any] = json.loads(raw)
        return message

    def events(self) -> Iterator[dict[str, Any]]:
        """Events in order: those read while waiting for answers first."""
        while True:
            while self._events:
                yield self._events.pop(0)
            message = self._read()
            if message.get("type") == "event":
                yield message

    def subscribe(self, since: int | None = None) -> None:
        """Subscribe to the run channels, from `since` when resuming."""
        params: dict[str, Any] = {"channels": CHANNELS}
        if since is not None:
            params["since"] = since
        self.command("subscription.subscribe", **params)

    def start(self, text: str) -> str:
        """Start a run of the manager on one user message; its run id."""
        result = self.command(
            "run.start",
            assistant_id="manager",
            input={"messages": [{"role": "user", "content": text}]},
        )
        return str(result["run_id"])

    def follow(self, timing: RunTiming, *, until_tokens: int | None = None) -> RunTiming:
        """Read events until the run ends (or `until_tokens` tokens have arrived)."""
        for event in self.events():
            if timing.observe(event):
                return timing
            if until_tokens is not None and timing.tokens >= until_tokens:
                return timing
        return timing
