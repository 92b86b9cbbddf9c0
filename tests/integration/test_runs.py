"""Runs over the protocol against `alma serve`: resume, cancel, busy threads, disconnects."""

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.agent_protocol.client import ProtocolClient, open_thread
from server.engine.events import is_terminal
from tests.utils.redis_server import RedisServer
from tests.utils.service import Service, alma_service

pytestmark = pytest.mark.integration

ANALYTICAL = "Compare quicksort and mergesort for 10M integers"


@pytest.fixture(scope="module")
def service(redis: RedisServer) -> Iterator[Service]:
    # Paced so that a run lasts a few seconds: long enough to drop, cancel or queue.
    with alma_service(
        redis.url, prefix="runs-test", env={"ALMA_SIMULATED_TOKENS_PER_SECOND": "250"}
    ) as running:
        yield running


def thread() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def terminal_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert events and is_terminal(events[-1]), events[-3:]
    data: dict[str, Any] = events[-1]["params"]["data"]
    return data


async def next_events(client: ProtocolClient, count: int) -> list[dict[str, Any]]:
    """The next `count` events, on a connection that stays open for them."""
    events = []
    for _ in range(count):
        event = await client.next_event()
        assert event is not None
        events.append(event)
    return events


async def test_a_creative_run_streams_tokens_from_compose_in_its_subgraph(
    service: Service,
) -> None:
    async with open_thread(service.url, thread()) as socket:
        await socket.subscribe("lifecycle", "messages", "updates")
        await socket.start("Write a haiku about rivers")
        events = await socket.until_terminal()
    assert terminal_of(events)["event"] == "completed"
    deltas = [e for e in events if e["method"] == "messages"
              and e["params"]["data"]["event"] == "content-block-delta"]  # fmt: skip
    assert deltas and {e["params"]["node"] for e in deltas} == {"compose"}
    assert all(e["params"]["namespace"][0].startswith("creative:") for e in deltas)
    route = [
        e for e in events if e["method"] == "updates" and e["params"]["data"]["node"] == "route"
    ]
    assert route[0]["params"]["data"]["values"]["decision"]["route"] == "creative"
    subgraph = [e for e in events if e["method"] == "lifecycle" and e["params"]["namespace"]]
    assert [e["params"]["data"]["event"] for e in subgraph] == ["started", "completed"]


async def test_an_analytical_run_streams_its_plan_progress_and_tokens_by_node(
    service: Service,
) -> None:
    async with open_thread(service.url, thread()) as socket:
        await socket.subscribe("lifecycle", "messages", "custom")
        await socket.start(ANALYTICAL, context={"max_plan_steps": 3})
        events = await socket.until_terminal()
    assert terminal_of(events)["event"] == "completed"
    deltas = [e for e in events if e["method"] == "messages"
              and e["params"]["data"]["event"] == "content-block-delta"]  # fmt: skip
    nodes = [e["params"]["node"] for e in deltas]
    # The planner's JSON, the working notes of each step, then the answer, in that order.
    assert set(nodes) == {"plan", "analyse", "synthesise"}
    order = [n for i, n in enumerate(nodes) if i == 0 or nodes[i - 1] != n]
    assert order[0] == "plan" and order[-1] == "synthesise"
    assert set(order[1:-1]) == {"analyse"}
    assert all(e["params"]["namespace"][0].startswith("analytical:") for e in deltas)

    progress = [e["params"]["data"] for e in events if e["method"] == "custom"]
    plan, *steps = [p["payload"] for p in progress]
    assert progress[0]["name"] == "plan" and 1 <= len(plan["steps"]) <= 3
    total = len(plan["steps"])
    assert [(s["step"], s["status"]) for s in steps] == [
        (i, status) for i in range(1, total + 1) for status in ("started", "finished")
    ]
    # Progress comes between the tokens it describes, in stream order.
    first_synthesis = next(i for i, e in enumerate(events) if e in deltas
                           and e["params"]["node"] == "synthesise")  # fmt: skip
    last_progress = max(i for i, e in enumerate(events) if e["method"] == "custom")
    assert last_progress < first_synthesis


