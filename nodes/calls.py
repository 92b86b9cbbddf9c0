"""One model call as every node makes it: fit the prompt to the role's budget, call, count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel
from typing_extensions import TypedDict

from nodes.context import fit_to_budget
from nodes.errors import ModelOutputError, remember_node
from nodes.models import ModelProvider, Role
from nodes.usage import RunUsage, call_usage


class Conversation(TypedDict):
    """What a node that answers the conversation reads from the state."""

    messages: Sequence[AnyMessage]


@dataclass(frozen=True, slots=True)
class ModelReply:
    """A model's answer to one call, with what it cost."""

    message: AIMessage
    usage: RunUsage
    parsed: BaseModel | None = None
    """The structured answer, when a schema was asked for."""
    dropped: int = 0
    """Oldest conversation messages left out to fit the budget."""


async def call_model(
    provider: ModelProvider,
    role: Role,
    *,
    node: str,
    system: str,
    conversation: Sequence[AnyMessage],
    schema: type[BaseModel] | None = None,
) -> ModelReply:
    """Call `role`'s model with `system` and the newest of `conversation` that fit.

    Args:
        provider: Where the role's model and budget come from.
        role: Which model to use.
        node: The calling node, under which usage is recorded.
        system: The system prompt.
        conversation: The messages after the system prompt, oldest first.
        schema: Ask for a structured answer of this shape (through a tool call).

    Returns:
        The answer, its usage, and the parsed object when `schema` was given.

    Raises:
        ContextOverflowError: the newest message alone does not fit the budget.
        ModelOutputError: the structured answer did not match `schema`.
    """
    prompt = fit_to_budget(
        SystemMessage(system),
        conversation,
        budget=provider.role(role).prompt_budget,
        counter=provider.counter,
    )
    model = provider.chat_model(role)
    parsed: BaseModel | None = None
    # Callbacks (metrics, traces) learn which role a call served from its metadata.
    config: RunnableConfig = {"metadata": {"alma_role": role}}
    try:
        if schema is None:
            message = await model.ainvoke(prompt.messages, config)
        else:
            structured = model.with_structured_output(
                schema, method="function_calling", include_raw=True
            )
            result: dict[str, Any] = await structured.ainvoke(prompt.messages, config)  # type: ignore[assignment]
            message, parsed = result["raw"], result["parsed"]
            if parsed is None:
                raise ModelOutputError(f"expected a {schema.__name__}: {result['parsing_error']}")
    except Exception as exc:
        remember_node(exc, node)
        raise
    if not isinstance(message, AIMessage):
        raise ModelOutputError(f"expected an AI message, got {type(message).__name__}")
    usage = call_usage(
        node,
        message,
        estimated_input=prompt.tokens,
        estimated_output=provider.counter.count_text(message.text),
    )
    return ModelReply(message=message, usage=usage, parsed=parsed, dropped=prompt.dropped)
