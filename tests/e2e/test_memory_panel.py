"""The page's "What ALMA remembers" panel in a real Chromium against `alma serve` and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import prefix, screenshot_path
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def service(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix=prefix()) as served:
        yield served


def send(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".turn.assistant").last).to_have_attribute("data-state", "completed")


def test_the_panel_lists_what_alma_remembers_and_deleting_forgets_it(
    page: Page, service: Service
) -> None:
    page.goto(service.url)
    panel = page.get_by_role("region", name="What ALMA remembers")
    expect(panel.get_by_text("Nothing yet")).to_be_visible()

    send(page, "I work in Rust.")
    fact = panel.get_by_role("listitem").filter(has_text="you work in Rust")
    expect(fact).to_be_visible()

    # A new conversation uses it, and says so.
    page.get_by_role("button", name="New conversation").click()
    send(page, "Write a short poem about my work.")
    answer = page.locator(".turn.assistant .answer").last
    expect(answer).to_contain_text("Remembered: you work in Rust")
    page.screenshot(path=screenshot_path("memory_panel"), full_page=True)

    panel.get_by_role("button", name="Delete: you work in Rust").click()
    expect(panel.get_by_role("listitem")).to_have_count(0)
    expect(panel.get_by_text("Nothing yet")).to_be_visible()
    page.get_by_role("button", name="New conversation").click()
    send(page, "Write a short poem about my work.")
    expect(page.locator(".turn.assistant .answer").last).not_to_contain_text("Rust")
