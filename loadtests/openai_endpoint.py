"""An OpenAI-compatible chat completions server that answers with ALMA's simulated model.

Point `ChatOpenAI(base_url=...)` (or any OpenAI client) at it to drive the real provider
path — HTTP, SSE streaming, usage, tool calls, structured output, 429/500/timeouts —
with no network and no cost. Replies come from `nodes.simulated_replies.simulate_reply` and are
counted with `nodes.context.TokenCounter`, so they match the in-process simulated model.

Run it with `python -m loadtests.openai_endpoint --profile realistic --fault-rate 0.05`;
tests and load runs steer faults and read counters through `/_control/*`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from langchain_core.messages import BaseMessage
from pydantic import BaseModel, ConfigDict, Field

from loadtests.openai_wire import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    ErrorBody,
    ErrorDetail,
    FinishReason,
    FunctionCall,
    FunctionCallDelta,
    ModelCard,
    ModelList,
    NamedToolChoice,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from nodes.context import TokenCounter
from nodes.simulated import FAULTS, Fault
from nodes.simulated_replies import simulate_reply

__all__ = [
    "FAULTS",
    "PROFILES",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "ChatSimulator",
    "EndpointStats",
    "Fault",
    "FaultSettings",
    "LatencyProfile",
    "Outcome",
    "Pace",
    "build_parser",
    "create_app",
    "main",
]

Outcome = Literal["ok", "rate_limit", "server_error", "timeout"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "rate_limit", "server_error", "timeout")
DEFAULT_MODELS: tuple[str, ...] = ("sim",)


# --- Latency, faults, counters -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pace:
    """The latency drawn for one request."""

    ttft: float
    """Seconds before the first token."""
    tokens_per_second: float
    """Rate of the following tokens; 0 sends them all at once."""

    @property
    def delay(self) -> float:
        """Seconds between two tokens."""
        return 1 / self.tokens_per_second if self.tokens_per_second > 0 else 0.0

    def duration(self, tokens: int) -> float:
        """Seconds until the last of `tokens` tokens is out."""
        return self.ttft + max(tokens - 1, 0) * self.delay


def _lognormal(rng: random.Random, median: float, spread: float) -> float:
    if median <= 0:
        return 0.0
    return median * math.exp(rng.gauss(0.0, spread)) if spread > 0 else median


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyProfile:
    """How fast the simulated provider answers: lognormal around medians, per request."""

    name: str
    """Shown by `/healthz` and the CLI."""
    ttft_median: float = 0.0
    """Median seconds to the first token."""
    ttft_spread: float = 0.0
    """Sigma of the lognormal the time to first token is drawn from."""
    tokens_per_second_median: float = 0.0
    """Median tokens per second; 0 means no pacing."""
    tokens_per_second_spread: float = 0.0
    """Sigma of the lognormal the token rate is drawn from."""

    def draw(self, rng: random.Random) -> Pace:
        """Draw the pace of one request."""
        return Pace(
            ttft=_lognormal(rng, self.ttft_median, self.ttft_spread),
            tokens_per_second=_lognormal(
                rng, self.tokens_per_second_median, self.tokens_per_second_spread
            ),
        )


PROFILES: Mapping[str, LatencyProfile] = MappingProxyType(
    {
        "instant": LatencyProfile(name="instant"),
        "fast": LatencyProfile(
            name="fast",
            ttft_median=0.05,
            ttft_spread=0.3,
            tokens_per_second_median=400.0,
            tokens_per_second_spread=0.2,
        ),
        "realistic": LatencyProfile(
            name="realistic",
            ttft_median=0.4,
            ttft_spread=0.5,
            tokens_per_second_median=50.0,
            tokens_per_second_spread=0.3,
        ),
    }
)
"""The named latency profiles: `instant` for tests, `fast`, and `realistic`."""


class FaultSettings(BaseModel):
    """Which requests fail and how; also the body of `POST /_control/faults`."""

    model_config = ConfigDict(extra="forbid")

    script: list[Fault | None] = Field(default_factory=list)
    """Faults for the next requests, one each, in order; null lets a request through."""
    rate: float = Field(default=0.0, ge=0, le=1)
    """Chance that a request fails once the script is used up."""
    kinds: list[Fault] = Field(default_factory=lambda: list(FAULTS), min_length=1)
    """The faults drawn from, with equal chance, when a request fails by `rate`."""
    retry_after: float = Field(default=1.0, ge=0)
    """Seconds a 429 asks the client to wait (`Retry-After`, `retry-after-ms`)."""
    stall_seconds: float = Field(default=3600.0, gt=0)
    """How long a `timeout` fault stalls if the client never gives up."""


class EndpointStats(BaseModel):
    """Counters of the requests served since start or the last reset.

    Only requests that were valid are counted.
    """

    requests: int = 0
    outcomes: dict[Outcome, int] = Field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    streamed: int = 0
    non_streamed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class InvalidRequestError(Exception):
    """The request is well-formed but cannot be answered (HTTP 400)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class PlannedReply:
    """A reply worked out in full before it is sent, whole or token by token."""

    pieces: tuple[str, ...]
    """The content, token by token; empty for a tool call."""
    tool_call: ToolCall | None
    """The tool call, when the reply is one."""
    argument_pieces: tuple[str, ...]
    """The tool call's arguments, token by token."""
    finish_reason: FinishReason
    usage: Usage

    @property
    def tokens(self) -> int:
        """Number of streamed pieces, which sets how long the reply takes."""
        return len(self.pieces) + len(self.argument_pieces)


