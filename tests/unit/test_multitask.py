"""A run refused because its thread is busy leaves no trace in the thread's runs."""

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.utils.local import LocalClient

HAIKU = {
    "assistant_id": "manager",
    "context": {"route": "creative"},
    "input": {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]},
}


@pytest.fixture
def slow_client() -> Iterator[TestClient]:
    """Answers that take about a second, so a second run finds the thread busy."""
    settings = Settings(
        _env_file=None, redis_url=None, simulated_ttft=0.5, simulated_tokens_per_second=0
    )
    with LocalClient(create_app(settings)) as client:
        yield client


def test_a_rejected_run_is_not_left_pending(slow_client: TestClient) -> None:
    thread = slow_client.post("/threads", json={}).json()["thread_id"]
    first = slow_client.post(f"/threads/{thread}/runs", json=HAIKU)
    assert first.status_code == 200, first.text

    rejected = slow_client.post(
        f"/threads/{thread}/runs", json=HAIKU | {"multitask_strategy": "reject"}
    )
    assert rejected.status_code == 409, rejected.text

    runs = slow_client.get(f"/threads/{thread}/runs").json()
    assert [run["run_id"] for run in runs] == [first.json()["run_id"]]
    joined = slow_client.get(f"/threads/{thread}/runs/{first.json()['run_id']}/join")
    assert joined.status_code == 200
    assert [run["status"] for run in slow_client.get(f"/threads/{thread}/runs").json()] == [
        "success"
    ]
