"""The run engine in process, over the in-memory stores: no HTTP, no Redis, no subprocess."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from graphs.manager import build_manager_graph
from memory.process import ProcessMemorySaver
from nodes.models import ModelProvider
from server.agent_protocol.messages import SubscribeParams, matches
from server.agent_protocol.streaming import ProtocolStream
from server.engine import Run, RunManager, StartRequest
from server.engine.coordination import ActiveRun, MemoryControl, MemoryRunLeases, Taken
from server.engine.events import Logged, is_terminal, lifecycle, numbered
from server.engine.run import Strategy
from server.guard.refusals import Refusal, Refused
from server.langgraph_api.streaming import ApiStream
from server.stores.event_log import MemoryEventLog

POEM = {"messages": [{"role": "user", "content": "Write a short poem about rivers"}]}


def start(strategy: Strategy = "reject", api: ApiStream | None = None) -> StartRequest:
    return StartRequest(
        owner="alice", limit_key="alice", assistant_id="manager", input=POEM,
        multitask_strategy=strategy, stream=api or ProtocolStream(),
    )  # fmt: skip


@asynccontextmanager
async def engine(
    *,
    ttft: float = 0.0,
    tokens_per_second: float = 0.0,
    lease_seconds: float = 30,
    log: MemoryEventLog | None = None,
) -> AsyncIterator[RunManager]:
    provider = ModelProvider.simulated(ttft=ttft, tokens_per_second=tokens_per_second)
    graph = build_manager_graph(provider=provider, checkpointer=ProcessMemorySaver())
    control = MemoryControl()
    runs = RunManager(
        graph=graph, log=log or MemoryEventLog(maxlen=10_000), leases=MemoryRunLeases(),
        control=control, owner="process-1", lease_seconds=lease_seconds, wait_seconds=10,
        queue_size=4096,
    )  # fmt: skip
    listener = asyncio.create_task(control.listen(runs.on_control))
    try:
        yield runs
    finally:
        await runs.shutdown(grace=5)
        listener.cancel()


async def finished(run: Run) -> None:
    # A queued run's task hands over to the task that executes it once it begins.
    while True:
        task = run.task
        assert task is not None
        await asyncio.wait_for(task, 30)
        if run.task is task:
            return


async def logged(runs: RunManager, thread_id: str) -> list[dict[str, Any]]:
    return list(await runs.log.read(thread_id, 0, limit=100_000))


def ends(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["params"]["data"] for e in events if is_terminal(e)]


async def test_a_run_is_numbered_logged_and_recorded_to_its_end() -> None:
    async with engine() as runs:
        run = await runs.start("t-1", start())
        await finished(run)
        events = await logged(runs, "t-1")
        record = await runs.record("t-1", run.run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["params"]["data"]["event"] == "running"
    assert ends(events) == [events[-1]["params"]["data"]]
    assert events[-1]["params"]["data"]["event"] == "completed"
    assert events[-1]["params"]["data"]["route"] == "creative"
    assert record is not None and record.status == "success" and record.first_seq == 1


async def test_reject_refuses_a_busy_thread_and_keeps_no_record_of_the_refusal() -> None:
    async with engine(ttft=0.5) as runs:
        first = await runs.start("t-1", start(api=ApiStream()))
        with pytest.raises(Refused) as refused:
            await runs.start("t-1", start("reject", api=ApiStream()))
        assert refused.value.reason is Refusal.BUSY
        assert [r.run_id for r in await runs.records_of("t-1")] == [first.run_id]
        await finished(first)


async def test_enqueue_waits_for_the_running_run_then_runs() -> None:
    async with engine(ttft=0.3) as runs:
        first = await runs.start("t-1", start(api=ApiStream()))
        second = await runs.start("t-1", start("enqueue", api=ApiStream()))
        queued = await runs.record("t-1", second.run_id)
        assert queued is not None and queued.status == "pending"
        await finished(first)
        await finished(second)
        events = await logged(runs, "t-1")
        done = {r.run_id: r for r in await runs.records_of("t-1")}
    assert [end["run_id"] for end in ends(events)] == [first.run_id, second.run_id]
    assert done[first.run_id].status == done[second.run_id].status == "success"
    assert done[second.run_id].first_seq > done[first.run_id].first_seq


async def test_a_cancelled_run_keeps_the_answer_its_user_saw() -> None:
    async with engine(tokens_per_second=40) as runs:
        subscription = await runs.broker.subscribe("t-1", SubscribeParams(channels=["messages"]))
        run = await runs.start("t-1", start())
        tokens = 0
        async for event in subscription.events():
            delta = event["params"]["data"].get("delta") or {}
            tokens += delta.get("type") == "text-delta"
            if tokens == 5:
                break
        await runs.cancel("t-1", run.run_id)
        await finished(run)
        events = await logged(runs, "t-1")
        state = await runs.graph.aget_state({"configurable": {"thread_id": "t-1"}})
    assert ends(events)[-1]["code"] == "cancelled"
    kept = state.values["messages"][-1]
    assert kept.response_metadata == {"cancelled": True} and kept.content
    assert state.values["error"]["code"] == "cancelled"


async def test_a_rollback_deletes_what_the_run_wrote() -> None:
    async with engine(tokens_per_second=40) as runs:
        run = await runs.start("t-1", start(api=ApiStream()))
        await asyncio.sleep(0)  # let it begin
        await runs.cancel("t-1", run.run_id, action="rollback")
        await finished(run)
        state = await runs.graph.aget_state({"configurable": {"thread_id": "t-1"}})
        records = await runs.records_of("t-1")
    assert records == [] and not state.values.get("messages")


async def test_a_run_its_process_left_unfinished_is_ended_before_the_next_begins() -> None:
    async with engine() as runs:
        # A process died mid-run: its start is logged, its end never was, no lease is held.
        await runs.log.append("t-1", [numbered(lifecycle("running", run_id="lost-run"), 1)])
        run = await runs.start("t-1", start())
        await finished(run)
        events = await logged(runs, "t-1")
    lost, mine = ends(events)
    assert (lost["run_id"], lost["code"]) == ("lost-run", "worker_lost")
    assert events[1]["params"]["data"] == lost
    assert (mine["run_id"], mine["event"]) == (run.run_id, "completed")
    assert events[2]["params"]["data"]["event"] == "running"


async def test_a_subscriber_resumes_after_the_last_event_it_saw() -> None:
    async with engine() as runs:
        run = await runs.start("t-1", start())
        await finished(run)
        everything = await logged(runs, "t-1")
        channels = ["lifecycle", "messages", "values", "updates", "custom"]
        resumed = await runs.broker.subscribe("t-1", SubscribeParams(channels=channels, since=10))
        replayed = []
        async for event in resumed.events():
            replayed.append(event)
            if is_terminal(event):
                break
    wanted = SubscribeParams(channels=channels)
    assert replayed == [e for e in everything if e["seq"] > 10 and matches(e, wanted)]


async def test_a_subscriber_without_since_sees_the_latest_run_even_when_it_has_ended() -> None:
    # The official SDK subscribes only once `run.start` has answered: a fast run can end
    # before its client subscribes, and the client must still see it, from its start.
    async with engine() as runs:
        first = await runs.start("t-1", start())
        await finished(first)
        second = await runs.start("t-1", start())
        await finished(second)
        subscription = await runs.broker.subscribe("t-1", SubscribeParams(channels=["lifecycle"]))
        replayed = []
        async with asyncio.timeout(10):
            async for event in subscription.events():
                replayed.append(event["params"]["data"])
                if is_terminal(event):
                    break
    assert [(e["event"], e["run_id"]) for e in replayed if "run_id" in e][0] == (
        "running",
        second.run_id,
    )
    assert replayed[-1]["event"] == "completed"
    assert all(e.get("run_id") != first.run_id for e in replayed)


async def test_a_run_that_loses_its_threads_lease_stops_and_leaves_the_thread_alone() -> None:
    # Its lease lapsed (a stalled process, a Redis fail-over) and another run took the
    # thread: the run must stop writing to a thread that is no longer its own.
    async with engine(tokens_per_second=20, lease_seconds=0.3) as runs:
        subscription = await runs.broker.subscribe("t-1", SubscribeParams(channels=["messages"]))
        run = await runs.start("t-1", start())
        async for _ in subscription.events():
            break  # it is answering
        thief = ActiveRun(run_id="other-run", owner="process-2", first_seq=0)
        await runs.leases.release("t-1", run.run_id)
        assert isinstance(await runs.leases.acquire("t-1", thief), Taken)
        await finished(run)
        events = await logged(runs, "t-1")
        record = await runs.record("t-1", run.run_id)
        state = await runs.graph.aget_state({"configurable": {"thread_id": "t-1"}})
        holder = await runs.leases.holder("t-1")
    assert ends(events) == []  # its end is for whoever takes the thread next to write
    assert record is not None and record.status == "error"
    assert record.error is not None and record.error["error"] == "worker_lost"
    assert not any(m.type == "ai" for m in state.values.get("messages", []))
    assert holder == thief


class OutageLog(MemoryEventLog):
    """An event log whose writes fail while `down`; reads still answer."""

    def __init__(self) -> None:
        super().__init__(maxlen=10_000)
        self.down = False

    async def append(self, thread_id: str, events: list[Logged]) -> None:
        if self.down:
            raise RedisConnectionError("Redis is away")
        await super().append(thread_id, events)


async def test_a_run_still_writing_its_end_is_not_ended_as_lost_by_its_own_process() -> None:
    # Redis was away for the whole run; it comes back, the run's lease has lapsed, and a
    # subscriber here finds the thread without a lease while the run is still catching
    # its log up. The log must say how the run really ended, not that it was lost.
    log = OutageLog()
    async with engine(log=log, tokens_per_second=40) as runs:
        channels = ["lifecycle", "messages"]
        subscription = await runs.broker.subscribe("t-1", SubscribeParams(channels=channels))
        run = await runs.start("t-1", start())
        async for event in subscription.events():
            if event["method"] == "messages":
                log.down = True  # its start is logged; Redis goes away mid-answer
            if is_terminal(event):
                break  # heard live; its process is now catching the log up
        await runs.leases.release("t-1", run.run_id)  # the lease lapsed meanwhile
        log.down = False
        await runs.close_orphan("t-1")
        await finished(run)
        events = await logged(runs, "t-1")
    assert [end["event"] for end in ends(events)] == ["completed"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_interrupt_and_rollback_stop_the_running_run_then_run(strategy: Strategy) -> None:
    async with engine(tokens_per_second=40) as runs:
        first = await runs.start("t-1", start(api=ApiStream()))
        second = await runs.start("t-1", start(strategy, api=ApiStream()))
        await finished(first)
        await finished(second)
        events = await logged(runs, "t-1")
        records = {r.run_id: r for r in await runs.records_of("t-1")}
    ended = {end["run_id"]: end for end in ends(events)}
    assert ended[first.run_id]["code"] == "cancelled"
    assert ended[second.run_id]["event"] == "completed"
    assert records[second.run_id].status == "success"
    # `interrupt` keeps the stopped run (interrupted); `rollback` deletes its record.
    if strategy == "interrupt":
        assert records[first.run_id].status == "interrupted"
    else:
        assert first.run_id not in records


class Ticker:
    """Counts the event loop's turns, to see whether a run lets others run."""

    def __init__(self) -> None:
        self.turns = 0

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.turns += 1


