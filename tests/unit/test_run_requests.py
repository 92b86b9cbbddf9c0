"""A run request that cannot run is refused before it starts, never failed inside the run."""

import pytest
from starlette.testclient import TestClient

GOOD = {"assistant_id": "manager", "input": {"messages": [{"role": "user", "content": "hi"}]}}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"command": {"evil": 1}}, "command"),
        ({"context": {"route": "evil<script>"}}, "route"),
        ({"context": {"router": "evil"}}, "router"),
        ({"context": {"max_plan_steps": 99}}, "max_plan_steps"),
        ({"config": {"configurable": {"refine": "perhaps"}}}, "refine"),
    ],
)
def test_a_bad_run_request_is_refused_with_422_naming_the_field(
    app_client: TestClient, extra: dict[str, object], field: str
) -> None:
    answer = app_client.post("/runs/wait", json=GOOD | extra)
    assert answer.status_code == 422, answer.text
    assert field in answer.text and "<script>" not in answer.text


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": "hi", "id": {}},
        {"role": "user", "content": "hi", "name": 7},
        {"role": "user", "content": "\x00\x07" * 100},
    ],
)
def test_a_bad_message_is_refused_over_both_wire_formats(
    app_client: TestClient, message: dict[str, object]
) -> None:
    answer = app_client.post("/runs/wait", json=GOOD | {"input": {"messages": [message]}})
    assert answer.status_code == 422, answer.text
    with app_client.websocket_connect("/threads/t-bad-input/stream/events") as socket:
        socket.send_json(
            {"id": 1, "method": "run.start",
             "params": {"assistant_id": "manager", "input": {"messages": [message]}}}
        )  # fmt: skip
        frame = socket.receive()
    assert '"invalid_argument"' in frame["text"]


def test_a_good_run_still_runs(app_client: TestClient) -> None:
    answer = app_client.post("/runs/wait", json=GOOD | {"context": {"route": "creative"}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["messages"][-1]["type"] == "ai"
