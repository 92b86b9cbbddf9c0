"""A real Chromium (Debian's, never a downloaded one) against a real `alma serve` and Redis."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.utils.processes import ROOT
from tests.utils.redis_server import RedisServer, redis_server
from tests.utils.system_tools import require_tool

# What the page shows may take longer than Playwright's 5 s to appear when the suite's
# other workers keep the machine busy; a wait still ends the moment it is shown.
expect.set_options(timeout=20_000)

SCREENSHOTS = ROOT / "tests" / "e2e" / "screenshots"


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright's sync API runs an event loop on this thread while it is open: it must
    # be closed before any asyncio test runs, so it lives no longer than a module.
    chromium = require_tool("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (its own storage); a screenshot of how the test left it."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    path = screenshot_path(request.node.name)
    started = time.time()
    yield page
    # A test may have saved its own, at the moment that shows most; it is kept.
    if not path.exists() or path.stat().st_mtime < started:
        page.screenshot(path=path, full_page=True)
    context.close()
    assert not errors, errors


def screenshot_path(name: str) -> Path:
    """Where a test's screenshot goes (tests/e2e/screenshots/, not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / (re.sub(r"[^\w-]+", "_", name) + ".png")


def prefix() -> str:
    return f"e2e-{uuid.uuid4().hex[:6]}"
