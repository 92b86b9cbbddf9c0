"""The manager's routing step: creative or analytical, with the reason and the confidence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.errors import NodeError
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from nodes.calls import Conversation, call_model
from nodes.errors import describe_failure
from nodes.heuristics import Route, classify
from nodes.models import ModelProvider
from nodes.prompts import ROUTER_SYSTEM
from nodes.run_context import RunContext
from nodes.usage import RunUsage, add_usage

DecidedBy = Literal["heuristic", "llm", "forced", "heuristic-fallback"]


class RouteDecision(TypedDict):
    """Which subgraph answers, and why."""

    route: Route
    confidence: float
    """0 to 1: how sure the router is."""
    reason: str
    decided_by: DecidedBy
    """Which router made the call."""


class RouteChoice(BaseModel):
    """Choose the subgraph that should answer the learner's latest request."""

    route: Route = Field(description="`creative` or `analytical`.")
    confidence: float = Field(ge=0, le=1, description="How sure you are, from 0 to 1.")
    reason: str = Field(description="One sentence on why.")


def latest_request(messages: Sequence[AnyMessage]) -> str:
    """The text of the newest human message, which is what gets routed."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def decide_by_heuristic(messages: Sequence[AnyMessage]) -> RouteDecision:
    """Route from the request's wording alone (no model call)."""
    verdict = classify(latest_request(messages))
    return RouteDecision(
        route=verdict.route,
        confidence=verdict.confidence,
        reason=verdict.reason,
        decided_by="heuristic",
    )


async def decide_by_model(
    provider: ModelProvider, messages: Sequence[AnyMessage]
) -> tuple[RouteDecision, RunUsage]:
    """Ask the router model for a structured route choice."""
    reply = await call_model(
        provider,
        "router",
        node="consult_router",
        system=ROUTER_SYSTEM,
        conversation=messages,
        schema=RouteChoice,
    )
    assert isinstance(reply.parsed, RouteChoice)
    choice = reply.parsed
    decision = RouteDecision(
        route=choice.route,
        confidence=round(choice.confidence, 3),
        reason=choice.reason,
        decided_by="llm",
    )
    return decision, reply.usage


async def route_request(state: Conversation, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Start a run: record its options, and decide the route when no model is needed.

    Leaves `decision` empty when the router model must decide (`llm` mode, or `hybrid`
    when the cue words are not confident enough). Usage and error describe the latest
    run only, so they replace what earlier turns left.
    """
    context = runtime.context or RunContext()
    decision: RouteDecision | None = None
    if context.route is not None:
        decision = RouteDecision(
            route=context.route, confidence=1.0, reason="forced by the caller", decided_by="forced"
        )
    elif context.router != "llm":
        decision = decide_by_heuristic(state["messages"])
        if context.router == "hybrid" and decision["confidence"] < context.confidence_threshold:
            decision = None
    return {
        "decision": decision,
        "options": context.options(),
        "usage": Overwrite(add_usage(None, None)),
        "error": None,
    }


async def consult_router(state: Conversation, *, provider: ModelProvider) -> dict[str, Any]:
    """Ask the router model for the route; its answer depends on the conversation alone."""
    decision, usage = await decide_by_model(provider, state["messages"])
    return {"decision": decision, "usage": usage}


async def recover_route(
    state: Conversation, error: NodeError, runtime: Runtime[RunContext]
) -> Command[str]:
    """After the router model fails for good: fall back to cue words in hybrid mode.

    In `llm` mode the caller asked for the model's judgement, so the run ends with the
    error instead.
    """
    context = runtime.context or RunContext()
    failure = describe_failure(error.error, node=error.node)
    if context.router != "hybrid":
        return Command(update={"error": failure}, goto="__end__")
    decision = decide_by_heuristic(state["messages"])
    decision = RouteDecision(
        route=decision["route"],
        confidence=decision["confidence"],
        reason=f"router model failed ({failure['code']}); {decision['reason']}",
        decided_by="heuristic-fallback",
    )
    return Command(update={"decision": decision}, goto=decision["route"])
