"""What a run may be given: shape, sizes, and text made safe."""

import pytest

from server.guard.refusals import Refused
from server.guard.validation import check_run_input, check_thread_id, normalise_text

LIMITS = {"max_messages": 3, "max_chars": 20}


def test_text_is_nfc_with_no_control_characters_but_newline_and_tab() -> None:
    assert normalise_text("Cafe\u0301\x07 au\tlait\r\nnow\x00\x1b[31m") == "Café au\tlait\nnow[31m"


def test_input_messages_are_normalised_in_every_accepted_form() -> None:
    checked = check_run_input(
        {"messages": [["user", "Cafe\u0301"], {"type": "human", "content": [
            {"type": "text", "text": "a\x07b"}]}]},
        **LIMITS,
    )  # fmt: skip
    assert checked == {
        "messages": [
            {"role": "user", "content": "Café"},
            {"role": "human", "content": [{"type": "text", "text": "ab"}]},
        ]
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 'input must be {"messages"'),
        ({"messages": [], "extra": 1}, 'input must be {"messages"'),
        ({"messages": []}, "non-empty"),
        ({"messages": [["user", "x"]] * 4}, "4 messages; the limit is 3 (ALMA_MAX_MESSAGES)"),
        ({"messages": [["user", "x" * 21]]}, "21 characters; the limit is 20"),
        ({"messages": [["robot", "x"]]}, "input.messages[0].role"),
        ({"messages": [{"role": "user", "content": "x", "tool": 1}]}, "unknown field"),
        ({"messages": [{"role": "user", "content": 5}]}, "input.messages[0].content"),
    ],
)
def test_bad_input_is_refused_naming_the_field_or_limit(value: object, expected: str) -> None:
    with pytest.raises(Refused) as caught:
        check_run_input(value, **LIMITS)
    assert caught.value.protocol_code == "invalid_argument"
    assert expected in caught.value.message


@pytest.mark.parametrize("thread_id", ["", "-lead", "a b", "x" * 129, "../etc", "t/1"])
def test_thread_ids_outside_the_format_are_refused(thread_id: str) -> None:
    with pytest.raises(Refused):
        check_thread_id(thread_id)


def test_ordinary_thread_ids_pass() -> None:
    for thread_id in ("t-1", "0a2b3c", "study:1", "user@example.com", "x" * 128):
        check_thread_id(thread_id)


def test_bidi_controls_and_invisible_spaces_are_removed_but_joiners_kept() -> None:
    # U+202E/U+2066 reorder what a reader sees; U+200B hides text. ZWJ builds emoji.
    assert normalise_text("a\u202eb\u2066c\u2069d\u200be\ufeff") == "abcde"
    assert normalise_text("\U0001f469\u200d\U0001f4bb") == "\U0001f469\u200d\U0001f4bb"


def test_a_message_name_is_normalised_and_counted_against_the_character_limit() -> None:
    checked = check_run_input(
        {"messages": [{"role": "user", "content": "hi", "name": "A\x00d\x1ba"}]}, **LIMITS
    )
    assert checked["messages"][0]["name"] == "Ada"
    with pytest.raises(Refused, match="the limit is 20"):
        check_run_input(
            {"messages": [{"role": "user", "content": "hi", "name": "n" * 19}]}, **LIMITS
        )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"role": "user", "content": "x", "id": {}}, "input.messages[0].id must be text"),
        ({"role": "user", "content": "x", "name": 7}, "input.messages[0].name must be text"),
        ({"role": "user", "content": "\x00\x07" * 100}, "input.messages[0].content has no text"),
        ({"role": "user", "content": [{"type": "text", "text": "\u200b"}]}, "has no text"),
    ],
)
def test_ids_and_names_must_be_text_and_content_must_keep_some(
    message: dict[str, object], expected: str
) -> None:
    with pytest.raises(Refused) as raised:
        check_run_input({"messages": [message]}, **LIMITS)
    assert expected in raised.value.message
