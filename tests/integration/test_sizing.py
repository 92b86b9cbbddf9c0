"""`python -m loadtests.sizing` weighs what conversations leave in Redis, by kind of key."""

import pytest

from loadtests.sizing import measure
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration


def test_sizing_accounts_for_every_key_a_conversation_leaves(redis: RedisServer) -> None:
    sizing = measure(threads=2, turns=2, tokens_per_second=0, redis_url=redis.url)
    kinds = sizing.bytes_by_kind
    # Every key ALMA wrote has a known kind: a new kind of key must be sized too.
    assert "other" not in kinds, kinds
    assert {"checkpoints", "event log", "ownership"} <= set(kinds)
    assert kinds["checkpoints"] > 0 and kinds["event log"] > 0
    assert sizing.events >= 2 * 2 * 2  # at least a start and an end per run
    assert "| checkpoints |" in sizing.table()
