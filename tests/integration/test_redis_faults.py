"""Redis dying mid-run: the run fails cleanly, the thread stays whole, ALMA reconnects."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from graphs.manager import build_manager_graph
from memory.aio import AsyncRedisSaver
from memory.connection import async_client
from nodes.models import ModelProvider
from nodes.run_context import RunContext
from tests.utils.graphs import FAST_POLICY, ask, user_says
from tests.utils.redis_server import redis_server

pytestmark = pytest.mark.integration

DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


async def test_redis_killed_mid_run_fails_cleanly_and_recovers(tmp_path: Path) -> None:
    thread: Any = {"configurable": {"thread_id": "survivor"}}
    with redis_server(tmp_path, *DURABLE) as server:
        port = server.port
        client = async_client(server.url)
        saver = AsyncRedisSaver(client, prefix="faults")
        # Slow enough that the run is still streaming when Redis dies.
        provider = ModelProvider.simulated(tokens_per_second=300, policy=FAST_POLICY)
        graph = build_manager_graph(provider=provider, checkpointer=saver)
        await ask(graph, "Write a haiku about rivers", thread)

        streaming = asyncio.Event()

        async def second_turn() -> None:
            data: Any  # with `subgraphs=True`, each part is (namespace, mode, data)
            async for _, mode, data in graph.astream(
                user_says("Compare quicksort and mergesort"),
                thread,
                context=RunContext(max_plan_steps=3),
                stream_mode=["messages"],
                subgraphs=True,
            ):
                if mode == "messages" and data[1].get("langgraph_node") == "analyse":
                    streaming.set()

        run = asyncio.create_task(second_turn())
        await asyncio.wait_for(streaming.wait(), timeout=30)
        server.process.kill()

        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(run, timeout=60)

    # Redis comes back on the same port with its append-only file; ALMA's client is the
    # same one, never restarted.
    with redis_server(tmp_path, *DURABLE, port=port):
        history = [state async for state in graph.aget_state_history(thread)]
        assert history, "the thread was lost"
        for snapshot in history:
            messages = snapshot.values.get("messages", [])
            assert all(m.text is not None for m in messages)
        latest = history[0].values
        assert [m.type for m in latest["messages"][:2]] == ["human", "ai"]

        state = await ask(graph, "Write a poem about the sea", thread)
        assert state["messages"][-1].type == "ai"
        assert state.get("error") is None
        assert state["messages"][0].text == "Write a haiku about rivers"
        await client.aclose()


async def test_the_first_command_after_a_restart_is_sent_again_on_a_fresh_connection(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path, *DURABLE) as server:
        client = async_client(server.url)
        await client.set("kept", "1")
        server.process.kill()
        # Every pooled connection now belongs to a server that is gone.
        with redis_server(tmp_path, *DURABLE, port=server.port):
            assert await client.get("kept") == b"1"
            assert await client.register_script("return 7")(keys=[], args=[]) == 7
        await client.aclose()
