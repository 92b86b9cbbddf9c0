"""Human review of the analytical plan: the run stops with the plan, and resumes as decided.

The `review` node raises LangGraph's `interrupt` with a `PlanReview` payload; the caller
resumes the run with `Command(resume=...)` carrying a `ReviewAnswer`:

    {"action": "approve"}
    {"action": "edit", "steps": ["Define the terms", "Compare on cost"]}
    {"action": "reject"}

An answer that cannot be read does not fail the run: the node asks again, with the
plan unchanged and the reason in the payload's `error`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from typing_extensions import TypedDict

from nodes.progress import plan_event
from nodes.router import latest_request
from nodes.run_context import RunContext, WithOptions, options_of

PLAN_REVIEW = "plan_review"
"""The payload's `kind`: what a client looks for to show the plan for review."""
MAX_STEP_CHARS = 300
"""Longest step a reviewer may write: a step is a line of the plan, not a prompt."""
REJECTED_ANSWER = (
    "The plan was rejected, so no analysis was made. Ask again, or rephrase the request, "
    "for a new plan."
)

ReviewAction = Literal["approve", "edit", "reject"]
ACTIONS: tuple[ReviewAction, ...] = ("approve", "edit", "reject")


class PlanReview(TypedDict):
    """What the interrupt carries: the plan to review, and how to answer."""

    kind: Literal["plan_review"]
    request: str
    """The request the plan answers."""
    steps: list[str]
    """The proposed steps, in order."""
    max_steps: int
    """Most steps an edited plan may have."""
    actions: list[ReviewAction]
    error: NotRequired[str]
    """Why the previous answer was refused, when the review is asked again."""


class ReviewAnswer(TypedDict):
    """The resume value: approve the plan, replace it with `steps`, or reject it."""

    action: ReviewAction
    steps: NotRequired[list[str]]


@dataclass(frozen=True)
class Decision:
    """A review answer that was read: the action, and the steps to analyse."""

    action: ReviewAction
    steps: list[str]


class ReviewError(ValueError):
    """A resume value that is not a review answer; its message says what to send."""


def review_payload(
    request: str, steps: Sequence[str], max_steps: int, error: str | None = None
) -> PlanReview:
    """The interrupt's payload for `steps`; `error` says why the last answer was refused."""
    payload = PlanReview(
        kind="plan_review",
        request=request,
        steps=list(steps),
        max_steps=max_steps,
        actions=list(ACTIONS),
    )
    if error is not None:
        payload["error"] = error
    return payload


def _edited_steps(raw: Any, max_steps: int) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(step, str) for step in raw):
        raise ReviewError("'steps' must be a list of strings")
    steps = [" ".join(step.split()) for step in raw]
    steps = [step for step in steps if step]
    if not steps:
        raise ReviewError("an edited plan needs at least one step; reject it instead")
    if len(steps) > max_steps:
        raise ReviewError(f"an edited plan may have at most {max_steps} steps")
    if any(len(step) > MAX_STEP_CHARS for step in steps):
        raise ReviewError(f"a step may be at most {MAX_STEP_CHARS} characters")
    return steps


def read_answer(value: Any, proposed: Sequence[str], max_steps: int) -> Decision:
    """Read a resume value into a decision on the `proposed` plan.

    A bare `"approve"` or `"reject"` is read as that action; an edit's steps are
    trimmed, and blank ones dropped, before the bounds are checked.

    Raises:
        ReviewError: when the value is not a review answer, naming what is wrong.
    """
    if isinstance(value, str):
        value = {"action": value}
    if not isinstance(value, dict):
        raise ReviewError('the answer must be an object such as {"action": "approve"}')
    action = value.get("action")
    if action not in ACTIONS:
        raise ReviewError(f"'action' must be one of {', '.join(ACTIONS)}")
    unknown = set(value) - {"action", "steps"}
    if unknown:
        raise ReviewError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if action == "edit":
        return Decision("edit", _edited_steps(value.get("steps"), max_steps))
    if "steps" in value:
        raise ReviewError(f"'steps' goes with the action 'edit', not {action!r}")
    return Decision(action, list(proposed) if action == "approve" else [])


class ReviewInput(WithOptions):
    """What the review step reads."""

    messages: Sequence[AnyMessage]
    plan: list[str]


async def review_plan(state: ReviewInput, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Stop the run until a person approves, edits or rejects the plan.

    On resume the node runs again from its start, and each `interrupt` call returns the
    answers given so far in order: a refused answer is followed by a new interrupt, so
    the run waits again rather than failing.
    """
    proposed = state["plan"]
    max_steps = options_of(state)["max_plan_steps"]
    request = latest_request(state["messages"])
    error: str | None = None
    while True:
        answer = interrupt(review_payload(request, proposed, max_steps, error))
        try:
            decision = read_answer(answer, proposed, max_steps)
        except ReviewError as exc:
            error = str(exc)
            continue
        break
    if decision.action == "reject":
        return {"plan": [], "messages": [AIMessage(REJECTED_ANSWER)]}
    if decision.steps != proposed:
        # The page and the terminal redraw the plan the analysis will follow.
        runtime.stream_writer(plan_event(decision.steps))
    return {"plan": decision.steps}


def reviews_plan(state: WithOptions) -> bool:
    """Whether the run asked for its plan to be reviewed."""
    return bool(options_of(state).get("review_plan"))
