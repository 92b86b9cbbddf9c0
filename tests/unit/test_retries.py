from nodes.models import CallPolicy
from tests.utils.graphs import FAST_POLICY, ask, manager, simulated, simulated_provider

HAIKU = "Write a haiku about rivers"


async def test_transient_provider_errors_are_retried_until_success() -> None:
    provider = simulated_provider(creative=["rate_limit", "server_error"])
    state = await ask(manager(provider), HAIKU)
    assert state.get("error") is None
    assert state["messages"][-1].type == "ai"
    assert simulated(provider, "creative").calls == 3
    # Failed attempts bill nothing.
    assert state["usage"]["nodes"]["compose"]["calls"] == 1


async def test_stalled_call_times_out_and_is_retried() -> None:
    provider = simulated_provider(creative=["timeout"])
    state = await ask(manager(provider), HAIKU)
    assert state.get("error") is None
    assert simulated(provider, "creative").calls == 2


async def test_exhausted_retries_end_the_run_with_a_clear_error() -> None:
    provider = simulated_provider(creative=["server_error"] * 3)
    state = await ask(manager(provider), HAIKU)
    error = state["error"]
    assert error["code"] == "provider_unavailable"
    assert error["node"] == "compose"
    assert error["retryable"] is True
    assert "retries exhausted" in error["message"]
    assert simulated(provider, "creative").calls == 3
    assert state["messages"][-1].type == "human"


async def test_exhausted_timeouts_report_a_timeout() -> None:
    policy = CallPolicy(
        attempts=2, retry_interval=0.01, jitter=False, idle_timeout=0.1, run_timeout=5
    )
    provider = simulated_provider(policy, analytical=["timeout", "timeout"])
    state = await ask(manager(provider), "Compare quicksort and mergesort")
    assert state["error"]["code"] == "provider_timeout"
    assert state["error"]["node"] == "plan"


async def test_a_failure_midway_through_the_analysis_retries_only_that_step() -> None:
    # plan, step 1 succeed; step 2 fails once; the rest succeed.
    provider = simulated_provider(analytical=[None, None, "server_error"])
    state = await ask(manager(provider), "Compare quicksort and mergesort", max_plan_steps=3)
    assert state.get("error") is None
    # plan + 3 steps + synthesis = 5 calls, plus the one retried step.
    assert simulated(provider, "analytical").calls == 6
    assert state["usage"]["nodes"]["analyse"]["calls"] == 3


async def test_a_refused_request_is_not_retried() -> None:
    provider = simulated_provider(FAST_POLICY)
    huge = "word " * 40_000
    state = await ask(manager(provider), huge, route="creative")
    assert state["error"]["code"] == "context_overflow"
    assert state["error"]["retryable"] is False
    assert simulated(provider, "creative").calls == 0
