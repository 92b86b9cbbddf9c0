"""Custom stream events the nodes emit, so clients can show progress between tokens."""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict


class PlanEvent(TypedDict):
    """The analytical plan, as soon as it is made."""

    type: Literal["plan"]
    steps: list[str]


class StepEvent(TypedDict):
    """One analysis step starting or finishing: `step` of `total`, named `label`."""

    type: Literal["progress"]
    step: int
    total: int
    label: str
    status: Literal["started", "finished"]


def plan_event(steps: list[str]) -> PlanEvent:
    """The event announcing a plan."""
    return PlanEvent(type="plan", steps=list(steps))


def step_event(
    step: int, total: int, label: str, status: Literal["started", "finished"]
) -> StepEvent:
    """The event announcing progress on step `step` of `total`."""
    return StepEvent(type="progress", step=step, total=total, label=label, status=status)
