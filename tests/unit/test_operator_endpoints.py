"""With API keys required, /metrics, /stats and the API docs need a key unless opened."""

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.guard.auth import new_key
from server.settings import Settings
from tests.utils.local import LocalClient

KEY, ENTRY = new_key("ops")
GUARDED = ["/metrics", "/stats", "/docs", "/openapi.json"]


def client_for(**settings: Any) -> TestClient:
    app = create_app(Settings(_env_file=None, redis_url=None, **settings))
    return LocalClient(app)


@pytest.fixture
def keyed() -> Iterator[TestClient]:
    with client_for(api_keys=[ENTRY]) as client:
        yield client


@pytest.mark.parametrize("path", GUARDED)
def test_in_production_operator_endpoints_need_a_key(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 401
    assert keyed.get(path, headers={"authorization": f"Bearer {KEY}"}).status_code == 200


def test_health_and_readiness_stay_open_for_balancers(keyed: TestClient) -> None:
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/ready").status_code == 200


def test_an_operator_may_open_some_of_them() -> None:
    with client_for(api_keys=[ENTRY], open_endpoints=["metrics", "docs"]) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/openapi.json").json()["info"]["title"] == "ALMA"
        assert "swagger" in client.get("/docs").text.lower()
        assert client.get("/stats").status_code == 401


def test_in_development_they_are_open(app_client: TestClient) -> None:
    for path in GUARDED:
        assert app_client.get(path).status_code == 200, path


def test_an_unknown_endpoint_name_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        Settings(_env_file=None, open_endpoints=["admin"])