async def test_a_dropped_connection_resumes_with_no_gap_and_no_duplicate(
    service: Service,
) -> None:
    thread_id = thread()
    async with open_thread(service.url, thread_id) as first:
        await first.subscribe("lifecycle", "messages", "custom")
        await first.start(ANALYTICAL, context={"max_plan_steps": 2})
        seen = await next_events(first, 25)
    # The connection is gone; the run goes on. Resume from the last event seen.
    last = seen[-1]["seq"]
    async with open_thread(service.url, thread_id) as second:
        await second.subscribe("lifecycle", "messages", "custom", since=last)
        rest = await second.until_terminal()
    # The whole run, replayed from the log with the same filter, is exactly the two halves.
    async with open_thread(service.url, thread_id) as replay:
        await replay.subscribe("lifecycle", "messages", "custom", since=0)
        everything = await replay.until_terminal()
    assert [e["seq"] for e in [*seen, *rest]] == [e["seq"] for e in everything]
    assert [*seen, *rest] == everything
    assert terminal_of(everything)["event"] == "completed"


async def test_cancel_stops_the_run_and_keeps_what_was_streamed(service: Service) -> None:
    thread_id = thread()
    async with open_thread(service.url, thread_id) as socket:
        await socket.subscribe("lifecycle", "messages")
        run_id = await socket.start("Write a story about a lighthouse keeper")
        streamed = ""
        while len(streamed) < 40:
            event = await socket.next_event()
            assert event is not None
            data = event["params"]["data"]
            if event["method"] == "messages" and data["event"] == "content-block-delta":
                streamed += data["delta"]["text"]
        answer = await socket.command("run.cancel", run_id=run_id)
        assert answer["type"] == "success"
        events = await socket.until_terminal(timeout=10)
    ended = terminal_of(events)
    assert (ended["event"], ended["code"]) == ("failed", "cancelled")

    async with httpx.AsyncClient(base_url=service.url) as client:
        state = (await client.get(f"/threads/{thread_id}/state")).json()["values"]
    partial = state["messages"][-1]
    assert partial["type"] == "ai"
    assert partial["response_metadata"]["cancelled"] is True
    assert partial["content"].startswith(streamed)
    assert state["error"]["code"] == "cancelled"


async def test_cancelling_an_unknown_run_is_an_error(service: Service) -> None:
    async with open_thread(service.url, thread()) as socket:
        answer = await socket.command("run.cancel", run_id="nope")
    assert (answer["type"], answer["error"]) == ("error", "no_such_run")


async def test_a_busy_thread_rejects_by_default(service: Service) -> None:
    async with open_thread(service.url, thread()) as socket:
        await socket.subscribe("lifecycle")
        await socket.start(ANALYTICAL)
        second = await socket.command(
            "run.start", assistant_id="manager", input={"messages": [("user", "hi")]}
        )
        assert second["type"] == "error"
        assert "busy" in second["message"]
        await socket.until_terminal()


async def test_enqueue_runs_after_the_active_run(service: Service) -> None:
    async with open_thread(service.url, thread()) as socket:
        await socket.subscribe("lifecycle")
        first = await socket.start("Write a haiku about rivers")
        second = await socket.start("Write a haiku about seas", multitask_strategy="enqueue")
        ends = [terminal_of(await socket.until_terminal()) for _ in range(2)]
    assert [(e["run_id"], e["event"]) for e in ends] == [
        (first, "completed"),
        (second, "completed"),
    ]


async def test_interrupt_cancels_the_active_run_first(service: Service) -> None:
    async with open_thread(service.url, thread()) as socket:
        await socket.subscribe("lifecycle")
        first = await socket.start(ANALYTICAL)
        second = await socket.start("Write a haiku about seas", multitask_strategy="interrupt")
        ends = [terminal_of(await socket.until_terminal()) for _ in range(2)]
    assert [(e["run_id"], e["event"], e.get("code")) for e in ends] == [
        (first, "failed", "cancelled"),
        (second, "completed", None),
    ]


@pytest.mark.parametrize(("policy", "outcome"), [("cancel", "cancelled"), ("continue", None)])
async def test_disconnect_policy(service: Service, policy: str, outcome: str | None) -> None:
    thread_id = thread()
    async with open_thread(service.url, thread_id) as socket:
        await socket.subscribe("lifecycle", "messages")
        await socket.start("Write a haiku about rivers", on_disconnect=policy)
        await socket.next_event()
    async with open_thread(service.url, thread_id) as watcher:
        await watcher.subscribe("lifecycle", since=0)
        events = await watcher.until_terminal()
    assert terminal_of(events).get("code") == outcome


