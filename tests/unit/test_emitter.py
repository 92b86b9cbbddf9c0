"""A run's log catches up after failed writes: it ends holding every event of the run."""

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from server.engine.broker import Broker
from server.engine.emitter import Emitter
from server.engine.events import Logged, lifecycle
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
