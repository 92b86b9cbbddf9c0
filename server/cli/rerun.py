"""`alma chat`'s `/retry` and `/edit`: the last turn again, on a branch of its own.

A re-run forks the thread at the checkpoint the last turn started from (LangGraph's
time travel), so the earlier answer stays on the thread, on its own branch, and the
page's version switcher shows both. The first turn started from no checkpoint: its fork
is made by emptying the conversation at the checkpoint the turn ended at, as the page
does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.graph.state import CompiledStateGraph

from server.agent_protocol.client import ProtocolClient
from server.langgraph_api.assistants import GRAPH_ID
from server.langgraph_api.thread_state import thread_config

RETRY = "/retry"
EDIT = "/edit"
HELP = f"{RETRY}: answer your last message again · {EDIT} TEXT: replace it with TEXT and re-run"

EMPTIED = {"messages": [{"type": "remove", "id": REMOVE_ALL_MESSAGES, "content": ""}]}
"""A state update that leaves the conversation without messages."""


@dataclass(frozen=True)
class Turn:
    """One line of a chat: a new message, or the last one again (`rerun`)."""

    text: str
    rerun: bool = False


def read_turn(line: str, last: str | None) -> Turn:
    """What a line asks for; `last` is the last message sent (None before any).

    Raises:
        ValueError: a re-run with nothing to re-run, or an edit without text.
    """
    command, _, rest = line.strip().partition(" ")
    if command not in (RETRY, EDIT):
        return Turn(line.strip())
    if last is None:
        raise ValueError(f"{command}: there is no message to re-run yet")
    if command == RETRY:
        return Turn(last, rerun=True)
    if not rest.strip():
        raise ValueError(f"{EDIT} needs the new text: {EDIT} TEXT")
    return Turn(rest.strip(), rerun=True)


class ThreadCheckpoints(Protocol):
    """The two things a re-run needs to know of its thread, in process or on a server."""

    async def head(self) -> str | None:
        """The thread's latest checkpoint (None before its first)."""
        ...

    async def emptied(self, checkpoint_id: str) -> str:
        """A new checkpoint forked from `checkpoint_id` without messages; its id."""
        ...


@dataclass
class Branching:
    """Where the chat's last turn started, so that it can be run again from there."""

    thread: ThreadCheckpoints
    started_from: str | None = None

    async def fork_point(self, turn: Turn) -> str | None:
        """The checkpoint `turn` runs from: None (the latest) for a new message."""
        if not turn.rerun:
            self.started_from = await self.thread.head()
            return None
        if self.started_from is None:
            head = await self.thread.head()
            if head is None:
                return None  # the first turn left nothing behind: start afresh
            self.started_from = await self.thread.emptied(head)
        return self.started_from


@dataclass(frozen=True)
class LocalCheckpoints:
    """A thread's checkpoints in this process's services."""

    graph: CompiledStateGraph[Any, Any, Any, Any]
    thread_id: str

    async def head(self) -> str | None:
        """The thread's latest checkpoint (None before its first)."""
        snapshot = await self.graph.aget_state(thread_config(self.thread_id))
        checkpoint_id: str | None = snapshot.config.get("configurable", {}).get("checkpoint_id")
        return checkpoint_id

    async def emptied(self, checkpoint_id: str) -> str:
        """A new checkpoint forked from `checkpoint_id` without messages; its id."""
        config = thread_config(self.thread_id, checkpoint_id=checkpoint_id)
        config["metadata"] = {"graph_id": GRAPH_ID}  # as the HTTP state route writes it
        written = await self.graph.aupdate_state(config, EMPTIED)
        return str(written["configurable"]["checkpoint_id"])


@dataclass(frozen=True)
class RemoteCheckpoints:
    """A thread's checkpoints on a server: read over the protocol, forked over HTTP."""

    client: ProtocolClient
    http: httpx.AsyncClient
    thread_id: str

    async def head(self) -> str | None:
        """The thread's latest checkpoint (None before its first)."""
        state = await self.client.call("state.get", keys=[])
        checkpoint_id: str | None = (state.get("checkpoint") or {}).get("id")
        return checkpoint_id

    async def emptied(self, checkpoint_id: str) -> str:
        """A new checkpoint forked from `checkpoint_id` without messages; its id."""
        answer = await self.http.post(
            f"/threads/{self.thread_id}/state",
            json={"checkpoint_id": checkpoint_id, "values": EMPTIED},
        )
        answer.raise_for_status()
        return str(answer.json()["checkpoint_id"])
