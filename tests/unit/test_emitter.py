"""A run's log catches up after failed writes: it ends holding every event of the run."""

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from server.engine.broker import Broker
from server.engine.emitter import Emitter
from server.engine.events import Logged, lifecycle
from server.engine.pacing import WritePacing
from server.stores.event_log import MemoryEventLog


class FailingOverLog(MemoryEventLog):
    """A log whose master dies after `healthy` writes, losing its last unreplicated event,
    and whose replica answers after `down` failed writes."""

    def __init__(self, *, healthy: int, down: int) -> None:
        super().__init__(maxlen=10_000)
        self.healthy, self.down = healthy, down

    async def append(self, thread_id: str, events: list[Logged]) -> None:
        if self.healthy == 0 and self.down > 0:
            self.down -= 1
            if self.down == 0:
                self._events[thread_id].pop()  # acknowledged, never replicated
            raise RedisConnectionError("master down")
        self.healthy -= 1
        await super().append(thread_id, events)


def event(n: int) -> dict[str, Any]:
    return lifecycle("running", run_id=f"step-{n}")


async def test_the_log_holds_every_event_after_a_fail_over() -> None:
    log = FailingOverLog(healthy=3, down=3)
    broker = Broker(log=log, queue_size=100, run_origin=lambda _: asyncio.sleep(0, None))
    emitter = Emitter(thread_id="t", first_seq=1, log=log, broker=broker)
    for n in range(1, 21):
        await emitter.emit(event(n))
        await asyncio.sleep(0)  # one batch per event
    await emitter.close()
    stored = await log.read("t", 0, limit=100)
    assert [e["seq"] for e in stored] == list(range(1, 21))
    assert emitter.storage_error is None


class CountingLog(MemoryEventLog):
    """A log that keeps the batches it was given, and when each came."""

    def __init__(self) -> None:
        super().__init__(maxlen=10_000)
        self.batches: list[list[int]] = []

    async def append(self, thread_id: str, events: list[Logged]) -> None:
        self.batches.append([e["seq"] for e in events])
        await super().append(thread_id, events)


async def test_writes_are_spaced_by_the_flush_interval_but_a_hurried_event_is_not_held() -> None:
    log = CountingLog()
    broker = Broker(log=log, queue_size=100, run_origin=lambda _: asyncio.sleep(0, None))
    # An interval longer than the test: only `now` and the close may cut a wait short.
    emitter = Emitter(thread_id="t", first_seq=1, log=log, broker=broker, pacing=WritePacing(60))
    await emitter.emit(event(1))  # after a quiet spell: written at once
    while not log.batches:
        await asyncio.sleep(0)
    for n in range(2, 6):
        await emitter.emit(event(n))
        await asyncio.sleep(0)  # each would have been a batch of its own without the interval
    assert log.batches == [[1]]  # held: the interval since the last write has not passed
    await emitter.emit(event(6), now=True)
    while len(log.batches) < 2:
        await asyncio.sleep(0)
    assert log.batches == [[1], [2, 3, 4, 5, 6]]
    await emitter.emit(event(7))
    await emitter.close()  # the end is not held either
    assert log.batches == [[1], [2, 3, 4, 5, 6], [7]]


async def test_a_busier_process_spaces_a_runs_writes_further() -> None:
    log = CountingLog()
    broker = Broker(log=log, queue_size=100, run_origin=lambda _: asyncio.sleep(0, None))
    # No least interval: alone, every event would be a write of its own.
    pacing = WritePacing(least=0.0, writes_per_second=1)
    emitter = Emitter(thread_id="t", first_seq=1, log=log, broker=broker, pacing=pacing)
    await emitter.emit(event(1))
    while not log.batches:
        await asyncio.sleep(0)
    pacing.active = 3600  # an hour between writes: only the close cuts the wait short
    for n in range(2, 6):
        await emitter.emit(event(n))
        await asyncio.sleep(0)
    assert log.batches == [[1]]
    await emitter.close()
    assert log.batches == [[1], [2, 3, 4, 5]]