@dataclass(frozen=True)
class BurstStream:
    """A wire format whose graph answers at once: many events, never yielding."""

    ticker: Ticker
    seen: list[int] = field(default_factory=list)
    queue_when_busy = False
    mirror_context = False

    async def events(self, graph: Any, run: Run, config: Any, context: Any) -> Any:
        for n in range(200):
            self.seen.append(self.ticker.turns)
            yield {"type": "event", "method": "custom", "params": {"namespace": [], "data": n}}
        values = {"messages": [], "usage": {"total": 0}}
        yield {"type": "event", "method": "values", "params": {"namespace": [], "data": values}}

    def note(self, progress: Any, event: dict[str, Any]) -> None:
        if event["method"] == "values":
            progress.values = event["params"]["data"]


async def test_a_run_that_streams_at_once_lets_other_tasks_run_meanwhile() -> None:
    ticker = Ticker()
    burst = BurstStream(ticker)
    async with engine() as runs:
        ticking = asyncio.create_task(ticker.tick())
        run = await runs.start("t-burst", dataclasses.replace(start(), stream=burst))
        await finished(run)
        ticking.cancel()
    assert len(burst.seen) == 200
    # Other tasks (a WebSocket's handshake, another run) got turns within the burst.
    assert burst.seen[-1] > burst.seen[0]


async def test_the_operators_run_options_apply_unless_a_run_says_otherwise() -> None:
    provider = ModelProvider.simulated(ttft=0, tokens_per_second=0)
    runs = RunManager(
        graph=build_manager_graph(provider=provider, checkpointer=ProcessMemorySaver()),
        log=MemoryEventLog(maxlen=100), leases=MemoryRunLeases(), control=MemoryControl(),
        owner="process-1", lease_seconds=30, wait_seconds=10, queue_size=16,
        context_defaults={"review_plan": True, "memory": False},
    )  # fmt: skip
    left_out = runs.check(start())
    assert (left_out.review_plan, left_out.memory) == (True, False)
    chosen = runs.check(dataclasses.replace(start(), context={"review_plan": False}))
    assert (chosen.review_plan, chosen.memory) == (False, False)
    configured = dataclasses.replace(start(), config={"configurable": {"memory": True}}, context={})
    assert runs.check(configured).memory is True
