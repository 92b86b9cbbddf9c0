"""The LangChain agent streaming protocol as ALMA speaks it: commands, results, filters.

Shapes follow the `langchain-protocol` package (the types `langgraph-sdk`'s thread
streams use); this module holds the pydantic models that validate what clients send,
and the helpers that build what the server answers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ProtocolCode = Literal[
    "invalid_argument",
    "unknown_command",
    "unknown_error",
    "no_such_run",
    "no_such_subscription",
    "no_such_namespace",
    "no_such_interrupt",
    "no_such_checkpoint",
    "permission_denied",
    "not_supported",
]

CHANNELS = frozenset(
    {"values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks",
     "custom", "api"}
)  # fmt: skip
"""Channels a subscription may name, besides `custom:<name>`."""

Namespace = list[str]


class ProtocolError(Exception):
    """A command failed in a way the client should hear about, with a protocol code."""

    def __init__(self, code: ProtocolCode, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code: ProtocolCode = code
        self.message = message
        self.details = details
        """Extra fields for the answer (e.g. `retry_after` of a rate limit)."""


class Command(BaseModel):
    """A command envelope: `{"id": n, "method": "...", "params": {...}}`."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=0)
    method: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class SubscribeParams(BaseModel):
    """Which events a subscription wants: channels, namespace prefixes, depth, cursor."""

    model_config = ConfigDict(extra="forbid")

    channels: list[str] = Field(min_length=1)
    namespaces: list[Namespace] | None = None
    depth: int | None = Field(default=None, ge=0)
    since: int | None = Field(default=None, ge=0)
    """Replay events with a greater `seq` before going live."""

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, channels: list[str]) -> list[str]:
        unknown = [c for c in channels if c not in CHANNELS and not c.startswith("custom:")]
        if unknown:
            raise ValueError(
                f"unknown channel(s) {', '.join(unknown)}; use "
                f"{', '.join(sorted(CHANNELS))} or custom:<name>"
            )
        return channels


class RunStartParams(BaseModel):
    """`run.start`: which graph, what input, and ALMA's run options."""

    model_config = ConfigDict(extra="forbid")

    assistant_id: str = Field(min_length=1)
    input: Any = None
    config: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    """Run context (router, route, refine, max_plan_steps); `config.configurable` works too."""
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "reject"
    """What to do when the thread is busy with another run (`rollback` also deletes
    what the interrupted run wrote)."""
    on_disconnect: Literal["continue", "cancel"] = "continue"
    """Whether the run is cancelled when the connection that started it goes away."""
    checkpoint_id: str | None = Field(default=None, min_length=1)
    """Fork the thread: run from this earlier checkpoint instead of the latest (an ALMA
    extension, as LangGraph's run create has it; `config.configurable.checkpoint_id`
    works too)."""

    def fork_point(self) -> dict[str, Any] | None:
        """The checkpoint to run from, as the engine's start request names it; None: latest."""
        configurable = self.config.get("configurable") or {}
        checkpoint_id = self.checkpoint_id or configurable.get("checkpoint_id")
        return {"checkpoint_id": checkpoint_id} if checkpoint_id else None


class InputResponse(BaseModel):
    """One answer of `input.respond`: the interrupt it answers, and the answer."""

    namespace: Namespace = Field(default_factory=list)
    interrupt_id: str = Field(min_length=1)
    response: Any = None


