"""Checkpoints say which thread they belong to, as on LangGraph's server.

LangGraph leaves `thread_id` out of checkpoint metadata; LangGraph's server puts it
back (with the run's metadata, which already reaches checkpoints through the run's
config), so clients that filter a thread's history by metadata, or read a checkpoint
on its own, find it there.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointMetadata


def stamp_thread(saver: BaseCheckpointSaver[Any]) -> BaseCheckpointSaver[Any]:
    """Add the thread id to the metadata of every checkpoint `saver` writes; the same saver."""
    put: Callable[..., Awaitable[RunnableConfig]] = saver.aput

    @functools.wraps(put)
    async def stamped(
        config: RunnableConfig, checkpoint: Any, metadata: CheckpointMetadata, versions: Any
    ) -> RunnableConfig:
        thread_id = (config.get("configurable") or {}).get("thread_id")
        if thread_id is not None and "thread_id" not in metadata:
            metadata = {**metadata, "thread_id": str(thread_id)}  # type: ignore[typeddict-unknown-key]
        return await put(config, checkpoint, metadata, versions)

    saver.aput = stamped  # type: ignore[method-assign, assignment]
    return saver
