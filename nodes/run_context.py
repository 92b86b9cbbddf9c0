"""Per-run parameters, handed to the graph as its context schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NotRequired

from typing_extensions import TypedDict

RouterMode = Literal["heuristic", "llm", "hybrid"]


class RunOptions(TypedDict):
    """The run's choices that shape answers, recorded in the state by the route step.

    Nodes read them from the state rather than the context so that their output is a
    function of their input alone, which is what LangGraph's node cache keys on.
    """

    refine: bool
    max_plan_steps: int
    review_plan: NotRequired[bool]
    """Stop for a person to review the plan; absent means off."""


DEFAULT_OPTIONS = RunOptions(refine=False, max_plan_steps=4)


class WithOptions(TypedDict, total=False):
    """A node input that carries the run's options (absent when a subgraph runs alone)."""

    options: RunOptions


def options_of(state: WithOptions) -> RunOptions:
    """The run's options, or the defaults when none were recorded."""
    return state.get("options") or DEFAULT_OPTIONS


@dataclass(kw_only=True)
class RunContext:
    """What a caller may choose for one run; LangGraph Studio shows these as a form."""

    router: RouterMode = field(
        default="hybrid",
        metadata={
            "description": "How the route is chosen: `heuristic` (cue words, no model call), "
            "`llm` (the router model), or `hybrid` (cue words when confident, else the model)."
        },
    )
    route: Literal["creative", "analytical"] | None = field(
        default=None,
        metadata={"description": "Force this route and skip the router."},
    )
    confidence_threshold: float = field(
        default=0.75,
        metadata={"description": "Hybrid router: below this confidence, ask the model."},
    )
    refine: bool = field(
        default=False,
        metadata={"description": "Creative route: run an editing pass over the draft."},
    )
    max_plan_steps: int = field(
        default=4,
        metadata={"description": "Analytical route: most steps the plan may have (1-8)."},
    )
    memory: bool = field(
        default=True,
        metadata={
            "description": "Recall what the user told ALMA in other threads, and remember "
            "what they state in this run (off: neither)."
        },
    )
    review_plan: bool = field(
        default=False,
        metadata={
            "description": "Analytical route: stop after planning until a person approves, "
            "edits or rejects the plan (resume with `Command(resume=...)`)."
        },
    )

    def __post_init__(self) -> None:
        if not 0 <= self.confidence_threshold <= 1:
            raise ValueError("confidence_threshold must be between 0 and 1")
        if not 1 <= self.max_plan_steps <= 8:
            raise ValueError("max_plan_steps must be between 1 and 8")

    def options(self) -> RunOptions:
        """The choices the route's subgraph needs."""
        options = RunOptions(refine=self.refine, max_plan_steps=self.max_plan_steps)
        if self.review_plan:
            # Only when asked: the options are part of cached nodes' input, and runs
            # without review keep the keys they always had.
            options["review_plan"] = True
        return options
