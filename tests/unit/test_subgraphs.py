import pytest

from nodes.analytical import parse_plan
from nodes.errors import ModelOutputError
from tests.utils.graphs import ask, manager, simulated, simulated_provider


async def test_creative_route_composes_the_answer() -> None:
    provider = simulated_provider()
    state = await ask(manager(provider), "Write a haiku about rivers")
    answer = state["messages"][-1]
    assert answer.type == "ai"
    assert len(answer.text.splitlines()) == 3
    assert "rivers" in answer.text.lower()
    assert list(state["usage"]["nodes"]) == ["compose"]


async def test_creative_refine_edits_the_draft() -> None:
    provider = simulated_provider()
    state = await ask(manager(provider), "Write a haiku about rivers", refine=True)
    assert list(state["usage"]["nodes"]) == ["compose", "refine"]
    answer = state["messages"][-1].text
    assert answer.startswith("**Rivers**")
    # Only the refined piece joins the conversation, not the draft too.
    assert [m.type for m in state["messages"]] == ["human", "ai"]


async def test_analytical_route_plans_analyses_each_step_and_synthesises() -> None:
    provider = simulated_provider()
    state = await ask(
        manager(provider), "Compare quicksort and mergesort for 10M integers", max_plan_steps=3
    )
    nodes = state["usage"]["nodes"]
    assert nodes["plan"]["calls"] == 1
    assert nodes["analyse"]["calls"] == 3
    assert nodes["synthesise"]["calls"] == 1
    answer = state["messages"][-1].text
    assert answer.startswith("## Answer")
    assert [m.type for m in state["messages"]] == ["human", "ai"]


def test_plan_parser_reads_json_and_plain_lists() -> None:
    assert parse_plan('Sure: ["a", "b", "c"]', max_steps=2) == ["a", "b"]
    assert parse_plan("1. Define terms\n2) Compare\n- Conclude", max_steps=5) == [
        "Define terms",
        "Compare",
        "Conclude",
    ]
    with pytest.raises(ModelOutputError):
        parse_plan("  \n ", max_steps=3)


async def test_conversation_carries_over_turns_on_one_thread() -> None:
    from tests.utils.graphs import new_thread

    provider = simulated_provider()
    graph = manager(provider)
    thread = new_thread()
    await ask(graph, "Write a haiku about rivers", thread)
    state = await ask(graph, "Compare quicksort and mergesort", thread)
    assert [m.type for m in state["messages"]] == ["human", "ai", "human", "ai"]
    # Usage and decision describe the latest run only.
    assert "compose" not in state["usage"]["nodes"]
    assert state["decision"]["route"] == "analytical"
    assert simulated(provider, "creative").calls == 1
