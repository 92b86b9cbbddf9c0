"""Plan review end to end: the run stops with the plan, a person answers, the run resumes.

Over ALMA's WebSocket protocol (`input.requested` / `input.respond`), over LangGraph's
API through the Python SDK beside `langgraph dev`, across two processes on one Redis,
and across a restart: the interrupt lives in the thread's checkpoint.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph_sdk import get_client

from server.agent_protocol.client import CommandError, ProtocolClient, open_thread
from tests.utils.langgraph_dev import langgraph_dev
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service
from tests.utils.shapes import differences

pytestmark = pytest.mark.integration

QUESTION = "Compare quicksort and mergesort for 10M integers"
REVIEW = {"router": "heuristic", "max_plan_steps": 3, "review_plan": True}
EDITED = ["Count the comparisons each makes", "Draw a conclusion with its caveats"]
CHANNELS = ("lifecycle", "messages", "input", "custom")


@pytest.fixture(scope="module")
def service(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix="review-test") as running:
        yield running


def thread() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def answer_of(events: list[dict[str, Any]]) -> str:
    """The text the synthesis streamed."""
    return "".join(
        e["params"]["data"]["delta"].get("text", "")
        for e in events
        if e["method"] == "messages"
        and e["params"].get("node") == "synthesise"
        and e["params"]["data"]["event"] == "content-block-delta"
    )


def ending(events: list[dict[str, Any]]) -> str:
    assert events, "the run ended without events"
    last = events[-1]
    assert last["method"] == "lifecycle" and last["params"]["namespace"] == []
    event: str = last["params"]["data"]["event"]
    return event


def asked(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The one `input.requested` event of a run that stopped for review, with its end's `seq`."""
    [request] = [e for e in events if e["method"] == "input.requested"]
    return {**request, "ended_at": events[-1]["seq"]}


async def interrupted_run(socket: ProtocolClient) -> dict[str, Any]:
    await socket.subscribe(*CHANNELS)
    await socket.start(QUESTION, context=REVIEW)
    events = await socket.until_terminal()
    assert ending(events) == "interrupted"
    assert answer_of(events) == ""  # nothing was analysed yet
    return asked(events)


async def respond(socket: ProtocolClient, request: dict[str, Any], response: Any) -> list[Any]:
    data = request["params"]["data"]
    await socket.respond(data["interrupt_id"], response, request["params"]["namespace"])
    return await socket.until_terminal()


def follows(answer: str, steps: list[str]) -> bool:
    return all(f"**{step}**" in answer for step in steps)


async def test_the_plan_is_asked_for_and_an_edit_is_analysed(service: Service) -> None:
    async with open_thread(service.url, thread()) as socket:
        request = await interrupted_run(socket)
        payload = request["params"]["data"]["payload"]
        assert payload["kind"] == "plan_review" and payload["max_steps"] == 3
        assert payload["request"] == QUESTION and len(payload["steps"]) == 3
        assert request["params"]["namespace"][0].startswith("analytical:")

        events = await respond(socket, request, {"action": "edit", "steps": EDITED})
    assert ending(events) == "completed"
    answer = answer_of(events)
    assert follows(answer, EDITED)
    assert not any(f"**{step}**" in answer for step in payload["steps"][:2])
    plans = [e["params"]["data"]["payload"]["steps"] for e in events
             if e["method"] == "custom" and e["params"]["data"].get("name") == "plan"]  # fmt: skip
    assert plans == [EDITED]


async def test_a_bad_answer_asks_again_and_a_rejection_ends_without_analysis(
    service: Service,
) -> None:
    async with open_thread(service.url, thread()) as socket:
        first = await interrupted_run(socket)
        too_long = {"action": "edit", "steps": ["a", "b", "c", "d"]}
        events = await respond(socket, first, too_long)
        assert ending(events) == "interrupted"
        again = asked(events)
        assert "at most 3 steps" in again["params"]["data"]["payload"]["error"]
        assert again["params"]["data"]["interrupt_id"] != first["params"]["data"]["interrupt_id"]

        # The first interrupt was answered: it cannot be answered twice.
        with pytest.raises(CommandError) as refused:
            await socket.respond(first["params"]["data"]["interrupt_id"], "approve", [])
        assert refused.value.code == "no_such_interrupt"

        events = await respond(socket, again, {"action": "reject"})
        assert ending(events) == "completed"
        state = await socket.call("state.get")
    last = state["values"]["messages"][-1]
    assert last["type"] == "ai" and "plan was rejected" in last["content"]
    assert answer_of(events) == ""


async def test_without_review_the_run_is_not_interrupted(service: Service) -> None:
    async with open_thread(service.url, thread()) as socket:
        await socket.subscribe(*CHANNELS)
        await socket.start(QUESTION, context={"router": "heuristic", "max_plan_steps": 2})
        events = await socket.until_terminal()
    assert ending(events) == "completed"
    assert not [e for e in events if e["method"] == "input.requested"]


