"""One WebSocket cannot hold more subscriptions than ALMA_MAX_SUBSCRIPTIONS."""

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.utils.local import LocalClient


@pytest.fixture
def capped() -> Iterator[TestClient]:
    settings = Settings(_env_file=None, redis_url=None, max_subscriptions=3)
    with LocalClient(create_app(settings)) as client:
        yield client


def test_one_subscription_past_the_cap_is_refused_and_unsubscribing_frees_a_place(
    capped: TestClient,
) -> None:
    with capped.websocket_connect("/threads/t-cap/stream/events") as socket:

        def command(id_: int, method: str, **params: object) -> dict[str, object]:
            socket.send_json({"id": id_, "method": method, "params": params})
            answer: dict[str, object] = json.loads(socket.receive()["text"])
            return answer

        made = [command(i, "subscription.subscribe", channels=["lifecycle"]) for i in range(3)]
        assert all(answer["type"] == "success" for answer in made)
        refused = command(9, "subscription.subscribe", channels=["lifecycle"])
        assert refused["type"] == "error" and refused["error"] == "permission_denied"
        assert "ALMA_MAX_SUBSCRIPTIONS" in str(refused["message"])

        first = made[0]["result"]["subscription_id"]  # type: ignore[index]
        assert command(10, "subscription.unsubscribe", subscription_id=first)["type"] == "success"
        assert command(11, "subscription.subscribe", channels=["values"])["type"] == "success"
