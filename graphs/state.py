"""State schemas of the manager graph and its subgraphs."""

from __future__ import annotations

import operator
from typing import Annotated

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from nodes.errors import RunError
from nodes.memory import Memory
from nodes.router import RouteDecision
from nodes.run_context import RunOptions
from nodes.usage import RunUsage, add_usage


class InputState(TypedDict):
    """What a caller sends: LangGraph's conventional conversation (as `MessagesState`)."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The conversation; new messages are appended, equal ids replace."""


class RouteInput(InputState, total=False):
    """What the manager hands a route's subgraph: the conversation and the run's options."""

    options: RunOptions
    """Choices of the latest run that shape its answer (refine, plan length)."""
    memories: list[Memory]
    """What the owner told ALMA in other threads, recalled for the latest run."""


class RunResult(TypedDict, total=False):
    """What a run leaves besides its answer."""

    usage: Annotated[RunUsage, add_usage]
    """Tokens of the latest run: in total and per node."""
    error: RunError | None
    """Why the latest run failed, if it did."""


class State(RouteInput, RunResult, total=False):
    """The manager's full state, kept per thread by the checkpointer."""

    decision: RouteDecision | None
    """The latest request's route, with the reason and confidence."""


class RouteOutput(InputState, RunResult):
    """What a route's subgraph hands back to the manager: answer, usage, error."""


class CreativeState(RouteInput, RunResult, total=False):
    """The creative subgraph's working state."""

    draft: str
    """The composed piece, when a refine pass follows."""


class AnalyticalState(RouteInput, RunResult, total=False):
    """The analytical subgraph's working state."""

    plan: list[str]
    """The steps the planner chose."""
    findings: Annotated[list[str], operator.add]
    """One entry per analysed step, in plan order."""
