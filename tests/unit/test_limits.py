"""Limits in process memory, when there is no Redis: the same rules."""

from memory.keys import RedisKeys
from server.guard.limits import RateLimits


async def test_runs_tokens_and_connections_without_redis() -> None:
    limits = RateLimits(
        runs=2, tokens=50, connections=1, window=60, redis=None, keys=RedisKeys("t")
    )
    verdicts = [await limits.start_run("a") for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[-1].retry_after >= 1 and verdicts[-1].headers()["Retry-After"]
    assert (await limits.start_run("b")).allowed  # another caller has a budget of its own

    await limits.spend_tokens("c", 80)  # more than the budget: it is used up
    spent = await limits.start_run("c")
    assert not spent.allowed and spent.name == "model tokens"

    first = await limits.open_connection("d", "ws-1")
    second = await limits.open_connection("d", "ws-2")
    assert first.allowed and not second.allowed
    assert "1 connections at once" in second.explain("d")
    await limits.close_connection("d", "ws-1")
    assert (await limits.open_connection("d", "ws-2")).allowed
    await limits.aclose()
