"""Token usage accounting: per node and per run, merged by a state reducer."""

from __future__ import annotations

from langchain_core.messages import AIMessage
from typing_extensions import TypedDict


class TokenUsage(TypedDict):
    """Tokens billed for one or more model calls."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    calls: int
    """How many model calls the figures add up."""


class RunUsage(TypedDict):
    """Usage of one run: the total, and each node's share."""

    total: TokenUsage
    nodes: dict[str, TokenUsage]


def empty_usage() -> TokenUsage:
    """Usage of no call at all."""
    return TokenUsage(input_tokens=0, output_tokens=0, total_tokens=0, calls=0)


def _plus(left: TokenUsage, right: TokenUsage) -> TokenUsage:
    return TokenUsage(
        input_tokens=left["input_tokens"] + right["input_tokens"],
        output_tokens=left["output_tokens"] + right["output_tokens"],
        total_tokens=left["total_tokens"] + right["total_tokens"],
        calls=left["calls"] + right["calls"],
    )


def add_usage(left: RunUsage | None, right: RunUsage | None) -> RunUsage:
    """State reducer: add `right`'s per-node usage into `left` and recompute the total."""
    nodes = dict(left["nodes"]) if left else {}
    for node, usage in (right["nodes"] if right else {}).items():
        nodes[node] = _plus(nodes.get(node, empty_usage()), usage)
    total = empty_usage()
    for usage in nodes.values():
        total = _plus(total, usage)
    return RunUsage(total=total, nodes=nodes)


def call_usage(
    node: str, message: AIMessage, *, estimated_input: int, estimated_output: int
) -> RunUsage:
    """Usage of one model call made by `node`.

    Providers report usage in the message's `usage_metadata`; some OpenAI-compatible
    servers do not, and then the caller's tiktoken estimates stand in.
    """
    reported = message.usage_metadata
    if reported:
        usage = TokenUsage(
            input_tokens=reported["input_tokens"],
            output_tokens=reported["output_tokens"],
            total_tokens=reported["total_tokens"],
            calls=1,
        )
    else:
        usage = TokenUsage(
            input_tokens=estimated_input,
            output_tokens=estimated_output,
            total_tokens=estimated_input + estimated_output,
            calls=1,
        )
    return RunUsage(total=usage, nodes={node: usage})
