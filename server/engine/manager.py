"""The run engine: runs execute as background tasks, independent of any connection.

Each run streams the graph, numbers every event in the thread's log, stores it, and
only then fans it out (`emitter`). A thread has one active run at a time across
processes (`admission`); a run lost with its process is ended by whoever next meets it
(`endings`); cancel reaches a run wherever it executes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Durability
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import RedisError

from nodes.run_context import RunContext
from server.engine.admission import ThreadAdmission
from server.engine.broker import Broker
from server.engine.coordination import ActiveRun, Control, RunLeases, Taken
from server.engine.endings import RunEndings
from server.engine.execution import RunExecution
from server.engine.pacing import WritePacing
from server.engine.run import NO_ACTIVE_RUN, Run, StartRequest, cancel_until_stopped, recorded
from server.guard.refusals import Refusal, Refused
from server.guard.validation import describe_invalid
from server.langgraph_api.assistants import GRAPH_ID, MANAGER_ASSISTANT_ID, resolve_assistant
from server.observability.logs import bound
from server.observability.observer import Observability
from server.stores.event_log import EventLog
from server.stores.run_records import MemoryRunRecords, RunRecord, RunRecords

logger = logging.getLogger("alma.engine")

_CONTEXT_FIELDS = frozenset(f.name for f in dataclasses.fields(RunContext))
_RUN_CONTEXT = TypeAdapter(RunContext)


class RunManager:
    """Starts, tracks, cancels and drains the runs of this process."""

    def __init__(
        self,
        *,
        graph: CompiledStateGraph[Any, RunContext, Any, Any],
        log: EventLog,
        leases: RunLeases,
        control: Control,
        owner: str,
        lease_seconds: float,
        wait_seconds: float,
        queue_size: int,
        spend_tokens: Callable[[str, int], Awaitable[None]] | None = None,
        observability: Observability | None = None,
        records: RunRecords | None = None,
        on_start: Callable[[str, str], Awaitable[Mapping[str, Any]]] | None = None,
        on_temporary_end: Callable[[str], Awaitable[None]] | None = None,
        on_end: Callable[[Run], Awaitable[None]] | None = None,
        durability: Durability = "exit",
        pacing: WritePacing | None = None,
        context_defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """Run the graph's runs for the process named `owner`.

        `queue_size` bounds each subscription's queue in the engine's broker, through
        which every wire format follows a thread's events. `durability` is when a run's
        steps are saved unless its request says otherwise; `pacing` spaces the writes of runs'
        events to the log (by default 50 ms apart, with no process-wide cap).
        `context_defaults` are the run options a request leaves out (the operator's choice
        of, say, plan review on for every run); a request's own choice wins.
        """
        self.graph = graph
        self._context_defaults = dict(context_defaults or {})
        self.log = log
        # The broker asks the engine where a thread's run executes, and to end a run
        # whose process died: it is the engine's own fan-out, built here.
        self.broker = Broker(
            log=log, queue_size=queue_size, run_origin=self.run_origin,
            on_orphan=self.close_orphan,
        )  # fmt: skip
        self.leases = leases
        self.control = control
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.spend_tokens = spend_tokens
        self.durability: Durability = durability
        self.observability = observability or Observability()
        self.records: RunRecords = records or MemoryRunRecords()
        self._on_start = on_start
        """Told of every run's thread as it is created (threads' `updated_at`); answers
        the thread's metadata, which the run's metadata starts from."""
        self._on_temporary_end = on_temporary_end
        """Deletes a stateless run's thread when the run has ended."""
        self._on_end = on_end
        """Told of every run that executed here once it has ended (its webhook), before
        a stateless run's thread is deleted."""
        self.runs: dict[str, Run] = {}
        self.draining = False
        self.endings = RunEndings(log=log, broker=self.broker, records=self.records, leases=leases)
        self.execution = RunExecution(
            graph=graph, log=log, broker=self.broker, leases=leases, records=self.records,
            endings=self.endings, observability=self.observability,
            lease_seconds=lease_seconds, spend_tokens=spend_tokens,
            draining=lambda: self.draining, pacing=pacing or WritePacing(least=0.05),
        )  # fmt: skip
        self.admission = ThreadAdmission(
            leases=leases, endings=self.endings, owner=owner, wait_seconds=wait_seconds,
            winding_down=self._winding_down, cancel=self._cancel_for_strategy,
        )  # fmt: skip

    def _winding_down(self, run_id: str) -> bool:
        run = self.runs.get(run_id)
        return run is not None and run.winding_down

    async def _cancel_for_strategy(self, thread_id: str, run_id: str, action: str) -> None:
        await self.cancel(thread_id, run_id, action=action)

    # -- queries -------------------------------------------------------------------------

    async def run_origin(self, thread_id: str) -> tuple[int, bool] | None:
        """`(first_seq, is_local)` of the thread's active run, or `None`."""
        holder = await self.leases.holder(thread_id)
        if holder is None or holder.first_seq == 0:
            return None
        return holder.first_seq, holder.owner == self.owner

    # -- start ---------------------------------------------------------------------------

    async def start(
        self, thread_id: str, request: StartRequest, context: RunContext | None = None
    ) -> Run:
        """Start `request`'s run on `thread_id`, honouring its multitask strategy.

        A run that finds its thread free is recorded once, `running`. On a busy thread
        it is recorded `pending`, and waits here — or, if its stream format says so
        (LangGraph's API), returns at once and waits in the background (`enqueue`,
        `interrupt`, `rollback`); `reject` is refused here either way.

        Raises:
            Refused: for a bad request, a busy thread under `reject`, or a server
                that is shutting down.
        """
        if self.draining:
            raise Refused(
                Refusal.SHUTTING_DOWN, "the server is shutting down; start the run on another one"
            )
        # Callers that checked the request already (to claim its thread) pass what they got.
        context = context or self.check(request)
        metadata = request.metadata
        if self._on_start is not None:
            with contextlib.suppress(RedisError, OSError):
                # As on LangGraph's server, a run's metadata (and so its checkpoints')
                # starts from its thread's, and the request's own keys win.
                metadata = {**await self._on_start(thread_id, request.title), **metadata}
        durability = request.durability or self.durability
        request = dataclasses.replace(request, metadata=metadata, durability=durability)
        run_id = str(uuid.uuid4())
        shown = {"created_by": "system", **metadata, "graph_id": GRAPH_ID,
                 "assistant_id": MANAGER_ASSISTANT_ID}  # fmt: skip
        record = RunRecord(
            run_id=run_id, thread_id=thread_id, assistant_id=MANAGER_ASSISTANT_ID,
            metadata=shown, kwargs=recorded(request, run_id, thread_id, shown),
            multitask_strategy=request.multitask_strategy,
        )  # fmt: skip
        run = Run(
            run_id=run_id, thread_id=thread_id, request=request, record=record,
            durability=durability,
        )  # fmt: skip
        strategy = request.multitask_strategy
        if (taken := await self.admission.try_take(thread_id, run_id, strategy)) is not None:
            return await self._begin(run, context, taken)
        # Busy: the run waits, listed among the thread's runs as `pending`.
        await self.records.put(record)
        if request.stream.queue_when_busy:
            self.runs[run_id] = run
            run.task = asyncio.create_task(self._queued(run, context))
            return run
        try:
            taken = await self.admission.take(thread_id, run_id, strategy)
        except BaseException:
            # Refused (still busy) or abandoned: a run that never began is not one of
            # the thread's runs.
            await asyncio.shield(self.records.delete(thread_id, run_id))
            raise
        return await self._begin(run, context, taken)

    async def _queued(self, run: Run, context: RunContext) -> None:
        # An API run waiting for its thread; cancelling it here ends it before it began.
        record = run.record
        try:
            taken = await self.admission.take(
                run.thread_id, run.run_id, run.request.multitask_strategy
            )
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
        await self._begin(run, context, taken)

    async def _begin(self, run: Run, context: RunContext, taken: Taken) -> Run:
        thread_id, record = run.thread_id, run.record
        try:
            first_seq = await self.endings.first_seq(thread_id, taken)
            active = ActiveRun(run_id=run.run_id, owner=self.owner, first_seq=first_seq)
            if first_seq != taken.lease.first_seq:
                await self.leases.renew(thread_id, active)
        except BaseException:
            self.admission.held.discard(run.run_id)
            await self.leases.release(thread_id, run.run_id)
            raise
        self.runs[run.run_id] = run
        record.status, record.first_seq = "running", first_seq
        with contextlib.suppress(RedisError, OSError):
            await self.records.put(record)
        with bound(run_id=run.run_id, thread_id=thread_id, owner=run.request.owner):
            run.task = asyncio.create_task(self._execute(run, active, context))
        with contextlib.suppress(Exception):
            await self.control.publish(
                {"kind": "started", "thread_id": thread_id, "first_seq": first_seq,
                 "owner": self.owner}
            )  # fmt: skip
        return run

    def check(self, request: StartRequest) -> RunContext:
        """The run's context, once its assistant and context are known to be good.

        Raises:
            Refused: `INVALID`, naming what is wrong.
        """
        if resolve_assistant(request.assistant_id) is None:
            raise Refused(
                Refusal.INVALID,
                f"unknown assistant_id {request.assistant_id!r}; this server runs 'manager'",
            )
        return self._context(request)

    def _context(self, request: StartRequest) -> RunContext:
        configurable = request.config.get("configurable") or {}
        chosen = dict(self._context_defaults)
        chosen.update((k, v) for k, v in configurable.items() if k in _CONTEXT_FIELDS)
        chosen.update(request.context)
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

    # -- execute -------------------------------------------------------------------------

    async def _execute(self, run: Run, active: ActiveRun, context: RunContext) -> None:
        try:
            await self.execution.execute(run, active, context)
        finally:
            self.runs.pop(run.run_id, None)
            with contextlib.suppress(RedisError, OSError):
                await self.leases.release(run.thread_id, run.run_id)
            self.admission.held.discard(run.run_id)
        if self._on_end is not None:
            try:
                await self._on_end(run)
            except Exception:
                logger.exception("could not act on the end of run %s", run.run_id)
        if run.request.temporary and self._on_temporary_end is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._on_temporary_end(run.thread_id)

    # -- records, cancel and shutdown -----------------------------------------------------

    async def close_orphan(self, thread_id: str) -> None:
        """End the thread's last run if its process died before it could (lease expired)."""
        await self.admission.close_orphan(thread_id)

    async def record(self, thread_id: str, run_id: str) -> RunRecord | None:
        """A run's record, settled if it says `running` of a run that runs nowhere."""
        found = await self.records.get(thread_id, run_id)
        if found is None:
            return None
        [settled] = await self.endings.settled(thread_id, [found], self.runs)
        return settled

    async def records_of(self, thread_id: str) -> list[RunRecord]:
        """The thread's run records, newest first, settled as `record` settles one."""
        return await self.endings.settled(thread_id, await self.records.list(thread_id), self.runs)

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
            run.stopper = asyncio.create_task(cancel_until_stopped(run, run.task))

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
