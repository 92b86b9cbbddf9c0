"""Errors raised inside the graph, each with a stable code and whether a retry may help.

The graph records the last failure in its state as a `RunError`; the server (a later
layer) maps the same codes onto HTTP statuses and protocol error codes.
"""

from __future__ import annotations

import logging
from enum import StrEnum

import httpx
import openai
from langgraph.errors import NodeError, NodeTimeoutError
from langgraph.graph import END
from langgraph.types import Command
from redis.exceptions import RedisError
from typing_extensions import TypedDict

logger = logging.getLogger("alma.nodes")


class ErrorCode(StrEnum):
    """Stable codes of a failed run, the only ones a client may meet and branch on.

    Most come from inside the graph; the service adds the last three for runs it
    stopped (cancelled), lost (worker_lost: its process died) or could not store.
    """

    PROVIDER_TIMEOUT = "provider_timeout"
    PROVIDER_RATE_LIMITED = "provider_rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_REJECTED = "provider_rejected"
    INVALID_MODEL_OUTPUT = "invalid_model_output"
    CONTEXT_OVERFLOW = "context_overflow"
    INTERNAL = "internal"
    CANCELLED = "cancelled"
    WORKER_LOST = "worker_lost"
    STORAGE_UNAVAILABLE = "storage_unavailable"


class RunError(TypedDict):
    """A failure as recorded in the graph state and shown to a client."""

    code: str
    """One of `ErrorCode`."""
    message: str
    """What went wrong, in words a person can act on."""
    retryable: bool
    """Whether sending the same request again may succeed."""
    node: str
    """The node that failed."""


class AlmaError(Exception):
    """Base of ALMA's own exceptions: a code, a message, and whether a retry may help."""

    code: ErrorCode = ErrorCode.INTERNAL
    retryable: bool = False


class ProviderError(AlmaError):
    """The model provider answered with an error."""

    code = ErrorCode.PROVIDER_UNAVAILABLE
    retryable = True


class ProviderRateLimitedError(ProviderError):
    """The provider refused the call for now (HTTP 429)."""

    code = ErrorCode.PROVIDER_RATE_LIMITED


class ProviderServerError(ProviderError):
    """The provider failed on its side (HTTP 5xx)."""


class ProviderTimeoutError(ProviderError):
    """The provider did not answer in time."""

    code = ErrorCode.PROVIDER_TIMEOUT


class ModelOutputError(AlmaError):
    """The model's answer did not have the shape asked for; another sample may."""

    code = ErrorCode.INVALID_MODEL_OUTPUT
    retryable = True


class ContextOverflowError(AlmaError):
    """The newest message alone does not fit the model's context budget."""

    code = ErrorCode.CONTEXT_OVERFLOW


_TRANSIENT_OPENAI = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
)


def is_transient(exc: Exception) -> bool:
    """Tell whether a failed model call is worth another attempt.

    Used as the `retry_on` of every model-calling node's `RetryPolicy`.
    """
    if isinstance(exc, AlmaError):
        return exc.retryable
    if isinstance(exc, NodeTimeoutError | TimeoutError | httpx.TransportError):
        return True
    if isinstance(exc, _TRANSIENT_OPENAI):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def _classify(exc: BaseException) -> tuple[ErrorCode, bool]:
    if isinstance(exc, AlmaError):
        return exc.code, exc.retryable
    if isinstance(exc, NodeTimeoutError | TimeoutError | openai.APITimeoutError):
        return ErrorCode.PROVIDER_TIMEOUT, True
    if isinstance(exc, openai.RateLimitError):
        return ErrorCode.PROVIDER_RATE_LIMITED, True
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return ErrorCode.PROVIDER_UNAVAILABLE, True
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return ErrorCode.PROVIDER_UNAVAILABLE, True
        return ErrorCode.PROVIDER_REJECTED, False
    if isinstance(exc, RedisError):
        # The conversation store failed under a subgraph (its checkpoints): as the
        # service reports a run that lost its storage, and worth trying again.
        return ErrorCode.STORAGE_UNAVAILABLE, True
    return ErrorCode.INTERNAL, False


_MESSAGES = {
    ErrorCode.PROVIDER_TIMEOUT: "The model provider did not answer in time",
    ErrorCode.PROVIDER_RATE_LIMITED: "The model provider is rate-limiting requests",
    ErrorCode.PROVIDER_UNAVAILABLE: "The model provider failed to answer",
    ErrorCode.PROVIDER_REJECTED: "The model provider rejected the request",
    ErrorCode.INVALID_MODEL_OUTPUT: "The model's answer was not in the expected form",
    ErrorCode.CONTEXT_OVERFLOW: "The message is too long for the model's context",
    ErrorCode.STORAGE_UNAVAILABLE: "The conversation storage failed",
    ErrorCode.INTERNAL: "An internal error stopped the answer",
}


_NODE_ATTRIBUTE = "alma_node"


def remember_node(exc: BaseException, node: str) -> None:
    """Note on an exception which node raised it, before it leaves a subgraph."""
    if not hasattr(exc, _NODE_ATTRIBUTE):
        setattr(exc, _NODE_ATTRIBUTE, node)


def failed_node(exc: BaseException, default: str) -> str:
    """The innermost node an exception came from, else `default`."""
    if isinstance(exc, NodeTimeoutError):
        return exc.node
    node = getattr(exc, _NODE_ATTRIBUTE, default)
    return node if isinstance(node, str) else default


def describe_failure(exc: BaseException, *, node: str) -> RunError:
    """Turn an exception that ended a node into the error recorded in the state.

    `node` is where it was caught; the innermost node that raised it is named when known.
    """
    node = failed_node(exc, node)
    code, retryable = _classify(exc)
    detail = str(exc).strip() or type(exc).__name__
    message = f"{_MESSAGES[code]} (in {node}): {detail}"
    if retryable:
        message += " — retries exhausted; try again shortly."
    return RunError(code=code.value, message=message, retryable=retryable, node=node)


async def end_with_error(state: object, error: NodeError) -> Command[str]:
    """Error handler for a route's subgraph: once retries are exhausted, record and stop.

    The run ends normally with `error` set in its state, so callers see a clear failure
    instead of an exception or a hang.
    """
    failure = describe_failure(error.error, node=error.node)
    # The exception itself (its chain included) goes to the error log; the run's
    # caller gets the short message.
    logger.error(
        "%s", failure["message"], exc_info=error.error,
        extra={"error_code": failure["code"], "node": failure["node"]},
    )  # fmt: skip
    return Command(update={"error": failure}, goto=END)
