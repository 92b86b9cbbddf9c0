import pytest

from nodes.heuristics import classify, conversational


@pytest.mark.parametrize(
    "text",
    [
        "Write a haiku about rivers",
        "Tell me a bedtime story about a brave little fox",
        "Compose a sonnet in the style of Shakespeare about autumn",
        "Escribe un poema sobre el mar",
        "Imagine a city where it always rains and describe it",
    ],
)
def test_creative_requests_route_creative_with_confidence(text: str) -> None:
    verdict = classify(text)
    assert verdict.route == "creative"
    assert verdict.confidence >= 0.75


@pytest.mark.parametrize(
    "text",
    [
        "Compare quicksort and mergesort for 10M integers",
        "Calculate the monthly payment on a 200k loan at 5% over 30 years",
        "What are the pros and cons of microservices versus a monolith?",
        "Explain why the sky is blue, step by step",
        "Vergleiche Python und Java für Datenanalyse",
    ],
)
def test_analytical_requests_route_analytical_with_confidence(text: str) -> None:
    verdict = classify(text)
    assert verdict.route == "analytical"
    assert verdict.confidence >= 0.75


def test_request_without_cues_is_unsure() -> None:
    verdict = classify("Make me smile")
    assert verdict.confidence == 0.5
    assert "no creative or analytical cue" in verdict.reason


def test_weak_cue_leaves_confidence_below_hybrid_threshold() -> None:
    assert classify("tell me about the ocean").confidence < 0.75


def test_reason_names_the_cues_found() -> None:
    assert "haiku" in classify("Write a haiku about rivers").reason.lower()


@pytest.mark.parametrize(
    ("text", "turn"),
    [
        ("My name is Ada and I like rivers", "statement"),
        ("I'm planning a trip to Lisbon in May.", "statement"),
        ("Hello!", "greeting"),
        ("Thanks, that was lovely", "thanks"),
        ("What is my name?", "recall"),
        ("Which city did I say I'm visiting?", "recall"),
        ("Remind me of my cat's name.", "recall"),
    ],
)
def test_a_conversational_turn_gets_a_short_creative_reply_not_a_plan(text: str, turn: str) -> None:
    assert conversational(text) == turn
    verdict = classify(text)
    assert verdict.route == "creative"
    assert verdict.reason.startswith("conversational: ")


@pytest.mark.parametrize(
    "text",
    [
        "My name is Ada. Compare quicksort and mergesort for 10 million integers",
        "Hi! Analyse the pros and cons of remote work",
        "Write a short poem using my name",
        "What should I know before buying a used car?",
        # A lower-case "i" is "and" in Polish: an imperative, not a statement about oneself.
        "Porównaj Pythona i Javę pod względem wydajności",
    ],
)
def test_a_task_after_small_talk_is_still_a_task(text: str) -> None:
    assert conversational(text) is None
