"""Nodes of the creative route: compose a piece, then optionally refine it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AnyMessage, HumanMessage
from typing_extensions import TypedDict

from nodes.calls import Conversation, call_model
from nodes.memory import WithMemories, memories_of, with_memories
from nodes.models import ModelProvider
from nodes.prompts import EDITOR_REQUEST, EDITOR_SYSTEM, WRITER_SYSTEM
from nodes.router import latest_request
from nodes.run_context import WithOptions, options_of


class ComposeInput(Conversation, WithOptions, WithMemories):
    """What the compose step reads."""


class DraftInput(TypedDict):
    """What the refine step reads."""

    messages: Sequence[AnyMessage]
    draft: str


async def compose(state: ComposeInput, *, provider: ModelProvider) -> dict[str, Any]:
    """Write the piece; it is the answer unless a refine pass follows."""
    reply = await call_model(
        provider,
        "creative",
        node="compose",
        system=with_memories(WRITER_SYSTEM, memories_of(state)),
        conversation=state["messages"],
    )
    if options_of(state)["refine"]:
        return {"draft": reply.message.text, "usage": reply.usage}
    return {"messages": [reply.message], "usage": reply.usage}


async def route_after_compose(state: ComposeInput) -> Literal["refine", "__end__"]:
    """Refine the draft only when the run asked for it."""
    return "refine" if options_of(state)["refine"] else "__end__"


async def refine(state: DraftInput, *, provider: ModelProvider) -> dict[str, Any]:
    """Edit the draft for rhythm and clarity; the edited piece is the answer."""
    request = EDITOR_REQUEST.format(request=latest_request(state["messages"]), draft=state["draft"])
    reply = await call_model(
        provider,
        "creative",
        node="refine",
        system=EDITOR_SYSTEM,
        # The conversation too: the piece may have to use what the user said before.
        conversation=[*state["messages"], HumanMessage(request)],
    )
    return {"messages": [reply.message], "usage": reply.usage}
