"""What a caller of the manager graph may know of its insides, and nothing more.

The service streams, accounts for and stops runs of the manager without knowing its
node names or state keys: it asks here which streamed tokens are the answer, what a
finished run left (route, tokens, error), and how to keep the part of an answer a
stopped run had already shown. A change inside the graph changes this module, not the
service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage

from nodes.errors import ErrorCode

ROUTE_NODES = frozenset({"creative", "analytical"})
"""The manager's nodes that answer: one subgraph per route."""
ANSWER_NODES = frozenset({"compose", "refine", "synthesise"})
"""Nodes whose streamed tokens are the answer itself (the others are working notes)."""
DRAFT_NODES = frozenset({"compose"})
"""Answer nodes whose text is only a draft when the run refines it."""
NOTE_NODES = frozenset({"analyse"})
"""Nodes whose streamed tokens are working notes worth showing (the analysis steps)."""
_ROUTING_NODE = "route"


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run left in its thread, as the service reports it."""

    route: str | None
    """The route that answered (None when the run stopped before routing)."""
    tokens: int
    """Input and output tokens the run's model calls took."""
    error: tuple[str, str] | None
    """`(code, message)` when the run failed inside the graph."""


@dataclass(frozen=True)
class PartialAnswer:
    """A state update that keeps the text a stopped run had shown, marked as cut off."""

    values: dict[str, Any]
    as_node: str


def is_answer(node: str | None) -> bool:
    """Whether tokens streamed by `node` are the answer itself."""
    return node in ANSWER_NODES


def is_draft(node: str | None) -> bool:
    """Whether `node`'s answer is a draft that a refine pass rewrites."""
    return node in DRAFT_NODES


def is_note(node: str | None) -> bool:
    """Whether `node`'s tokens are working notes (shown apart from the answer)."""
    return node in NOTE_NODES


def route_of_namespace(namespace: Sequence[str] | str) -> str | None:
    """The route whose subgraph a streamed namespace (`route:<task id>`) lies in."""
    head = namespace if isinstance(namespace, str) else (namespace[0] if namespace else "")
    route = head.split(":", 1)[0]
    return route if route in ROUTE_NODES else None


def decided_route(node: str | None, update: Any) -> str | None:
    """The route an update of `node` decided, if it is the routing step's."""
    if node != _ROUTING_NODE or not isinstance(update, Mapping):
        return None
    return route_of(update)


def route_of(values: Mapping[str, Any]) -> str | None:
    """The route recorded in the manager's state (or a node's update of it)."""
    decision = values.get("decision")
    route = decision.get("route") if isinstance(decision, Mapping) else None
    return route if isinstance(route, str) else None


def outcome_of(values: Mapping[str, Any]) -> RunOutcome:
    """What the thread's state says of its latest run."""
    usage = values.get("usage")
    total = usage.get("total") if isinstance(usage, Mapping) else None
    tokens = (
        int(total.get("input_tokens", 0)) + int(total.get("output_tokens", 0))
        if isinstance(total, Mapping)
        else 0
    )
    error = values.get("error")
    failed = (str(error["code"]), str(error["message"])) if isinstance(error, Mapping) else None
    return RunOutcome(route=route_of(values), tokens=tokens, error=failed)


def partial_answer(route: str | None, message_id: str, text: str) -> PartialAnswer | None:
    """How to keep `text`, the start of route `route`'s answer, after the run stopped."""
    if route not in ROUTE_NODES or not text:
        return None
    message = AIMessage(text, id=message_id, response_metadata={"cancelled": True})
    error = {
        "code": ErrorCode.CANCELLED,
        "message": "The answer was stopped before it finished.",
        "retryable": True,
        "node": route,
    }
    return PartialAnswer(values={"messages": [message], "error": error}, as_node=route)
