"""`alma chat`'s `/memories` and `/forget KEY`: what ALMA remembers of the user, and forgetting it.

The facts the graph keeps of its owner (`nodes/memory.py`) are read and deleted where
the page and the store API reach them: the owner's `("memories",)` namespace, in this
process's store or through a server's store API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import httpx
from langgraph.store.base import BaseStore

from nodes.memory import MEMORY_NAMESPACE
from server.stores.owned_store import OwnedStore

MEMORIES = "/memories"
FORGET = "/forget"
HELP = f"{MEMORIES}: what ALMA remembers of you · {FORGET} KEY: forget one of them"
MOST = 1000
"""Memories listed at most (far more than the kinds of fact kept)."""

NAMESPACE = (MEMORY_NAMESPACE,)


class Memories(Protocol):
    """An owner's memories, in process or on a server."""

    async def items(self) -> list[tuple[str, str]]:
        """Each memory's key and what it says, in the order they were first kept."""
        ...

    async def forget(self, key: str) -> None:
        """Delete the memory `key` (nothing when there is none)."""
        ...


def _said(key: str, value: Any) -> tuple[str, str]:
    return key, str(value.get("said") if isinstance(value, dict) else value)


@dataclass(frozen=True)
class LocalMemories:
    """`owner`'s memories in this process's store."""

    store: BaseStore
    owner: str

    async def items(self) -> list[tuple[str, str]]:
        """Each memory's key and what it says, in the order they were first kept."""
        found = await OwnedStore(self.store, self.owner).asearch(NAMESPACE, limit=MOST)
        return [_said(item.key, item.value) for item in found]

    async def forget(self, key: str) -> None:
        """Delete the memory `key` (nothing when there is none)."""
        await OwnedStore(self.store, self.owner).adelete(NAMESPACE, key)


@dataclass(frozen=True)
class RemoteMemories:
    """The key's memories on a server, through its store API."""

    http: httpx.AsyncClient

    async def items(self) -> list[tuple[str, str]]:
        """Each memory's key and what it says, in the order they were first kept."""
        body = {"namespace_prefix": list(NAMESPACE), "limit": MOST}
        answer = await self.http.post("/store/items/search", json=body)
        answer.raise_for_status()
        return [_said(item["key"], item["value"]) for item in answer.json()["items"]]

    async def forget(self, key: str) -> None:
        """Delete the memory `key` (nothing when there is none)."""
        body = {"namespace": list(NAMESPACE), "key": key}
        answer = await self.http.request("DELETE", "/store/items", json=body)
        answer.raise_for_status()


async def answer_memory_command(line: str, memories: Memories, out: TextIO) -> bool:
    """Carry out `line` if it is a memory command, printing what it did; else False."""
    command, _, key = line.strip().partition(" ")
    if command == MEMORIES:
        found = await memories.items()
        for name, said in found:
            out.write(f"  {name}: {said}\n")
        if not found:
            out.write("(ALMA remembers nothing of you)\n")
        return True
    if command != FORGET:
        return False
    key = key.strip()
    if not key:
        out.write(f"{FORGET} needs the memory's key: {FORGET} KEY (see {MEMORIES})\n")
    elif key not in dict(await memories.items()):
        out.write(f"no memory {key!r} (see {MEMORIES})\n")
    else:
        await memories.forget(key)
        out.write(f"forgotten: {key}\n")
    return True
