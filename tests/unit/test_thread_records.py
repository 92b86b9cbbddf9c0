"""Thread records in process memory, their owners, and copying a thread without Redis."""

import asyncio
import uuid

import pytest
from langchain_core.runnables import RunnableConfig

from memory.process import ProcessMemorySaver
from server.stores.owners import MemoryThreadOwners
from server.stores.thread_records import MemoryThreadRecords, Threads, ThreadTakenError
from tests.utils.graphs import ask, simulated_provider


def threads() -> Threads:
    return Threads(records=MemoryThreadRecords(), owners=MemoryThreadOwners())


async def test_ensure_creates_once_for_its_owner_and_refuses_another() -> None:
    store = threads()
    assert await store.ensure("t-1", "alice", {"graph_id": "manager"}) is True
    assert await store.ensure("t-1", "alice", {"graph_id": "other"}) is False
    record = await store.get("t-1")
    assert record is not None and record.metadata == {"graph_id": "manager"}
    assert record.created_at == record.updated_at == record.state_updated_at
    with pytest.raises(ThreadTakenError):
        await store.ensure("t-1", "bob")
    # Created threads are in their owner's index, untitled until a first run names them.
    [entry] = await store.listing("alice", 10)
    assert (entry.thread_id, entry.title) == ("t-1", "")
    await store.run_created("t-1", "Write a haiku")
    await store.run_created("t-1", "A later message")
    [entry] = await store.listing("alice", 10)
    assert entry.title == "Write a haiku"


async def test_touch_merges_metadata_and_bumps_the_times() -> None:
    store = threads()
    await store.ensure("t-1", "alice", {"n": 1, "keep": True})
    created = await store.get("t-1")
    await asyncio.sleep(0.002)
    patched = await store.touch("t-1", {"n": None, "extra": "x"}, state=False)
    assert patched.metadata == {"n": None, "keep": True, "extra": "x"}
    assert created is not None and patched.updated_at > created.updated_at
    assert patched.state_updated_at == created.state_updated_at
    await asyncio.sleep(0.002)
    ran = await store.touch("t-1", {"graph_id": "manager"})
    assert ran.state_updated_at > patched.state_updated_at
    assert ran.created_at == created.created_at
    # A thread without a record (started over the WebSocket protocol) gets one.
    fresh = await store.touch("t-2")
    assert fresh.metadata == {} and fresh.created_at == fresh.updated_at


async def test_an_owners_list_shows_a_thread_without_a_record_and_stores_nothing() -> None:
    store = threads()
    await store.ensure("t-1", "alice")
    # Claimed with no record (it lapsed first): listed, with a stand-in nobody stored.
    await store.owners.claim("t-ws", "alice")
    await store.owners.remember("alice", "t-ws")
    assert {r.thread_id for r in await store.of_owner("alice")} == {"t-1", "t-ws"}
    assert await store.get("t-ws") is None
    await store.delete("t-1")
    assert await store.get("t-1") is None


async def test_the_process_memory_saver_copies_a_thread_with_its_history() -> None:
    from graphs.manager import build_manager_graph

    saver = ProcessMemorySaver()
    graph = build_manager_graph(provider=simulated_provider(), checkpointer=saver)
    source_id, target_id = str(uuid.uuid4()), str(uuid.uuid4())
    source: RunnableConfig = {"configurable": {"thread_id": source_id}}
    target: RunnableConfig = {"configurable": {"thread_id": target_id}}
    await ask(graph, "Write a haiku about rivers", source)
    await saver.acopy_thread(source_id, target_id)
    original = [s async for s in graph.aget_state_history(source)]
    copied = [s async for s in graph.aget_state_history(target)]
    assert [s.config["configurable"]["checkpoint_id"] for s in copied] == [
        s.config["configurable"]["checkpoint_id"] for s in original
    ]
    assert copied[0].values == original[0].values
    assert all(s.config["configurable"]["thread_id"] == target_id for s in copied)
    # The copy goes its own way.
    await ask(graph, "And one about the sea", target)
    assert len([s async for s in graph.aget_state_history(target)]) > len(original)
    assert len([s async for s in graph.aget_state_history(source)]) == len(original)
