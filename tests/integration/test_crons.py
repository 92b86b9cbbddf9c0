"""Crons through the official SDK: ALMA beside `langgraph dev`, owners kept apart, and
each tick run exactly once by two ALMA processes on one Redis — and by one, once the
other is killed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from server.guard.auth import new_key
from tests.utils.answers import as_json
from tests.utils.langgraph_dev import langgraph_dev
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service
from tests.utils.shapes import differences

pytestmark = pytest.mark.integration

HELLO: dict[str, Any] = {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]}
RARE = "0 0 1 1 *"
"""Once a year: a cron that never ticks while a test looks at it."""
EVERY_SECOND = "* * * * * *"
"""croniter's sixth field is the second, as on LangGraph's server."""


@pytest.fixture(scope="module")
def dev_url(redis: RedisServer) -> Iterator[str]:
    with langgraph_dev(redis.url, prefix=f"crons-dev-{uuid.uuid4().hex[:6]}") as url:
        yield url


@pytest.fixture(scope="module")
def alma(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix=f"crons-{uuid.uuid4().hex[:6]}") as service:
        yield service


async def _crud(client: LangGraphClient) -> dict[str, Any]:
    """The same cron calls on either server, their answers by name."""
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    answers: dict[str, Any] = {}
    answers["create"] = await client.crons.create(
        "manager", schedule=RARE, input=HELLO, metadata={"team": "a"}
    )
    answers["create_for_thread"] = await client.crons.create_for_thread(
        thread_id, "manager", schedule=RARE, input=HELLO,
        end_time=datetime(2100, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    answers["search"] = await client.crons.search()
    answers["search_thread"] = await client.crons.search(thread_id=thread_id)
    answers["search_metadata"] = await client.crons.search(metadata={"team": "a"})
    answers["count"] = await client.crons.count()
    answers["count_thread"] = await client.crons.count(thread_id=thread_id)
    stateless = answers["create"]["cron_id"]
    answers["update"] = await client.crons.update(stateless, schedule="0 0 2 1 *", enabled=False)
    for cron in (answers["create"], answers["create_for_thread"]):
        await client.crons.delete(cron["cron_id"])
    answers["count_after"] = await client.crons.count()
    with pytest.raises(NotFoundError):
        await client.crons.delete(stateless)
    answers["thread_id"] = thread_id
    return answers


async def test_crons_answer_as_langgraph_dev(alma: Service, dev_url: str) -> None:
    ours, theirs = await _crud(get_client(url=alma.url)), await _crud(get_client(url=dev_url))
    for name in ("create", "create_for_thread", "search", "search_thread", "update"):
        assert differences(ours[name], theirs[name], lenient=False) == [], name
    for answers in (ours, theirs):
        assert answers["count"] == 2 and answers["count_thread"] == 1
        assert answers["count_after"] == 0
        assert len(answers["search"]) == 2
        assert [c["thread_id"] for c in answers["search_thread"]] == [answers["thread_id"]]
        assert [c["cron_id"] for c in answers["search_metadata"]] == [answers["create"]["cron_id"]]
        created = answers["create"]
        assert created["on_run_completed"] == "delete" and created["enabled"] is True
        assert created["payload"]["input"] == HELLO
        assert created["payload"]["config"]["configurable"]["cron_id"] == created["cron_id"]
        assert created["next_run_date"].startswith(f"{datetime.now(UTC).year + 1}-01-01T00:00:00")
        on_thread = answers["create_for_thread"]
        assert on_thread["on_run_completed"] is None
        assert on_thread["end_time"].startswith("2100-01-01T00:00:00")
        updated = answers["update"]
        assert updated["schedule"] == "0 0 2 1 *" and updated["enabled"] is False
        assert updated["metadata"] == {"team": "a"}


async def _crons_left_by_deleting_their_thread(client: LangGraphClient) -> list[int]:
    """How many crons are there before and after their thread is deleted, and whether
    the thread's own cron is still found."""
    thread_id = (await client.threads.create())["thread_id"]
    await client.crons.create_for_thread(thread_id, "manager", schedule=RARE, input=HELLO)
    other = await client.crons.create("manager", schedule=RARE, input=HELLO)
    before = await client.crons.count()
    await client.threads.delete(thread_id)
    after = await client.crons.count()
    found = len(await client.crons.search(thread_id=thread_id))
    await client.crons.delete(as_json(other)["cron_id"])
    return [before, after, found]


async def test_deleting_a_thread_deletes_its_crons_as_langgraph_dev(
    alma: Service, dev_url: str
) -> None:
    ours = await _crons_left_by_deleting_their_thread(get_client(url=alma.url))
    theirs = await _crons_left_by_deleting_their_thread(get_client(url=dev_url))
    assert ours == theirs == [2, 1, 0]


async def test_bad_requests_are_refused_as_langgraph_dev(alma: Service, dev_url: str) -> None:
    bodies = {
        "schedule": {"assistant_id": "manager", "schedule": "every day"},
        "timezone": {"assistant_id": "manager", "schedule": RARE, "timezone": "Mars/Base"},
        "assistant": {"assistant_id": str(uuid.uuid4()), "schedule": RARE},
    }
    for url in (alma.url, dev_url):
        async with httpx.AsyncClient(base_url=url) as http:
            statuses = {
                name: (await http.post("/runs/crons", json=body)).status_code
                for name, body in bodies.items()
            }
            missing = await http.post(
                f"/threads/{uuid.uuid4()}/runs/crons",
                json={"assistant_id": "manager", "schedule": RARE},
            )
            not_uuid = await http.delete("/runs/crons/not-a-uuid")
            by_name = await http.post("/runs/crons/search", json={"assistant_id": "manager"})
        assert statuses == {"schedule": 422, "timezone": 422, "assistant": 404}, url
        assert (missing.status_code, not_uuid.status_code, by_name.status_code) == (404, 422, 422)


