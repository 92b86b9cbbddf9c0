"""A keyless (development) server cannot be driven by a web page on another site."""

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from server.app import create_app
from server.guard.auth import new_key
from server.settings import Settings
from tests.utils.local import LocalClient

RUN = {
    "assistant_id": "manager",
    "context": {"route": "creative"},
    "input": {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]},
}
TEXT_PLAIN = {"content-type": "text/plain;charset=UTF-8"}


def test_a_cross_site_text_plain_post_is_refused(app_client: TestClient) -> None:
    # No preflight is sent for this request: only the server can stop it.
    evil = {**TEXT_PLAIN, "origin": "https://evil.example"}
    refused = app_client.post("/threads/x/runs/wait", json=RUN, headers=evil)
    assert refused.status_code == 403
    assert "origin not allowed" in refused.json()["detail"]
    assert app_client.post("/threads/x/state", json={"values": {}}, headers=evil).status_code == 403
    # The page's own origin, and clients that are not browsers, go through.
    own = {**TEXT_PLAIN, "origin": "http://127.0.0.1"}
    assert app_client.post("/runs/wait", json=RUN, headers=own).status_code == 200
    assert app_client.post("/runs/wait", json=RUN).status_code == 200


def test_a_rebound_host_name_is_refused_over_http_and_websocket(app_client: TestClient) -> None:
    rebound = {"host": "attacker.example:8000", "origin": "http://attacker.example:8000"}
    assert app_client.get("/threads", headers=rebound).status_code == 403
    with (
        pytest.raises(WebSocketDisconnect),
        app_client.websocket_connect("/threads/t-rebound/stream/events", headers=rebound),
    ):
        pass
    assert app_client.get("/health", headers={"host": "localhost:8000"}).status_code == 200


def test_configured_hosts_and_origins_are_answered() -> None:
    settings = Settings(
        _env_file=None, redis_url=None, allowed_hosts=["alma.dev.internal"],
        cors_origins=["https://smith.langchain.com"],
    )  # fmt: skip
    with LocalClient(create_app(settings)) as client:
        named = {"host": "alma.dev.internal"}
        assert client.get("/health", headers=named).status_code == 200
        studio = {**TEXT_PLAIN, "origin": "https://smith.langchain.com"}
        assert client.post("/runs/wait", json=RUN, headers=studio).status_code == 200


def test_with_keys_the_keys_guard_instead() -> None:
    key, entry = new_key("ann")
    with LocalClient(
        create_app(Settings(_env_file=None, redis_url=None, api_keys=[entry]))
    ) as client:
        any_host = {"host": "alma.example.com", "authorization": f"Bearer {key}"}
        assert client.get("/threads", headers=any_host).status_code == 200
