"""Refusals name the field and the reason, and never repeat what the client sent."""

import json

import pytest
from starlette.testclient import TestClient

HOSTILE = "<script>\x00\nalert(1)"


def refusal(client: TestClient, command: dict[str, object] | str) -> str:
    with client.websocket_connect("/threads/t-echo/stream/events") as socket:
        socket.send_text(command if isinstance(command, str) else json.dumps(command))
        frame = socket.receive()
        answer = json.loads(frame["text"])
    assert answer["type"] == "error", answer
    return str(answer["message"])


@pytest.mark.parametrize(
    "command",
    [
        {"id": 1, "method": HOSTILE, "params": {}},
        {"id": HOSTILE, "method": "run.start", "params": {}},
        HOSTILE,
        {"id": 2, "method": "subscription.reconnect", "params": {"last_event_id": HOSTILE}},
        {"id": 3, "method": "run.cancel", "params": {"run_id": HOSTILE}},
    ],
)
def test_a_refused_command_does_not_echo_its_input(
    app_client: TestClient, command: dict[str, object] | str
) -> None:
    message = refusal(app_client, command)
    assert "<script>" not in message and "\x00" not in message and "alert" not in message
    assert "pydantic" not in message and "input_value" not in message
