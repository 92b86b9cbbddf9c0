"""A run's webhook, called when the run has ended (the engine's `on_end`)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from redis.exceptions import RedisError

from nodes.errors import ErrorCode
from nodes.run_context import RunContext
from server.engine.events import to_wire
from server.engine.run import Run
from server.webhooks.delivery import WebhookSender, run_payload


class RunWebhooks:
    """Sends each ended run that asked for a webhook to it, in the background."""

    def __init__(
        self, sender: WebhookSender, graph: CompiledStateGraph[Any, RunContext, Any, Any]
    ) -> None:
        self.sender = sender
        self.graph = graph

    async def run_ended(self, run: Run) -> None:
        """Send `run` (ended) to its webhook, if it has one.

        The thread's final values are read here, before a stateless run's thread goes;
        the call itself is left to the background.
        """
        url = run.record.kwargs.get("webhook")
        if not url:
            return
        ended_at = time.time()
        started_at = ended_at - (time.perf_counter() - run.progress.started)
        values: Any = None
        if not run.rollback:
            latest: RunnableConfig = {"configurable": {"thread_id": run.thread_id}}
            with contextlib.suppress(RedisError, OSError):
                values = to_wire((await self.graph.aget_state(latest)).values)
        public = run.record.public()
        # A rolled-back run's record is gone: it ended as cancelled.
        public["status"] = "interrupted" if run.rollback else run.record.status
        payload = run_payload(public, values=values, started_at=started_at, ended_at=ended_at)
        if run.record.error is not None:
            payload["error"] = run.record.error
        elif public["status"] == "interrupted":
            # Cancelled: said as LangGraph's server says it, with ALMA's error code.
            why = "the run was cancelled" + (" and rolled back" if run.rollback else "")
            payload["error"] = {"error": ErrorCode.CANCELLED.value, "message": why}
        self.sender.send(str(url), payload)
