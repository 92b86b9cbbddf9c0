"""The whole app in process, on process memory: routes tested without a server process."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.utils.local import LocalClient


@pytest.fixture(scope="module")
def app_client() -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None, redis_url=None, simulated_ttft=0, simulated_tokens_per_second=0
    )
    with LocalClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def slow_client() -> Iterator[TestClient]:
    """Answers that take about a second, so that a run is seen while it runs."""
    settings = Settings(
        _env_file=None, redis_url=None, simulated_ttft=0.5, simulated_tokens_per_second=0
    )
    with LocalClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def simulated_chat(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`alma chat` in process on the simulated model, instant, with no `.env` or provider."""
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    # Unit tests touch no server: threads stay in process memory.
    monkeypatch.setenv("ALMA_REDIS_URL", "")
    monkeypatch.setenv("ALMA_SIMULATED_TTFT", "0")
    monkeypatch.setenv("ALMA_SIMULATED_TOKENS_PER_SECOND", "0")