def _as_tool(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


class ChatSimulator:
    """The simulated provider behind the routes: faults, pace, replies and counters.

    It holds all mutable state of one app, so two apps never share anything.
    """

    def __init__(
        self,
        *,
        profile: LatencyProfile,
        faults: FaultSettings,
        seed: int | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        counter: TokenCounter | None = None,
    ) -> None:
        self.profile = profile
        self.models = tuple(models)
        self.seed = seed
        self.counter = counter or TokenCounter()
        self.stats = EndpointStats()
        self._random = random.Random(seed)
        self._faults = faults.model_copy(update={"script": []}, deep=True)
        self._script: deque[Fault | None] = deque(faults.script)

    @property
    def faults(self) -> FaultSettings:
        """The fault settings, with what is left of the script."""
        return self._faults.model_copy(update={"script": list(self._script)}, deep=True)

    def set_faults(self, faults: FaultSettings) -> None:
        """Replace the fault settings, script included."""
        self._faults = faults.model_copy(update={"script": []}, deep=True)
        self._script = deque(faults.script)

    def reset(self) -> None:
        """Clear the counters and the script, and reseed, as if just started."""
        self.stats = EndpointStats()
        self._script.clear()
        self._random = random.Random(self.seed)

    def next_fault(self) -> Fault | None:
        """The fault of the next request: from the script first, then by rate."""
        if self._script:
            return self._script.popleft()
        if self._faults.rate and self._random.random() < self._faults.rate:
            return self._random.choice(self._faults.kinds)
        return None

    def draw_pace(self) -> Pace:
        """The latency of the next request."""
        return self.profile.draw(self._random)

    def record(self, outcome: Outcome, *, streamed: bool, usage: Usage | None = None) -> None:
        """Count one request and the tokens it was served."""
        self.stats.requests += 1
        self.stats.outcomes[outcome] += 1
        if streamed:
            self.stats.streamed += 1
        else:
            self.stats.non_streamed += 1
        if usage is not None:
            self.stats.prompt_tokens += usage.prompt_tokens
            self.stats.completion_tokens += usage.completion_tokens

    def plan(self, request: ChatCompletionRequest) -> PlannedReply:
        """Work out the whole reply to `request`.

        Raises:
            InvalidRequestError: when `tool_choice` names a tool that was not given, or
                asks for a tool call with no tools.
        """
        messages = request.as_langchain()
        prompt_tokens = self.counter.count_messages(messages)
        tools = self._tools_to_call(request)
        reply = simulate_reply(messages, tools) if tools else None
        if reply is not None and reply.tool_name is not None:
            arguments = json.dumps(reply.tool_args)
            call = ToolCall(
                id=f"call_{secrets.token_hex(12)}",
                function=FunctionCall(name=reply.tool_name, arguments=arguments),
            )
            completion_tokens = self.counter.count_text(arguments)
            return PlannedReply(
                pieces=(),
                tool_call=call,
                argument_pieces=tuple(self.counter.pieces(arguments)),
                finish_reason="tool_calls",
                usage=Usage(
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    total_tokens=prompt_tokens + completion_tokens,
                ),
            )
        pieces = list(self.counter.pieces(self._content(request, messages)))
        finish_reason: FinishReason = "stop"
        limit = request.token_limit
        if limit is not None and len(pieces) > limit:
            pieces, finish_reason = pieces[:limit], "length"
        completion_tokens = self.counter.count_text("".join(pieces))
        return PlannedReply(
            pieces=tuple(pieces),
            tool_call=None,
            argument_pieces=(),
            finish_reason=finish_reason,
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    def _tools_to_call(self, request: ChatCompletionRequest) -> list[dict[str, Any]]:
        # simulate_reply calls the first tool it is given, so a named choice goes first.
        choice = request.tool_choice
        tools = [tool.model_dump(exclude_none=True) for tool in request.tools or []]
        if choice == "none":
            return []
        if choice == "required" and not tools:
            raise InvalidRequestError("tool_choice 'required' needs tools", param="tool_choice")
        if isinstance(choice, NamedToolChoice):
            named = [tool for tool in tools if tool["function"]["name"] == choice.function.name]
            if not named:
                raise InvalidRequestError(
                    f"tool_choice names {choice.function.name!r}, which is not in tools",
                    param="tool_choice",
                )
            return named
        return tools

    def _content(self, request: ChatCompletionRequest, messages: list[BaseMessage]) -> str:
        response_format = request.response_format
        if response_format is not None and response_format.json_schema is not None:
            # A schema is filled the way a tool's parameters are: same arguments, as content.
            schema = response_format.json_schema
            reply = simulate_reply(messages, [_as_tool(schema.name, schema.schema_)])
            return json.dumps(reply.tool_args)
        text = simulate_reply(messages).text
        if response_format is not None and response_format.type == "json_object":
            return json.dumps({"response": text})
        return text


# --- Transport ---------------------------------------------------------------------------

_FAULT_ERRORS: Mapping[Fault, tuple[int, ErrorDetail]] = MappingProxyType(
    {
        "rate_limit": (
            429,
            ErrorDetail(
                message="Rate limit reached for the simulated model. Please try again later.",
                type="requests",
                code="rate_limit_exceeded",
            ),
        ),
        "server_error": (
            500,
            ErrorDetail(
                message="The server had an error while processing your request (simulated).",
                type="server_error",
                code="server_error",
            ),
        ),
        "timeout": (
            504,
            ErrorDetail(
                message="The simulated provider stalled and gave up waiting for the client.",
                type="server_error",
                code="timeout",
            ),
        ),
    }
)


def _error_response(
    status: int, detail: ErrorDetail, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        ErrorBody(error=detail).model_dump(mode="json"), status_code=status, headers=headers
    )


def _fault_response(fault: Fault, faults: FaultSettings) -> JSONResponse:
    status, detail = _FAULT_ERRORS[fault]
    headers = None
    if fault == "rate_limit":
        headers = {
            "retry-after": str(math.ceil(faults.retry_after)),
            "retry-after-ms": str(round(faults.retry_after * 1000)),
        }
    return _error_response(status, detail, headers)


async def _until_disconnected(request: Request) -> None:
    # The body has been read, so the next ASGI message is the client going away.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _stall(request: Request, seconds: float) -> None:
    try:
        await asyncio.wait_for(_until_disconnected(request), timeout=seconds)
    except TimeoutError:
        pass


async def _paced(pieces: Sequence[str], pace: Pace) -> AsyncIterator[str]:
    # Sleeping to a schedule rather than a fixed gap keeps the rate true under load.
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, piece in enumerate(pieces):
        if pace.delay:
            wait = start + index * pace.delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        yield piece


def _sse(chunk: ChatCompletionChunk) -> str:
    return f"data: {chunk.model_dump_json(exclude_none=True)}\n\n"


async def _stream(
    reply: PlannedReply, pace: Pace, *, model: str, include_usage: bool
) -> AsyncIterator[str]:
    completion_id, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())

    def chunk(delta: Delta, finish_reason: FinishReason | None = None) -> str:
        choice = ChunkChoice(delta=delta, finish_reason=finish_reason)
        return _sse(
            ChatCompletionChunk(id=completion_id, created=created, model=model, choices=[choice])
        )

    if pace.ttft:
        await asyncio.sleep(pace.ttft)
    call = reply.tool_call
    if call is None:
        yield chunk(Delta(role="assistant", content=""))
        async for piece in _paced(reply.pieces, pace):
            yield chunk(Delta(content=piece))
    else:
        opening = ToolCallDelta(
            id=call.id,
            type="function",
            function=FunctionCallDelta(name=call.function.name, arguments=""),
        )
        yield chunk(Delta(role="assistant", tool_calls=[opening]))
        async for piece in _paced(reply.argument_pieces, pace):
            argument = ToolCallDelta(function=FunctionCallDelta(arguments=piece))
            yield chunk(Delta(tool_calls=[argument]))
    yield chunk(Delta(), reply.finish_reason)
    if include_usage:
        usage_chunk = ChatCompletionChunk(
            id=completion_id, created=created, model=model, choices=[], usage=reply.usage
        )
        yield _sse(usage_chunk)
    yield "data: [DONE]\n\n"


def _completion(reply: PlannedReply, *, model: str) -> ChatCompletion:
    if reply.tool_call is not None:
        message = AssistantMessage(content=None, tool_calls=[reply.tool_call])
    else:
        message = AssistantMessage(content="".join(reply.pieces))
    return ChatCompletion(
        id=f"chatcmpl-{secrets.token_hex(12)}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message=message, finish_reason=reply.finish_reason)],
        usage=reply.usage,
    )


def create_app(
    *,
    profile: LatencyProfile,
    faults: FaultSettings,
    seed: int | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
) -> FastAPI:
    """Build the simulated OpenAI endpoint.

    Args:
        profile: The latency each request is drawn from.
        faults: The initial fault settings; `POST /_control/faults` replaces them.
        seed: Seeds the draws of faults and latency, for repeatable load runs.
        models: The model names `GET /v1/models` lists; any name is answered.

    Returns:
        The app, with all its state inside it.
    """
    simulator = ChatSimulator(profile=profile, faults=faults, seed=seed, models=models)
    app = FastAPI(title="ALMA simulated OpenAI endpoint", docs_url=None, redoc_url=None)
    app.state.simulator = simulator

    @app.exception_handler(RequestValidationError)
    async def reject_invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        detail = ErrorDetail(
            message=str(first.get("msg", "invalid request")),
            type="invalid_request_error",
            param=param,
            code="invalid_request",
        )
        return _error_response(400, detail)

    @app.exception_handler(InvalidRequestError)
    async def reject_unanswerable(_: Request, exc: InvalidRequestError) -> JSONResponse:
        detail = ErrorDetail(
            message=str(exc), type="invalid_request_error", param=exc.param, code="invalid_request"
        )
        return _error_response(400, detail)

    @app.post("/v1/chat/completions", response_model=None)
    async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
        reply = simulator.plan(body)
        fault = simulator.next_fault()
        if fault is not None:
            simulator.record(fault, streamed=body.stream)
            if fault == "timeout":
                await _stall(request, simulator.faults.stall_seconds)
            return _fault_response(fault, simulator.faults)
        pace = simulator.draw_pace()
        simulator.record("ok", streamed=body.stream, usage=reply.usage)
        if body.stream:
            return StreamingResponse(
                _stream(reply, pace, model=body.model, include_usage=body.include_usage),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        await asyncio.sleep(pace.duration(reply.tokens))
        return JSONResponse(_completion(reply, model=body.model).model_dump(mode="json"))

    @app.get("/v1/models")
    async def list_models() -> ModelList:
        created = int(time.time())
        return ModelList(data=[ModelCard(id=name, created=created) for name in simulator.models])

    @app.get("/healthz")
    async def read_health() -> dict[str, Any]:
        return {
            "status": "ok",
            "simulated": True,
            "profile": simulator.profile.name,
            "models": list(simulator.models),
        }

    @app.get("/_control/faults")
    async def read_faults() -> FaultSettings:
        return simulator.faults

    @app.post("/_control/faults")
    async def replace_faults(settings: FaultSettings) -> FaultSettings:
        simulator.set_faults(settings)
        return simulator.faults

    @app.get("/_control/stats")
    async def read_stats() -> EndpointStats:
        return simulator.stats

    @app.post("/_control/reset")
    async def reset_endpoint() -> EndpointStats:
        simulator.reset()
        return simulator.stats

    return app


# --- Command line ------------------------------------------------------------------------


_FAULTS_BY_NAME: Mapping[str, Fault] = MappingProxyType({kind: kind for kind in FAULTS})


def _fault_kinds(value: str) -> list[Fault]:
    kinds: list[Fault] = []
    for name in (part.strip() for part in value.split(",") if part.strip()):
        if name not in _FAULTS_BY_NAME:
            raise argparse.ArgumentTypeError(
                f"unknown fault {name!r}; choose from {', '.join(FAULTS)}"
            )
        kinds.append(_FAULTS_BY_NAME[name])
    if not kinds:
        raise argparse.ArgumentTypeError("give at least one fault kind")
    return kinds


def _names(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one model name")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m loadtests.openai_endpoint`."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.openai_endpoint",
        description="Serve an OpenAI-compatible chat completions API backed by ALMA's "
        "simulated model.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    parser.add_argument("--port", type=int, default=8011, help="port to bind; 0 picks a free one")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="realistic")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="chance a request fails")
    parser.add_argument(
        "--fault-kinds",
        type=_fault_kinds,
        default=list(FAULTS),
        help=f"comma-separated faults drawn by --fault-rate (default: {','.join(FAULTS)})",
    )
    parser.add_argument("--retry-after", type=float, default=1.0, help="seconds a 429 asks for")
    parser.add_argument(
        "--stall-seconds", type=float, default=3600.0, help="longest a timeout fault stalls"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed faults and latency")
    parser.add_argument(
        "--models", type=_names, default=list(DEFAULT_MODELS), help="comma-separated model names"
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the endpoint until interrupted; print one line once it is listening."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = FaultSettings(
            rate=args.fault_rate,
            kinds=args.fault_kinds,
            retry_after=args.retry_after,
            stall_seconds=args.stall_seconds,
        )
    except ValueError as exc:
        parser.error(str(exc))
    profile = PROFILES[args.profile]
    app = create_app(profile=profile, faults=faults, seed=args.seed, models=args.models)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # Bind before announcing, so whoever reads the line can connect at once.
    sock = socket.create_server((args.host, args.port), family=family, backlog=2048)
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=args.access_log,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    print(
        f"simulated OpenAI endpoint listening on http://{shown_host}:{port}/v1 "
        f"(profile={profile.name}, fault_rate={faults.rate:g}, "
        f"fault_kinds={','.join(faults.kinds)}, seed={args.seed}, "
        f"models={','.join(args.models)})",
        flush=True,
    )
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
