"""How a thread's runs ended, as its event log tells it; and ending those that never did.

A run's process writes its end. When that process died, or lost Redis while writing,
the run is ended here: by the next run to take the thread, by a subscriber that saw
its lease lapse, or when its record is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Container, Iterator
from typing import Any

from redis.exceptions import RedisError

from nodes.errors import ErrorCode
from server.engine.broker import Broker
from server.engine.coordination import RunLeases, Taken
from server.engine.events import RunEnd, is_terminal, lifecycle, numbered, run_end, run_started
from server.engine.run import LOST_MESSAGE, status_of
from server.observability import metrics
from server.stores.event_log import EventLog
from server.stores.run_records import RunRecord, RunRecords

logger = logging.getLogger("alma.engine")


class RunEndings:
    """The ends of a thread's runs: read from its log, written for runs that lost theirs."""

    def __init__(
        self, *, log: EventLog, broker: Broker, records: RunRecords, leases: RunLeases
    ) -> None:
        self.log = log
        self.broker = broker
        self.records = records
        self.leases = leases
        # Terminal events that could not be logged (Redis was away), written when the
        # thread is next taken so resuming clients hear how the run really ended.
        self._unlogged: dict[str, dict[str, Any]] = {}
        # Threads whose run, on this process, is still writing its end (catching its log
        # up after an outage): set when it is done.
        self._writing: dict[str, asyncio.Event] = {}

    @contextlib.contextmanager
    def writing(self, thread_id: str) -> Iterator[None]:
        """While a run of this process writes its end, nobody here ends it as lost."""
        done = asyncio.Event()
        self._writing[thread_id] = done
        try:
            yield
        finally:
            done.set()
            if self._writing.get(thread_id) is done:
                del self._writing[thread_id]

    def unlogged(self, thread_id: str, terminal: dict[str, Any]) -> None:
        """A run of this process ended while its log could not be written: keep its end."""
        self._unlogged[thread_id] = terminal

    async def last_run_ended(self, thread_id: str) -> int | None:
        """The thread's newest `seq` if its last run has ended (0: no events); else `None`."""
        newest = await self.log.last(thread_id)
        if newest is None:
            return 0
        return int(newest["seq"]) if is_terminal(newest) else None

    async def first_seq(self, thread_id: str, taken: Taken) -> int:
        """The first `seq` of a run that has just taken its thread.

        Read from the log as the thread was taken, when that showed the last run ended
        and nothing of this process is still to be written; else its end is settled
        first (`end_unfinished`).
        """
        ended = taken.newest is None or is_terminal(taken.newest)
        settled = thread_id not in self._writing and thread_id not in self._unlogged
        if taken.read and ended and settled:
            return taken.lease.first_seq
        return await self.end_unfinished(thread_id) + 1

    async def end_unfinished(self, thread_id: str) -> int:
        """End the thread's last run if it never ended; the thread's newest `seq` after."""
        # Holding the thread's lease: no run of it is executing anywhere — though one of
        # this process may still be writing its end, its lease lapsed during an outage:
        # its own end, not a lost one, goes in the log. One event is read on every run
        # start; the run's events only when it was left unfinished.
        if (writing := self._writing.get(thread_id)) is not None:
            await writing.wait()
        ended = await self.last_run_ended(thread_id)
        if ended is not None:
            self._unlogged.pop(thread_id, None)
            return ended
        last = await self.log.last_seq(thread_id)
        unlogged = self._unlogged.pop(thread_id, None)
        if unlogged is not None:
            # This process ran it and knows how it ended; Redis was away to hear it.
            events = [numbered(unlogged, last + 1)]
            await self.log.append(thread_id, events)
            self.broker.publish(thread_id, events)
            return last + 1
        recent = await self.log.read(thread_id, max(0, last - 1000), limit=1000)
        started = (run_started(e) for e in reversed(recent))
        run_id = next((found for found in started if found), None) or "unknown"
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

    async def settled(
        self, thread_id: str, records: list[RunRecord], running_here: Container[str]
    ) -> list[RunRecord]:
        """`records`, each `running` one of a run that runs nowhere given its true end."""
        # A run's end is written by the process that ran it. One that died first, or
        # lost Redis while writing it, leaves `running` behind: a run no process runs
        # (the thread's lease names another, or none) has ended, as its log says or,
        # failing that, lost with its process. Waiting runs (`pending`) are left alone:
        # another process may hold them in its queue.
        stale = [r for r in records if r.status == "running" and r.run_id not in running_here]
        if not stale:
            return records
        holder = await self.leases.holder(thread_id)
        for record in stale:
            if holder is not None and holder.run_id == record.run_id:
                continue
            end = await self.logged_end(record)
            record.status = status_of(end) if end else "error"
            if record.status == "error":
                record.error = {"error": (end and end.code) or ErrorCode.WORKER_LOST,
                                "message": (end and end.error) or LOST_MESSAGE}  # fmt: skip
            with contextlib.suppress(RedisError, OSError):
                await self.records.put(record)
        return records

    async def logged_end(self, record: RunRecord) -> RunEnd | None:
        """The root end of `record`'s run in its thread's log, if it got there."""
        after = max(0, record.first_seq - 1)
        for event in await self.log.read(record.thread_id, after, limit=100_000):
            end = run_end(event)
            if end is not None and end.run_id == record.run_id:
                return end
        return None
