"""Who may run on a thread now: one run at a time, across processes, by multitask strategy.

A run takes its thread's lease before it starts. A busy thread is refused (`reject`),
waited for (`enqueue`), or has its run stopped first (`interrupt`, `rollback`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

from server.engine.coordination import ActiveRun, RunLeases, Taken
from server.engine.endings import RunEndings
from server.engine.run import busy_message
from server.guard.refusals import Refusal, Refused

CLOSING = "closing-"
"""Lease holders with this prefix are ending a dead process's run, for milliseconds."""


class ThreadAdmission:
    """Takes threads for this process's runs, and knows which leases it holds."""

    def __init__(
        self,
        *,
        leases: RunLeases,
        endings: RunEndings,
        owner: str,
        wait_seconds: float,
        winding_down: Callable[[str], bool],
        cancel: Callable[[str, str, str], Awaitable[None]],
    ) -> None:
        """Admit runs for the process named `owner`.

        `winding_down(run_id)` tells whether a run of this process is writing its end;
        `cancel(thread_id, run_id, action)` stops a run wherever it executes.
        """
        self.leases = leases
        self.endings = endings
        self.owner = owner
        self.wait_seconds = wait_seconds
        self._winding_down = winding_down
        self._cancel = cancel
        # Run ids whose thread lease this process holds or is taking. A lease naming this
        # process but not in here was left behind when Redis was away at its release.
        self.held: set[str] = set()

    async def try_take(self, thread_id: str, run_id: str, strategy: str) -> Taken | None:
        """Take a free thread now; refuse a busy one under `reject`; else `None`."""
        placeholder = ActiveRun(run_id=run_id, owner=self.owner, first_seq=0)
        self.held.add(run_id)
        holder = await self.leases.acquire(thread_id, placeholder)
        if isinstance(holder, Taken):
            return holder
        self.held.discard(run_id)
        if strategy == "reject" and not (
            holder.run_id.startswith(CLOSING) or await self.ending(thread_id, holder)
        ):
            raise Refused(Refusal.BUSY, busy_message(thread_id, holder.run_id))
        return None

    async def take(self, thread_id: str, run_id: str, strategy: str) -> Taken:
        """Take the thread, waiting (or stopping its run) as `strategy` says."""
        placeholder = ActiveRun(run_id=run_id, owner=self.owner, first_seq=0)
        self.held.add(run_id)
        try:
            return await self._wait(thread_id, placeholder, strategy)
        except BaseException:
            self.held.discard(run_id)
            raise

    async def _wait(self, thread_id: str, placeholder: ActiveRun, strategy: str) -> Taken:
        deadline = asyncio.get_running_loop().time() + self.wait_seconds
        interrupted = False
        while True:
            holder = await self.leases.acquire(thread_id, placeholder)
            if isinstance(holder, Taken):
                return holder
            if holder.owner == self.owner and holder.run_id not in self.held:
                await self.leases.release(thread_id, holder.run_id)
                continue
            if holder.run_id.startswith(CLOSING) or await self.ending(thread_id, holder):
                # The thread's last run has ended (or is being ended) and its lease is on
                # the way out: a client that heard the end may start at once.
                await asyncio.sleep(0.05)
                continue
            if strategy == "reject":
                raise Refused(Refusal.BUSY, busy_message(thread_id, holder.run_id))
            if strategy in ("interrupt", "rollback") and not interrupted:
                with contextlib.suppress(Refused):  # it ended meanwhile
                    await self._cancel(thread_id, holder.run_id, strategy)
                interrupted = True
            if asyncio.get_running_loop().time() > deadline:
                raise Refused(
                    Refusal.BUSY,
                    f"thread {thread_id} stayed busy with run {holder.run_id} for "
                    f"{self.wait_seconds:g}s",
                )
            # The holder may be on another process: the lease is the only shared signal.
            await asyncio.sleep(0.05)

    async def close_orphan(self, thread_id: str) -> None:
        """End the thread's last run if its process died before it could (lease expired).

        Called when a subscriber here has waited on a remote run whose lease is gone.
        The thread's lease is taken while the end is written, so it cannot interleave
        with a new run's events.
        """
        if await self.endings.last_run_ended(thread_id) is not None:
            return  # the common case, read without taking the thread
        placeholder = ActiveRun(run_id=f"{CLOSING}{uuid.uuid4()}", owner=self.owner, first_seq=0)
        self.held.add(placeholder.run_id)
        try:
            if not isinstance(await self.leases.acquire(thread_id, placeholder), Taken):
                return  # a run holds the thread: the old one's end is no longer in doubt
            try:
                await self.endings.end_unfinished(thread_id)
            finally:
                await self.leases.release(thread_id, placeholder.run_id)
        finally:
            self.held.discard(placeholder.run_id)

    async def ending(self, thread_id: str, holder: ActiveRun) -> bool:
        """Whether the holder's run has ended (lease not yet let go).

        Ended: its terminal event is logged, or it runs here and is winding down — still
        writing its end, which a storage outage can hold up for seconds of retries.
        """
        if holder.first_seq == 0:
            return False  # a start still choosing its first seq: not ending
        if self._winding_down(holder.run_id):
            return True
        ended = await self.endings.last_run_ended(thread_id)
        return ended is not None and ended >= holder.first_seq
