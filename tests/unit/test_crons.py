"""Cron schedules and ticks without Redis: when the next tick is, and that one claim wins."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from server.engine.cron_scheduler import following_tick, ms_of
from server.guard.refusals import Refused
from server.langgraph_api.crons import check_schedule, next_tick, tick_request
from server.stores.crons import CronRecord, MemoryCrons


def cron(**fields: object) -> CronRecord:
    base: dict[str, object] = {
        "cron_id": "c-1", "owner": "ada", "limit_key": "owner:ada",
        "assistant_id": "manager", "thread_id": "t-1", "schedule": "* * * * * *",
        "payload": {"assistant_id": "manager", "metadata": {"run": 1}},
    }  # fmt: skip
    return CronRecord(**(base | fields))  # type: ignore[arg-type]


def test_a_sixth_field_is_seconds_and_a_timezone_moves_the_clock() -> None:
    noon = datetime(2026, 7, 1, 12, 0, 0, 400_000, tzinfo=UTC)
    assert next_tick("* * * * * *", noon) == datetime(2026, 7, 1, 12, 0, 1, tzinfo=UTC)
    # 09:00 in Paris is 07:00 UTC in summer.
    assert next_tick("0 9 * * *", noon, "Europe/Paris") == datetime(2026, 7, 2, 7, tzinfo=UTC)
    for schedule, zone in (("every day", None), ("* * * * *", "Mars/Base")):
        with pytest.raises(Refused):
            check_schedule(schedule, zone)


def test_a_late_tick_skips_the_missed_ones_and_none_follows_the_end() -> None:
    tick = ms_of(datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC))
    late = tick + 5_500
    assert following_tick(cron(), tick, tick) == tick + 1000
    assert following_tick(cron(), tick, late) == tick + 6000
    ending = cron(end_time=datetime(2026, 7, 1, 12, 0, 0, 500_000, tzinfo=UTC).isoformat())
    assert following_tick(ending, tick, tick) is None


async def test_only_one_claim_of_a_tick_wins() -> None:
    crons = MemoryCrons()
    record = cron()
    await crons.put(record, 1000)
    assert await crons.due(999, 10) == [] and await crons.due(1000, 10) == [("c-1", 1000)]
    wins = await asyncio.gather(*(crons.claim("c-1", 1000, 2000) for _ in range(5)))
    assert sorted(wins) == [False] * 4 + [True]
    assert await crons.earliest() == 2000
    assert await crons.claim("c-1", 2000, None) is True and await crons.earliest() is None
    assert [stored.record.cron_id for stored in await crons.of_owner("ada")] == ["c-1"]
    assert await crons.of_owner("bob") == []
    assert await crons.delete(record) is True and await crons.get("c-1") is None


def test_a_ticks_run_is_the_owners_and_names_its_cron_and_tick() -> None:
    request = tick_request(cron(metadata={"team": "a", "run": 0}), "2026-07-01T12:00:00+00:00")
    assert (request.owner, request.limit_key, request.thread_id) == ("ada", "owner:ada", "t-1")
    assert request.metadata == {
        "team": "a",
        "run": 1,
        "cron_id": "c-1",
        "cron_tick": "2026-07-01T12:00:00+00:00",
    }
    stateless = tick_request(cron(thread_id=None, on_run_completed="keep"), None)
    assert stateless.thread_id is None and stateless.temporary is False
    assert tick_request(cron(thread_id=None, on_run_completed="delete"), None).temporary is True
