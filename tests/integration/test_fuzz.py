"""Hostile input: thousands of malformed frames and bodies never get a 5xx or a crash, and a
well-behaved client is served throughout."""

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from server.guard.auth import new_key
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

ALICE, ALICE_ENTRY = new_key("alice")
BOB, BOB_ENTRY = new_key("bob")
THREADS = ("alice-fuzz", "bob-own")
NOTHING: tuple[dict[str, Any], ...] = (
    {},
    {"values": {}},
    {"checkpoints": []},
    {"restored": True, "missed_events": 0},
)
"""What a command on another owner's thread may answer: what a missing thread answers."""


def shows_nothing(answer: dict[str, Any]) -> bool:
    """Whether an answer on Bob's thread is one Alice would get on a missing thread."""
    if answer["type"] == "error":
        return True
    result = answer["result"]
    return result in NOTHING or set(result) == {"subscription_id"}


"""Alice fuzzes her own thread and Bob's (which she must not reach)."""
ALLOWED_CLOSES = {1009}  # a frame over ALMA_MAX_WS_MESSAGE_BYTES

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
param_names = st.sampled_from(
    ["assistant_id", "input", "run_id", "channels", "since", "namespace", "keys", "limit",
     "before", "context", "config", "multitask_strategy", "on_disconnect", "last_event_id",
     "subscription_id"]
) | st.text(max_size=8)  # fmt: skip
methods = st.sampled_from(
    ["run.start", "run.cancel", "state.get", "state.listCheckpoints", "subscription.subscribe",
     "subscription.unsubscribe", "subscription.reconnect", "run.explode", ""]
) | st.text(max_size=16)  # fmt: skip
commands = st.fixed_dictionaries(
    {
        "id": st.integers(-5, 2**62) | json_values,
        "method": methods | json_values,
        "params": st.dictionaries(param_names, json_values, max_size=4) | json_values,
    }
)
frames = st.one_of(
    commands.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.integers(1, 8).map(lambda n: json.dumps({"id": 1, "method": "x" * (n * 20_000)})),
    st.integers(2, 5000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 2000).map(
        lambda depth: (
            '{"id":1,"method":"state.get","params":' + '{"a":' * depth + "1" + "}" * depth + "}"
        )
    ),  # fmt: skip
)
bodies = st.one_of(
    commands.map(lambda c: json.dumps(c).encode()),
    st.binary(max_size=500),
    st.integers(1, 3000).map(lambda depth: ("[" * depth + "]" * depth).encode()),
    st.integers(1, 4).map(lambda n: b'{"id": 1, "method": "' + b"y" * (n * 30_000) + b'"}'),
)


@pytest.fixture(scope="module")
def service(redis: RedisServer) -> Iterator[Service]:
    env = {"ALMA_API_KEYS": f"{ALICE_ENTRY},{BOB_ENTRY}", "ALMA_LIMIT_RUNS": "100000",
           "ALMA_LIMIT_TOKENS": "1000000000", "ALMA_LIMIT_CONNECTIONS": "50",
           "ALMA_MAX_WS_MESSAGE_BYTES": "65536", "ALMA_MAX_BODY_BYTES": "65536"}  # fmt: skip
    with alma_service(redis.url, prefix="fuzz", env=env) as running:
        claimed = httpx.post(
            f"{running.url}/threads", json={"thread_id": "bob-own"}, headers=auth(BOB)
        )
        assert claimed.status_code == 200
        yield running
        assert running.process.process.poll() is None, "the server died"
        log = "".join(running.process.output)
        assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


SUBSCRIBE = {"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle"]}}
START = {
    "id": 2,
    "method": "run.start",
    "params": {
        "assistant_id": "manager",
        "input": {"messages": [["user", "Write a haiku about rivers"]]},
    },
}


