from typing import Any

import pytest
from langgraph.cache.memory import InMemoryCache
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph

from graphs.manager import build_manager_graph
from graphs.policies import cache_policy
from graphs.state import InputState, State
from nodes.models import ModelProvider, ModelSettings
from nodes.run_context import RunContext
from tests.utils.graphs import ask, new_thread, simulated, simulated_provider, user_says

QUESTION = "Compare quicksort and mergesort"


def cached_manager(
    provider: ModelProvider, cache: InMemoryCache[Any] | None = None
) -> CompiledStateGraph[State, RunContext, InputState, State]:
    return build_manager_graph(
        provider=provider,
        checkpointer=InMemorySaver(),
        cache=cache or InMemoryCache(),
        cache_ttl=60,
    )


async def test_a_repeated_request_is_answered_from_the_cache() -> None:
    provider = simulated_provider()
    graph = cached_manager(provider)
    first = await ask(graph, QUESTION, max_plan_steps=2)
    calls = simulated(provider, "analytical").calls
    assert calls == 4  # plan, two steps, synthesis

    second = await ask(graph, QUESTION, max_plan_steps=2)  # a new thread, same request
    assert simulated(provider, "analytical").calls == calls
    assert second["messages"][-1].text == first["messages"][-1].text


async def test_cached_steps_are_marked_in_the_update_stream() -> None:
    graph = cached_manager(simulated_provider())
    await ask(graph, "Write a haiku about rivers")
    cached = []
    update: Any  # with `subgraphs=True`, each part is (namespace, update)
    async for _namespace, update in graph.astream(
        user_says("Write a haiku about rivers"),
        new_thread(),
        context=RunContext(),
        stream_mode="updates",
        subgraphs=True,
    ):
        if "compose" in update:
            cached.append(update.get("__metadata__", {}).get("cached"))
    assert cached == [True]


async def test_run_options_are_part_of_the_key() -> None:
    provider = simulated_provider()
    graph = cached_manager(provider)
    await ask(graph, QUESTION, max_plan_steps=2)
    before = simulated(provider, "analytical").calls
    state = await ask(graph, QUESTION, max_plan_steps=3)
    assert simulated(provider, "analytical").calls > before
    assert state["usage"]["nodes"]["analyse"]["calls"] == 3


async def test_without_a_cache_every_request_calls_the_model() -> None:
    provider = simulated_provider()
    graph = build_manager_graph(provider=provider, checkpointer=InMemorySaver())
    await ask(graph, "Write a haiku about rivers")
    await ask(graph, "Write a haiku about rivers")
    assert simulated(provider, "creative").calls == 2


def test_only_deterministic_roles_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ALMA_ROUTER_TEMPERATURE", "0")
    monkeypatch.setenv("ALMA_CREATIVE_TEMPERATURE", "0.9")
    provider = ModelProvider.from_settings(ModelSettings())
    assert cache_policy(provider, "router", 60) is not None
    assert cache_policy(provider, "creative", 60) is None
    assert cache_policy(provider, "router", None) is None
