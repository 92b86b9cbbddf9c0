"""Redis operations written once for sync and async clients: generators of batches.

An operation yields `Batch`es of commands and receives each batch's replies; it does
no I/O of its own. A sync saver and an async saver each run the same operation on
their own client (`advance` feeds it).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Batch:
    """Commands to send in one round trip, optionally as one MULTI/EXEC transaction."""

    queue: Callable[[Any], None]
    """Queues the commands on a pipeline."""
    transaction: bool = False


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
