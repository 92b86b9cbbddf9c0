from typing import Any

from langchain_core.messages import AIMessageChunk

from nodes.run_context import RunContext
from tests.utils.graphs import manager, new_thread, simulated_provider


async def stream(text: str, **context: Any) -> list[tuple[tuple[str, ...], str, Any]]:
    graph = manager(simulated_provider())
    return [
        event
        async for event in graph.astream(
            {"messages": [("user", text)]},
            new_thread(),
            context=RunContext(**context),
            stream_mode=["messages", "updates", "custom"],
            subgraphs=True,
        )
    ]


async def test_tokens_from_inside_subgraphs_reach_the_caller_with_their_node() -> None:
    events = await stream("Write a haiku about rivers")
    tokens = [(ns, data) for ns, mode, data in events if mode == "messages"]
    assert len(tokens) > 5
    for namespace, (chunk, metadata) in tokens:
        assert isinstance(chunk, AIMessageChunk)
        assert namespace[0].startswith("creative:")
        assert metadata["langgraph_node"] == "compose"
    text = "".join(chunk.text for _, (chunk, _) in tokens)
    final = [d for ns, mode, d in events if mode == "updates" and ns == ()][-1]
    assert final["creative"]["messages"][-1].text == text


async def test_analytical_progress_arrives_in_order_between_tokens() -> None:
    events = await stream("Compare quicksort and mergesort", max_plan_steps=3)
    custom = [data for _, mode, data in events if mode == "custom"]
    assert custom[0]["type"] == "plan"
    steps = custom[0]["steps"]
    assert len(steps) == 3
    progress = [(e["step"], e["total"], e["label"], e["status"]) for e in custom[1:]]
    assert progress == [
        (i, 3, label, status)
        for i, label in enumerate(steps, 1)
        for status in ("started", "finished")
    ]
    # Each step's tokens stream between its started and finished events.
    kinds = [
        ("custom", d["status"]) if mode == "custom" and d["type"] == "progress" else (mode, None)
        for _, mode, d in events
    ]
    first_started = kinds.index(("custom", "started"))
    first_finished = kinds.index(("custom", "finished"))
    assert ("messages", None) in kinds[first_started:first_finished]


async def test_updates_show_the_route_at_the_root() -> None:
    events = await stream("Compare quicksort and mergesort")
    root = [d for ns, mode, d in events if mode == "updates" and ns == ()]
    # Memory's steps (recall, remember) come first; the route is the first decision.
    [decided] = [update["route"] for update in root if "route" in update]
    assert decided["decision"]["route"] == "analytical"
    assert "analytical" in root[-1]
