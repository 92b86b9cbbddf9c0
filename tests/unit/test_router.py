from tests.utils.graphs import ask, manager, simulated, simulated_provider

CLEAR_CREATIVE = "Write a haiku about rivers"
UNCLEAR = "tell me about the ocean"


async def test_heuristic_router_decides_without_a_model_call() -> None:
    provider = simulated_provider()
    state = await ask(manager(provider), CLEAR_CREATIVE, router="heuristic")
    assert state["decision"]["route"] == "creative"
    assert state["decision"]["decided_by"] == "heuristic"
    assert simulated(provider, "router").calls == 0
    assert "consult_router" not in state["usage"]["nodes"]


async def test_llm_router_asks_the_model_for_a_structured_choice() -> None:
    provider = simulated_provider()
    state = await ask(manager(provider), "Compare Rust and Go for CLI tools", router="llm")
    decision = state["decision"]
    assert decision["decided_by"] == "llm"
    assert decision["route"] == "analytical"
    assert 0 <= decision["confidence"] <= 1
    assert decision["reason"]
    assert simulated(provider, "router").calls == 1
    assert state["usage"]["nodes"]["consult_router"]["calls"] == 1


async def test_hybrid_router_trusts_cues_when_confident() -> None:
    provider = simulated_provider()
    state = await ask(manager(provider), CLEAR_CREATIVE)
    assert state["decision"]["decided_by"] == "heuristic"
    assert simulated(provider, "router").calls == 0


async def test_hybrid_router_asks_the_model_when_unsure() -> None:
    provider = simulated_provider()
    state = await ask(manager(provider), UNCLEAR)
    assert state["decision"]["decided_by"] == "llm"
    assert simulated(provider, "router").calls == 1


async def test_forced_route_overrides_the_router() -> None:
    provider = simulated_provider()
    state = await ask(manager(provider), CLEAR_CREATIVE, route="analytical")
    assert state["decision"] == {
        "route": "analytical",
        "confidence": 1.0,
        "reason": "forced by the caller",
        "decided_by": "forced",
    }
    assert simulated(provider, "creative").calls == 0
    assert simulated(provider, "analytical").calls > 0


async def test_hybrid_router_falls_back_to_cues_when_the_model_keeps_failing() -> None:
    provider = simulated_provider(router=["server_error"] * 3)
    state = await ask(manager(provider), UNCLEAR)
    assert state["decision"]["decided_by"] == "heuristic-fallback"
    assert "provider_unavailable" in state["decision"]["reason"]
    assert state.get("error") is None
    assert state["messages"][-1].type == "ai"
    assert simulated(provider, "router").calls == 3


async def test_llm_router_failure_ends_the_run_with_an_error() -> None:
    provider = simulated_provider(router=["rate_limit"] * 3)
    state = await ask(manager(provider), UNCLEAR, router="llm")
    assert state["error"]["code"] == "provider_rate_limited"
    assert state["error"]["node"] == "consult_router"
    assert state["messages"][-1].type == "human"
