"""The manager as an MCP tool: its schema, and a call run as any API run is.

A call becomes a LangGraph API run request (`RunCreate`) and starts through the engine's
one start path, so it is validated, counted against the caller's run and token limits,
recorded, logged and measured like a run from the SDK; its thread belongs to the key's
owner and is kept, so a later call may continue it by `thread_id`. The answer is the
final state's last message, with the route, thread and run as structured content.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graphs.interface import route_of
from nodes.errors import ErrorCode
from nodes.heuristics import Route
from server.engine.events import run_end
from server.guard.auth import Principal
from server.guard.refusals import Refused
from server.guard.validation import THREAD_ID_PATTERN, describe_invalid
from server.langgraph_api.assistants import GRAPH_ID
from server.langgraph_api.run_events import own_events, stream_start
from server.langgraph_api.runs import RunCreate, start_request
from server.mcp.progress import PROGRESS_MODES, Note, ProgressNarrator
from server.services import Services
from server.stores.run_records import RunRecord

TOOL_NAME = GRAPH_ID
"""`manager`: the name `langgraph dev` gives the tool of the same graph."""


class ManagerCall(BaseModel):
    """One request to the manager, with the choices a caller may make."""

    model_config = ConfigDict(extra="forbid", title="manager")

    # `messages`, one string, as `langgraph dev` offers the same graph's input: a client
    # set up for one server calls the other unchanged.
    messages: str = Field(min_length=1, description="The user message to send to the manager.")
    route: Route | None = Field(
        default=None,
        description="Force this route and skip the router; by default the manager chooses.",
    )
    refine: bool = Field(
        default=False, description="Creative route: run an editing pass over the draft."
    )
    thread_id: str | None = Field(
        default=None,
        pattern=THREAD_ID_PATTERN,
        description="Continue this conversation (one of yours, or a new id to start it "
        "under); by default a new one, whose id the result gives.",
    )


class ManagerAnswer(BaseModel):
    """The manager's answer, with the route that gave it and where to continue."""

    answer: str = Field(description="The answer's text.")
    route: str | None = Field(description="The route that answered: creative or analytical.")
    thread_id: str = Field(description="The conversation: pass it back to continue it.")
    run_id: str = Field(description="The run, as the runs API lists it.")


def manager_tool() -> types.Tool:
    """The tool's description, as `tools/list` gives it."""
    return types.Tool(
        name=TOOL_NAME,
        title="ALMA manager",
        description=(
            "Ask ALMA's manager agent. It routes the request to a creative answer "
            "(stories, poems, rewrites) or an analytical one (a plan, each step "
            "analysed, a synthesis) and returns the answer's text."
        ),
        input_schema=ManagerCall.model_json_schema(),
        output_schema=ManagerAnswer.model_json_schema(),
        annotations=types.ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )


Progress = Callable[[Note], Awaitable[None]]
"""Where a call's progress notes go: the MCP request's progress channel."""


async def call_manager(
    services: Services,
    principal: Principal,
    arguments: Mapping[str, Any] | None,
    progress: Progress | None,
) -> types.CallToolResult:
    """Run the manager for one tool call; its answer, or why there is none.

    A refusal (a bad argument, another owner's thread, a rate limit) and a run that
    fails are tool errors, which the calling model reads and can act on.
    """
    try:
        call = ManagerCall.model_validate(arguments or {})
    except ValidationError as exc:
        return _error(f"invalid arguments: {describe_invalid(exc)}")
    followed = progress is not None
    body = RunCreate(
        assistant_id=GRAPH_ID,
        input={"messages": [{"role": "user", "content": call.messages}]},
        # The run context's own fields: `route` and `refine`, unless left to defaults.
        context=call.model_dump(exclude={"messages", "thread_id"}, exclude_none=True),
        metadata={"source": "mcp"},
        stream_mode=list(PROGRESS_MODES) if followed else ["values"],
        stream_subgraphs=followed,
        multitask_strategy="enqueue",
        if_not_exists="create",
        on_completion="keep",
    )
    try:
        run = await services.starter.start(start_request(body, principal, call.thread_id))
    except Refused as exc:
        return _error(exc.message)
    # Its record as it started: the engine goes on updating its own, and following the
    # run starts from what it was then.
    record = dataclasses.replace(run.record)
    ended = False
    try:
        values, failure = await _follow(services, record, progress)
        ended = True
    finally:
        if not ended:
            # The client went (or the server is stopping the call): nobody will read
            # the answer, so the run stops rather than spend the caller's tokens.
            asyncio.get_running_loop().create_task(_cancel_quietly(services, record))
    if failure is not None:
        return _error(failure)
    answer = ManagerAnswer(
        answer=_answer_text(values),
        route=route_of(values),
        thread_id=record.thread_id,
        run_id=record.run_id,
    )
    return types.CallToolResult(
        content=[types.TextContent(text=answer.answer)],
        structured_content=answer.model_dump(),
    )


async def _follow(
    services: Services, record: RunRecord, progress: Progress | None
) -> tuple[Mapping[str, Any], str | None]:
    """Follow the run to its end: its final values, and why it failed if it did."""
    narrator = ProgressNarrator()
    values: Mapping[str, Any] = {}
    async for event in own_events(services, record, stream_start(record)):
        end = run_end(event)
        if end is not None:
            if end.errored:
                return values, f"{end.code or ErrorCode.INTERNAL}: {end.error}"
            if end.ending != "completed":
                return values, f"the run was stopped before it finished ({end.ending})"
            if progress is not None:
                await progress(narrator.finished())
            break
        params = event["params"]
        if params["event"] == "values" and isinstance(params["data"], Mapping):
            values = params["data"]
        elif progress is not None and (note := narrator.read(event)) is not None:
            await progress(note)
    return values, None


async def _cancel_quietly(services: Services, record: RunRecord) -> None:
    with contextlib.suppress(Refused):
        await services.runs.cancel(record.thread_id, record.run_id)


def _answer_text(values: Mapping[str, Any]) -> str:
    """The text of the final state's last message (the answer)."""
    messages = values.get("messages") or []
    if not messages or not isinstance(messages[-1], Mapping):
        return ""
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    # Content blocks: the text ones, in order.
    return "".join(
        str(block.get("text", ""))
        for block in content or []
        if isinstance(block, Mapping) and block.get("type") == "text"
    )


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)
