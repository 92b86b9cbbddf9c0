"""Redis operations written once for sync and async clients: generators of batches.

An operation yields `Batch`es of commands and receives each batch's replies; it does
no I/O of its own. A sync saver and an async saver each run the same operation on
their own client (`advance` feeds it; `memory/connection.py` sends a batch).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

Command = Sequence[Any]
"""A command's words: a name (`"HGET"`, …) or a `memory.layout.Script` (sent as EVALSHA,
its number of keys next), then its arguments."""


@dataclass(slots=True)
class Batch:
    """Commands to send in one round trip, optionally as one MULTI/EXEC transaction.

    A single command is sent on its own, not as a pipeline: cheaper on both sides.
    """

    commands: list[Command]
    transaction: bool = False


def one(*command: Any) -> Batch:
    """A batch of one command."""
    return Batch([command])


Steps = Generator[Batch, list[Any], Any]
"""An operation: yields batches, receives each batch's replies, returns its result."""


@dataclass(frozen=True, slots=True)
class Done:
    """An operation's result, once it has no more batches to send."""

    value: Any


def advance(steps: Steps, replies: list[Any] | None) -> Batch | Done:
    """Feed an operation the replies to its last batch; get its next batch or its result."""
    try:
        return next(steps) if replies is None else steps.send(replies)
    except StopIteration as done:
        return Done(done.value)
