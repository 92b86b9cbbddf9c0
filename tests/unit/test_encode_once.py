"""An event is encoded to JSON once: the same bytes go to the log and to every client."""

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient
from starlette.testclient import WebSocketTestSession as Socket

from server.engine.events import is_terminal

CHANNELS = ["lifecycle", "messages", "values", "updates", "custom"]
HAIKU = {"role": "user", "content": "Write a haiku about rivers"}
START = {"assistant_id": "manager", "input": {"messages": [HAIKU]}}


def command(socket: Socket, command_id: int, method: str, **params: Any) -> None:
    socket.send_text(json.dumps({"id": command_id, "method": method, "params": params}))


def until_terminal(socket: Socket) -> list[dict[str, Any]]:
    events = []
    while True:
        message = json.loads(socket.receive_text())
        if message.get("type") != "event":
            continue
        events.append(message)
        if is_terminal(message):
            return events


def test_each_event_is_encoded_once_however_many_clients_hear_it(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodings: Counter[int] = Counter()
    separately = []
    encode = orjson.dumps

    def counted(value: Any, *args: Any, **kwargs: Any) -> bytes:
        if isinstance(value, Mapping) and "seq" in value:
            encodings[value["seq"]] += 1
        elif isinstance(value, Mapping) and {"namespace", "data"} <= value.keys():
            separately.append(value)  # an event's parts, encoded on their own
        return encode(value, *args, **kwargs)

    monkeypatch.setattr(orjson, "dumps", counted)
    url = "/threads/t-once/stream/events"
    with app_client.websocket_connect(url) as first, app_client.websocket_connect(url) as second:
        for socket in (first, second):
            command(socket, 1, "subscription.subscribe", channels=CHANNELS)
        command(first, 2, "run.start", **START)
        live = [until_terminal(first), until_terminal(second)]
    with app_client.websocket_connect(url) as late:
        command(late, 1, "subscription.subscribe", channels=CHANNELS, since=0)
        replayed = until_terminal(late)

    assert live[0] == live[1] == replayed
    seqs = [event["seq"] for event in replayed]
    assert len(seqs) > 20 and seqs == sorted(set(seqs))
    assert {seq: encodings[seq] for seq in seqs} == dict.fromkeys(seqs, 1)
    assert separately == []


def test_an_api_runs_data_is_encoded_once_for_the_log_and_its_stream(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The graph's chunks are plain data: count how often each one, or its copy, is
    # encoded while a streamed LangGraph-API run goes out. An event's envelope embeds
    # its encoded data; it is not counted here.
    encodings: Counter[bytes] = Counter()
    encode = orjson.dumps

    def counted(value: Any, *args: Any, **kwargs: Any) -> bytes:
        out = encode(value, *args, **kwargs)
        if not (isinstance(value, Mapping) and ("seq" in value or "method" in value)):
            encodings[out] += 1
        return out

    thread = app_client.post("/threads", json={}).json()["thread_id"]
    body = {**START, "stream_mode": ["values", "updates", "messages-tuple"]}
    monkeypatch.setattr(orjson, "dumps", counted)
    with app_client.stream("POST", f"/threads/{thread}/runs/stream", json=body) as response:
        frames = [
            line.removeprefix("data: ").encode()
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    monkeypatch.undo()

    assert len(frames) >= 5
    assert {data: encodings[data] for data in frames} == dict.fromkeys(frames, 1)
