"""Every WebSocket message is a text frame, as browsers and the JavaScript SDK read them.

A client in a browser or Node gets a binary frame as a Blob or Buffer; the SDK's
`JSON.parse(String(event.data))` then reads "[object Blob]" and hangs.
"""

import json

from starlette.testclient import TestClient, WebSocketTestSession
from starlette.types import Message


def frames_until_the_run_ends(socket: WebSocketTestSession) -> list[Message]:
    frames = []
    while True:
        frame = socket.receive()
        frames.append(frame)
        message = json.loads(frame["text"])
        params = message.get("params") or {}
        if (
            message.get("method") == "lifecycle"
            and not params.get("namespace")
            and (params["data"]["event"] in ("completed", "failed"))
        ):
            return frames


def test_answers_and_events_go_out_as_text_frames(app_client: TestClient) -> None:
    with app_client.websocket_connect("/threads/t-text-frames/stream/events") as socket:
        socket.send_json({"id": 1, "method": "subscription.subscribe",
                          "params": {"channels": ["lifecycle", "messages"]}})  # fmt: skip
        socket.send_json({"id": 2, "method": "run.start", "params": {
            "assistant_id": "manager", "context": {"route": "creative"},
            "input": {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]},
        }})  # fmt: skip
        frames = frames_until_the_run_ends(socket)
        socket.send_text("not json")
        frames.append(socket.receive())
    kinds = {json.loads(frame["text"]).get("type") for frame in frames}
    assert {"success", "error", "event"} <= kinds
    assert len(frames) > 10
    assert [frame for frame in frames if "bytes" in frame or not frame.get("text")] == []


def test_the_root_says_running_and_a_subgraph_says_started(app_client: TestClient) -> None:
    # As LangGraph's server does: the JavaScript SDK marks a thread loading, and starts
    # a run's message boundary, on the root's `running`.
    with app_client.websocket_connect("/threads/t-lifecycle/stream/events") as socket:
        socket.send_json({"id": 1, "method": "subscription.subscribe",
                          "params": {"channels": ["lifecycle"]}})  # fmt: skip
        socket.send_json({"id": 2, "method": "run.start", "params": {
            "assistant_id": "manager", "context": {"route": "creative"},
            "input": {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]},
        }})  # fmt: skip
        messages = [json.loads(frame["text"]) for frame in frames_until_the_run_ends(socket)]
    lifecycle = [
        (bool(m["params"]["namespace"]), m["params"]["data"]["event"])
        for m in messages
        if m.get("method") == "lifecycle"
    ]
    assert lifecycle == [
        (False, "running"),
        (True, "started"),
        (True, "completed"),
        (False, "completed"),
    ]
    # A subgraph's events say which it is, in `data` too, from start to end.
    started, completed = [
        m for m in messages if m.get("method") == "lifecycle" and m["params"]["namespace"]
    ]
    namespace = started["params"]["namespace"]
    assert started["params"]["data"]["namespace"] == namespace
    assert started["params"]["data"]["trigger_call_id"] == namespace[0].split(":")[1]
    assert completed["params"]["data"]["graph_name"] == "creative"
