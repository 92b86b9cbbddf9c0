"""The creative subgraph: compose → (refine)."""

from __future__ import annotations

from functools import partial
from typing import Any

from langgraph.cache.base import BaseCache
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graphs.policies import model_node_options
from graphs.state import CreativeState, RouteInput, RouteOutput
from nodes.creative import compose, refine, route_after_compose
from nodes.models import ModelProvider
from nodes.run_context import RunContext


def build_creative_graph(
    *, provider: ModelProvider, cache: BaseCache[Any] | None = None, cache_ttl: int | None = None
) -> CompiledStateGraph[CreativeState, RunContext, RouteInput, RouteOutput]:
    """Compose a piece streamed token by token, then refine it when the run asks."""
    options = model_node_options(
        provider, "creative", cache_ttl=cache_ttl if cache is not None else None
    )
    builder = StateGraph(
        CreativeState, context_schema=RunContext, input_schema=RouteInput, output_schema=RouteOutput
    )
    builder.add_node("compose", partial(compose, provider=provider), **options)
    builder.add_node("refine", partial(refine, provider=provider), **options)
    builder.add_edge(START, "compose")
    builder.add_conditional_edges("compose", route_after_compose)
    builder.add_edge("refine", END)
    # Subgraphs do not inherit the parent's cache, so they are handed it too.
    return builder.compile(name="creative", cache=cache)
