"""The run manager: runs execute as background tasks, independent of any connection.

Each run streams the graph with LangGraph's v3 protocol events, numbers every event in
the thread's log, stores it, and only then fans it out. A thread has one active run at
a time (across processes); cancel reaches a run wherever it executes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.stream.transformers import CustomTransformer, UpdatesTransformer
from langgraph.types import Command
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import RedisError

from graphs.interface import decided_route, outcome_of
from nodes.errors import ErrorCode
from nodes.run_context import RunContext
from server import metrics
from server.api_stream import api_events, api_wire
from server.assistants import GRAPH_ID, MANAGER_ASSISTANT_ID, resolve_assistant
from server.broker import Broker
from server.coordination import ActiveRun, Control, RunLeases
from server.event_log import EventLog
from server.events import from_graph, is_terminal, lifecycle, numbered
from server.logs import bound
from server.observer import Observability, RunObserver
from server.protocol import RunStartParams
from server.refusals import Refusal, Refused
from server.run_progress import RunProgress
from server.run_records import MemoryRunRecords, RunRecord, RunRecords, RunStatus
from server.validation import describe_invalid

logger = logging.getLogger("alma.server")

_CLOSING = "closing-"

NO_ACTIVE_RUN = "the thread has no active run with that id"
"""Lease holders with this prefix are ending a dead process's run, for milliseconds."""
_CONTEXT_FIELDS = frozenset(f.name for f in dataclasses.fields(RunContext))
_RUN_CONTEXT = TypeAdapter(RunContext)


