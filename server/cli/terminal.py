"""Render one run of the manager graph to a terminal while it streams.

The terminal is a wire format like the others: a run starts through the engine (in
this process, or on a server over the agent protocol) and its protocol events are
printed as they come.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import AsyncIterator, Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from graphs.interface import is_answer, is_draft, is_note
from nodes.run_context import RunContext
from server.agent_protocol.client import ProtocolClient
from server.agent_protocol.messages import SubscribeParams
from server.agent_protocol.streaming import ProtocolStream
from server.cli.review import reviewable
from server.engine import StartRequest
from server.engine.events import RunEnd, run_end, run_started
from server.langgraph_api.assistants import MANAGER_ASSISTANT_ID
from server.services import Services

Reviewer = Callable[[dict[str, Any]], dict[str, Any]]
"""Asks a person about a plan under review (the interrupt's payload); their answer."""


@dataclass
class Style:
    """ANSI styling, switched off when the output is not a terminal."""

    enabled: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def dim(self, text: str) -> str:
        """Secondary information."""
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        """Headings."""
        return self._wrap("1", text)

    def error(self, text: str) -> str:
        """Failures."""
        return self._wrap("31", text)


@dataclass
class RunReport:
    """What a finished run showed: its final state and timing."""

    state: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    finished: float | None = None
    tokens: int = 0
    """Tokens shown: the answer's and the analysis notes'."""
    thread_id: str | None = None

    @property
    def error(self) -> dict[str, Any] | None:
        """The run's error, if it failed."""
        error: dict[str, Any] | None = self.state.get("error")
        return error


class RunPrinter:
    """Prints what a run shows as it comes: route, plan and progress, tokens, summary.

    Fed by a graph running in this process or by a server's protocol events alike.
    """

    def __init__(
        self, report: RunReport, out: TextIO, style: Style, *, refining: bool = False
    ) -> None:
        """Print `report`'s run to `out`; with `refining`, the first piece is a draft."""
        self.report = report
        self.out = out
        self.style = style
        self.refining = refining
        self._in_note = False
        self._answer_node: str | None = None
        self._answered = False

    def token(self, node: str | None, text: str) -> None:
        """A token of the answer, or of the analysis notes; other nodes' are not shown."""
        if not text or not (is_answer(node) or is_note(node)):
            return
        report = self.report
        if report.first_token is None:
            report.first_token = time.perf_counter()
        report.tokens += 1
        if is_answer(node):
            self._answered = True
            if self._in_note:
                self.out.write("\n\n")
                self._in_note = False
            drafting = self.refining and is_draft(node)
            if self.refining and node != self._answer_node:
                self._label(drafting=drafting)
            self._answer_node = node
            self.out.write(self.style.dim(text) if drafting else text)
        else:
            self._in_note = True
            self.out.write(self.style.dim(text))
        self.out.flush()

    def _label(self, *, drafting: bool) -> None:
        # A refined run streams two pieces: the draft, dimmed, then the edited answer,
        # each under a label so neither reads as a repeat of the other.
        if drafting:
            self.out.write(self.style.dim("draft:") + "\n")
        elif self._answer_node is not None:
            self.out.write("\n\n" + self.style.bold("edited:") + "\n")

    def progress(self, event: Any) -> None:
        """A custom stream event: the plan, or a step starting or finishing."""
        _show_progress(event, self.out, self.style)
        self._in_note = False

    def update(self, node_update: Any) -> None:
        """A root node's update; the route decision is shown."""
        # The decision comes from `route`, `consult_router`, or the fallback of the
        # latter's error handler.
        if isinstance(node_update, dict) and node_update.get("decision"):
            _show_route(node_update["decision"], self.out, self.style)

    def finish(self, state: dict[str, Any]) -> RunReport:
        """The run ended with `state`: print the summary line."""
        self.report.finished = time.perf_counter()
        self.report.state = state
        messages = state.get("messages") or []
        last = messages[-1] if messages else None
        if not self._answered and not state.get("error") and _is_ai(last):
            # An answer written whole rather than streamed (a rejected plan's).
            self.out.write(_text_of(last))
        self.out.write("\n")
        _show_summary(self.report, self.out, self.style)
        return self.report


def _printer(
    thread_id: str | None, context: RunContext, out: TextIO | None, style: Style | None
) -> RunPrinter:
    out = out or sys.stdout
    style = style or Style(enabled=out.isatty())
    return RunPrinter(RunReport(thread_id=thread_id), out, style, refining=context.refine)


async def render_engine_run(
    services: Services,
    message: str,
    *,
    thread_id: str,
    owner: str,
    context: RunContext,
    out: TextIO | None = None,
    style: Style | None = None,
    review: Reviewer | None = None,
    checkpoint: str | None = None,
) -> RunReport:
    """Run `message` on this process's engine, printing it as a server's run is printed.

    The run starts as every run starts (`RunStarter`): the thread becomes `owner`'s and
    joins their conversations, and its events are the agent protocol's, read from the
    engine's own fan-out. A run that stops for its plan to be reviewed is resumed with
    `review`'s answer, as a new run on the thread, until it ends otherwise. With
    `checkpoint`, the run forks the thread from that earlier checkpoint.

    Raises:
        Refused: when the run may not start (another owner's thread, a limit).
    """
    printer = _printer(thread_id, context, out, style)
    request = StartRequest(
        owner=owner, limit_key=owner, thread_id=thread_id, assistant_id=MANAGER_ASSISTANT_ID,
        input={"messages": [{"role": "user", "content": message}]}, stream=ProtocolStream(),
        context=dataclasses.asdict(context),
        checkpoint={"checkpoint_id": checkpoint} if checkpoint else None,
    )  # fmt: skip
    while True:
        run = await services.starter.start(request)
        wanted = SubscribeParams(channels=list(SHOWN), since=run.record.first_seq - 1)
        subscription = await services.broker.subscribe(thread_id, wanted)
        asked: list[dict[str, Any]] = []
        try:
            ending = await _show_events(printer, subscription.events(), {run.run_id}, asked)
        finally:
            services.broker.unsubscribe(subscription)
        answers = _answers(ending, asked, review)
        if answers is None:
            break
        request = dataclasses.replace(
            request, input=None, command={"resume": answers}, context={}, checkpoint=None
        )
    snapshot = await services.graph.aget_state({"configurable": {"thread_id": thread_id}})
    return printer.finish(_with_ending(dict(snapshot.values), ending))


async def render_remote_run(
    client: ProtocolClient,
    message: str,
    *,
    thread_id: str,
    context: RunContext,
    out: TextIO | None = None,
    style: Style | None = None,
    review: Reviewer | None = None,
    checkpoint: str | None = None,
) -> RunReport:
    """Start a run on a server over `client` and print it as `render_engine_run` does.

    The client is subscribed to the `SHOWN` channels of the thread, once for all its turns.
    """
    printer = _printer(thread_id, context, out, style)
    runs = _NewRuns(client)
    fork = {"checkpoint_id": checkpoint} if checkpoint else {}
    await client.start(message, context=dataclasses.asdict(context), **fork)
    while True:
        asked: list[dict[str, Any]] = []
        ending = await _show_events(printer, _events_of(client), runs, asked)
        answers = _answers(ending, asked, review)
        if answers is None:
            break
        for request in asked:
            data = request["params"]["data"]
            await client.respond(
                data["interrupt_id"], answers[data["interrupt_id"]], request["params"]["namespace"]
            )
    state = (await client.call("state.get")).get("values") or {}
    return printer.finish(_with_ending(state, ending))


def _answers(
    ending: RunEnd, asked: list[dict[str, Any]], review: Reviewer | None
) -> dict[str, Any] | None:
    """The answers that resume a run stopped for review; None when it is not to resume."""
    if ending.ending != "interrupted" or not asked:
        return None
    payloads = {e["params"]["data"]["interrupt_id"]: e["params"]["data"]["payload"] for e in asked}
    if review is None or not all(reviewable(payload) for payload in payloads.values()):
        return None
    return {interrupt_id: review(payload) for interrupt_id, payload in payloads.items()}


SHOWN = ("lifecycle", "messages", "updates", "custom", "input")
"""The protocol channels a terminal shows."""


class _NewRuns:
    """The runs a client starts from now on: a turn's run, and the runs resuming it.

    A thread's earlier runs are not among them, though their ends are replayed to a new
    subscription, or heard by one that stays subscribed from turn to turn.
    """

    def __init__(self, client: ProtocolClient) -> None:
        self.client = client
        self.before = set(client.started)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self.client.started and run_id not in self.before


async def _events_of(client: ProtocolClient) -> AsyncIterator[dict[str, Any]]:
    while True:
        event = await client.next_event(timeout=None)
        if event is None:
            raise ConnectionError(
                f"the server closed the stream ({client.close_code}: {client.close_reason})"
            )
        yield event


async def _show_events(
    printer: RunPrinter,
    events: AsyncIterator[Mapping[str, Any]],
    runs: Container[str],
    asked: list[dict[str, Any]],
) -> RunEnd:
    """Print protocol events from the start of one of `runs` until one of them ends.

    Events before are another run's (replayed to a new subscription). The interrupts
    the run stopped at (`input.requested`) are collected in `asked`.
    """
    started = False
    async for event in events:
        if not started:
            started = run_started(event) in runs
            if not started:
                continue
        if event["method"] == "input.requested":
            asked.append(dict(event))
            continue
        params, data = event["params"], event["params"]["data"]
        if event["method"] == "messages" and data.get("event") == "content-block-delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text-delta":
                printer.token(params.get("node"), delta.get("text", ""))
        elif event["method"] == "custom":
            printer.progress(data.get("payload"))
        elif event["method"] == "updates" and not params.get("namespace"):
            printer.update(data.get("values"))
        elif (end := run_end(event)) is not None and end.run_id in runs:
            return end
    raise ConnectionError("the run's events ended before the run did")


def _is_ai(message: Any) -> bool:
    if isinstance(message, dict):
        return message.get("type") == "ai"
    return getattr(message, "type", None) == "ai"


def _text_of(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else message.content
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return "".join(block.get("text", "") for block in blocks if isinstance(block, dict))


def _with_ending(state: dict[str, Any], end: RunEnd) -> dict[str, Any]:
    if end.ending == "interrupted" and not state.get("error"):
        # Stopped for an answer nobody gave here: the thread waits for it.
        state["error"] = {
            "code": "interrupted",
            "message": "the run is waiting for an answer to its interrupt; resume the thread",
        }
    if end.ending == "failed" and not state.get("error"):
        # Ended by the server (cancelled, storage lost), not by the graph.
        state["error"] = {"code": end.code, "message": end.error}
    return state


def _show_route(decision: dict[str, Any], out: TextIO, style: Style) -> None:
    line = (
        f"→ {decision['route']} (by {decision['decided_by']}, "
        f"confidence {decision['confidence']:.2f}): {decision['reason']}"
    )
    out.write(style.dim(line) + "\n\n")


def _show_progress(event: Any, out: TextIO, style: Style) -> None:
    if not isinstance(event, dict):
        return
    if event.get("type") == "plan":
        steps = "\n".join(f"  {i}. {step}" for i, step in enumerate(event["steps"], 1))
        out.write(style.bold("Plan") + "\n" + steps + "\n\n")
    elif event.get("type") == "progress" and event.get("status") == "started":
        out.write(style.bold(f"[step {event['step']} of {event['total']}] {event['label']}") + "\n")
    elif event.get("type") == "progress":
        out.write("\n\n")


def _show_summary(report: RunReport, out: TextIO, style: Style) -> None:
    error = report.error
    if error:
        out.write(style.error(f"error [{error['code']}]: {error['message']}") + "\n")
    usage = report.state.get("usage") or {}
    total = usage.get("total") or {}
    elapsed = (report.finished or report.started) - report.started
    parts = [f"total {elapsed:.2f}s"]
    if report.thread_id:
        parts.append(f"thread {report.thread_id}")
    if report.first_token is not None:
        ttft = report.first_token - report.started
        parts.insert(0, f"first token {ttft:.2f}s")
        streaming = (report.finished or report.first_token) - report.first_token
        if streaming > 0:
            parts.append(f"{report.tokens / streaming:.0f} tok/s")
    if total:
        parts.append(
            f"tokens {total['input_tokens']} in / {total['output_tokens']} out "
            f"over {total['calls']} call{'s' if total['calls'] != 1 else ''}"
        )
    out.write(style.dim(" · ".join(parts)) + "\n")
