"""Time the checkpointer calls LangGraph makes, whichever saver serves them."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from server.observability.metrics import CHECKPOINTER_DURATION

_CALLS = {
    "aget_tuple": "get_tuple",
    "aput": "put",
    "aput_writes": "put_writes",
    "adelete_thread": "delete_thread",
}


def _timed(call: Callable[..., Awaitable[Any]], operation: str) -> Callable[..., Awaitable[Any]]:
    histogram = CHECKPOINTER_DURATION.labels(operation)

    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - started)

    return timed


def _timed_list(call: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    histogram = CHECKPOINTER_DURATION.labels("list")

    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        started = time.perf_counter()
        try:
            async for item in call(*args, **kwargs):
                yield item
        finally:
            histogram.observe(time.perf_counter() - started)

    return timed


def time_checkpointer(saver: BaseCheckpointSaver[Any]) -> BaseCheckpointSaver[Any]:
    """Record the duration of `saver`'s async calls; returns the same saver.

    The calls are wrapped on this instance only, so the saver stays itself (its class,
    serde and extra methods) for LangGraph and for anything else that holds it.
    """
    for method, operation in _CALLS.items():
        setattr(saver, method, _timed(getattr(saver, method), operation))
    saver.alist = _timed_list(saver.alist)  # type: ignore[method-assign]
    return saver
