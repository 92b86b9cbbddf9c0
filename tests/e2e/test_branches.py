"""Editing a message and regenerating an answer fork the conversation; its branches stay.

A real Chromium against a real `alma serve` and Redis: the page re-runs a turn from the
checkpoint before it (`run.start` with `checkpoint_id`), shows "< n / m >" to switch
between a turn's versions, and remembers the branch chosen across a reload.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import prefix
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.e2e

TURNS = ("Write a haiku about rivers", "Now one about mountains", "And one about the sea")
EDITED = "Write a haiku about lakes"


@pytest.fixture(scope="module")
def fast(redis: RedisServer) -> Iterator[Service]:
    env = {"ALMA_SIMULATED_TTFT": "0.01", "ALMA_SIMULATED_TOKENS_PER_SECOND": "0"}
    with alma_service(redis.url, prefix=prefix(), env=env) as service:
        yield service


def send(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_label("Route").select_option("creative")
    page.get_by_role("button", name="Send").click()


def user_texts(page: Page) -> Locator:
    return page.locator(".turn.user article > p")


def versions(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Versions of this turn")


def settled(page: Page, turns: int) -> None:
    """Until `turns` answers show, none running, each with its actions."""
    expect(page.locator(".turn.assistant")).to_have_count(turns)
    expect(page.locator("#messages")).to_have_attribute("aria-busy", "false")
    expect(page.get_by_role("button", name="Regenerate this answer")).to_have_count(turns)


def test_an_edited_first_message_forks_and_the_old_branch_can_be_shown_again(
    page: Page, fast: Service
) -> None:
    page.goto(fast.url)
    for n, text in enumerate(TURNS, 1):
        send(page, text)
        settled(page, n)
    expect(user_texts(page)).to_have_text(list(TURNS))
    expect(versions(page)).to_have_count(0)

    # Edit the first message and re-run: the edited branch has that turn alone.
    page.get_by_role("button", name="Edit this message").first.click()
    page.get_by_role("textbox", name="Edit your message").fill(EDITED)
    page.get_by_role("button", name="Save and re-run").click()
    settled(page, 1)
    expect(user_texts(page)).to_have_text([EDITED])
    expect(page.locator(".turn.assistant .answer")).not_to_be_empty()
    expect(versions(page)).to_have_count(1)
    expect(versions(page)).to_contain_text("2 / 2")

    # Back to the old branch: all three turns, as they were.
    versions(page).get_by_role("button", name="Previous version").click()
    expect(user_texts(page)).to_have_text(list(TURNS))
    expect(versions(page)).to_contain_text("1 / 2")
    settled(page, 3)

    # A reload shows the branch chosen last.
    page.reload()
    expect(user_texts(page)).to_have_text(list(TURNS))
    expect(versions(page)).to_contain_text("1 / 2")

    # The edited one again, then a new message continues on it.
    versions(page).get_by_role("button", name="Next version").click()
    expect(user_texts(page)).to_have_text([EDITED])
    page.reload()
    expect(user_texts(page)).to_have_text([EDITED])
    settled(page, 1)
    send(page, TURNS[1])
    settled(page, 2)
    expect(user_texts(page)).to_have_text([EDITED, TURNS[1]])
    page.reload()
    expect(user_texts(page)).to_have_text([EDITED, TURNS[1]])
    expect(versions(page)).to_contain_text("2 / 2")

    # The conversation list still holds the one conversation, and reopens it.
    threads = page.locator("#thread-list button")
    expect(threads).to_have_count(1)
    threads.first.click()
    expect(user_texts(page)).to_have_text([EDITED, TURNS[1]])


def test_a_regenerated_answer_is_a_second_version_of_its_turn(page: Page, fast: Service) -> None:
    page.goto(fast.url)
    page.get_by_role("button", name="New conversation").click()
    for n, text in enumerate(TURNS[:2], 1):
        send(page, text)
        settled(page, n)
    page.get_by_role("button", name="Regenerate this answer").last.click()
    settled(page, 2)
    expect(user_texts(page)).to_have_text(list(TURNS[:2]))
    # The switcher sits on the second turn only: the first has one version.
    expect(versions(page)).to_have_count(1)
    expect(page.locator(".turn.user").nth(1).locator(".branch-switch")).to_contain_text("2 / 2")
    versions(page).get_by_role("button", name="Previous version").click()
    expect(versions(page)).to_contain_text("1 / 2")
    expect(user_texts(page)).to_have_text(list(TURNS[:2]))
