"""Factories for graphs on the simulated model, and helpers to run them."""

from __future__ import annotations

import uuid
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from graphs.manager import build_manager_graph
from graphs.state import InputState
from nodes.models import CallPolicy, ModelProvider, Role
from nodes.run_context import RunContext
from nodes.simulated import Fault, SimulatedChatModel

# Retries and timeouts short enough that fault tests take milliseconds.
FAST_POLICY = CallPolicy(
    attempts=3, retry_interval=0.01, jitter=False, idle_timeout=0.3, run_timeout=5.0
)


def simulated_provider(
    policy: CallPolicy = FAST_POLICY, **faults: list[Fault | None]
) -> ModelProvider:
    """A provider on the simulated model; `creative=["rate_limit"]` scripts a role's faults."""
    provider = ModelProvider.simulated(policy=policy)
    for role, script in faults.items():
        simulated(provider, cast(Role, role)).fault_script = list(script)
    return provider


def simulated(provider: ModelProvider, role: Role) -> SimulatedChatModel:
    model = provider.chat_model(role)
    assert isinstance(model, SimulatedChatModel)
    return model


def new_thread() -> RunnableConfig:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


def manager(provider: ModelProvider) -> Any:
    return build_manager_graph(provider=provider, checkpointer=InMemorySaver())


async def ask(
    graph: Any, text: str, config: RunnableConfig | None = None, **context: Any
) -> dict[str, Any]:
    result: dict[str, Any] = await graph.ainvoke(
        {"messages": [("user", text)]}, config or new_thread(), context=RunContext(**context)
    )
    return result


def user_says(text: str) -> InputState:
    """A graph's input of one user message, as the (role, text) pair LangGraph accepts."""
    return cast(InputState, {"messages": [("user", text)]})
