"""A LangGraph API run request, read into the engine's one start request.

The six run-creating routes (`/threads/{id}/runs`, `/runs`, each plain, `/stream` or
`/wait`) take the same body as LangGraph's SDK sends it; `start_request` turns it into
a `StartRequest`, as the agent protocol's `run.start` does its own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from langgraph.types import Durability
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from server.engine import StartRequest
from server.guard.auth import Principal
from server.guard.refusals import Refusal, Refused
from server.langgraph_api.assistants import resolve_assistant
from server.langgraph_api.run_config import RunOrigin
from server.langgraph_api.stream_modes import API_MODES
from server.langgraph_api.streaming import ApiStream

_Modes = str | list[str]


_ChannelWrite = Annotated[
    tuple[str, Any],
    # The same pair, described without `prefixItems`: Schemathesis cannot build bodies
    # for it inside an array of runs (`POST /runs/batch`).
    WithJsonSchema({"type": "array", "minItems": 2, "maxItems": 2, "items": {},
                    "description": "A `[channel, value]` pair."}),
]  # fmt: skip


class RunCommand(BaseModel):
    """LangGraph's `Command` as a run's input: resume an interrupt, update state, go to.

    Any other key would reach `Command(...)` inside the run and fail it there.
    """

    model_config = ConfigDict(extra="forbid")

    update: dict[str, Any] | list[_ChannelWrite] | None = None
    resume: Any = None
    goto: str | list[str] | None = None


class RunCreate(BaseModel):
    """A run, as LangGraph's SDK asks for one.

    Fields the SDK sends that ALMA has no use for are accepted and ignored:
    `feedback_keys`, `langsmith_tracer`. `checkpoint_during` is the older name of
    `durability`: true is `async`, false is `exit`.
    """

    model_config = ConfigDict(extra="ignore")

    assistant_id: str
    input: Any = None
    command: RunCommand | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    stream_mode: _Modes = Field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: list[str] | Literal["*"] | None = None
    interrupt_after: list[str] | Literal["*"] | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "enqueue"
    if_not_exists: Literal["reject", "create"] = "reject"
    durability: Durability | None = None
    checkpoint_during: bool | None = None
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] | None = None
    webhook: str | None = None
    after_seconds: float | None = None

    @field_validator("stream_mode")
    @classmethod
    def _known_modes(cls, value: _Modes) -> _Modes:
        modes = [value] if isinstance(value, str) else value
        unknown = sorted(set(modes) - API_MODES)
        if unknown:
            raise ValueError(
                f"unknown stream mode(s) {', '.join(unknown)}; use {', '.join(sorted(API_MODES))}"
            )
        return value

    @property
    def modes(self) -> tuple[str, ...]:
        """The stream modes, as a tuple."""
        return (self.stream_mode,) if isinstance(self.stream_mode, str) else tuple(self.stream_mode)


def start_request(
    body: RunCreate,
    principal: Principal,
    thread_id: str | None,
    *,
    modes: tuple[str, ...] | None = None,
    origin: RunOrigin | None = None,
) -> StartRequest:
    """`body` as the engine's start request, on `thread_id` (None: a new thread).

    `modes` overrides the body's stream modes (a `/wait` run needs only `values`);
    `origin` is the HTTP request that asks for the run.

    Raises:
        Refused: `INVALID` for an unknown assistant, or a delayed start, which this
            server does not offer. (A webhook is checked by the route, against policy.)
    """
    if resolve_assistant(body.assistant_id) is None:
        raise Refused(
            Refusal.INVALID,
            f"Invalid assistant: {body.assistant_id!r}. Must be either:\n"
            "- A valid assistant UUID, or\n- One of the registered graphs: manager",
        )
    if body.after_seconds:
        raise Refused(Refusal.INVALID, "after_seconds is not supported by this server")
    temporary = thread_id is None and body.on_completion != "keep"
    checkpoint = dict(body.checkpoint or {})
    if body.checkpoint_id:
        checkpoint["checkpoint_id"] = body.checkpoint_id
    api = ApiStream(
        modes=modes or body.modes,
        subgraphs=body.stream_subgraphs,
        interrupt_before=body.interrupt_before,
        interrupt_after=body.interrupt_after,
        origin=origin or RunOrigin(),
    )
    kwargs = body.model_dump(
        include={"input", "command", "context", "interrupt_before", "interrupt_after", "webhook"}
    )
    kwargs |= {
        "stream_mode": list(api.modes), "feedback_keys": None, "temporary": temporary,
        "subgraphs": body.stream_subgraphs, "resumable": True,
    }  # fmt: skip
    return StartRequest(
        owner=principal.owner, limit_key=principal.limit_key, thread_id=thread_id,
        assistant_id=body.assistant_id, input=body.input,
        command=body.command.model_dump(exclude_unset=True) if body.command else None,
        checkpoint=checkpoint or None, config=body.config, context=body.context,
        metadata=body.metadata, multitask_strategy=body.multitask_strategy,
        create_thread=body.if_not_exists == "create", temporary=temporary, stream=api,
        record_kwargs=kwargs, durability=durability_of(body),
    )  # fmt: skip


def durability_of(body: RunCreate) -> Durability:
    """The durability a run asks for, under either of its names.

    Unasked, `async`, as on LangGraph's server: its clients (Studio's time travel, the
    SDK's `getHistory`) expect a checkpoint per step.
    """
    if body.durability is not None:
        return body.durability
    if body.checkpoint_during is not None:
        return "async" if body.checkpoint_during else "exit"
    return "async"
