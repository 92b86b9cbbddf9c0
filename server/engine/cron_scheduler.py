"""The cron scheduler: every process runs one, and each tick of a cron starts one run.

All processes look at the same due crons; a tick is claimed in the store by moving the
cron on to its next tick only if it still holds this one (`Crons.claim`), so exactly one
process starts the tick's run, through the one start path, for the cron's owner and
under their limits. No process owns a cron: when one dies, the others claim its ticks.

A tick found late (every process was down, or busy) starts one run and the cron moves
on from now: missed ticks are skipped, not caught up, as LangGraph's scheduler does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from server.engine.starting import RunStarter
from server.guard.refusals import Refused
from server.langgraph_api.crons import next_tick, tick_request
from server.stores.crons import CronRecord, Crons, iso_of_ms

logger = logging.getLogger("alma.engine")

BATCH = 100
"""Due crons taken per look: more wait for the next look, a moment later."""


def ms_of(moment: datetime) -> int:
    """A time as epoch milliseconds (the store's scores)."""
    return int(moment.timestamp() * 1000)


def following_tick(record: CronRecord, tick_ms: int, now_ms: int) -> int | None:
    """When the cron ticks after `tick_ms`, seen at `now_ms`; `None`: never again.

    From the later of the two, so that a late tick does not fire the missed ones. A
    disabled cron ticks on without runs, so that it shows when it would run next.
    """
    after = datetime.fromtimestamp(max(tick_ms, now_ms) / 1000, UTC)
    following = ms_of(next_tick(record.schedule, after, record.timezone))
    return None if ended(record, following) else following


def ended(record: CronRecord, tick_ms: int) -> bool:
    """Whether `tick_ms` comes after the cron's `end_time`."""
    return record.end_time is not None and tick_ms > ms_of(datetime.fromisoformat(record.end_time))


class CronScheduler:
    """Claims due ticks and starts their runs, until cancelled."""

    def __init__(self, *, crons: Crons, starter: RunStarter, poll_seconds: float) -> None:
        """`poll_seconds`: the longest it waits before looking again.

        A cron created or changed in another process is seen within it; one created
        here wakes the scheduler at once (`wake`).
        """
        self.crons = crons
        self.starter = starter
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._starting: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look again now: a cron was created or changed."""
        self._wake.set()

    async def run(self) -> None:
        """Look, start what is due, wait for the next tick; until cancelled."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self.fire_due()
                    delay = await self._delay()
                except Exception as exc:
                    # Redis away: the ticks wait in the store until it is back. One line
                    # a look, not a traceback.
                    logger.warning("cron scheduler: could not look for due crons: %r", exc)
                    delay = self.poll_seconds
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            for task in list(self._starting):
                task.cancel()

    async def _delay(self) -> float:
        earliest = await self.crons.earliest()
        if earliest is None:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.0, earliest / 1000 - time.time()))

    async def fire_due(self) -> int:
        """Claim every due tick this process gets first and start its run; how many."""
        now_ms = int(time.time() * 1000)
        claimed = 0
        for cron_id, tick_ms in await self.crons.due(now_ms, BATCH):
            stored = await self.crons.get(cron_id)
            if stored is None:
                # Deleted between the look and now: drop its leftover tick.
                await self.crons.claim(cron_id, tick_ms, None)
                continue
            record = stored.record
            try:
                following = following_tick(record, tick_ms, now_ms)
            except (ValueError, OverflowError):
                # A schedule with no tick left (checked at creation; only a record of
                # another version): it stops, rather than stall every other cron.
                logger.warning("cron %s: no next tick for %r", cron_id, record.schedule)
                following = None
            if not await self.crons.claim(cron_id, tick_ms, following):
                continue  # another process took this tick
            claimed += 1
            if record.enabled and not ended(record, tick_ms):
                self._start(record, tick_ms)
        return claimed

    def _start(self, record: CronRecord, tick_ms: int) -> None:
        # In the background: a run waiting for its thread (`enqueue`) must not hold up
        # the other crons' ticks.
        task = asyncio.get_running_loop().create_task(self._start_run(record, tick_ms))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _start_run(self, record: CronRecord, tick_ms: int) -> None:
        tick = iso_of_ms(tick_ms)
        try:
            request = tick_request(record, tick)
            run = await self.starter.start(request)
        except Refused as exc:
            # Over the owner's limit, a busy thread under `reject`, a thread deleted:
            # this tick is skipped, the next one tries again.
            logger.warning(
                "cron %s: the run of tick %s was refused: %s", record.cron_id, tick, exc.message,
                extra={"cron_id": record.cron_id, "owner": record.owner},
            )  # fmt: skip
            return
        except Exception:
            logger.exception("cron %s: the run of tick %s did not start", record.cron_id, tick)
            return
        logger.info(
            "cron %s tick %s started run %s on thread %s",
            record.cron_id, tick, run.run_id, run.thread_id,
            extra={"cron_id": record.cron_id, "run_id": run.run_id, "owner": record.owner},
        )  # fmt: skip
