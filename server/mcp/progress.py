"""What an MCP client is told while the manager answers: one line per thing worth saying.

A tool call whose client sent a `progressToken` has its run streamed in LangGraph's API
modes `updates`, `custom` and `messages-tuple` (subgraphs included); each logged event
is read here into a progress note — the route, the plan, each step started,
and how many tokens have come so far — or into nothing. MCP asks that a progress value
only ever grow, so every note carries a count one past the last.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphs.interface import decided_route

PROGRESS_MODES = ("values", "updates", "custom", "messages-tuple")
"""The stream modes a run is logged in when its client follows its progress."""
TOKEN_NOTE_SECONDS = 0.25
"""Tokens are told at most this often: a note per token would outweigh the token."""


@dataclass(frozen=True)
class Note:
    """One progress notification: an ever-growing count and what happened."""

    progress: float
    message: str


@dataclass
class ProgressNarrator:
    """Reads a run's API events into progress notes, in the order they happened."""

    tokens: int = 0
    """Text chunks streamed so far by any model call of the run."""
    _count: int = 0
    _told_tokens_at: float = field(default=0.0)

    def read(self, event: Mapping[str, Any]) -> Note | None:
        """The note `event` (a logged `api` event) is worth, if any."""
        params = event["params"]
        mode = str(params["event"]).split("|", 1)[0]
        data = params["data"]
        if mode == "updates" and isinstance(data, Mapping):
            return self._update(data)
        if mode == "custom" and isinstance(data, Mapping):
            return self._custom(data)
        if mode == "messages" and isinstance(data, list) and len(data) == 2:
            return self._token(data[0])
        return None

    def _note(self, message: str) -> Note:
        self._count += 1
        return Note(progress=float(self._count), message=message)

    def _update(self, data: Mapping[str, Any]) -> Note | None:
        for node, update in data.items():
            route = decided_route(node, update)
            if route is not None:
                return self._note(f"routed to {route}")
        return None

    def _custom(self, data: Mapping[str, Any]) -> Note | None:
        # Told apart by their fields (`nodes.progress`): a plan lists its steps, a step
        # event counts them.
        steps = data.get("steps")
        if isinstance(steps, list):
            return self._note(f"plan of {len(steps)} steps: " + "; ".join(map(str, steps)))
        if "total" in data and data.get("status") == "started":
            step, total, label = data.get("step"), data.get("total"), data.get("label")
            return self._note(f"step {step} of {total}: {label}")
        return None

    def _token(self, chunk: Any) -> Note | None:
        if not isinstance(chunk, Mapping) or chunk.get("type") != "AIMessageChunk":
            return None
        if not chunk.get("content"):
            return None
        self.tokens += 1
        now = time.monotonic()
        if self.tokens > 1 and now - self._told_tokens_at < TOKEN_NOTE_SECONDS:
            return None
        self._told_tokens_at = now
        return self._note(f"{_tokens(self.tokens)} so far")

    def finished(self) -> Note:
        """The last note, once the run has completed: all its tokens are in."""
        return self._note(f"answered: {_tokens(self.tokens)}")


def _tokens(count: int) -> str:
    return f"{count} token" if count == 1 else f"{count} tokens"