class Emitter:
    """Numbers a run's events, appends them to the log, then fans them out — in order.

    Events wait in a bounded queue and are written in batches: a burst of tokens costs
    one Redis round trip, and a slow log slows the run instead of growing memory.
    """

    def __init__(self, *, thread_id: str, first_seq: int, log: EventLog, broker: Broker) -> None:
        self.thread_id = thread_id
        self.next_seq = first_seq
        self.log = log
        self.broker = broker
        self.storage_error: Exception | None = None
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=4096)
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._flush())

    async def emit(self, event: dict[str, Any]) -> None:
        """Queue an event for the log and the subscribers."""
        await self._queue.put(numbered(event, self.next_seq))
        self.next_seq += 1

    def emit_soon(self, event: dict[str, Any]) -> None:
        """Queue an event from synchronous code (a callback), from any thread.

        For progress markers only: when the queue is full the event is dropped rather
        than blocking the graph.
        """
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._put_now(event)
        else:
            self._loop.call_soon_threadsafe(self._put_now, event)

    def _put_now(self, event: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(numbered(event, self.next_seq))
            self.next_seq += 1

    async def _flush(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    await self._write(batch)
                    return
                batch.append(item)
            await self._write(batch)

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        if self.storage_error is None:
            try:
                await self.log.append(self.thread_id, batch)
            except Exception as exc:
                # Whatever broke the write (a Redis error, or a client library failing
                # under a fail-over), subscribers here still hear how the run ends;
                # resume is what is lost. The writer must not die: they would wait forever.
                self.storage_error = exc
                logger.error("event log of thread %s failed: %r", self.thread_id, exc)
        self.broker.publish(self.thread_id, batch)

    async def close(self) -> None:
        """Write what is queued and stop."""
        await self._queue.put(None)
        await self._task


@dataclass(eq=False)
class Run:
    """A run executing on this process."""

    run_id: str
    thread_id: str
    task: asyncio.Task[None] | None = None
    cancelled: bool = False
    progress: RunProgress = field(default_factory=RunProgress)
    """Timing, route and answer text seen in the run's stream."""
    winding_down: bool = False
    """The graph has stopped: the run is recording how it ended."""
    stopper: asyncio.Task[None] | None = None
    limit_key: str | None = None
    """Whose token budget the run's model calls are charged to."""
    owner: str | None = None
    api: ApiRun | None = None
    """How a run started through LangGraph's API streams (None: the protocol's events)."""
    rollback: bool = False
    """Cancelled with `rollback`: its checkpoints and record go when it stops."""


@dataclass(frozen=True)
class ApiRun:
    """The LangGraph API's options of a run: what it streams and where it starts."""

    modes: tuple[str, ...] = ("values",)
    subgraphs: bool = False
    command: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    """Fork from this checkpoint (`checkpoint_id`, `checkpoint_ns`) instead of the latest."""
    interrupt_before: list[str] | Literal["*"] | None = None
    interrupt_after: list[str] | Literal["*"] | None = None
    temporary: bool = False
    """A stateless run: its thread is deleted when it ends."""


def api_event(name: str, data: Any) -> dict[str, Any]:
    """An API stream event for the thread's log (channel `api`, at the root namespace)."""
    return {
        "type": "event",
        "method": "api",
        "params": {"namespace": [], "timestamp": int(time.time() * 1000), "event": name,
                   "data": api_wire(data)},
    }  # fmt: skip


_STATUS = {"completed": "success", "interrupted": "interrupted"}


SHUTDOWN_MESSAGE = (
    "the server shut down before the answer finished; what was written is kept — send "
    "the message again and another server will answer"
)
"""How a run cut off by the end of its process's grace period ended."""
LOST_MESSAGE = (
    "the server process running this answer stopped before it finished; "
    "the conversation keeps its last saved state — send the message again"
)
"""How a run lost with its process (or its storage) ended, in words a user can act on."""


def _status_of(terminal: dict[str, Any]) -> RunStatus:
    data = terminal["params"]["data"]
    if data["event"] in _STATUS:
        return _STATUS[data["event"]]  # type: ignore[return-value]
    return "interrupted" if data.get("code") == ErrorCode.CANCELLED else "error"


def _mirrored(run: Run, params: RunStartParams) -> dict[str, Any]:
    """The run's configurable: its ids and, for API runs, its context, as LangGraph has it.

    LangGraph's server mirrors a run's context into `configurable`, where checkpoints
    and debug events show it; ALMA's protocol runs keep just the thread.
    """
    if run.api is None:
        return {"thread_id": run.thread_id}
    return {**params.context, "run_id": run.run_id, "thread_id": run.thread_id,
            "graph_id": GRAPH_ID, "assistant_id": MANAGER_ASSISTANT_ID}  # fmt: skip


def _recorded(kwargs: dict[str, Any], run: Run, params: RunStartParams) -> dict[str, Any]:
    """What a run was started with, as LangGraph's Run object lists it."""
    if not kwargs:
        return {}
    config = dict(params.config)
    config["configurable"] = {**(config.get("configurable") or {}), **_mirrored(run, params)}
    config["metadata"] = {"created_by": "system", **params.metadata, "graph_id": GRAPH_ID,
                          "assistant_id": MANAGER_ASSISTANT_ID}  # fmt: skip
    return {**kwargs, "config": config}


def _fork_point(api: ApiRun | None) -> dict[str, Any]:
    if api is None or not api.checkpoint or not api.checkpoint.get("checkpoint_id"):
        return {}
    return {"checkpoint_id": api.checkpoint["checkpoint_id"],
            "checkpoint_ns": api.checkpoint.get("checkpoint_ns") or ""}  # fmt: skip


def _note_api_message(progress: RunProgress, event: dict[str, Any]) -> None:
    """Hand the tracker a `messages-tuple` token of an API run."""
    params = event["params"]
    if not params["event"].startswith("messages|") and params["event"] != "messages":
        return
    chunk, metadata = params["data"]
    if chunk.get("type") != "AIMessageChunk":
        return
    text = chunk.get("content")
    progress.text(
        metadata.get("langgraph_node"),
        str(metadata.get("langgraph_checkpoint_ns", "")),
        str(chunk.get("id")),
        text if isinstance(text, str) else "",
    )


def _busy(thread_id: str, run_id: str) -> str:
    return (
        f"thread {thread_id} is busy with run {run_id}; wait for it, cancel it, or start "
        "with multitask_strategy 'enqueue', 'interrupt' or 'rollback'"
    )


def _note_protocol_event(progress: RunProgress, event: dict[str, Any]) -> None:
    """Hand the tracker a protocol run's tokens and routing decision."""
    params = event["params"]
    data = params.get("data")
    if not isinstance(data, dict):
        return
    if event["method"] == "messages":
        node, namespace = params.get("node"), params.get("namespace") or ()
        if data.get("event") == "message-start":
            progress.text(node, namespace, str(data.get("id")), "")
        elif data.get("event") == "content-block-delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text-delta":
                progress.text(node, namespace, None, str(delta.get("text") or ""))
    elif event["method"] == "updates":
        route = decided_route(data.get("node"), data.get("values"))
        if route is not None:
            progress.route = route


class RunManager:
    """Starts, tracks, cancels and drains the runs of this process."""

    def __init__(
        self,
        *,
        graph: CompiledStateGraph[Any, RunContext, Any, Any],
        log: EventLog,
        broker: Broker,
        leases: RunLeases,
        control: Control,
        owner: str,
        lease_seconds: float,
        wait_seconds: float,
        spend_tokens: Callable[[str, int], Awaitable[None]] | None = None,
        observability: Observability | None = None,
        records: RunRecords | None = None,
        on_start: Callable[[str], Awaitable[Mapping[str, Any]]] | None = None,
        on_temporary_end: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.graph = graph
        self.log = log
        self.broker = broker
        self.leases = leases
        self.control = control
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.spend_tokens = spend_tokens
        self.observability = observability or Observability()
        self.records: RunRecords = records or MemoryRunRecords()
        self._on_start = on_start
        """Told of every run's thread as it is created (threads' `updated_at`); answers
        the thread's metadata, which the run's metadata starts from."""
        self._on_temporary_end = on_temporary_end
        """Deletes a stateless run's thread when the run has ended."""
        self.runs: dict[str, Run] = {}
        self.draining = False
        # Run ids whose thread lease this process holds or is taking. A lease naming this
        # process but not in here was left behind when Redis was away at its release.
        self._held: set[str] = set()
        # Terminal events that could not be logged (Redis was away), written when the
        # thread is next taken so resuming clients hear how the run really ended.
        self._unlogged_ends: dict[str, dict[str, Any]] = {}

    # -- queries -------------------------------------------------------------------------

    async def run_origin(self, thread_id: str) -> tuple[int, bool] | None:
        """`(first_seq, is_local)` of the thread's active run, or `None`."""
        holder = await self.leases.holder(thread_id)
        if holder is None or holder.first_seq == 0:
            return None
        return holder.first_seq, holder.owner == self.owner

    # -- start ---------------------------------------------------------------------------

    async def start(
        self,
        thread_id: str,
        params: RunStartParams,
        *,
        limit_key: str | None = None,
        owner: str | None = None,
        api: ApiRun | None = None,
        record_kwargs: dict[str, Any] | None = None,
        context: RunContext | None = None,
    ) -> Run:
        """Start a run on a thread, honouring its multitask strategy.

        A protocol run (`api` None) waits here for a busy thread. An API run returns at
        once, `pending`, and waits in the background (`enqueue`, `interrupt`,
        `rollback`), as LangGraph's API does; `reject` is refused here either way.

        Raises:
            Refused: for a bad request, a busy thread under `reject`, or a server
                that is shutting down.
        """
        if self.draining:
            raise Refused(
                Refusal.SHUTTING_DOWN, "the server is shutting down; start the run on another one"
            )
        # Callers that checked the request already (to claim its thread) pass what they got.
        context = context or self.check(params)
        if self._on_start is not None:
            with contextlib.suppress(RedisError, OSError):
                # As on LangGraph's server, a run's metadata (and so its checkpoints')
                # starts from its thread's, and the request's own keys win.
                params.metadata = {**await self._on_start(thread_id), **params.metadata}
        run = Run(
            run_id=str(uuid.uuid4()), thread_id=thread_id, limit_key=limit_key, owner=owner,
            api=api,
        )  # fmt: skip
        record = RunRecord(
            run_id=run.run_id, thread_id=thread_id, assistant_id=MANAGER_ASSISTANT_ID,
            metadata={"created_by": "system", **params.metadata, "graph_id": GRAPH_ID,
                      "assistant_id": MANAGER_ASSISTANT_ID},
            kwargs=_recorded(record_kwargs or {}, run, params),
            multitask_strategy=params.multitask_strategy,
        )  # fmt: skip
        await self.records.put(record)
        strategy = params.multitask_strategy
        try:
            if api is None:
                await self._take_thread(thread_id, run.run_id, strategy)
            elif not await self._try_take_thread(thread_id, run.run_id, strategy):
                self.runs[run.run_id] = run
                run.task = asyncio.create_task(self._queued(run, record, params, context))
                return run
        except BaseException:
            # Refused (a busy thread under `reject`) or abandoned: a run that never
            # began is not one of the thread's runs.
            await asyncio.shield(self.records.delete(thread_id, run.run_id))
            raise
        return await self._begin(run, record, params, context)

    async def _queued(
        self, run: Run, record: RunRecord, params: RunStartParams, context: RunContext
    ) -> None:
        # An API run waiting for its thread; cancelling it here ends it before it began.
        try:
            await self._take_thread(run.thread_id, run.run_id, params.multitask_strategy)
        except asyncio.CancelledError:
            self.runs.pop(run.run_id, None)
            if run.rollback:
                await self.records.delete(run.thread_id, run.run_id)
            else:
                record.status = "interrupted"
                await self.records.put(record)
            raise
        except Refused as exc:
            self.runs.pop(run.run_id, None)
            record.status = "error"
            record.error = {"error": exc.protocol_code, "message": exc.message}
            await self.records.put(record)
            return
        await self._begin(run, record, params, context)

    async def _begin(
        self, run: Run, record: RunRecord, params: RunStartParams, context: RunContext
    ) -> Run:
        thread_id = run.thread_id
        try:
            first_seq = await self._end_unfinished(thread_id) + 1
            active = ActiveRun(run_id=run.run_id, owner=self.owner, first_seq=first_seq)
            await self.leases.renew(thread_id, active)
        except BaseException:
            self._held.discard(run.run_id)
            await self.leases.release(thread_id, run.run_id)
            raise
        self.runs[run.run_id] = run
        record.status, record.first_seq = "running", first_seq
        with contextlib.suppress(RedisError, OSError):
            await self.records.put(record)
        with bound(run_id=run.run_id, thread_id=thread_id, owner=run.owner):
            run.task = asyncio.create_task(self._execute(run, active, params, context, record))
        with contextlib.suppress(Exception):
            await self.control.publish(
                {"kind": "started", "thread_id": thread_id, "first_seq": first_seq,
                 "owner": self.owner}
            )  # fmt: skip
        return run

    def check(self, params: RunStartParams) -> RunContext:
        """The run's context, once its assistant and context are known to be good.

        Raises:
            Refused: `INVALID`, naming what is wrong.
        """
        if resolve_assistant(params.assistant_id) is None:
            raise Refused(
                Refusal.INVALID,
                f"unknown assistant_id {params.assistant_id!r}; this server runs 'manager'",
            )
        return self._context(params)

    def _context(self, params: RunStartParams) -> RunContext:
        configurable = params.config.get("configurable") or {}
        chosen = {k: v for k, v in configurable.items() if k in _CONTEXT_FIELDS}
        chosen.update(params.context)
        unknown = set(chosen) - _CONTEXT_FIELDS
        if unknown:
            raise Refused(
                Refusal.INVALID, f"unknown context field(s): {', '.join(sorted(unknown))}"
            )
        try:
            # Validated as its schema says (a route or router outside its choices is
            # refused here, not left to fail inside the run).
            return _RUN_CONTEXT.validate_python(chosen)
        except ValidationError as exc:
            raise Refused(Refusal.INVALID, f"invalid run context: {describe_invalid(exc)}") from exc

    async def _try_take_thread(self, thread_id: str, run_id: str, strategy: str) -> bool:
        """Take a free thread now; refuse a busy one under `reject`; else `False`."""
        placeholder = ActiveRun(run_id=run_id, owner=self.owner, first_seq=0)
        self._held.add(run_id)
        holder = await self.leases.acquire(thread_id, placeholder)
        if holder is None:
            return True
        self._held.discard(run_id)
        if strategy == "reject" and not (
            holder.run_id.startswith(_CLOSING) or await self._ending(thread_id, holder)
        ):
            raise Refused(Refusal.BUSY, _busy(thread_id, holder.run_id))
        return False

    async def _take_thread(self, thread_id: str, run_id: str, strategy: str) -> None:
        placeholder = ActiveRun(run_id=run_id, owner=self.owner, first_seq=0)
        self._held.add(run_id)
        try:
            await self._wait_for_thread(thread_id, placeholder, strategy)
        except BaseException:
            self._held.discard(run_id)
            raise

    async def _wait_for_thread(self, thread_id: str, placeholder: ActiveRun, strategy: str) -> None:
        deadline = asyncio.get_running_loop().time() + self.wait_seconds
        interrupted = False
        while True:
            holder = await self.leases.acquire(thread_id, placeholder)
            if holder is None:
                return
            if holder.owner == self.owner and holder.run_id not in self._held:
                await self.leases.release(thread_id, holder.run_id)
                continue
            if holder.run_id.startswith(_CLOSING) or await self._ending(thread_id, holder):
                # The thread's last run has ended (or is being ended) and its lease is on
                # the way out: a client that heard the end may start at once.
                await asyncio.sleep(0.05)
                continue
            if strategy == "reject":
                raise Refused(Refusal.BUSY, _busy(thread_id, holder.run_id))
            if strategy in ("interrupt", "rollback") and not interrupted:
                with contextlib.suppress(Refused):  # it ended meanwhile
                    await self.cancel(thread_id, holder.run_id, action=strategy)
                interrupted = True
            if asyncio.get_running_loop().time() > deadline:
                raise Refused(
                    Refusal.BUSY,
                    f"thread {thread_id} stayed busy with run {holder.run_id} for "
                    f"{self.wait_seconds:g}s",
                )
            # The holder may be on another process: the lease is the only shared signal.
            await asyncio.sleep(0.05)

    # -- execute -------------------------------------------------------------------------

    async def _execute(
        self,
        run: Run,
        active: ActiveRun,
        params: RunStartParams,
        context: RunContext,
        record: RunRecord,
    ) -> None:
        emitter = Emitter(
            thread_id=run.thread_id, first_seq=active.first_seq, log=self.log, broker=self.broker
        )
        renewer = asyncio.create_task(self._keep_lease(run.thread_id, active))
        observe = self.observability
        observer = RunObserver(observe.prices, observe.model, on_task=emitter.emit_soon)
        ids = {"thread_id": run.thread_id, "run_id": run.run_id, "owner": run.owner or "",
               "alma_version": observe.version, "graph_id": GRAPH_ID,
               "assistant_id": MANAGER_ASSISTANT_ID, "created_by": "system"}  # fmt: skip
        tags = ["alma", f"alma:{observe.version}"]
        tracer = observe.tracing.tracer(tags=tags, metadata=ids)
        config: RunnableConfig = {
            "configurable": {**_mirrored(run, params), **_fork_point(run.api)},
            "metadata": {**params.metadata, **ids},
            "tags": tags,
            "run_id": uuid.UUID(run.run_id),
            "callbacks": [observer] if tracer is None else [observer, tracer],
        }
        metrics.RUNS_STARTED.inc()
        metrics.RUNS_ACTIVE.inc()
        terminal: dict[str, Any]
        try:
            await emitter.emit(lifecycle("running", run_id=run.run_id))
            if run.api is None:
                await self._stream_protocol(run, params, config, context, emitter)
            else:
                await self._stream_api(run, run.api, params, config, context, emitter)
            run.winding_down = True
            state = await self.graph.aget_state({"configurable": {"thread_id": run.thread_id}})
            outcome = outcome_of(state.values)
            await self._charge(run, outcome.tokens)
            run.progress.route = outcome.route or run.progress.route
            if outcome.error is not None:
                code, message = outcome.error
                terminal = lifecycle("failed", run_id=run.run_id, error=message, code=code)
            else:
                terminal = lifecycle("completed", run_id=run.run_id)
        except asyncio.CancelledError:
            run.winding_down = True
            if not run.rollback:
                await self._keep_partial_answer(run, config)
            why = SHUTDOWN_MESSAGE if self.draining else "the run was cancelled"
            terminal = lifecycle("failed", run_id=run.run_id, error=why, code=ErrorCode.CANCELLED)
        except (RedisError, OSError) as exc:
            logger.error("run %s lost its storage: %s", run.run_id, exc)
            terminal = lifecycle(
                "failed",
                run_id=run.run_id,
                error=f"conversation storage failed: {exc}",
                code=ErrorCode.STORAGE_UNAVAILABLE,
            )
        except Exception as exc:
            logger.exception("run %s failed", run.run_id, extra={"error_code": ErrorCode.INTERNAL})
            terminal = lifecycle(
                "failed",
                run_id=run.run_id,
                error=f"{type(exc).__name__}: {exc}",
                code=ErrorCode.INTERNAL,
            )
        finally:
            run.winding_down = True
            renewer.cancel()
            metrics.RUNS_ACTIVE.dec()
        try:
            terminal["params"]["data"].update(await self._account(run, terminal, observer))
            await emitter.emit(terminal)
            await emitter.close()
            if emitter.storage_error is not None:
                self._unlogged_ends[run.thread_id] = terminal
            await self._record_end(run, record, terminal)
        finally:
            self.runs.pop(run.run_id, None)
            with contextlib.suppress(RedisError, OSError):
                await self.leases.release(run.thread_id, run.run_id)
            self._held.discard(run.run_id)
        if run.api is not None and run.api.temporary and self._on_temporary_end is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._on_temporary_end(run.thread_id)

    async def _stream_protocol(
        self,
        run: Run,
        params: RunStartParams,
        config: RunnableConfig,
        context: RunContext,
        emitter: Emitter,
    ) -> None:
        stream = await self.graph.astream_events(
            params.input,
            config,
            version="v3",
            context=context,
            transformers=[CustomTransformer, UpdatesTransformer],
        )
        graph_names: dict[str, str] = {}
        async for event in stream:
            wire = from_graph(event, graph_names)
            _note_protocol_event(run.progress, wire)
            await emitter.emit(wire)

    async def _stream_api(
        self,
        run: Run,
        api: ApiRun,
        params: RunStartParams,
        config: RunnableConfig,
        context: RunContext,
        emitter: Emitter,
    ) -> None:
        await emitter.emit(api_event("metadata", {"run_id": run.run_id, "attempt": 1}))
        graph_input = Command(**api.command) if api.command else params.input
        async for name, data in api_events(
            self.graph, graph_input, config, modes=api.modes, subgraphs=api.subgraphs,
            context=context, interrupt_before=api.interrupt_before,
            interrupt_after=api.interrupt_after,
        ):  # fmt: skip
            event = api_event(name, data)
            _note_api_message(run.progress, event)
            await emitter.emit(event)

    async def _record_end(self, run: Run, record: RunRecord, terminal: dict[str, Any]) -> None:
        with contextlib.suppress(RedisError, OSError):
            if run.rollback:
                # Rolled back: as if it never ran — its checkpoints and record go.
                await self.graph.checkpointer.adelete_for_runs([run.run_id])  # type: ignore[union-attr]
                await self.records.delete(run.thread_id, run.run_id)
                return
            record.status = _status_of(terminal)
            data = terminal["params"]["data"]
            if record.status == "error":
                record.error = {"error": data.get("code") or ErrorCode.INTERNAL,
                                "message": data.get("error") or ""}  # fmt: skip
            await self.records.put(record)

    async def _account(
        self, run: Run, terminal: dict[str, Any], observer: RunObserver
    ) -> dict[str, Any]:
        """Record how the run went in metrics and the log; the figures its last event carries."""
        now = time.perf_counter()
        progress = run.progress
        data = terminal["params"]["data"]
        code = data.get("code") or ""
        outcome = (
            "completed" if data["event"] == "completed"
            else "cancelled" if code == ErrorCode.CANCELLED else "failed"
        )  # fmt: skip
        route = progress.route or "unknown"
        metrics.RUNS_FINISHED.labels(route, outcome, code).inc()
        metrics.RUN_DURATION.labels(route, outcome).observe(now - progress.started)
        figures: dict[str, Any] = {
            "route": progress.route,
            "duration_ms": round((now - progress.started) * 1000, 1),
            "cost_usd": round(observer.cost_usd, 8),
            "models": {name: dataclasses.asdict(t) for name, t in observer.models.items()},
        }
        if progress.first_token_at is not None:
            ttft = progress.first_token_at - progress.started
            metrics.TIME_TO_FIRST_TOKEN.labels(route).observe(ttft)
            figures["time_to_first_token_ms"] = round(ttft * 1000, 1)
            completion = sum(totals.completion_tokens for totals in observer.models.values())
            streaming = (progress.last_token_at or now) - progress.first_token_at
            if completion and streaming > 0:
                metrics.TOKENS_PER_SECOND.labels(route).observe(completion / streaming)
                figures["tokens_per_second"] = round(completion / streaming, 1)
        trace_url = await self.observability.tracing.run_url(run.run_id)
        if trace_url is not None:
            figures["trace_url"] = trace_url
        log = logger.info if outcome == "completed" else logger.warning
        log(
            "run %s %s on route %s in %.0f ms",
            run.run_id,
            outcome,
            route,
            figures["duration_ms"],
            extra={"outcome": outcome, "error_code": code or None, "route": route,
                   "cost_usd": figures["cost_usd"]},
        )  # fmt: skip
        return figures

    async def close_orphan(self, thread_id: str) -> None:
        """End the thread's last run if its process died before it could (lease expired).

        Called when a subscriber here has waited on a remote run whose lease is gone.
        The thread's lease is taken while the end is written, so it cannot interleave
        with a new run's events.
        """
        if await self._last_run_ended(thread_id) is not None:
            return  # the common case, read without taking the thread
        placeholder = ActiveRun(run_id=f"{_CLOSING}{uuid.uuid4()}", owner=self.owner, first_seq=0)
        self._held.add(placeholder.run_id)
        try:
            if await self.leases.acquire(thread_id, placeholder) is not None:
                return  # a run holds the thread: the old one's end is no longer in doubt
            try:
                await self._end_unfinished(thread_id)
            finally:
                await self.leases.release(thread_id, placeholder.run_id)
        finally:
            self._held.discard(placeholder.run_id)

    async def _ending(self, thread_id: str, holder: ActiveRun) -> bool:
        """Whether the holder's run has ended (lease not yet let go).

        Ended: its terminal event is logged, or it runs here and is winding down — still
        writing its end, which a storage outage can hold up for seconds of retries.
        """
        if holder.first_seq == 0:
            return False  # a start still choosing its first seq: not ending
        local = self.runs.get(holder.run_id)
        if local is not None and local.winding_down:
            return True
        ended = await self._last_run_ended(thread_id)
        return ended is not None and ended >= holder.first_seq

    async def _last_run_ended(self, thread_id: str) -> int | None:
        """The thread's newest `seq` if its last run has ended (0: no events); else `None`."""
        newest = await self.log.last(thread_id)
        if newest is None:
            return 0
        return int(newest["seq"]) if is_terminal(newest) else None

    async def _end_unfinished(self, thread_id: str) -> int:
        """End the thread's last run if it never ended; the thread's newest `seq` after."""
        # Holding the thread's lease: no run of it is executing anywhere. One event is
        # read on every run start; the run's events only when it was left unfinished.
        ended = await self._last_run_ended(thread_id)
        if ended is not None:
            self._unlogged_ends.pop(thread_id, None)
            return ended
        last = await self.log.last_seq(thread_id)
        unlogged = self._unlogged_ends.pop(thread_id, None)
        if unlogged is not None:
            # This process ran it and knows how it ended; Redis was away to hear it.
            events = [numbered(unlogged, last + 1)]
            await self.log.append(thread_id, events)
            self.broker.publish(thread_id, events)
            return last + 1
        recent = await self.log.read(thread_id, max(0, last - 1000), limit=1000)
        started = next(
            (e for e in reversed(recent)
             if e["method"] == "lifecycle" and not e["params"].get("namespace")
             and e["params"]["data"].get("event") == "running"),
            None,
        )  # fmt: skip
        run_id = started["params"]["data"].get("run_id", "unknown") if started else "unknown"
        ending = lifecycle(
            "failed",
            run_id=str(run_id),
            error=LOST_MESSAGE,
            code=ErrorCode.WORKER_LOST,
        )
        events = [numbered(ending, last + 1)]
        await self.log.append(thread_id, events)
        self.broker.publish(thread_id, events)
        metrics.RUNS_FINISHED.labels("unknown", "failed", ErrorCode.WORKER_LOST).inc()
        logger.warning(
            "run %s on thread %s was left unfinished by a stopped process; ended it",
            run_id, thread_id, extra={"error_code": ErrorCode.WORKER_LOST},
        )  # fmt: skip
        return last + 1

    async def _charge(self, run: Run, tokens: int) -> None:
        if self.spend_tokens is None or run.limit_key is None or tokens <= 0:
            return
        try:
            await self.spend_tokens(run.limit_key, tokens)
        except Exception:
            # A budget that cannot be charged must not fail an answer already given.
            logger.exception("could not charge %d tokens of run %s", tokens, run.run_id)

    async def _keep_lease(self, thread_id: str, active: ActiveRun) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.leases.renew(thread_id, active)
            except Exception as exc:
                # A renewal that fails now may succeed next time; the renewer lives on.
                logger.warning("could not renew the lease of thread %s: %r", thread_id, exc)

    async def _keep_partial_answer(self, run: Run, config: RunnableConfig) -> None:
        # Text the user already saw is kept in the thread, marked as cancelled.
        partial = run.progress.partial()
        if partial is None:
            return
        try:
            await self.graph.aupdate_state(config, partial.values, as_node=partial.as_node)
        except Exception:
            logger.exception("could not keep the partial answer of run %s", run.run_id)

    # -- cancel and shutdown ---------------------------------------------------------------

    async def record(self, thread_id: str, run_id: str) -> RunRecord | None:
        """A run's record, settled if it says `running` of a run that runs nowhere."""
        found = await self.records.get(thread_id, run_id)
        if found is None:
            return None
        [settled] = await self._settled(thread_id, [found])
        return settled

    async def records_of(self, thread_id: str) -> list[RunRecord]:
        """The thread's run records, newest first, settled as `record` settles one."""
        return await self._settled(thread_id, await self.records.list(thread_id))

    async def _settled(self, thread_id: str, records: list[RunRecord]) -> list[RunRecord]:
        # A run's end is written by the process that ran it. One that died first, or
        # lost Redis while writing it, leaves `running` behind: a run no process runs
        # (the thread's lease names another, or none) has ended, as its log says or,
        # failing that, lost with its process. Waiting runs (`pending`) are left alone:
        # another process may hold them in its queue.
        stale = [r for r in records if r.status == "running" and r.run_id not in self.runs]
        if not stale:
            return records
        holder = await self.leases.holder(thread_id)
        for record in stale:
            if holder is not None and holder.run_id == record.run_id:
                continue
            end = await self._logged_end(record)
            data = end["params"]["data"] if end else {}
            record.status = _status_of(end) if end else "error"
            if record.status == "error":
                record.error = {"error": data.get("code") or ErrorCode.WORKER_LOST,
                                "message": data.get("error") or LOST_MESSAGE}  # fmt: skip
            with contextlib.suppress(RedisError, OSError):
                await self.records.put(record)
        return records

    async def _logged_end(self, record: RunRecord) -> dict[str, Any] | None:
        """The root end of `record`'s run in its thread's log, if it got there."""
        after = max(0, record.first_seq - 1)
        for event in await self.log.read(record.thread_id, after, limit=100_000):
            if is_terminal(event) and event["params"]["data"].get("run_id") == record.run_id:
                return event
        return None

    async def cancel(self, thread_id: str, run_id: str, *, action: str = "interrupt") -> None:
        """Cancel a run of `thread_id`, here or on whichever process executes it.

        `rollback` also deletes what the run wrote (its checkpoints and record).

        Raises:
            Refused: `NO_SUCH_RUN` when the thread has no such active run.
        """
        local = self.runs.get(run_id)
        if local is not None and local.thread_id == thread_id:
            self._cancel_local(local, rollback=action == "rollback")
            return
        holder = await self.leases.holder(thread_id)
        if holder is None or holder.run_id != run_id:
            record = await self.records.get(thread_id, run_id)
            if record is None or record.status != "pending":
                raise Refused(Refusal.NO_SUCH_RUN, NO_ACTIVE_RUN)
        await self.control.publish({"kind": "cancel", "run_id": run_id, "action": action})

    def _cancel_local(self, run: Run, *, rollback: bool = False) -> None:
        run.rollback = run.rollback or rollback
        if run.task is not None and not run.cancelled:
            run.cancelled = True
            run.stopper = asyncio.create_task(self._cancel_until_stopped(run, run.task))

    @staticmethod
    async def _cancel_until_stopped(run: Run, task: asyncio.Task[None]) -> None:
        # On Python 3.11, `asyncio.wait_for` (used inside redis-py) can swallow a
        # cancellation that lands as its inner call completes; ask again until the run
        # has stopped streaming (its wind-down must not be cancelled itself).
        while not task.done() and not run.winding_down:
            task.cancel()
            await asyncio.wait({task}, timeout=0.25)

    async def on_control(self, message: dict[str, Any]) -> None:
        """Act on a message from another process (or this one)."""
        if message.get("kind") == "cancel":
            run = self.runs.get(str(message.get("run_id")))
            if run is not None:
                self._cancel_local(run, rollback=message.get("action") == "rollback")
        elif message.get("kind") == "started" and message.get("owner") != self.owner:
            self.broker.follow_remote_run(str(message["thread_id"]), int(message["first_seq"]) - 1)

    async def shutdown(self, grace: float) -> None:
        """Stop taking runs; let running ones finish for `grace` seconds, then cancel them."""
        self.draining = True
        tasks = [run.task for run in self.runs.values() if run.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for run in list(self.runs.values()):
                self._cancel_local(run)
            if pending:
                await asyncio.wait(pending, timeout=10)
