"""Plan review: reading the resume value, and the graph stopping and resuming on it."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.types import Command

from nodes.plan_review import REJECTED_ANSWER, ReviewError, read_answer
from nodes.run_context import RunContext
from tests.utils.graphs import manager, new_thread, simulated_provider, user_says

PROPOSED = ["Pin down what is being asked", "Draw a conclusion with its caveats"]
QUESTION = "Compare quicksort and mergesort for 10M integers"


@pytest.mark.parametrize("value", ["approve", {"action": "approve"}])
def test_an_approval_keeps_the_proposed_plan(value: Any) -> None:
    decision = read_answer(value, PROPOSED, max_steps=4)
    assert (decision.action, decision.steps) == ("approve", PROPOSED)


def test_an_edit_is_trimmed_and_its_blank_steps_dropped() -> None:
    value = {"action": "edit", "steps": ["  Count   the swaps ", "", "Conclude"]}
    decision = read_answer(value, PROPOSED, max_steps=2)
    assert (decision.action, decision.steps) == ("edit", ["Count the swaps", "Conclude"])


def test_a_rejection_leaves_no_steps() -> None:
    assert read_answer({"action": "reject"}, PROPOSED, max_steps=4).steps == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "must be an object"),
        (["approve"], "must be an object"),
        ({"action": "maybe"}, "'action' must be one of"),
        ({}, "'action' must be one of"),
        ({"action": "edit"}, "list of strings"),
        ({"action": "edit", "steps": "one step"}, "list of strings"),
        ({"action": "edit", "steps": [1, 2]}, "list of strings"),
        ({"action": "edit", "steps": ["", "  "]}, "at least one step"),
        ({"action": "edit", "steps": ["a", "b", "c"]}, "at most 2 steps"),
        ({"action": "edit", "steps": ["x" * 301]}, "at most 300 characters"),
        ({"action": "approve", "steps": ["a"]}, "goes with the action 'edit'"),
        ({"action": "approve", "why": "ok"}, "unknown field(s): why"),
    ],
)
def test_a_bad_answer_is_refused_with_its_reason(value: Any, reason: str) -> None:
    with pytest.raises(ReviewError) as refused:
        read_answer(value, PROPOSED, max_steps=2)
    assert reason in str(refused.value)


async def test_the_graph_stops_asks_again_on_a_bad_answer_and_follows_the_edit() -> None:
    graph = manager(simulated_provider())
    config = new_thread()
    context = RunContext(router="heuristic", max_plan_steps=2, review_plan=True)
    first = await graph.ainvoke(user_says(QUESTION), config, context=context)
    [pending] = first["__interrupt__"]
    assert pending.value["steps"] == PROPOSED and "error" not in pending.value

    again = await graph.ainvoke(Command(resume={"action": "skip"}), config, context=context)
    [repeated] = again["__interrupt__"]
    assert repeated.id != pending.id and "'action'" in repeated.value["error"]
    assert repeated.value["steps"] == PROPOSED

    edit = {"action": "edit", "steps": ["Count the swaps", "Weigh memory use"]}
    done = await graph.ainvoke(Command(resume={repeated.id: edit}), config, context=context)
    answer = done["messages"][-1].text
    assert "**Count the swaps**" in answer and "**Weigh memory use**" in answer
    assert "**Pin down what is being asked**" not in answer
    assert (await graph.aget_state(config)).next == ()


async def test_a_rejected_plan_ends_the_run_with_a_short_answer() -> None:
    graph = manager(simulated_provider())
    config = new_thread()
    context = RunContext(router="heuristic", review_plan=True)
    await graph.ainvoke(user_says(QUESTION), config, context=context)
    done = await graph.ainvoke(Command(resume="reject"), config, context=context)
    assert done["messages"][-1].text == REJECTED_ANSWER
    assert "findings" not in done or not done.get("findings")


async def test_review_is_off_unless_asked() -> None:
    graph = manager(simulated_provider())
    done = await graph.ainvoke(
        user_says(QUESTION), new_thread(), context=RunContext(router="heuristic")
    )
    assert "__interrupt__" not in done
    assert done["messages"][-1].text.startswith("## Answer")
    assert "review_plan" not in done["options"]
