"""A storage failure inside a subgraph is reported as storage, not as an internal error."""

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from redis.exceptions import ConnectionError as RedisConnectionError

from graphs.manager import build_manager_graph
from tests.utils.graphs import ask, new_thread, simulated_provider


class SubgraphStorageDown(InMemorySaver):
    """Checkpoints of the manager are kept; those of a subgraph fail as Redis would."""

    async def aput(self, config: RunnableConfig, *args: Any, **kwargs: Any) -> RunnableConfig:
        if config["configurable"].get("checkpoint_ns"):
            raise RedisConnectionError("Connection closed by server.")
        return await super().aput(config, *args, **kwargs)


async def test_a_subgraph_that_loses_its_storage_fails_with_storage_unavailable() -> None:
    graph = build_manager_graph(provider=simulated_provider(), checkpointer=SubgraphStorageDown())
    state = await ask(graph, "Write a haiku about rivers", new_thread(), route="creative")
    error = state["error"]
    assert error["code"] == "storage_unavailable"
    assert error["retryable"] is True
    assert error["message"].startswith("The conversation storage failed")
