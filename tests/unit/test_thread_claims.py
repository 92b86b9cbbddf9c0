"""A refused run start does not take the thread id: bad requests cannot squat ids."""

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.auth import new_key
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
