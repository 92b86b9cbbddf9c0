"""`alma chat`'s lines: a message, or `/retry` and `/edit TEXT` of the last one."""

import pytest

from server.cli.rerun import Turn, read_turn


def test_a_line_is_a_message() -> None:
    assert read_turn("  Write a poem about rivers \n", None) == Turn("Write a poem about rivers")
    # Only the two commands are commands: any other slash is the user's text.
    assert read_turn("/etc/hosts is what file?", "x") == Turn("/etc/hosts is what file?")


def test_retry_repeats_the_last_message_and_edit_replaces_it() -> None:
    assert read_turn("/retry", "Write a poem") == Turn("Write a poem", rerun=True)
    assert read_turn("/edit  Write a haiku ", "Write a poem") == Turn("Write a haiku", rerun=True)


@pytest.mark.parametrize(
    ("line", "last", "why"),
    [
        ("/retry", None, "/retry: there is no message to re-run yet"),
        ("/edit Something", None, "/edit: there is no message to re-run yet"),
        ("/edit   ", "Write a poem", "/edit needs the new text: /edit TEXT"),
    ],
)
def test_a_rerun_that_cannot_be_done_says_why(line: str, last: str | None, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        read_turn(line, last)
