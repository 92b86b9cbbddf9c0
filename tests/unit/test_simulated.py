import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from nodes.errors import ProviderRateLimitedError, ProviderServerError
from nodes.prompts import PLANNER_SYSTEM, WRITER_SYSTEM
from nodes.router import RouteChoice
from nodes.simulated import SimulatedChatModel, simulate_reply

HAIKU = [SystemMessage(WRITER_SYSTEM), HumanMessage("Write a haiku about rivers")]


def test_replies_are_deterministic_and_shaped_by_the_task() -> None:
    first = simulate_reply(HAIKU).text
    assert first == simulate_reply(HAIKU).text
    assert len(first.splitlines()) == 3
    plan = simulate_reply(
        [SystemMessage(PLANNER_SYSTEM.format(max_steps=2)), HumanMessage("Compare A and B")]
    ).text
    assert plan.startswith("[") and plan.count('"') == 4


async def test_streams_token_by_token_and_reports_usage() -> None:
    model = SimulatedChatModel(ttft=0, tokens_per_second=0)
    chunks = [chunk async for chunk in model.astream(HAIKU)]
    text_chunks = [c for c in chunks if c.text]
    assert len(text_chunks) > 5
    usage = chunks[-1].usage_metadata
    assert usage is not None
    assert usage["output_tokens"] == len(text_chunks)
    assert usage["input_tokens"] > 10
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


async def test_answers_structured_output_requests() -> None:
    model = SimulatedChatModel(ttft=0, tokens_per_second=0)
    choice = await model.with_structured_output(RouteChoice).ainvoke(
        [HumanMessage("Write a poem about autumn")]
    )
    assert isinstance(choice, RouteChoice)
    assert choice.route == "creative"


async def test_scripted_faults_come_first_then_answers() -> None:
    model = SimulatedChatModel(ttft=0, fault_script=["rate_limit", "server_error"])
    with pytest.raises(ProviderRateLimitedError):
        await model.ainvoke(HAIKU)
    with pytest.raises(ProviderServerError):
        await model.ainvoke(HAIKU)
    assert (await model.ainvoke(HAIKU)).text
    assert model.calls == 3


async def test_fault_rate_is_reproducible_with_a_seed() -> None:
    async def outcomes(seed: int) -> list[str]:
        model = SimulatedChatModel(
            ttft=0, tokens_per_second=0, fault_rate=0.5, faults=("server_error",), seed=seed
        )
        results = []
        for _ in range(20):
            try:
                await model.ainvoke(HAIKU)
                results.append("ok")
            except ProviderServerError:
                results.append("fault")
        return results

    first = await outcomes(7)
    assert first == await outcomes(7)
    assert 3 < first.count("fault") < 17
