"""Facts a user states about themselves, read with fixed rules."""

import pytest

from nodes.facts import extract_facts, gather_facts, is_statement, second_person


def test_a_name_and_a_liking_are_read_from_one_sentence() -> None:
    facts = gather_facts(["My name is Ada and I like rivers"])
    assert facts.name == "Ada"
    assert facts.likes == ("rivers",)
    assert [fact.said for fact in facts.facts if fact.kind != "statement"] == [
        "your name is Ada",
        "you like rivers",
    ]


def test_newer_statements_win_and_questions_or_requests_state_nothing() -> None:
    facts = gather_facts(
        ["I'm Ada.", "Call me Ada Lovelace.", "What is my name?", "Write a poem, please."]
    )
    assert facts.name == "Ada Lovelace"
    assert extract_facts("What is my name?") == []
    assert extract_facts("Write a poem about my cat") == []
    # "I'm" followed by a state, not a name.
    assert gather_facts(["I'm Tired today.", "I'm Not sure"]).name is None


@pytest.mark.parametrize(
    ("said", "question", "recalled"),
    [
        ("My name is Priya and I study chemistry.", "What is my name?", "Priya"),
        ("I'm planning a trip to Lisbon in May.", "Which city did I say I'm visiting?", "Lisbon"),
        ("My cat is called Miso.", "Remind me of my cat's name.", "Miso"),
        ("I work as a nurse on night shifts.", "What job did I tell you I do?", "nurse"),
        ("My budget for a laptop is 900 euros.", "What was my budget again?", "900"),
        ("I'm learning Portuguese for my partner's family.", "Which language am I learning?",
         "Portuguese"),
        ("I have a meeting with Dr. Okafor on Thursday.", "Who is my meeting with?", "Okafor"),
    ],
)  # fmt: skip
def test_a_question_finds_the_fact_that_answers_it(said: str, question: str, recalled: str) -> None:
    relevant = gather_facts([said]).relevant_to(question)
    assert relevant, question
    assert recalled in relevant[0].said


def test_a_phrase_about_the_user_resolves_to_what_they_said() -> None:
    facts = gather_facts(["My name is Priya and I study chemistry.", "My favourite colour is teal"])
    assert facts.resolve("my field of study") == "chemistry"
    assert facts.resolve("my favourite colour") == "teal"
    assert facts.resolve("the sea") is None


def test_the_users_words_are_said_back_in_the_second_person() -> None:
    assert second_person("I am going to my sister's") == "you are going to your sister's"
    assert second_person("Our team uses Django.") == "your team uses Django"
    assert is_statement("My cat is called Miso.")
    assert not is_statement("Compare trains and flights")
