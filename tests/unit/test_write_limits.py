"""Writes that are not runs are held to what runs are: validation, a budget, a quota."""

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.utils.local import LocalClient


def client_with(**settings: Any) -> TestClient:
    return LocalClient(create_app(Settings(_env_file=None, redis_url=None, **settings)))


@pytest.fixture
def small() -> Iterator[TestClient]:
    with client_with(max_messages=5, max_message_chars=200) as client:
        yield client


def test_a_state_write_is_held_to_the_run_inputs_bounds(small: TestClient) -> None:
    thread = small.post("/threads", json={}).json()["thread_id"]
    many = [{"type": "human", "content": "hi"}] * 6
    refused = small.post(f"/threads/{thread}/state", json={"values": {"messages": many}})
    assert refused.status_code == 422 and "ALMA_MAX_MESSAGES" in refused.text
    long = [{"type": "human", "content": "x" * 500}]
    refused = small.post(f"/threads/{thread}/state", json={"values": {"messages": long}})
    assert refused.status_code == 422 and "ALMA_MAX_MESSAGE_CHARS" in refused.text

    hostile = [{"type": "human", "content": "a\x00b\x1b[31mc\u202ed"}]
    written = small.post(f"/threads/{thread}/state", json={"values": {"messages": hostile}})
    assert written.status_code == 200, written.text
    [stored] = small.get(f"/threads/{thread}/state").json()["values"]["messages"]
    assert not any(ch in stored["content"] for ch in "\x00\x1b\u202e")


def test_oversized_metadata_is_refused(small: TestClient) -> None:
    refused = small.post("/threads", json={"metadata": {"note": "x" * 500}})
    assert refused.status_code == 422 and "metadata" in refused.text
    thread = small.post("/threads", json={}).json()["thread_id"]
    patched = small.patch(f"/threads/{thread}", json={"metadata": {"note": "x" * 500}})
    assert patched.status_code == 422


def test_writes_count_against_a_budget_per_window() -> None:
    with client_with(limit_writes=3) as client:
        thread = client.post("/threads", json={}).json()["thread_id"]
        assert client.patch(f"/threads/{thread}", json={"metadata": {"a": 1}}).is_success
        assert client.post(f"/threads/{thread}/copy").is_success
        refused = client.post(f"/threads/{thread}/copy")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert "writes" in refused.json()["detail"]


def test_an_owner_holds_at_most_the_quota_of_threads() -> None:
    with client_with(max_threads_per_owner=2) as client:
        first = client.post("/threads", json={}).json()["thread_id"]
        assert client.post("/threads", json={}).is_success
        refused = client.post("/threads", json={})
        assert refused.status_code == 403 and "ALMA_MAX_THREADS_PER_OWNER" in refused.text
        assert client.post(f"/threads/{first}/copy").status_code == 403
        assert client.delete(f"/threads/{first}").is_success
        assert client.post("/threads", json={}).is_success
