"""The web page in a real Chromium against a real `alma serve` with Redis."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, WebSocket, expect

from server.guard.auth import new_key
from tests.e2e.conftest import prefix, screenshot_path
from tests.utils.processes import ROOT
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service
from tests.utils.tcp_proxy import tcp_proxy

pytestmark = pytest.mark.e2e

CREATIVE = "Write a haiku about rivers"
# Long enough (about 110 tokens) that a test sees it mid-stream and can act on it there;
# a haiku is a dozen tokens, over before a loaded browser's next check.
STORY = "Tell me a short story about rivers"
ANALYTICAL = "Compare Redis and PostgreSQL for a job queue, step by step"


@pytest.fixture(scope="module")
def fast(redis: RedisServer) -> Iterator[Service]:
    env = {"ALMA_SIMULATED_TTFT": "0.05", "ALMA_SIMULATED_TOKENS_PER_SECOND": "150"}
    with alma_service(redis.url, prefix=prefix(), env=env) as service:
        yield service


@pytest.fixture(scope="module")
def slow(redis: RedisServer) -> Iterator[Service]:
    """Answers that take seconds, so a test can act in the middle of one."""
    env = {"ALMA_SIMULATED_TTFT": "0.05", "ALMA_SIMULATED_TOKENS_PER_SECOND": "40"}
    with alma_service(redis.url, prefix=prefix(), env=env) as service:
        yield service


def send(page: Page, text: str, route: str | None = None) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    if route:
        page.get_by_label("Route").select_option(route)
    page.get_by_role("button", name="Send").click()


def wait_streaming(page: Page) -> None:
    """Until part of the answer shows while the run is still going."""
    page.wait_for_function(
        """() => document.querySelector('#messages').getAttribute('aria-busy') === 'true'
                 && (document.querySelector('.turn.assistant:last-child .answer')
                     ?.innerText.length ?? 0) > 20"""
    )


def test_creative_and_analytical_answers_stream_with_route_progress_and_figures(
    page: Page, fast: Service
) -> None:
    page.goto(fast.url)
    expect(page.locator("#simulated")).to_be_visible()

    send(page, STORY)
    wait_streaming(page)
    creative = page.locator(".turn.assistant").last
    expect(creative).to_have_attribute("data-state", "completed")
    expect(creative.locator(".route")).to_contain_text("Route: creative")
    expect(creative.locator(".node.done", has_text="compose")).to_be_visible()
    expect(creative.locator(".node.done", has_text="route")).to_be_visible()
    figures = creative.locator(".figures")
    for label in ("First token", "Speed", "Total", "Tokens", "Cost"):
        expect(figures).to_contain_text(label)
    expect(figures).to_contain_text("$0.0000")
    expect(figures).to_contain_text(" completion")

    send(page, ANALYTICAL)
    wait_streaming(page)
    analytical = page.locator(".turn.assistant").last
    expect(analytical).to_have_attribute("data-state", "completed")
    expect(analytical.locator(".route")).to_contain_text("Route: analytical")
    steps = analytical.locator(".plan .step")
    assert steps.count() >= 2
    expect(analytical.locator(".plan .step.done")).to_have_count(steps.count())
    for node in ("plan", "analyse", "synthesise"):
        expect(analytical.locator(".node.done", has_text=node).first).to_be_visible()
    # Markdown is rendered as elements, not shown as raw marks.
    expect(analytical.locator(".answer h3, .answer h4").first).to_be_visible()
    expect(analytical.locator(".answer li").first).to_be_visible()
    assert "**" not in analytical.locator(".answer").inner_text()
    # The live panel reads the service's figures.
    page.reload()
    expect(page.locator("#live-ttft")).to_have_text(re.compile(r"^\d+ ms$"))


def test_model_output_is_text_never_markup(page: Page, fast: Service) -> None:
    # The simulated analyst quotes the request in its answer, so the markup comes back
    # in model output, as an injection through a real model would.
    hostile = (
        'Compare <img src=x onerror="window.pwned=1"> and <script>window.pwned=2</script> '
        "step by step, [a link](javascript:window.pwned=3)"
    )
    page.goto(fast.url)
    send(page, hostile)
    answer = page.locator(".turn.assistant").last
    expect(answer).to_have_attribute("data-state", "completed")
    expect(answer.locator(".answer")).to_contain_text('<img src=x onerror="window.pwned=1">')
    assert page.locator(".answer img, .answer script, .note img, .note script").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.evaluate("window.pwned") is None


def test_stop_keeps_the_text_so_far(page: Page, slow: Service) -> None:
    page.goto(slow.url)
    send(page, STORY, route="creative")
    wait_streaming(page)
    page.get_by_role("button", name="Stop").click()
    answer = page.locator(".turn.assistant").last
    expect(answer).to_have_attribute("data-state", "cancelled")
    expect(answer.locator(".outcome")).to_contain_text("Stopped")
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    kept = answer.locator(".answer").inner_text()
    assert len(kept) > 20

    # The thread keeps what was shown, marked as stopped, and the page shows it again.
    page.reload()
    again = page.locator(".turn.assistant").last
    expect(again.locator(".outcome")).to_contain_text("Stopped")
    assert again.locator(".answer").inner_text().startswith(kept[:20])


def test_a_cut_connection_resumes_with_nothing_lost_or_doubled(
    browser: Browser, page: Page, slow: Service, request: pytest.FixtureRequest
) -> None:
    with tcp_proxy(slow.port) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        page.goto(url)
        send(page, ANALYTICAL)
        wait_streaming(page)
        assert proxy.cut() >= 1  # mid-answer, as a network failure would
        expect(page.locator("#status")).to_contain_text("reconnecting", timeout=5000)
        page.wait_for_function(
            "() => document.querySelector('.turn.assistant:last-child .answer').innerText.length"
            " > 200"
        )
        assert proxy.cut() >= 1  # and again, later in the answer
        answer = page.locator(".turn.assistant").last
        expect(answer).to_have_attribute("data-state", "completed", timeout=60_000)
        expect(page.locator("#status")).to_contain_text("Reconnected")
        streamed = answer.locator(".answer").inner_text()
        steps = answer.locator(".plan .step.done").count()
        page.screenshot(path=screenshot_path(request.node.name), full_page=True)

    # The same thread, loaded fresh from the server, reads exactly the same.
    fresh = browser.new_context(viewport={"width": 1200, "height": 900})
    thread_id = page.evaluate("localStorage.getItem('alma-thread')")
    other = fresh.new_page()
    other.add_init_script(f"localStorage.setItem('alma-thread', {thread_id!r})")
    other.goto(slow.url)
    stored = other.locator(".turn.assistant").last.locator(".answer")
    expect(stored).not_to_be_empty()
    assert stored.inner_text() == streamed
    assert steps >= 2
    fresh.close()


@pytest.fixture(scope="module")
def limited(redis: RedisServer) -> Iterator[Service]:
    env = {"ALMA_LIMIT_RUNS": "1", "ALMA_LIMIT_WINDOW_SECONDS": "60"}
    with alma_service(redis.url, prefix=prefix(), env=env) as service:
        yield service


def test_the_rate_limit_shows_the_wait(page: Page, limited: Service) -> None:
    page.goto(limited.url)
    send(page, CREATIVE)
    expect(page.locator(".turn.assistant").last).to_have_attribute("data-state", "completed")
    send(page, CREATIVE)
    status = page.locator("#status")
    expect(status).to_contain_text("Rate limit reached")
    expect(status).to_contain_text("1 runs per 60 s")
    expect(status).to_contain_text(re.compile(r"send again in \d+ s"))
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    refused = page.locator(".turn.assistant").last
    expect(refused).to_have_attribute("data-state", "permission_denied")
    expect(refused.locator(".outcome")).to_contain_text("Not sent")


def test_reload_finds_the_conversation_again(page: Page, fast: Service) -> None:
    page.goto(fast.url)
    page.get_by_role("button", name="New conversation").click()
    send(page, "Write a limerick about a lighthouse keeper")
    expect(page.locator(".turn.assistant").last).to_have_attribute("data-state", "completed")
    answer = page.locator(".turn.assistant").last.locator(".answer").inner_text()

    page.reload()
    expect(page.locator(".turn.user")).to_contain_text("limerick about a lighthouse")
    # The stream replays the thread's newest run to the reloaded page: shown once.
    expect(page.locator(".turn.assistant")).to_have_count(1)
    assert page.locator(".turn.assistant").last.locator(".answer").inner_text() == answer
    current = page.locator("#thread-list button[aria-current='true']")
    expect(current).to_contain_text("Write a limerick about a lighthouse")

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator(".turn")).to_have_count(0)
    page.locator("#thread-list button", has_text="lighthouse").click()
    expect(page.locator(".turn.user")).to_contain_text("limerick about a lighthouse")


KEY, KEY_ENTRY = new_key("ann")


@pytest.fixture(scope="module")
def keyed(redis: RedisServer) -> Iterator[Service]:
    with alma_service(redis.url, prefix=prefix(), env={"ALMA_API_KEYS": KEY_ENTRY}) as service:
        yield service


def test_a_key_is_asked_for_kept_in_the_tab_and_never_put_in_a_url(
    page: Page, keyed: Service
) -> None:
    key = KEY
    sockets: list[WebSocket] = []
    page.on("websocket", lambda socket: sockets.append(socket))
    page.goto(keyed.url)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Your key").fill(key)
    dialog.get_by_role("button", name="Use this key").click()
    send(page, CREATIVE)
    expect(page.locator(".turn.assistant").last).to_have_attribute("data-state", "completed")
    assert page.evaluate("sessionStorage.getItem('alma-key')") == key
    assert page.evaluate("localStorage.getItem('alma-key')") is None
    assert sockets and all(key not in socket.url for socket in sockets)
    assert key not in page.url
    # The thread is ann's: without the key, it is not there.
    thread_id = page.evaluate("localStorage.getItem('alma-thread')")
    assert httpx.get(f"{keyed.url}/threads/{thread_id}/state").status_code == 401
    owned = httpx.get(
        f"{keyed.url}/threads/{thread_id}/state", headers={"authorization": f"Bearer {key}"}
    )
    assert owned.status_code == 200


def test_phone_width_keyboard_only_and_accessibility(browser: Browser, fast: Service) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(fast.url)
        # Keyboard only: Tab reaches the message box (past the first-load hint's
        # examples), Enter sends.
        for _ in range(25):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "message":
                break
        assert page.evaluate("document.activeElement.id") == "message"
        page.keyboard.type(ANALYTICAL)
        # Enter sends once the page has opened its thread: until then Send is disabled
        # and Enter keeps the text. The banner shows once /info has answered, and the
        # thread starts opening in the same step.
        expect(page.locator("#simulated")).to_be_visible()
        expect(page.get_by_role("button", name="Send")).to_be_enabled()
        page.keyboard.press("Enter")
        expect(page.locator(".turn.assistant").last).to_have_attribute("data-state", "completed")
        # Nothing is wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # Focus is visible on a control reached by keyboard.
        page.keyboard.press("Shift+Tab")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"

        results = Axe().run(page)
        serious = [
            (v["id"], v["help"]) for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]  # fmt: skip
        assert not serious, serious
    finally:
        page.screenshot(path=screenshot_path("phone"), full_page=True)
        context.close()


@pytest.fixture(scope="module")
def failing(redis: RedisServer) -> Iterator[Service]:
    """A service whose model provider answers every call with a server error."""
    env = {
        "ALMA_SIMULATED_FAULT_RATE": "1.0",
        "ALMA_SIMULATED_FAULTS": '["server_error"]',
        "ALMA_MODEL_ATTEMPTS": "2",
        "ALMA_MODEL_RETRY_INTERVAL": "0.01",
    }
    with alma_service(redis.url, prefix=prefix(), env=env) as service:
        yield service


def test_a_failing_provider_is_explained(page: Page, failing: Service) -> None:
    page.goto(failing.url)
    send(page, CREATIVE)
    answer = page.locator(".turn.assistant").last
    expect(answer).to_have_attribute("data-state", "provider_unavailable")
    expect(answer.locator(".outcome")).to_contain_text("The model provider is failing right now")
    # Both attempts show, each failed.
    expect(answer.locator(".node.failed", has_text="compose")).to_have_count(2)
    # The page stays usable: the next message can be sent.
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


@pytest.fixture(scope="module")
def remembering(redis: RedisServer) -> Iterator[tuple[Service, str]]:
    """A service, and the key prefix an in-process `alma chat` shares with it."""
    shared = prefix()
    with alma_service(redis.url, prefix=shared) as service:
        yield service, shared


def test_a_first_visit_shows_what_to_try_and_the_conversation_is_remembered(
    page: Page, remembering: tuple[Service, str]
) -> None:
    service, _ = remembering
    page.goto(service.url)
    hint = page.get_by_role("region", name="Try one of these")
    expect(hint).to_be_visible()
    results = Axe().run(page)
    serious = [v["id"] for v in results.response["violations"]
               if v["impact"] in ("serious", "critical")]  # fmt: skip
    assert not serious, serious

    hint.get_by_role("button", name="My name is Ada and I like rivers").click()
    expect(hint).to_be_hidden()
    first = page.locator(".turn.assistant").last
    expect(first).to_have_attribute("data-state", "completed")
    expect(first.locator(".route")).to_contain_text("Route: creative")
    expect(first.locator(".plan .step")).to_have_count(0)
    expect(first.locator(".answer")).to_contain_text("Nice to meet you, Ada.")

    send(page, "Write a short poem using my name")
    poem = page.locator(".turn.assistant").last
    expect(poem).to_have_attribute("data-state", "completed")
    text = poem.locator(".answer").inner_text()
    assert "Ada" in text and "rivers" in text and "using my name" not in text

    # A new conversation is empty again, so the hint is back.
    page.get_by_role("button", name="New conversation").click()
    expect(hint).to_be_visible()


def test_a_thread_from_alma_chat_in_process_is_listed_on_the_page(
    page: Page, remembering: tuple[Service, str], redis: RedisServer
) -> None:
    service, shared = remembering
    env = {"PATH": "/usr/bin:/bin", "ALMA_REDIS_URL": redis.url, "ALMA_REDIS_PREFIX": shared,
           "ALMA_SIMULATED_TTFT": "0", "ALMA_SIMULATED_TOKENS_PER_SECOND": "0"}  # fmt: skip
    chat = subprocess.run(
        [sys.executable, "-m", "server.cli", "chat", "--thread", "from-terminal",
         "Write a haiku about lighthouses"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert chat.returncode == 0, chat.stderr

    page.goto(service.url)
    listed = page.locator("#thread-list button", has_text="Write a haiku about lighthouses")
    expect(listed).to_be_visible()
    listed.click()
    expect(page.locator(".turn.user")).to_contain_text("Write a haiku about lighthouses")
    expect(page.locator(".turn.assistant .answer")).to_contain_text("lighthouses")