class WellBehaved(threading.Thread):
    """A client running one answer after another on its own thread and connection."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.completed = 0
        self.problems: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            thread_id = f"good-{uuid.uuid4().hex[:8]}"
            try:
                with connect(f"{self.url}/threads/{thread_id}/stream/events",
                             additional_headers=auth(ALICE), open_timeout=30) as ws:  # fmt: skip
                    ws.send(json.dumps(SUBSCRIBE))
                    ws.send(json.dumps(START))
                    while True:
                        message = json.loads(ws.recv(timeout=60))
                        data = message.get("params", {}).get("data", {})
                        if message.get("type") == "error":
                            self.problems.append(str(message))
                            break
                        if (message.get("method") == "lifecycle"
                                and not message["params"]["namespace"]
                                and data.get("event") in ("completed", "failed")):  # fmt: skip
                            if data["event"] == "completed":
                                self.completed += 1
                            else:
                                self.problems.append(str(data))
                            break
            except Exception as exc:  # the point is to notice anything at all
                self.problems.append(repr(exc))


@pytest.fixture(scope="module")
def well_behaved(service: Service) -> Iterator[WellBehaved]:
    client = WellBehaved(service.url.replace("http", "ws"))
    client.start()
    yield client
    client.stop.set()
    client.join(timeout=90)
    assert client.completed >= 3, client.problems
    assert not client.problems, client.problems[:5]


class Sockets:
    """Alice's connections to each fuzzed thread, reopened when the server closes one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.open: dict[str, ClientConnection] = {}
        self.closes: list[int | None] = []
        self.stack = ExitStack()

    def get(self, thread_id: str) -> ClientConnection:
        if thread_id not in self.open:
            self.open[thread_id] = self.stack.enter_context(
                connect(
                    f"{self.url}/threads/{thread_id}/stream/events",
                    additional_headers=auth(ALICE),
                    max_size=None,
                )
            )
        return self.open[thread_id]

    def answer(self, thread_id: str, frame: str | bytes) -> dict[str, Any] | None:
        """Send a frame; the server's answer to it, or `None` if it closed the socket."""
        ws = self.get(thread_id)
        try:
            ws.send(frame)
            while True:
                message = json.loads(ws.recv(timeout=30))
                if message.get("type") != "event":
                    return dict(message)
        except ConnectionClosed:
            self.closes.append(ws.close_code)
            del self.open[thread_id]
            return None


@pytest.fixture(scope="module")
def sockets(service: Service) -> Iterator[Sockets]:
    opened = Sockets(service.url.replace("http", "ws"))
    with opened.stack:
        yield opened
    assert set(opened.closes) <= ALLOWED_CLOSES, opened.closes


@settings(max_examples=2600, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(frame=frames, thread_id=st.sampled_from(THREADS))
def test_hostile_websocket_frames_get_protocol_answers(
    sockets: Sockets, well_behaved: WellBehaved, frame: str | bytes, thread_id: str
) -> None:
    answer = sockets.answer(thread_id, frame)
    if answer is None:
        return  # closed with an allowed code, checked at the end
    assert answer["type"] in ("success", "error"), answer
    if answer["type"] == "error":
        assert answer["error"] in {"invalid_argument", "unknown_command", "no_such_run",
                                   "no_such_subscription", "no_such_namespace",
                                   "permission_denied", "not_supported"}, answer  # fmt: skip
    if thread_id == "bob-own":
        assert shows_nothing(answer), answer


@pytest.fixture(scope="module")
def http(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url) as client:
        yield client


@settings(max_examples=2600, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(
    body=bodies,
    thread_id=st.sampled_from(THREADS) | st.text(max_size=40),
    key=st.sampled_from([ALICE, "alma_wrong", ""]),
)
def test_hostile_http_bodies_get_4xx_or_protocol_answers(
    http: httpx.Client, well_behaved: WellBehaved, body: bytes, thread_id: str, key: str
) -> None:
    headers = {"content-type": "application/json", **(auth(key) if key else {})}
    response = http.post(
        f"/threads/{quote(thread_id, safe='')}/commands",
        content=body,
        headers=headers,
        timeout=30,
    )
    assert response.status_code < 500, response.text
    if response.status_code == 200 and thread_id == "bob-own":
        assert shows_nothing(response.json())
