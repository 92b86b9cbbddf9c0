"""LangGraph's own conformance suite against ALMA's Redis saver on a real redis-server."""

import uuid
from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate

from memory.aio import AsyncRedisSaver
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration

CAPABILITIES = (
    "put",
    "put_writes",
    "get_tuple",
    "list",
    "delete_thread",
    "delete_for_runs",
    "copy_thread",
    "prune",
)


async def test_conformance_report_is_full(redis: RedisServer) -> None:
    @checkpointer_test(name="AsyncRedisSaver")
    async def saver() -> AsyncIterator[AsyncRedisSaver]:
        # A fresh key prefix per suite: the suite reuses thread ids across capabilities.
        prefix = f"conformance-{uuid.uuid4().hex[:8]}"
        async with AsyncRedisSaver.from_conn_string(redis.url, prefix=prefix) as s:
            await s.asetup()
            yield s

    report = await validate(saver)
    report.print_report()

    failures = {
        name: result.failures for name, result in report.results.items() if not result.passed
    }
    assert not failures, failures
    assert report.conformance_level() == "FULL"
    assert report.passed_all_base() and report.passed_all()
    assert set(report.results) == set(CAPABILITIES)
    for name in CAPABILITIES:
        result = report.results[name]
        assert result.detected and result.passed and result.tests_failed == 0, name
