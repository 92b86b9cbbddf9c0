"""A thread's status and state as LangGraph's server API shows them."""

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from langgraph.checkpoint.memory import InMemorySaver

from graphs.manager import build_manager_graph
from server.engine.coordination import ActiveRun, MemoryRunLeases
from server.engine.events import lifecycle, numbered
from server.langgraph_api.thread_state import read_thread, thread_config, thread_state
from server.services import Services
from server.stores.event_log import MemoryEventLog
from server.stores.thread_records import ThreadRecord
from tests.utils.graphs import ask, simulated_provider

EMPTY_STATE: dict[str, Any] = {
    "values": {}, "next": [], "tasks": [], "metadata": None, "created_at": None,
    "checkpoint": None, "parent_checkpoint": None, "interrupts": [], "checkpoint_id": None,
    "parent_checkpoint_id": None,
}  # fmt: skip
"""What `langgraph dev` answers for a thread with no checkpoint."""


def parts() -> Any:
    graph = build_manager_graph(provider=simulated_provider(), checkpointer=InMemorySaver())
    return SimpleNamespace(graph=graph, leases=MemoryRunLeases(), log=MemoryEventLog(maxlen=100))


def record(thread_id: str) -> ThreadRecord:
    now = "2026-01-01T00:00:00.000000+00:00"
    return ThreadRecord(thread_id, now, now, now, {"graph_id": "manager"})


async def read(services: Any, thread_id: str) -> Any:
    return await read_thread(cast(Services, services), record(thread_id))


async def test_a_thread_without_checkpoints_is_idle_with_no_values() -> None:
    services = parts()
    thread = await read(services, "t-1")
    assert (thread["status"], thread["values"], thread["config"]) == ("idle", None, {})
    assert (thread["interrupts"], thread["error"]) == ({}, None)
    assert thread_state(await services.graph.aget_state(thread_config("t-1"))) == EMPTY_STATE


async def test_status_follows_the_lease_the_last_run_and_the_next_step() -> None:
    services = parts()
    await ask(services.graph, "Write a haiku about rivers", thread_config("t-1"))
    thread = await read(services, "t-1")
    assert thread["status"] == "idle" and thread["config"] == {"configurable": {}}
    assert [m["type"] for m in thread["values"]["messages"]] == ["human", "ai"]

    await services.leases.acquire("t-1", ActiveRun(run_id="r-2", owner="me", first_seq=1))
    assert (await read(services, "t-1"))["status"] == "busy"
    await services.leases.release("t-1", "r-2")

    cancelled = lifecycle("failed", run_id="r-2", error="stopped", code="cancelled")
    await services.log.append("t-1", [numbered(cancelled, 1)])
    assert (await read(services, "t-1"))["status"] == "idle"
    # Event times are whole milliseconds and the thread tells "after" only past that
    # rounding: the failure and the state written after it are apart by more than it.
    await asyncio.sleep(0.003)
    failed = lifecycle("failed", run_id="r-3", error="provider down", code="provider_error")
    await services.log.append("t-1", [numbered(failed, 2)])
    thread = await read(services, "t-1")
    assert thread["status"] == "error"
    assert thread["error"] == {"error": "provider_error", "message": "provider down"}

    # A state written after the failure moves the thread on: here, to a pending route.
    decision = {"route": "creative", "confidence": 1.0, "reason": "asked", "decided_by": "test"}
    update = {"decision": decision}
    await asyncio.sleep(0.003)
    await services.graph.aupdate_state(thread_config("t-1"), update, as_node="route")
    thread = await read(services, "t-1")
    assert (thread["status"], thread["error"]) == ("interrupted", None)
