"""Sliding-window counts, in Redis and in process memory: the same arithmetic in both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from server.guard.windows import Charge, MemoryWindows, RedisWindows, Windows
from tests.utils.redis_server import redis_server

pytestmark = pytest.mark.integration

RUNS = Charge("runs", limit=4, cost=1)


class Clock:
    """A settable clock, so windows can be crossed without waiting."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["redis", "memory"])
async def windows(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Windows, Clock]]:
    clock = Clock(100.0)
    if request.param == "memory":
        yield MemoryWindows(window=10, clock=clock), clock
        return
    with redis_server(tmp_path) as server:
        client = Redis(port=server.port)
        yield RedisWindows(client, prefix="t:limits", window=10, clock=clock), clock
        await client.aclose()


async def refusals(windows: Windows, key: str, tries: int) -> list[int | None]:
    return [(await windows.charge(key, [RUNS], capped=False)).refused for _ in range(tries)]


async def test_the_last_window_counts_for_the_part_of_it_still_within_one_window(
    windows: tuple[Windows, Clock],
) -> None:
    counts, clock = windows
    assert await refusals(counts, "a", 5) == [None, None, None, None, 0]
    assert await refusals(counts, "b", 1) == [None]  # another caller counts apart
    clock.now = 115.0  # half of the last window (4 runs) is still within one window: 2
    halfway = await counts.charge("a", [RUNS], capped=False)
    assert (halfway.refused, halfway.used, halfway.reset_after) == (None, [3], 5.0)
    assert await refusals(counts, "a", 2) == [None, 0]
    clock.now = 130.0  # two windows on: nothing counts
    assert await refusals(counts, "a", 5) == [None, None, None, None, 0]


async def test_a_refused_charge_counts_nothing_and_a_capped_one_counts_what_fits(
    windows: tuple[Windows, Clock],
) -> None:
    counts, _ = windows
    tokens = Charge("tokens", limit=50, cost=0)
    charged = await counts.charge("c", [Charge("tokens", 50, 80)], capped=True)
    assert (charged.refused, charged.used) == (None, [50])
    refused = await counts.charge("c", [tokens, RUNS], capped=False)
    assert (refused.refused, refused.used) == (0, [50, 0])  # out of tokens: no run taken
    assert (await counts.charge("d", [tokens, RUNS], capped=False)).used == [0, 1]
