"""The one assistant: its id, the names it answers to, and what its endpoints accept."""

import httpx
import pytest
from fastapi import HTTPException

from server.app import create_app
from server.langgraph_api.assistants import (
    MANAGER_ASSISTANT_ID,
    metadata_contains,
    resolve_assistant,
)
from server.settings import Settings
from server.web.routes.assistants import parse_xray


def test_the_manager_has_langgraph_devs_id_and_answers_to_its_graph_name() -> None:
    assert MANAGER_ASSISTANT_ID == "2c8f97b7-0383-58c2-81fb-ece90dc70d92"
    for given in ("manager", MANAGER_ASSISTANT_ID, MANAGER_ASSISTANT_ID.upper(),
                  MANAGER_ASSISTANT_ID.replace("-", "")):  # fmt: skip
        assert resolve_assistant(given) == MANAGER_ASSISTANT_ID
    for other in ("Manager", "creative", "24594b77-61eb-45a2-aebe-9482bcec1fe8", ""):
        assert resolve_assistant(other) is None


def test_metadata_matches_by_containment() -> None:
    metadata = {"created_by": "system", "team": {"name": "a", "size": 2}}
    assert metadata_contains(metadata, {})
    assert metadata_contains(metadata, {"created_by": "system"})
    assert metadata_contains(metadata, {"team": {"name": "a"}})
    assert not metadata_contains(metadata, {"team": {"name": "b"}})
    assert not metadata_contains(metadata, {"created_by": "user"})
    assert not metadata_contains(metadata, {"missing": None})


def test_xray_is_read_as_langgraph_reads_it() -> None:
    assert [parse_xray(v) for v in ("", "false", "False", "true", "True", "1", "3")] == [
        False, False, False, True, True, 1, 3,
    ]  # fmt: skip
    # Digits Python reads as digits but not as a number (²), or as one only in Unicode (٣).
    for refused in ("0", "-1", "yes", "TRUE", "²", "٣"):
        with pytest.raises(HTTPException) as error:
            parse_xray(refused)
        assert error.value.status_code == 422


@pytest.mark.parametrize("allowed", [False, True])
async def test_private_network_preflights_are_answered_only_when_configured(
    allowed: bool,
) -> None:
    settings = Settings(
        _env_file=None,
        cors_origins=["https://smith.langchain.com"],
        cors_allow_private_network=allowed,
    )
    # A preflight is answered by the CORS middleware alone: no services are needed.
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.options(
            "/assistants/search",
            headers={
                "Origin": "https://smith.langchain.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Private-Network": "true",
            },
        )
    assert answer.status_code == (200 if allowed else 400)
    assert ("access-control-allow-private-network" in answer.headers) is allowed
