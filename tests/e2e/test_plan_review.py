"""Plan review on the page, in a real Chromium: the plan is edited, approved, and followed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import prefix, screenshot_path
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.e2e

ANALYTICAL = "Compare Redis and PostgreSQL for a job queue, step by step"


@pytest.fixture(scope="module")
def fast(redis: RedisServer) -> Iterator[Service]:
    env = {"ALMA_SIMULATED_TTFT": "0.05", "ALMA_SIMULATED_TOKENS_PER_SECOND": "300"}
    with alma_service(redis.url, prefix=prefix(), env=env) as service:
        yield service


def ask_with_review(page: Page, service: Service) -> None:
    page.goto(service.url)
    page.get_by_label("Review the plan").check()
    page.get_by_role("textbox", name="Message").fill(ANALYTICAL)
    page.get_by_label("Route").select_option("analytical")
    page.get_by_role("button", name="Send").click()


def test_an_edited_plan_is_approved_and_the_answer_follows_it(page: Page, fast: Service) -> None:
    ask_with_review(page, fast)
    review = page.get_by_role("region", name="Plan review")
    expect(review.get_by_role("textbox")).to_have_count(4)
    turn = page.locator(".turn.assistant").last
    expect(turn).to_have_attribute("data-state", "interrupted")
    expect(turn.locator(".outcome")).to_be_hidden()
    # The review node waits for a person; it did not fail.
    expect(turn.locator(".node", has_text="review")).to_have_class("node done")

    # Rewrite the first step and move it last, remove the (new) first, and add one.
    review.get_by_role("textbox", name="Step 1").fill("Count the queue's round trips")
    for place in range(3):
        review.get_by_role("button", name="Move step down").nth(place).click()
    review.get_by_role("button", name="Remove step").first.click()
    review.get_by_role("button", name="Add step").click()
    review.get_by_role("textbox", name="Step 4").fill("Weigh the operational cost")
    expect(review.get_by_role("textbox", name="Step 3")).to_have_value(
        "Count the queue's round trips"
    )
    review.page.screenshot(path=screenshot_path("plan_review_editing"), full_page=True)
    review.get_by_role("button", name="Approve the plan").click()

    expect(turn).to_have_attribute("data-state", "completed")
    expect(review).to_be_hidden()
    answer = turn.locator(".answer")
    expect(answer).to_contain_text("Count the queue's round trips")
    expect(answer).to_contain_text("Weigh the operational cost")
    for dropped in ("Pin down what is being asked", "Lay out the relevant facts and figures"):
        expect(answer).not_to_contain_text(dropped)
    plan = turn.get_by_role("list", name="Plan").locator(".label")
    expect(plan).to_have_text([
        "Weigh the options against each other", "Draw a conclusion with its caveats",
        "Count the queue's round trips", "Weigh the operational cost",
    ])  # fmt: skip
    expect(page.locator(".turn.assistant")).to_have_count(1)


def test_a_rejected_plan_shows_the_short_answer(page: Page, fast: Service) -> None:
    ask_with_review(page, fast)
    review = page.get_by_role("region", name="Plan review")
    review.get_by_role("button", name="Reject the plan").click()
    turn = page.locator(".turn.assistant").last
    expect(turn).to_have_attribute("data-state", "completed")
    expect(turn.locator(".answer")).to_contain_text("The plan was rejected")
    expect(turn.locator(".step.done")).to_have_count(0)


def test_a_plan_waiting_for_review_is_shown_again_after_a_reload(page: Page, fast: Service) -> None:
    ask_with_review(page, fast)
    review = page.get_by_role("region", name="Plan review")
    expect(review.get_by_role("textbox")).to_have_count(4)
    proposed = review.get_by_role("textbox").evaluate_all("fields => fields.map(f => f.value)")
    # Reloaded once the run has ended, the page has only the thread's state to go by.
    thread = page.evaluate("localStorage.getItem('alma-thread')")
    runs = page.request.get(f"{fast.url}/threads/{thread}/runs?limit=1").json()
    assert page.request.get(f"{fast.url}/threads/{thread}/runs/{runs[0]['run_id']}/join").ok
    assert page.request.get(f"{fast.url}/threads/{thread}").json()["status"] == "interrupted"
    page.reload()

    review = page.get_by_role("region", name="Plan review")
    for place, step in enumerate(proposed, start=1):
        expect(review.get_by_role("textbox", name=f"Step {place}")).to_have_value(step)
    turn = page.locator(".turn.assistant")
    expect(turn).to_have_count(1)
    expect(turn).to_have_attribute("data-state", "interrupted")
    expect(page.get_by_role("article", name="Your message")).to_contain_text(ANALYTICAL)
    expect(page.locator(".turn.user")).to_have_count(1)
    plan = turn.get_by_role("list", name="Plan").locator(".label")
    expect(plan).to_have_text(proposed)
    # Another conversation and back: the form is drawn again, as often as the thread opens.
    page.get_by_role("button", name="New conversation").click()
    expect(review).to_have_count(0)
    page.locator(f'#thread-list button[data-thread="{thread}"]').click()
    expect(review.get_by_role("textbox")).to_have_count(len(proposed))

    review.get_by_role("textbox", name="Step 1").fill("Count the queue's round trips")
    review.get_by_role("button", name="Remove step").nth(1).click()
    review.page.screenshot(path=screenshot_path("plan_review_restored"), full_page=True)
    review.get_by_role("button", name="Approve the plan").click()

    expect(turn).to_have_attribute("data-state", "completed")
    expect(review).to_have_count(0)
    edited = ["Count the queue's round trips", *proposed[2:]]
    expect(plan).to_have_text(edited)
    expect(turn.locator(".step.done")).to_have_count(len(edited))
    answer = turn.locator(".answer")
    for step in edited:
        expect(answer).to_contain_text(step)
    for dropped in proposed[:2]:
        expect(answer).not_to_contain_text(dropped)
    expect(page.locator(".turn.assistant")).to_have_count(1)
