"""A refused run start does not take the thread id: bad requests cannot squat ids."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.guard.auth import new_key
from server.settings import Settings
from tests.utils.local import LocalClient

SQUATTER, SQUATTER_ENTRY = new_key("squatter")
OWNER, OWNER_ENTRY = new_key("owner")
GOOD = {"assistant_id": "manager", "context": {"route": "creative"},
        "input": {"messages": [{"role": "user", "content": "Write a haiku"}]}}  # fmt: skip
BAD_REQUESTS = [
    GOOD | {"input": {"messages": []}},
    GOOD | {"context": {"route": "nowhere"}},
    GOOD | {"assistant_id": "someone-else"},
]


@pytest.fixture
def keyed() -> Iterator[TestClient]:
    settings = Settings(_env_file=None, redis_url=None, api_keys=[SQUATTER_ENTRY, OWNER_ENTRY])
    with LocalClient(create_app(settings)) as client:
        yield client


def as_(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=["input", "context", "assistant"])
def test_a_refused_start_leaves_the_thread_id_free(
    keyed: TestClient, bad: dict[str, object]
) -> None:
    thread = "wanted-id"
    # Over the protocol's HTTP commands, and over LangGraph's runs API.
    command = {"id": 1, "method": "run.start", "params": bad}
    answer = keyed.post(f"/threads/{thread}/commands", json=command, headers=as_(SQUATTER))
    assert answer.json()["type"] == "error"
    refused = keyed.post(
        f"/threads/{thread}/runs/wait", json=bad | {"if_not_exists": "create"},
        headers=as_(SQUATTER),
    )  # fmt: skip
    assert refused.status_code in (404, 422)
    # The rightful user takes the id as if nothing had happened.
    taken = keyed.post(
        f"/threads/{thread}/runs/wait", json=GOOD | {"if_not_exists": "create"},
        headers=as_(OWNER),
    )  # fmt: skip
    assert taken.status_code == 200, taken.text


def test_a_subscription_takes_no_thread_and_sees_no_one_elses_run(keyed: TestClient) -> None:
    with keyed.websocket_connect(
        "/threads/watched-id/stream/events", headers=as_(SQUATTER)
    ) as squatter:
        channels = ["lifecycle", "messages", "values"]
        squatter.send_json(
            {"id": 1, "method": "subscription.subscribe", "params": {"channels": channels}}
        )
        assert json.loads(squatter.receive()["text"])["type"] == "success"
        # The rightful user creates the thread and runs on it as if nobody had looked.
        ran = keyed.post(
            "/threads/watched-id/runs/wait", json=GOOD | {"if_not_exists": "create"},
            headers=as_(OWNER),
        )  # fmt: skip
        assert ran.status_code == 200, ran.text
        # The squatter's next frame is the answer to its next command: no event came.
        squatter.send_json({"id": 2, "method": "run.start", "params": GOOD})
        answer = json.loads(squatter.receive()["text"])
    assert (answer.get("id"), answer.get("error")) == (2, "permission_denied")


def test_a_subscription_made_first_still_streams_the_callers_own_run(keyed: TestClient) -> None:
    # As the SDKs do: subscribe on a new thread id, then start the run on it.
    with keyed.websocket_connect("/threads/my-new-id/stream/events", headers=as_(OWNER)) as mine:
        mine.send_json({"id": 1, "method": "subscription.subscribe",
                        "params": {"channels": ["lifecycle"]}})  # fmt: skip
        mine.send_json({"id": 2, "method": "run.start", "params": GOOD})
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1].get("params", {}).get("data", {}).get("event") != "completed":
            seen.append(json.loads(mine.receive()["text"]))
            if seen[-1].get("params", {}).get("namespace"):
                seen.pop()
    assert [m["params"]["data"]["event"] for m in seen if m.get("method")] == [
        "running",
        "completed",
    ]
