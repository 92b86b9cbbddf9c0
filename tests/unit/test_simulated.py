import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from nodes.errors import ProviderRateLimitedError, ProviderServerError
from nodes.prompts import (
    PLANNER_SYSTEM,
    SYNTHESISER_REQUEST,
    SYNTHESISER_SYSTEM,
    WRITER_SYSTEM,
)
from nodes.router import RouteChoice
from nodes.simulated import SimulatedChatModel
from nodes.simulated_replies import simulate_reply

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


def conversation(*turns: str, system: str = WRITER_SYSTEM) -> list[BaseMessage]:
    """A prompt as the writer gets it: the thread's turns, with ALMA's replies between."""
    messages: list[BaseMessage] = [SystemMessage(system)]
    for turn in turns:
        messages += [HumanMessage(turn), AIMessage("(an earlier reply)")]
    return messages[:-1]


def test_a_statement_about_the_user_gets_a_short_acknowledgement() -> None:
    reply = simulate_reply(conversation("My name is Ada and I like rivers")).text
    assert reply.startswith("Nice to meet you, Ada. I'll remember that you like rivers.")
    assert len(reply.split()) < 30


def test_a_piece_uses_what_the_user_said_earlier_not_the_request_text() -> None:
    poem = simulate_reply(
        conversation("My name is Ada and I like rivers", "Write a short poem using my name")
    ).text
    assert "Ada" in poem and "rivers" in poem
    assert "using my name" not in poem and "Write" not in poem
    haiku = simulate_reply(
        conversation("I'm Priya and I study chemistry.", "Write a haiku about my field of study")
    ).text
    assert "chemistry" in haiku and "field of study" not in haiku


def test_a_question_about_an_earlier_turn_is_answered_from_it() -> None:
    said = "My cat is called Miso."
    assert simulate_reply(conversation(said, "Remind me of my cat's name.")).text == (
        "You told me that your cat is called Miso."
    )
    unknown = simulate_reply(conversation("What is my name?")).text
    assert unknown.startswith("You haven't told me that")


def test_a_synthesis_names_the_earlier_facts_it_bears_on() -> None:
    request = "What is the project code name?"
    prompt = conversation("The project code name is BLUEHERON.", request,
                          system=SYNTHESISER_SYSTEM)  # fmt: skip
    prompt.append(HumanMessage(SYNTHESISER_REQUEST.format(request=request, findings="(none)")))
    answer = simulate_reply(prompt).text
    assert "### What you told me" in answer and "BLUEHERON" in answer
