"""Nodes of the analytical route: plan, analyse each step, synthesise the answer."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from nodes.calls import Conversation, call_model
from nodes.errors import ModelOutputError
from nodes.memory import WithMemories, memories_of, with_memories
from nodes.models import ModelProvider
from nodes.progress import plan_event, step_event
from nodes.prompts import (
    ANALYST_REQUEST,
    ANALYST_SYSTEM,
    PLANNER_SYSTEM,
    SYNTHESISER_REQUEST,
    SYNTHESISER_SYSTEM,
)
from nodes.router import latest_request
from nodes.run_context import RunContext, WithOptions, options_of

_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)]|step \d+:)\s*", re.IGNORECASE)


class PlanInput(TypedDict):
    """What the analysis and synthesis steps read."""

    messages: Sequence[AnyMessage]
    plan: list[str]
    findings: list[str]


def parse_plan(text: str, *, max_steps: int) -> list[str]:
    """Read the planner's steps: a JSON list of strings, or failing that a plain list.

    Raises:
        ModelOutputError: when no step can be read.
    """
    steps: list[str] = []
    found = re.search(r"\[.*\]", text, re.DOTALL)
    if found:
        try:
            loaded = json.loads(found.group(0))
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, list):
            steps = [str(item).strip() for item in loaded if str(item).strip()]
    if not steps:
        lines = (_LIST_MARKER.sub("", line).strip() for line in text.splitlines())
        steps = [line for line in lines if line and line not in "[]"]
    if not steps:
        raise ModelOutputError("the planner returned no steps")
    return steps[:max_steps]


class PlanRequest(Conversation, WithOptions):
    """What the plan step reads."""


async def make_plan(
    state: PlanRequest, runtime: Runtime[RunContext], *, provider: ModelProvider
) -> dict[str, Any]:
    """Break the request into a short list of steps and announce them."""
    max_steps = options_of(state)["max_plan_steps"]
    reply = await call_model(
        provider,
        "analytical",
        node="plan",
        system=PLANNER_SYSTEM.format(max_steps=max_steps),
        conversation=state["messages"],
    )
    steps = parse_plan(reply.message.text, max_steps=max_steps)
    runtime.stream_writer(plan_event(steps))
    return {"plan": steps, "findings": [], "usage": reply.usage}


def _findings_text(plan: Sequence[str], findings: Sequence[str]) -> str:
    if not findings:
        return "(none yet)"
    return "\n\n".join(f"Step {i} — {plan[i - 1]}:\n{text}" for i, text in enumerate(findings, 1))


async def analyse_step(
    state: PlanInput, runtime: Runtime[RunContext], *, provider: ModelProvider
) -> dict[str, Any]:
    """Work through the next step of the plan, reporting progress before and after."""
    plan, findings = state["plan"], state["findings"]
    step, total = len(findings) + 1, len(plan)
    label = plan[step - 1]
    runtime.stream_writer(step_event(step, total, label, "started"))
    request = ANALYST_REQUEST.format(
        request=latest_request(state["messages"]),
        plan="; ".join(plan),
        step=step,
        total=total,
        label=label,
        findings=_findings_text(plan, findings),
    )
    reply = await call_model(
        provider,
        "analytical",
        node="analyse",
        system=ANALYST_SYSTEM,
        conversation=[*state["messages"], HumanMessage(request)],
    )
    runtime.stream_writer(step_event(step, total, label, "finished"))
    return {"findings": [reply.message.text], "usage": reply.usage}


async def route_next_step(state: PlanInput) -> Literal["analyse", "synthesise"]:
    """Analyse the next step until every step of the plan has its findings."""
    return "analyse" if len(state["findings"]) < len(state["plan"]) else "synthesise"


class SynthesisInput(PlanInput, WithMemories):
    """What the synthesis step reads: the analysis, and the owner's memories."""


async def synthesise(state: SynthesisInput, *, provider: ModelProvider) -> dict[str, Any]:
    """Write the final answer from every step's findings."""
    request = SYNTHESISER_REQUEST.format(
        request=latest_request(state["messages"]),
        findings=_findings_text(state["plan"], state["findings"]),
    )
    reply = await call_model(
        provider,
        "analytical",
        node="synthesise",
        system=with_memories(SYNTHESISER_SYSTEM, memories_of(state)),
        conversation=[*state["messages"], HumanMessage(request)],
    )
    return {"messages": [reply.message], "usage": reply.usage}