async def test_bad_commands_get_protocol_errors(service: Service) -> None:
    async with open_thread(service.url, thread()) as socket:
        unknown = await socket.command("run.explode")
        bad = await socket.command(
            "run.start", assistant_id="nobody", input={"messages": [["user", "hi"]]}
        )
        channels = await socket.command("subscription.subscribe", channels=["nonsense"])
    assert unknown["error"] == "unknown_command"
    assert bad["error"] == "invalid_argument" and "nobody" in bad["message"]
    assert channels["error"] == "invalid_argument" and "nonsense" in channels["message"]


async def test_commands_work_over_plain_http(service: Service) -> None:
    thread_id = thread()
    async with open_thread(service.url, thread_id) as socket:
        await socket.subscribe("lifecycle")
        async with httpx.AsyncClient(base_url=service.url) as client:
            started = await client.post(
                f"/threads/{thread_id}/commands",
                json={"id": 7, "method": "run.start", "params": {
                    "assistant_id": "manager",
                    "input": {"messages": [{"role": "user", "content": "Write a haiku"}]},
                }},
            )  # fmt: skip
            assert started.json()["type"] == "success"
            await socket.until_terminal()
            state = await client.post(
                f"/threads/{thread_id}/commands",
                json={"id": 8, "method": "state.get", "params": {"namespace": []}},
            )
            listing = await client.post(
                f"/threads/{thread_id}/commands",
                json={"id": 9, "method": "state.listCheckpoints", "params": {"limit": 3}},
            )
    assert state.json()["result"]["values"]["messages"][-1]["type"] == "ai"
    # A run's steps are saved once, as it ends (ALMA_DURABILITY=exit).
    assert len(listing.json()["result"]["checkpoints"]) == 1


async def test_waiting_for_a_run_does_not_take_an_earlier_runs_end_for_its_own(
    service: Service,
) -> None:
    thread_id = thread()
    async with open_thread(service.url, thread_id) as first:
        await first.subscribe("lifecycle")
        earlier = await first.start("Write a haiku about rivers", context={"route": "creative"})
        await first.until_terminal()
    async with open_thread(service.url, thread_id) as second:
        # From the start of the thread's log: the earlier run's end comes first.
        await second.subscribe("lifecycle", since=0)
        later = await second.start("Write a haiku about seas", context={"route": "creative"})
        events = await second.until_terminal()
    ended = terminal_of(events)
    assert ended["run_id"] == later != earlier
    assert any(is_terminal(e) and e["params"]["data"]["run_id"] == earlier for e in events)


async def test_a_client_that_subscribes_after_its_run_ended_still_sees_all_of_it(
    service: Service,
) -> None:
    # The official SDKs open their event stream once `run.start` has answered, without
    # `since`; a fast run can end first. The thread's newest run is replayed whole.
    thread_id = thread()
    async with httpx.AsyncClient(base_url=service.url) as client:
        started = await client.post(
            f"/threads/{thread_id}/commands",
            json={"id": 1, "method": "run.start", "params": {
                "assistant_id": "manager", "context": {"route": "creative"},
                "input": {"messages": [{"role": "user", "content": "Write a haiku"}]},
            }},
        )  # fmt: skip
        run_id = started.json()["result"]["run_id"]
        joined = await client.get(f"/threads/{thread_id}/runs/{run_id}/join", timeout=60)
        assert joined.status_code == 200
    async with open_thread(service.url, thread_id) as late:
        await late.subscribe("lifecycle", "messages")
        events = await late.until_terminal()
    lifecycle = [e["params"]["data"] for e in events if e["method"] == "lifecycle"
                 and not e["params"]["namespace"]]  # fmt: skip
    assert (lifecycle[0]["event"], lifecycle[0]["run_id"]) == ("running", run_id)
    assert (terminal_of(events)["event"], terminal_of(events)["run_id"]) == ("completed", run_id)
    assert any(e["method"] == "messages" for e in events)