class InputRespondParams(BaseModel):
    """`input.respond`: answer the interrupts a run stopped at, which resumes the thread.

    One answer (`interrupt_id`, `response`) or several (`responses`), as the protocol
    has it; `update` and `goto` go into the same `Command` as the resume.
    """

    model_config = ConfigDict(extra="forbid")

    namespace: Namespace = Field(default_factory=list)
    interrupt_id: str | None = Field(default=None, min_length=1)
    response: Any = None
    responses: list[InputResponse] | None = Field(default=None, min_length=1)
    update: dict[str, Any] | None = None
    goto: str | list[str] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    strict_resume: bool = False
    """Sent by the JavaScript SDK; every resume here is checked against the thread."""

    @model_validator(mode="after")
    def _one_or_many(self) -> InputRespondParams:
        if (self.interrupt_id is None) == (self.responses is None):
            raise ValueError("give either interrupt_id (with response) or responses")
        return self

    def answers(self) -> dict[str, Any]:
        """Each answered interrupt's id, with its answer: LangGraph's resume map."""
        if self.responses is not None:
            return {entry.interrupt_id: entry.response for entry in self.responses}
        assert self.interrupt_id is not None
        return {self.interrupt_id: self.response}


class RunCancelParams(BaseModel):
    """`run.cancel` (an ALMA extension): stop a run of this thread."""

    run_id: str = Field(min_length=1)


class UnsubscribeParams(BaseModel):
    """`subscription.unsubscribe`."""

    subscription_id: str


class ReconnectParams(BaseModel):
    """`subscription.reconnect`: resume after the last event the client processed."""

    model_config = ConfigDict(extra="forbid")

    run_id: str | None = None
    last_event_id: str | None = None


class StateGetParams(BaseModel):
    """`state.get`."""

    model_config = ConfigDict(extra="forbid")

    namespace: Namespace = Field(default_factory=list)
    keys: list[str] | None = None


class ListCheckpointsParams(BaseModel):
    """`state.listCheckpoints`."""

    model_config = ConfigDict(extra="forbid")

    namespace: Namespace = Field(default_factory=list)
    limit: int = Field(default=50, ge=1, le=1000)
    before: str | None = None


class CommandAnswer(BaseModel):
    """The answer to a command: `success` with a result, or `error` with a code and message."""

    type: Literal["success", "error"]
    id: int | None
    result: dict[str, Any] | None = None
    error: str | None = None
    message: str | None = None
    retry_after: int | None = None
    """Seconds to wait, when a rate limit refused the command."""


def success(command_id: int, result: dict[str, Any]) -> dict[str, Any]:
    """The answer to a command that worked."""
    return {"type": "success", "id": command_id, "result": result}


def failure(
    command_id: int | None, code: ProtocolCode, message: str, **details: Any
) -> dict[str, Any]:
    """The answer to a command that failed."""
    return {"type": "error", "id": command_id, "error": code, "message": message, **details}


# -- subscription matching (the same rules the SDK applies on its side) -----------------


def _segment(segment: str) -> str:
    return segment.split(":", 1)[0]


def _prefix_matches(namespace: Namespace, prefix: Namespace) -> bool:
    if len(prefix) > len(namespace):
        return False
    for wanted, candidate in zip(prefix, namespace, strict=False):
        if candidate == wanted or (":" not in wanted and _segment(candidate) == wanted):
            continue
        return False
    return True


def channel_of(event: dict[str, Any]) -> str | None:
    """The subscription channel an event belongs to."""
    method = event.get("method")
    if method == "custom":
        data = event["params"].get("data")
        name = data.get("name") if isinstance(data, dict) else None
        return f"custom:{name}" if isinstance(name, str) else "custom"
    if method == "input.requested":
        return "input"
    return method if method in CHANNELS else None


def matches(event: dict[str, Any], subscription: SubscribeParams) -> bool:
    """Whether a subscription wants an event: channel, namespace prefix, depth."""
    channel = channel_of(event)
    if channel is None:
        return False
    if channel not in subscription.channels and not (
        channel.startswith("custom:") and "custom" in subscription.channels
    ):
        return False
    if not subscription.namespaces:
        return True
    namespace = event["params"].get("namespace", [])
    for prefix in subscription.namespaces:
        if _prefix_matches(namespace, prefix) and (
            subscription.depth is None or len(namespace) - len(prefix) <= subscription.depth
        ):
            return True
    return False
