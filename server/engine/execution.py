"""Executing one run: the graph streamed in its wire format, then its end recorded.

The run's events go through its `Emitter` (logged, then fanned out); its lease is
renewed while it runs; a cancelled run keeps the answer its user already saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from redis.exceptions import RedisError

from graphs.interface import outcome_of
from nodes.errors import ErrorCode
from nodes.run_context import RunContext
from server.engine.accounting import account
from server.engine.broker import Broker
from server.engine.coordination import ActiveRun, RunLeases
from server.engine.emitter import Emitter
from server.engine.endings import RunEndings
from server.engine.events import lifecycle, run_end
from server.engine.pacing import WritePacing
from server.engine.run import (
    LEASE_LOST_MESSAGE,
    SHUTDOWN_MESSAGE,
    Run,
    cancel_until_stopped,
    fork_point,
    mirrored,
    status_of,
)
from server.langgraph_api.assistants import GRAPH_ID, MANAGER_ASSISTANT_ID
from server.observability import metrics
from server.observability.observer import Observability, RunObserver
from server.stores.event_log import EventLog
from server.stores.run_records import RunRecords

logger = logging.getLogger("alma.engine")
FAIR_SHARE = 32
"""Events a run streams before it lets the event loop run other tasks."""

# ALMA streams with LangGraph's v3 events on purpose (the agent protocol is built on
# them); the notice that they are experimental would repeat on every run's log.
warnings.filterwarnings(
    "ignore", message="The v3 streaming protocol", category=LangChainBetaWarning
)


class RunExecution:
    """Executes runs of the graph on this process, given where their events and ends go."""

    def __init__(
        self,
        *,
        graph: CompiledStateGraph[Any, RunContext, Any, Any],
        log: EventLog,
        broker: Broker,
        leases: RunLeases,
        records: RunRecords,
        endings: RunEndings,
        observability: Observability,
        lease_seconds: float,
        spend_tokens: Callable[[str, int], Awaitable[None]] | None,
        draining: Callable[[], bool],
        pacing: WritePacing | None = None,
    ) -> None:
        """`draining()` tells whether the process is shutting down (a cancel says so)."""
        self.graph = graph
        self.log = log
        self.broker = broker
        self.leases = leases
        self.records = records
        self.endings = endings
        self.observability = observability
        self.lease_seconds = lease_seconds
        self.spend_tokens = spend_tokens
        self._draining = draining
        self.pacing = pacing or WritePacing()

    async def execute(
        self,
        run: Run,
        active: ActiveRun,
        context: RunContext,
    ) -> None:
        """Stream the graph for `run`, then log, account for and record how it ended.

        Whatever stops it (the graph's end, a cancel, a storage failure, a bug), the run
        ends with one terminal event, written before the caller lets its thread go.
        """
        emitter = Emitter(
            thread_id=run.thread_id, first_seq=active.first_seq, log=self.log,
            broker=self.broker, pacing=self.pacing,
        )  # fmt: skip
        renewer = asyncio.create_task(self._keep_lease(run, active, asyncio.current_task()))
        observe = self.observability
        observer = RunObserver(observe.prices, observe.model, on_task=emitter.emit_soon)
        config = self._config(run, observer)
        metrics.RUNS_STARTED.inc()
        metrics.RUNS_ACTIVE.inc()
        self.pacing.active += 1
        try:
            terminal = await self._stream(run, config, context, emitter)
        finally:
            run.winding_down = True
            renewer.cancel()
            metrics.RUNS_ACTIVE.dec()
            self.pacing.active -= 1
        terminal["params"]["data"].update(
            await account(run, terminal, observer, self.observability.tracing)
        )
        with self.endings.writing(run.thread_id):
            if not run.lease_lost:
                # A run that lost its lease leaves its end to be written by whoever
                # takes the thread next (as for a run lost with its process): the
                # thread's log may already be another run's.
                await emitter.emit(terminal)
            await emitter.close()
            if emitter.storage_error is not None and not run.lease_lost:
                self.endings.unlogged(run.thread_id, terminal)
        await self._record_end(run, terminal)

    def _config(self, run: Run, observer: RunObserver) -> RunnableConfig:
        observe = self.observability
        request = run.request
        ids = {"thread_id": run.thread_id, "run_id": run.run_id, "owner": request.owner,
               "alma_version": observe.version, "graph_id": GRAPH_ID,
               "assistant_id": MANAGER_ASSISTANT_ID, "created_by": "system"}  # fmt: skip
        tags = ["alma", f"alma:{observe.version}"]
        tracer = observe.tracing.tracer(tags=tags, metadata=ids)
        return {
            "configurable": {
                **mirrored(request, run.run_id, run.thread_id),
                **fork_point(request),
            },
            "metadata": {**request.metadata, **ids},
            "tags": tags,
            "run_id": uuid.UUID(run.run_id),
            "callbacks": [observer] if tracer is None else [observer, tracer],
        }

    async def _stream(
        self,
        run: Run,
        config: RunnableConfig,
        context: RunContext,
        emitter: Emitter,
    ) -> dict[str, Any]:
        """Stream the graph in the run's wire format; the run's terminal event."""
        try:
            await emitter.emit(lifecycle("running", run_id=run.run_id))
            stream = run.request.stream
            count = 0
            async for event in stream.events(self.graph, run, config, context):
                count += 1
                waiting = run.progress.first_token_at is None
                stream.note(run.progress, event)
                # The answer's first token is written at once: it is what the user waits on.
                await emitter.emit(event, now=waiting and run.progress.first_token_at is not None)
                if count % FAIR_SHARE == 0:
                    # A model that answers at once (a cache, a fast provider) streams a
                    # whole answer without yielding: let the loop serve others meanwhile.
                    await asyncio.sleep(0)
            run.winding_down = True
            values = run.progress.values
            if values is None:  # the wire format did not stream the state: read it
                latest: RunnableConfig = {"configurable": {"thread_id": run.thread_id}}
                values = (await self.graph.aget_state(latest)).values
            outcome = outcome_of(values)
            await self._charge(run, outcome.tokens)
            run.progress.route = outcome.route or run.progress.route
            if outcome.error is not None:
                code, message = outcome.error
                return lifecycle("failed", run_id=run.run_id, error=message, code=code)
            if run.progress.interrupts:
                # Stopped for a person's answer: the run is done, the thread waits.
                return lifecycle("interrupted", run_id=run.run_id)
            return lifecycle("completed", run_id=run.run_id)
        except asyncio.CancelledError:
            run.winding_down = True
            if run.lease_lost:
                code = ErrorCode.WORKER_LOST
                return lifecycle("failed", run_id=run.run_id, error=LEASE_LOST_MESSAGE, code=code)
            if not run.rollback:
                await self._keep_partial_answer(run, config)
            why = SHUTDOWN_MESSAGE if self._draining() else "the run was cancelled"
            return lifecycle("failed", run_id=run.run_id, error=why, code=ErrorCode.CANCELLED)
        except (RedisError, OSError) as exc:
            logger.error("run %s lost its storage: %s", run.run_id, exc)
            return lifecycle(
                "failed",
                run_id=run.run_id,
                error=f"conversation storage failed: {exc}",
                code=ErrorCode.STORAGE_UNAVAILABLE,
            )
        except Exception as exc:
            logger.exception("run %s failed", run.run_id, extra={"error_code": ErrorCode.INTERNAL})
            why = f"{type(exc).__name__}: {exc}"
            return lifecycle("failed", run_id=run.run_id, error=why, code=ErrorCode.INTERNAL)

    async def _record_end(self, run: Run, terminal: dict[str, Any]) -> None:
        record = run.record
        with contextlib.suppress(RedisError, OSError):
            if run.rollback:
                # Rolled back: as if it never ran — its checkpoints and record go.
                await self.graph.checkpointer.adelete_for_runs([run.run_id])  # type: ignore[union-attr]
                await self.records.delete(run.thread_id, run.run_id)
                return
            end = run_end(terminal)
            assert end is not None, "a run's terminal event is a run end"
            record.status = status_of(end)
            if record.status == "error":
                record.error = {"error": end.code or ErrorCode.INTERNAL,
                                "message": end.error or ""}  # fmt: skip
            await self.records.put(record)

    async def _charge(self, run: Run, tokens: int) -> None:
        if self.spend_tokens is None or tokens <= 0:
            return
        try:
            await self.spend_tokens(run.request.limit_key, tokens)
        except Exception:
            # A budget that cannot be charged must not fail an answer already given.
            logger.exception("could not charge %d tokens of run %s", tokens, run.run_id)

    async def _keep_lease(
        self, run: Run, active: ActiveRun, task: asyncio.Task[Any] | None
    ) -> None:
        """Renew the run's lease; if it was lost, stop the run (`task`)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                held = await self.leases.renew(run.thread_id, active)
            except Exception as exc:
                # A renewal that fails now may succeed next time; the renewer lives on.
                logger.warning("could not renew the lease of thread %s: %r", run.thread_id, exc)
                continue
            if not held:
                # The lease lapsed and the thread may be another run's by now: this run
                # must write nothing more to it.
                logger.error(
                    "run %s lost the lease of thread %s; stopping it", run.run_id, run.thread_id,
                    extra={"error_code": ErrorCode.WORKER_LOST},
                )  # fmt: skip
                run.lease_lost = True
                if task is not None:
                    await cancel_until_stopped(run, task)
                return

    async def _keep_partial_answer(self, run: Run, config: RunnableConfig) -> None:
        # Text the user already saw is kept in the thread, marked as cancelled.
        partial = run.progress.partial()
        if partial is None:
            return
        try:
            await self.graph.aupdate_state(config, partial.values, as_node=partial.as_node)
        except Exception:
            logger.exception("could not keep the partial answer of run %s", run.run_id)