async def test_the_operator_can_make_review_the_default(redis: RedisServer) -> None:
    env = {"ALMA_REVIEW_PLAN": "true"}
    with alma_service(redis.url, prefix=f"review-default-{uuid.uuid4().hex[:6]}", env=env) as on:
        async with open_thread(on.url, thread()) as socket:
            await socket.subscribe(*CHANNELS)
            await socket.start(QUESTION, context={"router": "heuristic", "max_plan_steps": 2})
            left_out = await socket.until_terminal()
        async with open_thread(on.url, thread()) as socket:
            await socket.subscribe(*CHANNELS)
            await socket.start(QUESTION, context={"router": "heuristic", "review_plan": False})
            declined = await socket.until_terminal()
    assert ending(left_out) == "interrupted" and asked(left_out)["params"]["data"]["payload"]
    assert ending(declined) == "completed"


async def test_an_interrupt_on_one_process_is_answered_on_another(redis: RedisServer) -> None:
    prefix = f"review-two-{uuid.uuid4().hex[:6]}"
    with (
        alma_service(redis.url, prefix=prefix) as one,
        alma_service(redis.url, prefix=prefix) as two,
    ):
        thread_id = thread()
        async with open_thread(one.url, thread_id) as socket:
            request = await interrupted_run(socket)
        async with open_thread(two.url, thread_id) as socket:
            await socket.subscribe(*CHANNELS, since=request["ended_at"])
            events = await respond(socket, request, {"action": "edit", "steps": EDITED})
    assert ending(events) == "completed"
    assert follows(answer_of(events), EDITED)


async def test_an_interrupt_outlives_a_restart(redis: RedisServer) -> None:
    prefix = f"review-restart-{uuid.uuid4().hex[:6]}"
    thread_id = thread()
    with alma_service(redis.url, prefix=prefix) as before:
        async with open_thread(before.url, thread_id) as socket:
            request = await interrupted_run(socket)
    with alma_service(redis.url, prefix=prefix) as after:
        async with open_thread(after.url, thread_id) as socket:
            await socket.subscribe(*CHANNELS, since=request["ended_at"])
            events = await respond(socket, request, "approve")
    assert ending(events) == "completed"
    assert follows(answer_of(events), request["params"]["data"]["payload"]["steps"])


async def test_alma_chat_reviews_the_plan_of_a_remote_run(service: Service) -> None:
    chat = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "chat", "--url", service.url, "--review-plan",
        "--router", "heuristic", "--max-steps", "3", QUESTION,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    answers = "e\n" + "\n".join(EDITED) + "\n\n"
    out, err = await asyncio.wait_for(chat.communicate(answers.encode()), 60)
    assert chat.returncode == 0, err.decode()[-2000:]
    text = out.decode()
    assert "Review the plan before it is analysed:" in text
    assert f"[step 1 of 2] {EDITED[0]}" in text
    assert follows(text.split("## Answer", 1)[1], EDITED)


# -- LangGraph's API, beside `langgraph dev` --------------------------------------------


async def _review_over_the_sdk(url: str) -> dict[str, Any]:
    """Interrupt, read the thread, resume with an edit: what each step showed."""
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    question: dict[str, Any] = {"messages": [{"role": "user", "content": QUESTION}]}
    context: dict[str, Any] = dict(REVIEW)
    waited: Any = await client.runs.wait(thread_id, "manager", input=question, context=context)
    thread = await client.threads.get(thread_id)
    state = await client.threads.get_state(thread_id)
    runs = await client.runs.list(thread_id)
    [pending] = state["interrupts"]
    resumed: Any = await client.runs.wait(
        thread_id, "manager", command={"resume": {"action": "edit", "steps": EDITED}}
    )
    after = await client.threads.get(thread_id)
    return {
        "facts": {
            "waited_interrupt": [i["value"]["kind"] for i in waited["__interrupt__"]],
            "thread_status": thread["status"],
            "thread_interrupts": len(thread["interrupts"]),
            "state_next": state["next"],
            "payload": pending["value"],
            "run_status": [run["status"] for run in runs],
            "answer_follows_edit": follows(resumed["messages"][-1]["content"], EDITED),
            "status_after": after["status"],
        },
        "raw": {"waited": waited, "thread": thread, "state": state, "runs": runs},
    }


async def test_the_sdk_sees_the_same_interrupt_as_on_langgraph_dev(redis: RedisServer) -> None:
    tag = uuid.uuid4().hex[:6]
    with (
        alma_service(redis.url, prefix=f"review-sdk-{tag}") as alma,
        langgraph_dev(redis.url, prefix=f"review-dev-{tag}") as dev,
    ):
        ours = await _review_over_the_sdk(alma.url)
        theirs = await _review_over_the_sdk(dev)
    assert differences(ours["raw"], theirs["raw"]) == []
    assert ours["facts"] == theirs["facts"]
    assert ours["facts"]["thread_status"] == "interrupted"
    assert ours["facts"]["run_status"] == ["success"]  # the run ended well; the thread waits
    assert ours["facts"]["answer_follows_edit"] and ours["facts"]["status_after"] == "idle"