async def test_owners_see_only_their_own_crons(redis: RedisServer) -> None:
    key_a, entry_a = new_key("ada")
    key_b, entry_b = new_key("bob")
    env = {"ALMA_API_KEYS": f"{entry_a},{entry_b}"}
    with alma_service(redis.url, prefix=f"crons-own-{uuid.uuid4().hex[:6]}", env=env) as alma:
        ada = get_client(url=alma.url, api_key=key_a)
        bob = get_client(url=alma.url, api_key=key_b)
        thread = await ada.threads.create()
        mine = as_json(
            await ada.crons.create_for_thread(thread["thread_id"], "manager", schedule=RARE)
        )
        cron_id = mine["cron_id"]
        assert mine["user_id"] == "ada"
        assert await bob.crons.search() == [] and await bob.crons.count() == 0
        for attempt in (
            bob.crons.delete(cron_id),
            bob.crons.update(cron_id, enabled=False),
            bob.http.get(f"/runs/crons/{cron_id}"),
            bob.crons.create_for_thread(thread["thread_id"], "manager", schedule=RARE),
        ):
            with pytest.raises(NotFoundError):
                await attempt
        assert [c["cron_id"] for c in await ada.crons.search()] == [cron_id]
        assert (await ada.http.get(f"/runs/crons/{cron_id}"))["enabled"] is True
        await ada.crons.delete(cron_id)
        assert await ada.crons.count() == 0


async def _ticks(client: LangGraphClient, thread_id: str, cron_id: str) -> list[str]:
    """The tick of every run the cron started on the thread (one entry per run)."""
    runs = await client.runs.list(thread_id, limit=1000)
    tagged = [as_json(run)["metadata"] for run in runs]
    return sorted(meta["cron_tick"] for meta in tagged if meta.get("cron_id") == cron_id)


async def _until(check: Any, timeout: float) -> None:
    """Await `check()` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


def _started_by(service: Service, cron_id: str) -> int:
    """How many runs of the cron the process says it started."""
    return sum(f"cron {cron_id} tick" in line and "started run" in line
               for line in service.process.output)  # fmt: skip


async def test_each_tick_runs_once_among_processes_and_after_one_dies(
    redis: RedisServer,
) -> None:
    prefix = f"crons-ha-{uuid.uuid4().hex[:6]}"
    # A killed process's thread lease frees itself in 2 s, not 30: the enqueued runs
    # behind a run it held go on soon after.
    env = {"ALMA_RUN_LEASE_SECONDS": "2", "ALMA_LOG_FORMAT": "console"}
    with (
        alma_service(redis.url, prefix=prefix, env=env) as first,
        alma_service(redis.url, prefix=prefix, env=env) as second,
    ):
        client = get_client(url=second.url)
        thread_id = (await client.threads.create())["thread_id"]
        cron = await client.crons.create_for_thread(
            thread_id, "manager", schedule=EVERY_SECOND, input=HELLO
        )
        cron_id = as_json(cron)["cron_id"]

        async def ticked(count: int) -> bool:
            return len(await _ticks(client, thread_id, cron_id)) >= count

        await _until(lambda: ticked(5), timeout=15)
        both = await _ticks(client, thread_id, cron_id)
        assert len(both) == len(set(both)), f"a tick ran twice: {Counter(both).most_common(3)}"
        assert _started_by(first, cron_id) + _started_by(second, cron_id) == len(both)

        first.process.kill()
        killed = datetime.now(UTC).isoformat()
        await _until(lambda: ticked(len(both) + 4), timeout=15)
        after = await _ticks(client, thread_id, cron_id)
        assert len(after) == len(set(after)), f"a tick ran twice: {Counter(after).most_common(3)}"
        assert sum(tick > killed for tick in after) >= 3
        await client.crons.delete(cron_id)


async def test_a_cron_stops_at_its_end_time(alma: Service) -> None:
    client = get_client(url=alma.url)
    thread_id = (await client.threads.create())["thread_id"]
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    cron = await client.crons.create_for_thread(
        thread_id, "manager", schedule=EVERY_SECOND, input=HELLO, end_time=end
    )
    cron_id = as_json(cron)["cron_id"]

    async def ended() -> bool:
        found = as_json(await client.http.get(f"/runs/crons/{cron_id}"))
        return found["next_run_date"] is None

    await _until(ended, timeout=15)
    ticks = await _ticks(client, thread_id, cron_id)
    assert 1 <= len(ticks) <= 4 and len(ticks) == len(set(ticks))
    assert all(datetime.fromisoformat(tick) <= end for tick in ticks)


async def test_a_stateless_cron_keeps_its_threads_when_asked(alma: Service) -> None:
    client = get_client(url=alma.url)
    cron = await client.crons.create(
        "manager", schedule=EVERY_SECOND, input=HELLO, on_run_completed="keep"
    )
    cron_id = as_json(cron)["cron_id"]

    async def kept_threads() -> list[list[str]]:
        """The cron's ticks on each of the caller's threads that has any."""
        threads = await client.threads.search(limit=1000)
        ticks = [await _ticks(client, t["thread_id"], cron_id) for t in threads]
        return [found for found in ticks if found]

    async def two_kept() -> bool:
        return len(await kept_threads()) >= 2

    await _until(two_kept, timeout=15)
    await client.crons.delete(cron_id)
    # A thread of its own for every run.
    assert all(len(ticks) == 1 for ticks in await kept_threads())
