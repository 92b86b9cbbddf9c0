"""Every WebSocket message is a text frame, as browsers and the JavaScript SDK read them.

A client in a browser or Node gets a binary frame as a Blob or Buffer; the SDK's
`JSON.parse(String(event.data))` then reads "[object Blob]" and hangs.
"""

import json
from typing import Any

from starlette.testclient import TestClient, WebSocketTestSession


def frames_until_the_run_ends(socket: WebSocketTestSession) -> list[dict[str, Any]]:
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
