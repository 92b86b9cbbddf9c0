"""The guarded service: keys and owners over every endpoint and command, limits shared by
two processes, request limits."""

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from server.agent_protocol.client import ProtocolClient, open_thread
from server.engine.events import is_terminal
from server.guard.auth import new_key
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

ALICE, ALICE_ENTRY = new_key("alice")
BOB, BOB_ENTRY = new_key("bob")
KEYS = {"ALMA_API_KEYS": f"{ALICE_ENTRY},{BOB_ENTRY}"}
HAIKU = {"messages": [{"role": "user", "content": "Write a haiku about rivers"}]}


def thread() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def as_(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def command(
    service: Service, thread_id: str, key: str | None, method: str, **params: Any
) -> httpx.Response:
    headers = as_(key) if key else {}
    async with httpx.AsyncClient(base_url=service.url, headers=headers) as client:
        return await client.post(
            f"/threads/{thread_id}/commands", json={"id": 1, "method": method, "params": params}
        )


async def finished_run(service: Service, thread_id: str, key: str) -> str:
    async with open_thread(service.url, thread_id, additional_headers=as_(key)) as client:
        await client.subscribe("lifecycle")
        run_id = await client.start("Write a haiku about rivers")
        events = await client.until_terminal()
    assert events and is_terminal(events[-1])
    return run_id


@pytest.fixture(scope="module")
def guarded(redis: RedisServer) -> Iterator[Service]:
    env = {**KEYS, "ALMA_LIMIT_RUNS": "1000", "ALMA_MAX_MESSAGE_CHARS": "100",
           "ALMA_CORS_ORIGINS": "https://app.example",
           "ALMA_MAX_MESSAGES": "3", "ALMA_MAX_BODY_BYTES": "2048",
           "ALMA_MAX_WS_MESSAGE_BYTES": "4096"}  # fmt: skip
    with alma_service(redis.url, prefix="guard", env=env) as service:
        yield service


async def test_http_needs_a_valid_key_but_health_does_not(guarded: Service) -> None:
    async with httpx.AsyncClient(base_url=guarded.url) as client:
        assert (await client.get("/health")).status_code == 200
        missing = await client.get("/threads/t-1/state")
        wrong = await client.get("/threads/t-1/state", headers=as_("alma_not-a-key"))
        created = await client.post("/threads", json={})
    assert missing.status_code == wrong.status_code == created.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "API key is required" in missing.json()["detail"]


async def test_a_websocket_needs_a_key_in_a_header_or_subprotocol(guarded: Service) -> None:
    url = guarded.url.replace("http", "ws") + f"/threads/{thread()}/stream/events"
    async with open_thread(guarded.url, thread()) as anonymous:
        assert await anonymous.next_event() is None
    assert anonymous.close_code == 1008 and "API key" in anonymous.close_reason
    async with connect(url, subprotocols=["alma", f"alma-key.{ALICE}"]) as browser:  # type: ignore[list-item]
        assert browser.subprotocol == "alma"  # the key is never echoed
        client = ProtocolClient(browser)
        answer = await client.command("state.get")
        await client.aclose()
    assert answer["type"] == "success"


async def test_another_owners_thread_is_out_of_reach_everywhere(guarded: Service) -> None:
    mine = thread()
    run_id = await finished_run(guarded, mine, ALICE)
    async with httpx.AsyncClient(base_url=guarded.url, headers=as_(BOB)) as bob:
        assert (await bob.get(f"/threads/{mine}/state")).status_code == 404
        assert (await bob.get(f"/threads/{mine}/history")).status_code == 404
        assert (await bob.delete(f"/threads/{mine}")).status_code == 404
        assert (await bob.post("/threads", json={"thread_id": mine})).status_code == 409
        assert mine not in {t["thread_id"] for t in (await bob.get("/threads")).json()}
    # Every command answers on her thread as on an id nobody has used: no answer tells
    # Bob the id is taken, except that he cannot start a run there.
    unused = thread()
    reads: dict[str, dict[str, Any]] = {
        "state.get": {},
        "state.listCheckpoints": {},
        "run.cancel": {"run_id": run_id},
    }
    for method, params in reads.items():
        on_hers = (await command(guarded, mine, BOB, method, **params)).json()
        on_unused = (await command(guarded, unused, BOB, method, **params)).json()
        assert on_hers == on_unused, (method, on_hers, on_unused)
    start = await command(guarded, mine, BOB, "run.start", assistant_id="manager", input=HAIKU)
    refused = start.json()
    assert refused["error"] == "permission_denied" and "owner" not in refused["message"]
    over_socket: dict[str, dict[str, Any]] = {}
    for thread_id in (mine, unused):
        async with open_thread(guarded.url, thread_id, additional_headers=as_(BOB)) as socket:
            over_socket[thread_id] = {
                # A subscription's id is new each time; the rest must match.
                method: {k: v for k, v in (await socket.command(method, **params)).items()
                         if k != "result" or "subscription_id" not in v}
                for method, params in {
                    **reads,
                    "subscription.subscribe": {"channels": ["lifecycle"]},
                    "subscription.reconnect": {"last_event_id": "0"},
                }.items()
            }  # fmt: skip
    assert over_socket[mine] == over_socket[unused]
    assert over_socket[mine]["subscription.subscribe"]["type"] == "success"
    # His stream of her thread shows nothing of her next run: it ends at its first event.
    async with httpx.AsyncClient(base_url=guarded.url, headers=as_(BOB)) as bob:
        channels = {"channels": ["lifecycle", "messages", "values"]}
        async with bob.stream("POST", f"/threads/{mine}/stream/events", json=channels) as sse:
            assert sse.status_code == 200
            await finished_run(guarded, mine, ALICE)
            async with asyncio.timeout(15):
                seen = await sse.aread()
    assert b"data:" not in seen, seen[:300]
    # Alice still has all of it.
    async with httpx.AsyncClient(base_url=guarded.url, headers=as_(ALICE)) as alice:
        state = await alice.get(f"/threads/{mine}/state")
        listed = (await alice.get("/threads")).json()
    assert state.status_code == 200
    assert [m["type"] for m in state.json()["values"]["messages"]] == ["human", "ai"] * 2
    # Her list of conversations names it, titled by its first message.
    assert {"thread_id": mine, "title": HAIKU["messages"][0]["content"]}.items() <= next(
        t for t in listed if t["thread_id"] == mine
    ).items()
    # Deleting it takes it off her list.
    async with httpx.AsyncClient(base_url=guarded.url, headers=as_(ALICE)) as alice:
        assert (await alice.delete(f"/threads/{mine}")).status_code == 204
        assert mine not in {t["thread_id"] for t in (await alice.get("/threads")).json()}


async def test_browsers_may_connect_only_from_the_services_own_origin(guarded: Service) -> None:
    own = {"Origin": guarded.url, **as_(ALICE)}
    foreign = {"Origin": "https://evil.example", **as_(ALICE)}
    async with open_thread(guarded.url, thread(), additional_headers=foreign) as refused:
        assert await refused.next_event() is None
    assert refused.close_code == 1008 and "origin" in refused.close_reason
    async with open_thread(guarded.url, thread(), additional_headers=own) as allowed:
        assert (await allowed.command("state.get"))["type"] == "success"


async def test_cors_admits_only_configured_origins(guarded: Service) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
    async with httpx.AsyncClient(base_url=guarded.url) as client:
        friend = await client.options(
            "/threads/t-1/commands", headers={"Origin": "https://app.example", **preflight}
        )
        stranger = await client.options(
            "/threads/t-1/commands", headers={"Origin": "https://evil.example", **preflight}
        )
    assert friend.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in stranger.headers
    configured = {"Origin": "https://app.example", **as_(ALICE)}
    async with open_thread(guarded.url, thread(), additional_headers=configured) as socket:
        assert (await socket.command("state.get"))["type"] == "success"


async def test_logs_carry_no_keys_and_no_prompts(guarded: Service) -> None:
    await finished_run(guarded, thread(), ALICE)
    log = "".join(guarded.process.output)
    assert "started on thread" in log and "by alice" in log
    assert ALICE not in log and BOB not in log
    assert "Write a haiku about rivers" not in log


async def test_without_keys_limits_count_per_client_address(redis: RedisServer) -> None:
    with alma_service(redis.url, prefix="by-address", env={"ALMA_LIMIT_RUNS": "1"}) as service:
        assert any("authentication off" in line for line in service.process.output)
        start = {"assistant_id": "manager", "input": HAIKU}
        assert (await command(service, thread(), None, "run.start", **start)).status_code == 200
        refused = await command(service, thread(), None, "run.start", **start)
        assert refused.status_code == 429 and "for local" in refused.json()["message"]


async def test_request_limits_name_the_limit(guarded: Service) -> None:
    async with httpx.AsyncClient(base_url=guarded.url, headers=as_(ALICE)) as client:
        big = await client.post("/threads/t-1/commands", content=b"{" + b" " * 5000 + b"}")
        assert big.status_code == 413 and "ALMA_MAX_BODY_BYTES" in big.json()["detail"]
        bad_id = await client.get("/threads/..%2Fetc/state")
        assert bad_id.status_code in (404, 422)
        unknown = await client.post("/threads", json={"thread_id": "t-9", "colour": "red"})
        assert unknown.status_code == 422 and "colour" in unknown.text
    too_long = {"messages": [{"role": "user", "content": "x" * 101}]}
    too_many = {"messages": [["user", "x"]] * 4}
    for value, limit in ((too_long, "ALMA_MAX_MESSAGE_CHARS"), (too_many, "ALMA_MAX_MESSAGES")):
        answer = (await command(guarded, thread(), ALICE, "run.start",
                                assistant_id="manager", input=value)).json()  # fmt: skip
        assert answer["error"] == "invalid_argument" and limit in answer["message"]
    stray = (await command(guarded, thread(), ALICE, "state.get", colour="red")).json()
    assert stray["error"] == "invalid_argument" and "colour" in stray["message"]

    async with open_thread(guarded.url, thread(), additional_headers=as_(ALICE)) as socket:
        await socket.websocket.send("x" * 10_000)
        assert await socket.next_event() is None
    assert socket.close_code == 1009


async def test_text_is_normalised_before_it_reaches_the_thread(guarded: Service) -> None:
    mine = thread()
    async with open_thread(guarded.url, mine, additional_headers=as_(ALICE)) as socket:
        await socket.subscribe("lifecycle")
        await socket.start("Cafe\u0301\x07 poem\x1b")
        await socket.until_terminal()
        state = await socket.call("state.get")
    assert state["values"]["messages"][0]["content"] == "Café poem"


async def test_two_processes_enforce_one_run_limit(redis: RedisServer) -> None:
    env = {**KEYS, "ALMA_LIMIT_RUNS": "3", "ALMA_LIMIT_CONNECTIONS": "2"}
    with (
        alma_service(redis.url, prefix="limits", env=env) as first,
        alma_service(redis.url, prefix="limits", env=env) as second,
    ):
        start: dict[str, Any] = {"assistant_id": "manager", "input": HAIKU}
        answers = [
            await command(first, thread(), ALICE, "run.start", **start),
            await command(second, thread(), ALICE, "run.start", **start),
            await command(first, thread(), ALICE, "run.start", **start),
        ]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
        assert all(a.headers["ratelimit-limit"] == "3" for a in answers)
        refused = await command(second, thread(), ALICE, "run.start", **start)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0"
        body = refused.json()
        assert body["error"] == "permission_denied" and body["retry_after"] >= 1
        assert "3 runs per 60 s" in body["message"]
        async with open_thread(first.url, thread(), additional_headers=as_(ALICE)) as socket:
            over = await socket.command("run.start", **start)
        assert over["error"] == "permission_denied" and over["retry_after"] >= 1
        # Bob has a budget of his own.
        assert (await command(first, thread(), BOB, "run.start", **start)).status_code == 200

        # Connections at once, counted across both processes.
        headers = as_(BOB)
        async with (
            open_thread(first.url, thread(), additional_headers=headers) as one,
            open_thread(second.url, thread(), additional_headers=headers) as two,
        ):
            assert (await one.command("state.get"))["type"] == "success"
            assert (await two.command("state.get"))["type"] == "success"
            async with open_thread(first.url, thread(), additional_headers=headers) as third:
                assert await third.next_event() is None
            assert third.close_code == 1008
            assert "2 connections at once" in third.close_reason
            async with httpx.AsyncClient(base_url=second.url, headers=headers) as client:
                sse = await client.post(
                    f"/threads/{thread()}/stream/events", json={"channels": ["lifecycle"]}
                )
            assert sse.status_code == 429 and "retry-after" in sse.headers
        async with open_thread(second.url, thread(), additional_headers=headers) as again:
            assert (await again.command("state.get"))["type"] == "success"


async def test_a_spent_token_budget_refuses_new_runs(redis: RedisServer) -> None:
    env = {**KEYS, "ALMA_LIMIT_TOKENS": "20"}
    with alma_service(redis.url, prefix="tokens", env=env) as service:
        await finished_run(service, thread(), ALICE)
        refused = await command(
            service, thread(), ALICE, "run.start", assistant_id="manager", input=HAIKU
        )
        assert refused.status_code == 429
        assert "20 model tokens per 60 s" in refused.json()["message"]
