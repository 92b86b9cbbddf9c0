"""The manager graph: route each request to the creative or the analytical subgraph."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from langgraph.cache.base import BaseCache
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer

from graphs.analytical import build_analytical_graph
from graphs.creative import build_creative_graph
from graphs.policies import model_node_options
from graphs.state import InputState, State
from nodes.errors import end_with_error
from nodes.memory import recall, remember
from nodes.models import ModelProvider
from nodes.router import consult_router, recover_route, route_request
from nodes.run_context import RunContext


async def route_by_decision(
    state: State,
) -> Literal["consult_router", "creative", "analytical", "__end__"]:
    """Follow the decision; ask the router model when none was made; stop on failure.

    A coroutine although it never awaits: LangGraph runs a plain function of an async
    graph in a worker thread.
    """
    if state.get("error"):
        return "__end__"
    decision = state.get("decision")
    if decision is None:
        return "consult_router"
    return decision["route"]


# LangGraph's node protocols do not type the injected `NodeError` argument yet.
_recover_route: Any = recover_route
_end_with_error: Any = end_with_error
# Nor a node that takes both the run's config and its runtime.
_recall: Any = recall


def build_manager_graph(
    *,
    provider: ModelProvider,
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    cache: BaseCache[Any] | None = None,
    cache_ttl: int | None = None,
) -> CompiledStateGraph[State, RunContext, InputState, State]:
    """Build the manager: `recall`, `remember`, `route` (`consult_router`), a subgraph.

    `recall` and `remember` read and keep the owner's facts across threads
    (nodes/memory.py); `consult_router` decides when the cue words are unsure.

    Args:
        provider: The models every node calls, handed in rather than looked up.
        checkpointer: Where threads are kept; `None` for LangGraph Studio, which brings
            its own.
        store: Long-term memory the nodes reach as `Runtime.store`; `None` for LangGraph
            Studio, which brings its own.
        cache: Where deterministic nodes' answers are cached; `None` for no caching.
        cache_ttl: Seconds a cached answer is kept.
    """
    ttl = cache_ttl if cache is not None else None
    builder = StateGraph(State, context_schema=RunContext, input_schema=InputState)
    # Memory comes first: the facts are the user's words, not the answer's, and the
    # thread's last node stays the answering subgraph's, where a stopped answer is kept.
    builder.add_node("recall", _recall)
    builder.add_node("remember", partial(remember, provider=provider))
    builder.add_node("route", route_request)
    builder.add_node(
        "consult_router",
        partial(consult_router, provider=provider),
        **model_node_options(provider, "router", cache_ttl=ttl),
        error_handler=_recover_route,
    )
    # Failures inside a subgraph are handled here, once its node's retries are spent:
    # handlers inside the subgraphs would keep LangGraph Studio from drawing them.
    builder.add_node(
        "creative",
        build_creative_graph(provider=provider, cache=cache, cache_ttl=ttl),
        error_handler=_end_with_error,
    )
    builder.add_node(
        "analytical",
        build_analytical_graph(provider=provider, cache=cache, cache_ttl=ttl),
        error_handler=_end_with_error,
    )
    builder.add_edge(START, "recall")
    builder.add_edge("recall", "remember")
    builder.add_edge("remember", "route")
    builder.add_conditional_edges("route", route_by_decision)
    builder.add_conditional_edges("consult_router", route_by_decision)
    builder.add_edge("creative", END)
    builder.add_edge("analytical", END)
    return builder.compile(name="manager", checkpointer=checkpointer, store=store, cache=cache)
