"""The analytical subgraph: plan → (review) → analyse each step → synthesise."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from langgraph.cache.base import BaseCache
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graphs.policies import model_node_options
from graphs.state import AnalyticalState, RouteInput, RouteOutput
from nodes.analytical import PlanInput, analyse_step, make_plan, route_next_step, synthesise
from nodes.models import ModelProvider
from nodes.plan_review import review_plan, reviews_plan
from nodes.run_context import RunContext


async def route_after_plan(state: AnalyticalState) -> Literal["review", "analyse", "synthesise"]:
    """Have the plan reviewed when the run asked for it, else start on its steps."""
    if reviews_plan(state):
        return "review"
    return await route_next_step(_plan_input(state))


async def route_after_review(state: AnalyticalState) -> Literal["analyse", "synthesise", "__end__"]:
    """Analyse the plan as approved; a rejected plan (none left) ends the subgraph."""
    if not state.get("plan"):
        return "__end__"
    return await route_next_step(_plan_input(state))


def _plan_input(state: AnalyticalState) -> PlanInput:
    return PlanInput(
        messages=state["messages"], plan=state.get("plan", []), findings=state.get("findings", [])
    )


def build_analytical_graph(
    *, provider: ModelProvider, cache: BaseCache[Any] | None = None, cache_ttl: int | None = None
) -> CompiledStateGraph[AnalyticalState, RunContext, RouteInput, RouteOutput]:
    """Plan a few steps, analyse them one model call at a time, then synthesise.

    Each step is its own node execution, so a retry repeats one step, not the analysis.
    A run that asks for plan review stops at `review` until the plan is approved, edited
    or rejected; `review` is never cached, as its answer comes from a person.
    """
    options = model_node_options(
        provider, "analytical", cache_ttl=cache_ttl if cache is not None else None
    )
    builder = StateGraph(
        AnalyticalState,
        context_schema=RunContext,
        input_schema=RouteInput,
        output_schema=RouteOutput,
    )
    builder.add_node("plan", partial(make_plan, provider=provider), **options)
    builder.add_node("review", review_plan)
    builder.add_node("analyse", partial(analyse_step, provider=provider), **options)
    builder.add_node("synthesise", partial(synthesise, provider=provider), **options)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", route_after_plan)
    builder.add_conditional_edges("review", route_after_review)
    builder.add_conditional_edges("analyse", route_next_step)
    builder.add_edge("synthesise", END)
    # Subgraphs do not inherit the parent's cache, so they are handed it too.
    return builder.compile(name="analytical", cache=cache)
